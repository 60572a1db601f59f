//! One WHIP publishing session: a webrtc-rs peer connection with sendonly H.264 and Opus transceivers (BUNDLE,
//! rtcp-mux), RTP built by our media core, and RTCP sender reports from our own capture-anchored clock.
//!
//! webrtc-rs's default sender-report interceptor pairs the last sent RTP timestamp with the time it was sent;
//! with B-frames (sent in decode order, stamped in presentation order) and with different encoder delays for
//! audio and video that mapping is off by tens of milliseconds. We leave it out and send reports from
//! [`SessionClock::sender_report`], which maps both streams from the capture clock, so receivers lip-sync.
use super::http::WhipHttp;
use super::janus::JanusSignalling;
use super::signalling::{Signalling, WhipSignalling};
use super::turn_bridge::{StreamTurnServer, TurnBridge};
use crate::media::clock::SessionClock;
use crate::media::h264::{access_unit_nals, ParameterSets};
use crate::media::h264_rtp::{H264Packetizer, RtpPayload};
use crate::media::opus::OpusHead;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::secret::Secret;
use crate::signal::janus::JanusRoom;
use crate::signal::whip::{self, IceServer};
use crate::signal::{Failure, StopCode};
use bytes::Bytes;
use rtc::interceptor::{
    Attribute, Interceptor, Packet as InterceptedPacket, Slot, StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    configure_nack, MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

pub const VIDEO_PAYLOAD_TYPE: u8 = 102;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// How long we wait for our own ICE candidates before sending the offer with what we have.
/// STUN answers and TURN allocations (three round trips with authentication) take well under a second on real
/// networks; an unreachable server must not hold the first frame back longer than that.
const GATHER_LIMIT: Duration = Duration::from_secs(1);
/// How long ICE looks for a direct path before it settles for a TURN relay (when direct paths are allowed).
const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_millis(1000);
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A large frame (a keyframe) leaves in bursts of at most this many bytes, [`BURST_GAP`] apart, so that it does
/// not flood a receiver's socket buffer or a network queue at once; P-frames at common bitrates fit in one burst.
/// (Measured by the replay benchmark: at 1080p 6 Mbit/s, whole-keyframe bursts cost our receiver 40 of 300 frames.)
const BURST_BYTES: usize = 24 * 1024;
const BURST_GAP: Duration = Duration::from_millis(1);
/// Closing a peer connection on a failure path may take at most this long.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// The OPTIONS pre-flight for ICE servers may take at most this long (servers without it answer at once).
const PREFLIGHT_LIMIT: Duration = Duration::from_secs(2);

/// Everything needed to connect, from the output's settings and encoders.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// The WHIP endpoint, or Janus's REST API root when `janus` is set.
    pub endpoint: String,
    pub bearer_token: Secret,
    /// Publish into this Janus VideoRoom through Janus's own API instead of WHIP.
    pub janus: Option<JanusRoom>,
    pub ice_servers: Vec<IceServer>,
    /// Only relayed (TURN) candidates.
    pub relay_only: bool,
    /// Limit for the whole connect (HTTP + ICE + DTLS).
    pub connect_timeout: Duration,
    pub max_payload: usize,
    /// The video encoder's extra data (Annex-B SPS/PPS).
    pub video_extra_data: Bytes,
    /// The audio encoder's extra data (OpusHead).
    pub audio_extra_data: Bytes,
}

