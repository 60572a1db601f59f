//! What goes into a session and what comes out of it: its configuration, the [`Input`]s a driver feeds it, the
//! [`Action`]s and [`Event`]s it answers with, and the plain data they carry.
pub use super::bwe::TransportAck;
use super::connect::ConnectTimings;
use super::sender::{RtpPacket, SenderReport, StreamIds};
use crate::media::capture::CaptureClock;
use crate::media::packet::EncodedPacket;
use crate::media::video::VideoCodec;
use crate::signal::whip::IceServer;
use crate::signal::Failure;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// Everything a session is made from: settings, encoder configuration, the clock reading and the random values
/// the caller drew.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// What the streamer's log calls the server ("WHIP", "Janus VideoRoom").
    pub signalling: &'static str,
    /// The configured STUN/TURN servers (those the server announces are added).
    pub ice_servers: Vec<IceServer>,
    pub relay_only: bool,
    /// Limit for the whole connect (signalling + ICE + DTLS).
    pub connect_timeout: Duration,
    pub max_payload: usize,
    /// What the video encoders produce (every layer's the same).
    pub video_codec: VideoCodec,
    /// The audio encoder's extra data (OpusHead).
    pub audio_extra_data: Bytes,
    pub capture: CaptureClock,
    /// The video layers, the full picture first: one, or with simulcast up to [`MAX_LAYERS`] from encoders of
    /// their own, each smaller than the one before.
    pub video: Vec<VideoLayer>,
    pub audio: StreamIds,
    /// The media stream id both tracks carry (`a=msid`).
    pub stream_id: String,
    pub rate: RateConfig,
}

/// Simulcast: at most this many video layers.
pub const MAX_LAYERS: usize = 3;

/// One video layer: the full picture, or (simulcast, RFC 8853) a smaller copy from an encoder of its own.
#[derive(Clone, Debug)]
pub struct VideoLayer {
    /// Its RTP stream id (`a=rid`); empty without simulcast.
    pub rid: String,
    pub ids: StreamIds,
    /// The SSRC of its retransmission stream (RFC 4588).
    pub rtx_ssrc: u32,
    /// Its encoder's extra data (H.264/HEVC: Annex-B parameter sets; AV1: the sequence header).
    pub extra_data: Bytes,
    /// Its encoder's configured bitrate, kbit/s (the full picture's is [`RateConfig::video_kbps`]).
    pub kbps: u32,
}

impl VideoLayer {
    /// The one video layer of a stream without simulcast.
    pub fn single(ids: StreamIds, rtx_ssrc: u32, extra_data: Bytes) -> VideoLayer {
        VideoLayer {
            rid: String::new(),
            ids,
            rtx_ssrc,
            extra_data,
            kbps: 0,
        }
    }
}

/// The rates the encoders were configured for, and how the video's may follow the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Set the video encoder's bitrate to what the path carries (between the floor and the configured rate), and
    /// drop video up to the next keyframe when not even the floor fits.
    pub adaptive: bool,
    /// The video encoder's configured bitrate, kbit/s (0: unknown — an encoder without a bitrate setting).
    pub video_kbps: u32,
    /// The floor adaptation keeps to, kbit/s.
    pub min_video_kbps: u32,
    /// The encoder takes bitrate changes while encoding (`OBS_ENCODER_CAP_DYN_BITRATE`).
    pub encoder_follows: bool,
    pub audio_kbps: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            adaptive: true,
            video_kbps: 2500,
            min_video_kbps: 300,
            encoder_follows: true,
            audio_kbps: 160,
        }
    }
}

/// The peer connection to make: our two send-only tracks and the ICE configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub ice_servers: Vec<IceServer>,
    pub relay_only: bool,
    pub stream_id: String,
    /// The video layers (full picture first): simulcast when there is more than one.
    pub video: Vec<LayerSpec>,
    pub audio_ssrc: u32,
    pub video_codec: VideoCodec,
    /// The offer's `a=fmtp` parameters for it (H.264: its `profile-level-id` from the encoder's SPS).
    pub video_fmtp: String,
    pub stereo: bool,
}

/// One video layer as the offer describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Its RTP stream id (`a=rid`); empty without simulcast.
    pub rid: String,
    pub ssrc: u32,
    /// The SSRC of its retransmission stream (RFC 4588), used if the answer takes RTX.
    pub rtx_ssrc: u32,
}