/// An interceptor that hands the inbound RTCP packets matching `wanted` to the application (webrtc-rs keeps all
/// inbound RTCP inside the interceptor chain unless one marks it). Everything passes through unchanged.
pub struct RtcpTap {
    wanted: fn(&dyn rtc::rtcp::Packet) -> bool,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtcpTap {
    pub fn new(wanted: fn(&dyn rtc::rtcp::Packet) -> bool) -> Self {
        RtcpTap {
            wanted,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// Registers the tap last in the chain, so every other interceptor has seen the packets first.
    pub fn add_to(registry: Registry, wanted: fn(&dyn rtc::rtcp::Packet) -> bool) -> Registry {
        registry.with(Slot::from(14_000), RtcpTap::new(wanted))
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptedPacket::Rtcp(packets) = &msg.message.packet {
            if packets.iter().any(|p| (self.wanted)(p.as_ref())) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The server's feedback the publisher reads: keyframe requests (PLI, FIR) and receiver reports.
pub fn is_feedback(p: &dyn rtc::rtcp::Packet) -> bool {
    p.as_any().is::<PictureLossIndication>()
        || p.as_any().is::<FullIntraRequest>()
        || p.as_any().is::<ReceiverReport>()
}

/// What the server told us during a session.
#[derive(Debug, Default)]
pub struct Feedback {
    pub pli: AtomicU64,
    pub fir: AtomicU64,
    pub receiver_reports: AtomicU64,
    /// The loss the latest receiver report gave for our streams (RFC 3550 `fraction lost`, the worst of its
    /// blocks): lost packets per 256 since the report before.
    pub fraction_lost: AtomicU32,
    /// The worst `fraction lost` of any report in the session.
    pub worst_fraction_lost: AtomicU32,
}

impl Feedback {
    /// Loss since the server's previous report, 0..1.
    pub fn loss(&self) -> f32 {
        self.fraction_lost.load(Ordering::Relaxed) as f32 / 256.0
    }
}

async fn watch_feedback(track: Arc<TrackLocalStaticRTP>, feedback: Arc<Feedback>) {
    while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
        for p in &packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() {
                feedback.pli.fetch_add(1, Ordering::Relaxed);
            } else if any.is::<FullIntraRequest>() {
                feedback.fir.fetch_add(1, Ordering::Relaxed);
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                feedback.receiver_reports.fetch_add(1, Ordering::Relaxed);
                let worst = rr
                    .reports
                    .iter()
                    .map(|b| b.fraction_lost)
                    .max()
                    .unwrap_or(0);
                feedback
                    .fraction_lost
                    .store(u32::from(worst), Ordering::Relaxed);
                feedback
                    .worst_fraction_lost
                    .fetch_max(u32::from(worst), Ordering::Relaxed);
            }
        }
    }
}

struct Events {
    state: watch::Sender<RTCPeerConnectionState>,
    /// Whether the current gathering (the first, or an ICE restart's) has completed, and how many have.
    gathered: watch::Sender<bool>,
    gatherings: watch::Sender<u32>,
    /// Local candidates as they are gathered (`candidate:…`), for trickle ICE.
    candidates: tokio::sync::mpsc::UnboundedSender<String>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        let complete = state == RTCIceGatheringState::Complete;
        self.gathered.send_replace(complete);
        if complete {
            self.gatherings.send_modify(|n| *n += 1);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_ice_candidate(&self, event: webrtc::peer_connection::RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init.candidate);
        }
    }
}

/// Per-stream RTP state.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    packets: u32,
    octets: u32,
}

impl Outgoing {
    async fn send(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Result<usize, Failure> {
        let size = payload.len();
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: self.payload_type,
                sequence_number: self.seq,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(size as u32);
        self.track.write_rtp(packet).await.map_err(|e| {
            Failure::new(
                StopCode::Disconnected,
                format!("The connection to the server was lost ({e})"),
            )
        })?;
        Ok(size + 12)
    }

    async fn sender_report(&self, ntp: u64, rtp: u32) {
        let sr = rtc::rtcp::sender_report::SenderReport {
            ssrc: self.ssrc,
            ntp_time: ntp,
            rtp_time: rtp,
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        };
        // A lost report is harmless: the next one follows in a second.
        let _ = self.track.write_rtcp(vec![Box::new(sr)]).await;
    }
}

/// A connected publishing session.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    /// Completed candidate gatherings (the first, then one per ICE restart).
    gatherings: watch::Receiver<u32>,
    signalling: Arc<tokio::sync::Mutex<Box<dyn Signalling>>>,
    signalling_name: &'static str,
    clock: SessionClock,
    params: ParameterSets,
    packetizer: H264Packetizer,
    payloads: Vec<RtpPayload>,
    video: Outgoing,
    audio: Outgoing,
    last_report: Option<Instant>,
    pub feedback: Arc<Feedback>,
    /// ICE servers the WHIP server announced in its OPTIONS pre-flight (used for this session).
    pub announced_ice_servers: Vec<IceServer>,
    /// ICE servers the WHIP server announced with its answer (the 201): used from the first ICE restart on.
    pub answer_ice_servers: Vec<IceServer>,
    /// All ICE servers of the session (configured and announced), for ICE restarts.
    ice_servers: Vec<IceServer>,
    relay_only: bool,
    /// While the connection is down: since when, and the ICE restart under way.
    recovery: Option<Recovery>,
    /// Outages that ICE restarts repaired.
    pub ice_restarts: u32,
    /// Things for the streamer's log that happened since the last [`Self::take_notes`]: (warning, text).
    notes: Vec<(bool, String)>,
    /// Bridges to TURN servers over TCP/TLS, kept as long as the session.
    turn_bridges: Vec<TurnBridge>,
    pub answer_sdp: String,
    /// Where the connect time went.
    pub timings: ConnectTimings,
    /// Why trickling stopped early, if it did.
    pub trickle_note: Option<String>,
}

/// Milliseconds from the start of `connect` to: the offer being ready (after ICE gathering completed or its limit
/// passed), the server's answer, and ICE + DTLS being connected.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectTimings {
    pub offer_ms: u64,
    pub gathering_complete: bool,
    pub answer_ms: u64,
    pub connected_ms: u64,
    /// The offer went before gathering finished; later candidates follow by PATCH (trickle ICE).
    pub trickle: bool,
    /// Candidates sent by PATCH, and whether `end-of-candidates` was.
    pub trickled_candidates: usize,
    pub end_of_candidates_sent: bool,
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// How long ICE may stay disconnected before an ICE restart is tried (or, when the server takes none, the stream
/// is declared lost and OBS reconnects with a new session).
const DISCONNECTED_GRACE: Duration = Duration::from_secs(1);
/// While the connection is down, a new ICE restart at most this often.
const RESTART_RETRY: Duration = Duration::from_secs(3);
/// How long ICE restarts may try to bring the connection back before the stream is declared lost.
const RECOVERY_WINDOW: Duration = Duration::from_secs(15);
/// ICE: disconnected after this much silence, failed after `ICE_FAILED`, consent checks every second.
const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
const ICE_FAILED: Duration = Duration::from_secs(10);

fn codec(kind: MediaKind, profile_level_id: &str, stereo: bool) -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    match kind {
        MediaKind::Video => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile_level_id}"
                ),
                rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
            },
            payload_type: VIDEO_PAYLOAD_TYPE,
        },
        MediaKind::Audio => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: if stereo {
                    "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1".into()
                } else {
                    "minptime=10;useinbandfec=1".into()
                },
                rtcp_feedback: vec![],
            },
            payload_type: OPUS_PAYLOAD_TYPE,
        },
    }
}

fn local_track(
    kind: MediaKind,
    codec: &RTCRtpCodecParameters,
    ssrc: u32,
    stream_id: &str,
) -> Arc<TrackLocalStaticRTP> {
    let (rtc_kind, name) = match kind {
        MediaKind::Video => (RtpCodecKind::Video, "video"),
        MediaKind::Audio => (RtpCodecKind::Audio, "audio"),
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_string(),
        format!("{stream_id}-{name}"),
        format!("OBS {name}"),
        rtc_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec.rtp_codec.clone(),
            ..Default::default()
        }],
    )))
}

fn webrtc_error(context: &str) -> impl Fn(webrtc::error::Error) -> Failure + '_ {
    move |e| {
        Failure::new(
            StopCode::ConnectFailed,
            format!("WebRTC {context} failed: {e}"),
        )
    }
}

async fn wait_for<T: Clone>(
    rx: &mut watch::Receiver<T>,
    until: Instant,
    mut done: impl FnMut(&T) -> bool,
) -> Option<T> {
    loop {
        let value = rx.borrow_and_update().clone();
        if done(&value) {
            return Some(value);
        }
        match tokio::time::timeout_at(until.into(), rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return None,
        }
    }
}

/// A peer connection that reached the server (or failed on the way), before it becomes a [`Publisher`].
struct Negotiated {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gatherings: watch::Receiver<u32>,
    video: (Arc<TrackLocalStaticRTP>, u32),
    audio: (Arc<TrackLocalStaticRTP>, u32),
    answer_sdp: String,
    timings: ConnectTimings,
    trickle_note: Option<String>,
}

/// Why a negotiation ended without a connection.
enum NotConnected {
    Failed(Failure),
    /// The offer went early (trickle ICE) but the server refused the PATCH with our candidates: the session it
    /// made will never learn them. Try again with a complete offer.
    NeedsCompleteOffer(String),
}

impl From<Failure> for NotConnected {
    fn from(f: Failure) -> Self {
        NotConnected::Failed(f)
    }
}

fn relay_only_without_relay() -> Failure {
    Failure::new(
        StopCode::ConnectFailed,
        "The TURN server gave no relay address (\"Relay only\" is on): check the TURN URL, username and password \
         or shared secret",
    )
}

fn has_relay(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| l.starts_with("a=candidate:") && l.contains(" typ relay"))
}

fn rtc_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.expose().to_string(),
            credential: s.credential.expose().to_string(),
        })
        .collect()
}