/// What the server said before the offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preflight {
    pub ice_servers: Vec<IceServer>,
    /// It takes candidates after the offer (trickle ICE).
    pub trickle: bool,
}

/// The server's answer to the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAnswer {
    pub sdp: String,
    /// It takes ICE restarts in the same session (WHIP: PATCH).
    pub restarts: bool,
    /// STUN/TURN servers announced with the answer (for ICE restarts).
    pub ice_servers: Vec<IceServer>,
}

/// The payload types the answer settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadTypes {
    pub video: u8,
    pub audio: u8,
    /// The video's retransmission payload type, when the answer took RTX.
    pub video_rtx: Option<u8>,
    /// The answer took the transport-wide sequence number extension, for video and for audio (a server may take
    /// it for one and not the other — Janus for video only — and counts every number it does not see as lost).
    pub transport_cc: [bool; 2],
    /// The video layers the answer takes, bit `i` for layer `i` (without simulcast: the first alone).
    pub layers: u8,
}

/// Why a request that does not end the stream (a trickled candidate, an ICE restart) did not go through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The server takes no such request at all (HTTP 405, 501, 415): asking again is pointless.
    Unsupported(String),
    /// It failed this time.
    Failed(String),
    /// The server no longer knows the session (HTTP 404 or 410: it restarted, or dropped it): nothing sent to
    /// that session can work again.
    Gone(String),
}

impl RequestError {
    pub fn message(&self) -> &str {
        match self {
            RequestError::Unsupported(m) | RequestError::Failed(m) | RequestError::Gone(m) => m,
        }
    }
}

/// The peer connection's state (ICE + DTLS), as the WebRTC stack reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::Disconnected => "disconnected",
            PeerState::Failed => "failed",
            PeerState::Closed => "closed",
        })
    }
}

/// RTCP feedback from the server that the session acts on or counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// A keyframe request (picture loss indication, or full intra request: `full`) for stream `ssrc`.
    KeyframeRequest { ssrc: u32, full: bool },
    /// A receiver report's block about stream `ssrc`: RFC 3550 `fraction lost` (per 256), and the last sender
    /// report it saw (LSR, the middle 32 bits of its NTP time) and how long ago (DLSR, 1/65536 s).
    ReceiverReport {
        ssrc: u32,
        fraction_lost: u8,
        lsr: u32,
        dlsr: u32,
        /// Interarrival jitter, in the stream's RTP timestamp units (RFC 3550 §6.4.1).
        jitter: u32,
    },
    /// The server asks for these packets of stream `ssrc` again (RFC 4585 generic NACK).
    Nack { ssrc: u32, seqs: Vec<u16> },
    /// Transport-wide congestion control feedback: which packets arrived, and when on the server's clock.
    TransportCc(Vec<TransportAck>),
    /// The server's receiver-estimated maximum bitrate (REMB), bit/s.
    Remb(u64),
}

/// What happened, for the session to decide on.
#[derive(Clone, Debug)]
pub enum Input {
    Preflighted(Preflight),
    /// The peer connection exists and its offer is set locally (candidate gathering has begun).
    PeerCreated(Result<(), Failure>),
    /// A round of candidate gathering completed (the first, or an ICE restart's).
    GatheringComplete,
    /// A local candidate (`candidate:…`), as gathered.
    LocalCandidate(String),
    /// The local offer as it stood when asked for ([`Action::ReadOffer`]).
    Offer(Result<String, Failure>),
    Answered(Result<ServerAnswer, Failure>),
    AnswerApplied(Result<PayloadTypes, Failure>),
    Trickled(Result<(), RequestError>),
    /// The peer connection has new ICE credentials and a new offer ([`Action::RestartIce`]).
    IceRestarted(Result<(), RequestError>),
    /// The server's ICE restart fragment (its new credentials and candidates).
    RestartAnswered(Result<String, RequestError>),
    PeerState(PeerState),
    /// ICE found a working path (the connection is connected once DTLS is too).
    IceConnected,
    Feedback(Feedback),
    Media(EncodedPacket),
    /// The streamer stopped, or the stream is being torn down.
    Stop,
    ServerSessionEnded(Result<String, String>),
    PeerClosed,
    /// The server said, unasked, that our session is gone (Janus hung up, or its event poll failed: it is down).
    ServerGone(String),
    /// One of the server's ICE candidates, sent after its answer (trickle ICE the other way: Ant Media).
    RemoteCandidate(RemoteCandidate),
}