impl Publisher {
    /// Signals (WHIP or Janus) and waits until ICE and DTLS are connected.
    pub async fn connect(cfg: PublishConfig) -> Result<Publisher, Failure> {
        let started = Instant::now();
        let endpoint = whip::validate_endpoint(&cfg.endpoint)?;
        let http = WhipHttp::new(cfg.connect_timeout)?;
        let mut signalling: Box<dyn Signalling> = match &cfg.janus {
            None => Box::new(WhipSignalling::new(
                http,
                endpoint,
                cfg.bearer_token.clone(),
            )),
            Some(room) => Box::new(JanusSignalling::new(
                http,
                endpoint,
                cfg.bearer_token.clone(),
                room.clone(),
            )),
        };
        let mut ice_servers = cfg.ice_servers.clone();
        let announced = signalling
            .ice_servers(PREFLIGHT_LIMIT.min(cfg.connect_timeout / 3))
            .await;
        ice_servers.extend(announced.iter().cloned());
        let mut notes = Vec::new();
        let (ice_servers, turn_bridges) = bridge_stream_turn(ice_servers, &mut notes).await;

        let mut params = ParameterSets::default();
        params.learn(&cfg.video_extra_data);
        // RFC 9725 §4.3.2: a server that refuses the PATCH after an early offer gets a complete one (and, with
        // trickling forgone, cannot refuse again).
        let negotiated = loop {
            match negotiate(&cfg, signalling.as_mut(), &ice_servers, &params, started).await {
                Ok(n) => break n,
                Err(NotConnected::Failed(f)) => return Err(with_bridge_failures(f, &turn_bridges)),
                Err(NotConnected::NeedsCompleteOffer(why)) => {
                    notes.push((
                        true,
                        format!(
                            "trickle ICE refused after the offer ({why}): sent a new, complete offer"
                        ),
                    ));
                    signalling.forgo_trickle();
                }
            }
        };
        let (video_pt, audio_pt) = negotiated_payload_types(negotiated.pc.as_ref()).await;
        let feedback = Arc::new(Feedback::default());
        tokio::spawn(watch_feedback(negotiated.video.0.clone(), feedback.clone()));
        Ok(Publisher {
            pc: negotiated.pc,
            state: negotiated.state,
            gatherings: negotiated.gatherings,
            signalling_name: signalling.name(),
            answer_ice_servers: signalling.session_ice_servers(),
            signalling: Arc::new(tokio::sync::Mutex::new(signalling)),
            clock: SessionClock::new(rand::random(), rand::random()),
            params,
            packetizer: H264Packetizer::new(cfg.max_payload),
            payloads: Vec::with_capacity(64),
            video: Outgoing {
                track: negotiated.video.0,
                ssrc: negotiated.video.1,
                payload_type: video_pt,
                seq: rand::random(),
                packets: 0,
                octets: 0,
            },
            audio: Outgoing {
                track: negotiated.audio.0,
                ssrc: negotiated.audio.1,
                payload_type: audio_pt,
                seq: rand::random(),
                packets: 0,
                octets: 0,
            },
            last_report: None,
            feedback,
            announced_ice_servers: announced,
            ice_servers,
            relay_only: cfg.relay_only,
            recovery: None,
            ice_restarts: 0,
            notes,
            turn_bridges,
            answer_sdp: negotiated.answer_sdp,
            timings: ConnectTimings {
                connected_ms: ms_since(started),
                ..negotiated.timings
            },
            trickle_note: negotiated.trickle_note,
        })
    }

    /// Follows the connection: when ICE has been disconnected (or failed) for [`DISCONNECTED_GRACE`], restarts
    /// ICE through the server if it takes restarts (again every [`RESTART_RETRY`] while down); the stream is lost
    /// when it is not back within [`RECOVERY_WINDOW`] (at once without restarts). Packets keep going out
    /// meanwhile: they are live, and a backlog would only add delay once the path is back.
    async fn watch_connection(&mut self) -> Result<(), Failure> {
        let state = *self.state.borrow();
        let down = state != RTCPeerConnectionState::Connected;
        if state == RTCPeerConnectionState::Closed {
            return Err(self.lost(state, "the connection was closed"));
        }
        if self.recovery.is_none() {
            if !matches!(
                state,
                RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed
            ) {
                return Ok(());
            }
            self.recovery = Some(Recovery {
                since: Instant::now(),
                task: None,
                last_attempt: None,
                attempts: 0,
            });
        }
        let Some(mut r) = self.recovery.take() else {
            return Ok(());
        };
        if r.task.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(task) = r.task.take() {
                match task.await {
                    Ok(Ok(())) => self.notes.push((
                        false,
                        format!(
                            "ICE restart {} accepted by the server: checking the new paths",
                            r.attempts
                        ),
                    )),
                    Ok(Err(e)) => self
                        .notes
                        .push((true, format!("ICE restart {} failed: {e}", r.attempts))),
                    Err(e) => self
                        .notes
                        .push((true, format!("ICE restart {} failed: {e}", r.attempts))),
                }
            }
        }
        let out_ms = r.since.elapsed().as_millis();
        if !down {
            if r.task.is_some() {
                // Back while a restart is under way: let it finish before calling the outage over.
                self.recovery = Some(r);
                return Ok(());
            }
            if r.attempts > 0 {
                self.ice_restarts += 1;
            }
            self.notes.push((
                false,
                format!(
                    "connection back after {out_ms} ms ({})",
                    match r.attempts {
                        0 => "ICE recovered by itself".to_string(),
                        n => format!("{n} ICE restart(s), same session"),
                    }
                ),
            ));
            return Ok(());
        }
        let elapsed = r.since.elapsed();
        // Asked each time: a server that answered a restart 405/501 takes no more. A restart under way holds the
        // lock (the server took the previous ones).
        let restartable = self.signalling.try_lock().map_or(true, |s| s.restarts());
        if !restartable && elapsed >= DISCONNECTED_GRACE {
            return Err(self.lost(state, "the server takes no ICE restarts"));
        }
        if elapsed >= RECOVERY_WINDOW {
            if let Some(t) = r.task.take() {
                t.abort();
            }
            let why = format!(
                "not back within {} s after {} ICE restart(s)",
                RECOVERY_WINDOW.as_secs(),
                r.attempts
            );
            return Err(self.lost(state, &why));
        }
        if elapsed >= DISCONNECTED_GRACE
            && r.task.is_none()
            && r.last_attempt.is_none_or(|t| t.elapsed() >= RESTART_RETRY)
        {
            r.attempts += 1;
            r.last_attempt = Some(Instant::now());
            self.notes.push((
                true,
                format!(
                    "connection {state} for {} ms: ICE restart {} through the {} server",
                    elapsed.as_millis(),
                    r.attempts,
                    self.signalling_name
                ),
            ));
            r.task = Some(tokio::spawn(restart_ice(
                self.pc.clone(),
                self.signalling.clone(),
                self.gatherings.clone(),
                self.ice_servers.clone(),
                self.relay_only,
            )));
        }
        self.recovery = Some(r);
        Ok(())
    }

    fn lost(&self, state: RTCPeerConnectionState, why: &str) -> Failure {
        Failure::new(
            StopCode::Disconnected,
            format!("The WebRTC connection to the server was lost (state {state}; {why})"),
        )
    }

    /// What happened to the connection since the last call, for the log: (warning, text).
    pub fn take_notes(&mut self) -> Vec<(bool, String)> {
        std::mem::take(&mut self.notes)
    }

    /// True while ICE/DTLS are up.
    pub fn is_connected(&self) -> bool {
        matches!(*self.state.borrow(), RTCPeerConnectionState::Connected)
    }

    /// Sends one OBS packet; returns the bytes put on the wire (RTP headers included) and any timestamp
    /// discontinuity to log.
    pub async fn send(
        &mut self,
        p: &EncodedPacket,
        capture_unix_usec: i64,
    ) -> Result<(u64, Option<crate::media::clock::Discontinuity>), Failure> {
        self.watch_connection().await?;
        let stamp = self.clock.stamp(
            p.kind,
            p.pts,
            p.dts,
            p.timebase_num,
            p.timebase_den,
            capture_unix_usec,
        );
        let mut bytes = 0u64;
        match p.kind {
            MediaKind::Video => {
                let nals = access_unit_nals(&p.data, &mut self.params);
                self.payloads.clear();
                self.packetizer.packetize(&nals, &mut self.payloads);
                let mut burst = 0;
                for payload in self.payloads.drain(..) {
                    if burst >= BURST_BYTES {
                        tokio::time::sleep(BURST_GAP).await;
                        burst = 0;
                    }
                    burst += payload.payload.len();
                    bytes += self
                        .video
                        .send(stamp.rtp, payload.marker, payload.payload)
                        .await? as u64;
                }
            }
            MediaKind::Audio => {
                bytes += self.audio.send(stamp.rtp, false, p.data.clone()).await? as u64;
            }
        }
        self.maybe_report().await;
        Ok((bytes, stamp.discontinuity))
    }

    async fn maybe_report(&mut self) {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < SENDER_REPORT_INTERVAL)
        {
            return;
        }
        self.last_report = Some(now);
        let wall = unix_usec_now();
        if let Some((ntp, rtp)) = self.clock.sender_report(MediaKind::Video, wall) {
            self.video.sender_report(ntp, rtp).await;
        }
        if let Some((ntp, rtp)) = self.clock.sender_report(MediaKind::Audio, wall) {
            self.audio.sender_report(ntp, rtp).await;
        }
    }

    /// Which signalling this session used ("WHIP", "Janus VideoRoom").
    /// RTP packets sent so far, audio and video.
    pub fn rtp_packets(&self) -> u64 {
        u64::from(self.video.packets) + u64::from(self.audio.packets)
    }

    pub fn signalling_name(&self) -> &'static str {
        self.signalling_name
    }

    /// Ends the session: the server side (WHIP DELETE, Janus leave) and DTLS close, each bounded by `deadline`.
    pub async fn close(mut self, deadline: Duration) -> Result<String, String> {
        if let Some(task) = self.recovery.take().and_then(|r| r.task) {
            task.abort();
        }
        let ended =
            tokio::time::timeout(deadline, async { self.signalling.lock().await.end().await })
                .await;
        let _ = tokio::time::timeout(deadline, self.pc.close()).await;
        // After the close, which releases TURN allocations through them.
        self.turn_bridges.clear();
        match ended {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
        }
    }
}