/// A server's ICE candidate and the media section it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// The m-line's index and mid.
    pub mline: u16,
    pub mid: String,
    /// `candidate:…` (no `a=`); empty: the server's end of candidates.
    pub candidate: String,
}

/// What the driver is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the server for the ICE servers it announces and whether it takes trickle ICE (WHIP OPTIONS).
    Preflight {
        limit: Duration,
    },
    /// A new peer connection (in place of any before), with its offer set locally.
    CreatePeer(PeerSpec),
    /// Report the local offer as it stands, candidates gathered so far included.
    ReadOffer,
    SendOffer(String),
    ApplyAnswer(String),
    SendTrickle(String),
    /// New ICE credentials on the same peer connection, gathering with these servers.
    RestartIce(Vec<IceServer>),
    SendRestart(String),
    SendRtp(RtpPacket),
    SendReport(SenderReport),
    EndServerSession,
    ClosePeer,
    /// Ask the video encoder of this layer (0: the full picture) for a keyframe as soon as it can.
    RequestKeyframe(usize),
    /// Set OBS's video encoder (of the full picture) to this bitrate, kbit/s.
    SetVideoBitrate(u32),
    /// Simulcast layer `i` is not sent at all (the answer refused it): its encoder may go.
    ReleaseLayer(usize),
    /// Give the peer connection one of the server's candidates (only once its answer is applied).
    AddRemoteCandidate(RemoteCandidate),
}

/// How loud a note is in the streamer's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// Something for the streamer's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub level: Level,
    pub text: String,
}

impl Note {
    pub fn info(text: impl Into<String>) -> Note {
        Note {
            level: Level::Info,
            text: text.into(),
        }
    }
    pub fn warn(text: impl Into<String>) -> Note {
        Note {
            level: Level::Warn,
            text: text.into(),
        }
    }
}

/// What the session's owner hears of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Note(Note),
    /// ICE and DTLS are up: media may flow.
    Connected(ConnectTimings),
    /// The stream cannot go on (or was stopped while connecting); teardown follows by itself.
    Failed(Failure),
    /// Teardown is over; how the server's session ended.
    Closed(Result<String, String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Action(Action),
    Event(Event),
    /// Nothing more until this instant: call [`Session::handle_timeout`] then.
    Timeout(Instant),
}

/// A session's figures at one moment (see [`super::Session::figures`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Media flows (connected, not closing).
    pub streaming: bool,
    /// The bandwidth estimate, bit/s, and the video bitrate asked of the encoder, kbit/s.
    pub estimate_bps: f64,
    pub video_target_kbps: u32,
    pub rtt: Option<Duration>,
    /// The loss the latest receiver reports gave (the worse of video and audio), 0..1.
    pub loss: f64,
    /// The video's interarrival jitter the latest receiver report gave.
    pub video_jitter: Option<Duration>,
    /// NACK messages, the packets they asked for, and the packets sent again (copies included).
    pub nacks: u64,
    pub nacked_packets: u64,
    pub retransmitted_packets: u64,
    /// PLIs and FIRs.
    pub keyframe_requests: u64,
    /// Video frames dropped while the network was behind.
    pub frames_dropped: u64,
    pub ice_restarts: u32,
    /// Bytes on the wire.
    pub bytes_sent: u64,
    /// Each video layer (one without simulcast).
    pub layers: Vec<super::LayerStats>,
}

/// What the server told us during the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedbackStats {
    pub pli: u64,
    pub fir: u64,
    /// Receiver-report blocks about our streams.
    pub receiver_reports: u64,
    /// The loss the latest reports gave (the worse of video and audio), and the worst of the session, per 256.
    pub fraction_lost: u8,
    pub worst_fraction_lost: u8,
    /// The latest loss per stream: video, audio.
    pub latest: [u8; 2],
    /// The latest interarrival jitter per stream (video, audio), µs.
    pub jitter_us: [u64; 2],
    /// NACK messages, and the sequence numbers they asked for (all streams, and of those the audio's).
    pub nacks: u64,
    pub nacked_packets: u64,
    pub nacked_audio_packets: u64,
}