/// One offer/answer: a new peer connection with our two sendonly tracks, the offer (at once when the server takes
/// trickle ICE, else once gathering completed or [`GATHER_LIMIT`] passed), the server's answer, trickled
/// candidates, and the wait for ICE + DTLS. Whatever fails after the offer went out closes the peer connection and
/// ends the server's session.
async fn negotiate(
    cfg: &PublishConfig,
    signalling: &mut dyn Signalling,
    ice_servers: &[IceServer],
    params: &ParameterSets,
    started: Instant,
) -> Result<Negotiated, NotConnected> {
    let deadline = started + cfg.connect_timeout;
    let profile = params.profile_level_id().unwrap_or_else(|| "42e01f".into());
    let stereo = OpusHead::parse(&cfg.audio_extra_data).is_none_or(|h| h.channels >= 2);
    let (video_codec, audio_codec) = (
        codec(MediaKind::Video, &profile, false),
        codec(MediaKind::Audio, "", stereo),
    );

    let mut media = MediaEngine::default();
    media
        .register_codec(video_codec.clone(), RtpCodecKind::Video)
        .map_err(webrtc_error("codec setup"))?;
    media
        .register_codec(audio_codec.clone(), RtpCodecKind::Audio)
        .map_err(webrtc_error("codec setup"))?;
    // NACK retransmission from a send history; no default sender reports (we send our own); keyframe requests
    // surfaced for counting.
    let registry = RtcpTap::add_to(configure_nack(Registry::new(), &mut media), is_feedback);

    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(rtc_ice_servers(ice_servers))
        .with_ice_transport_policy(transport_policy(cfg.relay_only))
        .build();
    let (state_tx, mut state) = watch::channel(RTCPeerConnectionState::New);
    let (gathered_tx, mut gathered) = watch::channel(false);
    let (gatherings_tx, gatherings) = watch::channel(0u32);
    let (candidates_tx, mut candidates) = tokio::sync::mpsc::unbounded_channel();
    let events = Arc::new(Events {
        state: state_tx,
        gathered: gathered_tx,
        gatherings: gatherings_tx,
        candidates: candidates_tx,
    });
    let settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED),
            Some(ICE_FAILED),
            Some(Duration::from_secs(1)),
        )
        // ICE waits before it settles for a relayed path, in case a direct one turns up (webrtc-rs: 2 s). With
        // "relay only" nothing better can come; otherwise a direct path shows within a few round trips.
        .with_relay_acceptance_min_wait(Some(if cfg.relay_only {
            Duration::ZERO
        } else {
            RELAY_ACCEPTANCE_WAIT
        }))
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(events)
        .with_udp_addrs(vec!["0.0.0.0:0", "127.0.0.1:0"])
        .build()
        .await
        .map_err(webrtc_error("set-up"))?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);

    let stream_id = format!("obs-{:08x}", rand::random::<u32>());
    let (video_ssrc, audio_ssrc) = (rand::random::<u32>(), rand::random::<u32>());
    let video_track = local_track(MediaKind::Video, &video_codec, video_ssrc, &stream_id);
    let audio_track = local_track(MediaKind::Audio, &audio_codec, audio_ssrc, &stream_id);
    for track in [video_track.clone(), audio_track.clone()] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![stream_id.clone()],
            ..Default::default()
        };
        pc.add_transceiver_from_track(track as Arc<dyn TrackLocal>, Some(init))
            .await
            .map_err(webrtc_error("transceiver set-up"))?;
    }

    let offer = pc.create_offer(None).await.map_err(webrtc_error("offer"))?;
    pc.set_local_description(offer)
        .await
        .map_err(webrtc_error("offer"))?;
    // A server that takes trickle ICE gets the offer at once; others get it once gathering is complete (or
    // its time limit passed).
    let trickle = signalling.trickles();
    let complete = if trickle {
        *gathered.borrow()
    } else {
        wait_for(
            &mut gathered,
            (Instant::now() + GATHER_LIMIT).min(deadline),
            |g| *g,
        )
        .await
        .is_some()
    };
    let mut timings = ConnectTimings {
        offer_ms: ms_since(started),
        gathering_complete: complete,
        trickle,
        ..Default::default()
    };
    let mut trickle_note = None;
    let offer_sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| Failure::new(StopCode::ConnectFailed, "WebRTC produced no offer"))?;
    if cfg.relay_only && !trickle && !has_relay(&offer_sdp) {
        let _ = tokio::time::timeout(CLOSE_LIMIT, pc.close()).await;
        return Err(relay_only_without_relay().into());
    }

    let remaining = deadline.saturating_duration_since(Instant::now());
    let exchanged =
        match tokio::time::timeout(remaining, signalling.exchange(offer_sdp.clone())).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                StopCode::ConnectFailed,
                format!(
                    "The {} server did not answer within {} s",
                    signalling.name(),
                    cfg.connect_timeout.as_secs()
                ),
            )),
        };
    // From here on a failure closes the peer connection and ends whatever the server created.
    let answer_sdp = match exchanged {
        Ok(sdp) => sdp,
        Err(e) => return Err(abandon(pc.as_ref(), signalling, e).await.into()),
    };
    timings.answer_ms = ms_since(started);
    let answer = match RTCSessionDescription::answer(answer_sdp.clone()) {
        Ok(a) => a,
        Err(e) => {
            return Err(abandon(
                pc.as_ref(),
                signalling,
                Failure::new(
                    StopCode::ConnectFailed,
                    format!("The server's SDP answer is invalid: {e}"),
                ),
            )
            .await
            .into())
        }
    };
    if let Err(e) = pc.set_remote_description(answer).await {
        return Err(abandon(
            pc.as_ref(),
            signalling,
            Failure::new(
                StopCode::ConnectFailed,
                format!("The server's SDP answer could not be used: {e}"),
            ),
        )
        .await
        .into());
    }

    let connected = if trickle {
        let mut sent: std::collections::HashSet<String> =
            whip::sdp_candidates(&offer_sdp).into_iter().collect();
        let mut relay_seen = has_relay(&offer_sdp);
        let mut pending: Vec<String> = Vec::new();
        let mut trickling = true;
        loop {
            while let Ok(c) = candidates.try_recv() {
                pending.push(c);
            }
            let done = *gathered.borrow();
            let batch: Vec<String> = pending
                .drain(..)
                .filter(|c| sent.insert(c.clone()))
                .collect();
            relay_seen |= batch.iter().any(|c| c.contains(" typ relay"));
            if trickling && (!batch.is_empty() || (done && !timings.end_of_candidates_sent)) {
                match whip::trickle_fragment(&offer_sdp, &batch, done) {
                    Some(fragment) => match signalling.trickle(fragment).await {
                        Ok(()) => {
                            timings.trickled_candidates += batch.len();
                            timings.end_of_candidates_sent |= done;
                        }
                        Err(e)
                            if e.unsupported
                                && *state.borrow() != RTCPeerConnectionState::Connected =>
                        {
                            abandon(pc.as_ref(), signalling, Failure::new(StopCode::Success, ""))
                                .await;
                            return Err(NotConnected::NeedsCompleteOffer(e.message));
                        }
                        Err(e) => {
                            trickle_note = Some(e.message);
                            trickling = false;
                        }
                    },
                    None => trickling = false,
                }
            }
            if cfg.relay_only && done && !relay_seen {
                return Err(abandon(pc.as_ref(), signalling, relay_only_without_relay())
                    .await
                    .into());
            }
            let now = *state.borrow();
            if matches!(
                now,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            ) {
                break Some(now);
            }
            tokio::select! {
                changed = state.changed() => if changed.is_err() { break None },
                _ = gathered.changed() => {}
                Some(c) = candidates.recv() => pending.push(c),
                () = tokio::time::sleep_until(deadline.into()) => break None,
            }
        }
    } else {
        wait_for(&mut state, deadline, |s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        })
        .await
    };
    if connected != Some(RTCPeerConnectionState::Connected) {
        let why = match connected {
            Some(s) => format!("ended in state {s}"),
            None => format!("did not connect within {} s", cfg.connect_timeout.as_secs()),
        };
        return Err(abandon(
            pc.as_ref(),
            signalling,
            Failure::new(
                StopCode::ConnectFailed,
                format!("The WebRTC connection (ICE/DTLS) to the server {why}"),
            ),
        )
        .await
        .into());
    }
    Ok(Negotiated {
        pc,
        state,
        gatherings,
        video: (video_track, video_ssrc),
        audio: (audio_track, audio_ssrc),
        answer_sdp,
        timings,
        trickle_note,
    })
}

fn transport_policy(relay_only: bool) -> RTCIceTransportPolicy {
    if relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    }
}

/// An ICE restart under way, or the last one's outcome, while the connection is down.
struct Recovery {
    /// When ICE was first seen disconnected (or failed).
    since: Instant,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    last_attempt: Option<Instant>,
    attempts: u32,
}

/// An ICE restart over the signalling channel (RFC 9725 §4.4, WHIP PATCH): fresh credentials and candidates
/// (gathered with the configured ICE servers plus any the server announced with its answer), the server's new
/// credentials and candidates applied as its answer. ICE then checks the new pairs; DTLS and RTP carry on.
async fn restart_ice(
    pc: Arc<dyn PeerConnection>,
    signalling: Arc<tokio::sync::Mutex<Box<dyn Signalling>>>,
    mut gatherings: watch::Receiver<u32>,
    mut ice_servers: Vec<IceServer>,
    relay_only: bool,
) -> Result<(), String> {
    let mut signalling = signalling.lock().await;
    for s in signalling.session_ice_servers() {
        if !ice_servers.contains(&s) {
            ice_servers.push(s);
        }
    }
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(rtc_ice_servers(&ice_servers))
        .with_ice_transport_policy(transport_policy(relay_only))
        .build();
    pc.set_configuration(config)
        .await
        .map_err(|e| format!("ICE servers could not be updated: {e}"))?;
    let before = *gatherings.borrow_and_update();
    pc.restart_ice().await.map_err(|e| e.to_string())?;
    let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    let gathered = wait_for(&mut gatherings, Instant::now() + GATHER_LIMIT, |n| {
        *n > before
    })
    .await
    .is_some();
    let offer_sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .ok_or("WebRTC produced no restart offer")?;
    if relay_only && !has_relay(&offer_sdp) {
        return Err("no relay candidate for the restart (\"Relay only\" is on)".into());
    }
    if !gathered && whip::sdp_candidates(&offer_sdp).is_empty() {
        return Err("no candidates gathered for the restart".into());
    }
    let fragment =
        whip::restart_fragment(&offer_sdp).ok_or("the restart offer has no ICE credentials")?;
    let server_fragment = signalling.restart_ice(fragment).await?;
    let current = pc
        .remote_description()
        .await
        .ok_or("the connection has no remote description")?;
    let answer = whip::apply_ice_fragment(&current.sdp, &server_fragment)
        .ok_or("the server's ICE restart answer has no ICE credentials")?;
    let answer = RTCSessionDescription::answer(answer).map_err(|e| e.to_string())?;
    pc.set_remote_description(answer)
        .await
        .map_err(|e| format!("the server's ICE restart answer could not be used: {e}"))
}

/// Puts a loopback bridge ([`TurnBridge`]) in place of every TURN-over-TCP/TLS URL, which our WebRTC stack would
/// skip (it relays over UDP only).
async fn bridge_stream_turn(
    mut servers: Vec<IceServer>,
    notes: &mut Vec<(bool, String)>,
) -> (Vec<IceServer>, Vec<TurnBridge>) {
    let mut bridges = Vec::new();
    for server in &mut servers {
        for url in &mut server.urls {
            let Some(t) = crate::signal::ice::stream_turn_url(url) else {
                continue;
            };
            let kind = if t.tls { "TLS" } else { "TCP" };
            let target = StreamTurnServer {
                host: t.host,
                port: t.port,
                tls: t.tls,
            };
            match TurnBridge::start(target).await {
                Ok(bridge) => {
                    notes.push((
                        false,
                        format!(
                            "TURN over {kind} to {}:{} (bridged for WebRTC at {})",
                            bridge.server.host, bridge.server.port, bridge.local
                        ),
                    ));
                    *url = bridge.udp_url();
                    bridges.push(bridge);
                }
                Err(e) => notes.push((true, format!("TURN over {kind} unavailable: {e}"))),
            }
        }
    }
    (servers, bridges)
}

/// A failure with what the TURN bridges met on their way, if anything (a refused connection, a bad certificate).
fn with_bridge_failures(f: Failure, bridges: &[TurnBridge]) -> Failure {
    let met: Vec<String> = bridges
        .iter()
        .filter_map(|b| b.failure.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .collect();
    if met.is_empty() {
        f
    } else {
        Failure::new(f.code, format!("{} ({})", f.message, met.join("; ")))
    }
}

/// A connect that failed after signalling began: close the peer connection and end what the server created.
async fn abandon(pc: &dyn PeerConnection, signalling: &mut dyn Signalling, e: Failure) -> Failure {
    let _ = tokio::time::timeout(CLOSE_LIMIT, pc.close()).await;
    let _ = tokio::time::timeout(CLOSE_LIMIT, signalling.end()).await;
    e
}

async fn negotiated_payload_types(pc: &dyn PeerConnection) -> (u8, u8) {
    let (mut video, mut audio) = (VIDEO_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE);
    for sender in pc.get_senders().await {
        if let Ok(params) = sender.get_parameters().await {
            if let Some(c) = params.rtp_parameters.codecs.first() {
                if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264) {
                    video = c.payload_type;
                } else if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                    audio = c.payload_type;
                }
            }
        }
    }
    (video, audio)
}

/// Wall-clock time in µs since the Unix epoch.
pub fn unix_usec_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
