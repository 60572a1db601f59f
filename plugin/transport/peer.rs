//! The webrtc-rs side of a session: one peer connection with send-only H.264 and Opus transceivers (BUNDLE,
//! rtcp-mux), NACK retransmission from a send history, and the server's RTCP feedback handed to the session. RTP
//! is built by our media core and written as is; sender reports are ours too.
//!
//! webrtc-rs's default sender-report interceptor pairs the last sent RTP timestamp with the time it was sent;
//! with B-frames (sent in decode order, stamped in presentation order) and with different encoder delays for
//! audio and video that mapping is off by tens of milliseconds. We leave it out and send reports the session
//! computes from the capture clock, so receivers lip-sync.
use super::feedback::{feedback_about, is_feedback, RtcpTap, TransportFeedbackSink};
use super::rtx::RtxWrap;
use crate::media::packet::MediaKind;
use crate::media::video::VideoCodec;
use crate::session::{
    Input, LayerSpec, PayloadTypes, PeerSpec, PeerState, RemoteCandidate, RequestError,
};
use crate::session::{RtpPacket, SenderReport};
use crate::signal::whip::IceServer;
use crate::signal::{Failure, StopCode};
use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::sdp::extmap::{
    SDES_MID_URI, SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI, TRANSPORT_CC_URI,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

pub const VIDEO_PAYLOAD_TYPE: u8 = 102;
/// Retransmissions of the video (RFC 4588), associated with [`VIDEO_PAYLOAD_TYPE`].
pub const VIDEO_RTX_PAYLOAD_TYPE: u8 = 103;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// How long ICE looks for a direct path before it settles for a TURN relay (when direct paths are allowed).
const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_millis(1000);
/// ICE: disconnected after this much silence, failed after `ICE_FAILED`, consent checks every second.
const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
const ICE_FAILED: Duration = Duration::from_secs(10);
/// Closing a peer connection may take at most this long.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// Hands what the server sends about one of our streams (`ssrcs`: a track's, one per simulcast layer) to the
/// session.
async fn forward_feedback(track: Arc<TrackLocalStaticRTP>, ssrcs: Vec<u32>, to: Inputs) {
    while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
        for p in &packets {
            for f in feedback_about(p.as_ref(), &ssrcs) {
                to.send(Input::Feedback(f));
            }
        }
    }
}

/// Where a peer connection's events go: the session's inputs, while this peer connection is the session's own
/// (one replaced by a new offer falls silent).
#[derive(Clone)]
struct Inputs {
    tx: UnboundedSender<Input>,
    current: Arc<AtomicBool>,
}

impl Inputs {
    fn send(&self, input: Input) {
        if self.current.load(Ordering::SeqCst) {
            let _ = self.tx.send(input);
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Inputs {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.send(Input::GatheringComplete);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if matches!(
            state,
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
        ) {
            self.send(Input::IceConnected);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let s = match state {
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => PeerState::Connecting,
        };
        self.send(Input::PeerState(s));
    }

    async fn on_ice_candidate(&self, event: webrtc::peer_connection::RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            self.send(Input::LocalCandidate(init.candidate));
        }
    }
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}

/// The stream's video codec with its `a=fmtp` parameters.
fn video_parameters(codec: VideoCodec, fmtp: &str) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: codec.mime_type(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("ccm", "fir"),
                feedback("transport-cc", ""),
                feedback("goog-remb", ""),
            ],
        },
        payload_type: VIDEO_PAYLOAD_TYPE,
    }
}

/// Opus, in stereo when the encoder makes two channels.
fn opus_parameters(stereo: bool) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: if stereo {
                "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1".into()
            } else {
                "minptime=10;useinbandfec=1".into()
            },
            // A server that wants to NACK audio too may: the session keeps its history as well.
            rtcp_feedback: vec![feedback("nack", ""), feedback("transport-cc", "")],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

fn rtx_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "video/rtx".to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={VIDEO_PAYLOAD_TYPE}"),
            rtcp_feedback: vec![],
        },
        payload_type: VIDEO_RTX_PAYLOAD_TYPE,
    }
}

/// A track of ours: one encoding per layer (simulcast: each with its RTP stream id).
fn local_track(
    kind: MediaKind,
    codec: &RTCRtpCodecParameters,
    layers: &[LayerSpec],
    stream_id: &str,
) -> Arc<TrackLocalStaticRTP> {
    let rtc_kind = match kind {
        MediaKind::Video => RtpCodecKind::Video,
        MediaKind::Audio => RtpCodecKind::Audio,
    };
    let name = kind.as_str();
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_string(),
        format!("{stream_id}-{name}"),
        format!("OBS {name}"),
        rtc_kind,
        layers
            .iter()
            .map(|l| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: l.rid.clone(),
                    ssrc: Some(l.ssrc),
                    rtx: (l.rtx_ssrc != 0).then_some(RTCRtpRtxParameters { ssrc: l.rtx_ssrc }),
                    ..Default::default()
                },
                codec: codec.rtp_codec.clone(),
                ..Default::default()
            })
            .collect(),
    )))
}

/// The simulcast layers' identities on the wire: each video packet names its media section (MID) and layer (RID)
/// in header extensions (RFC 8843, RFC 8852: the text itself), so the server can tell the layers apart before it
/// knows their SSRCs.
struct LayerTags {
    mid: Bytes,
    /// (SSRC, RID) per layer.
    rids: Vec<(u32, Bytes)>,
}

impl LayerTags {
    /// The MID and the RID of the layer sent as `ssrc`.
    fn of(&self, ssrc: u32) -> Option<(&Bytes, &Bytes)> {
        let (_, rid) = self.rids.iter().find(|(s, _)| *s == ssrc)?;
        Some((&self.mid, rid))
    }
}

/// The ids a track's RTP header extensions go under: those its sender was set up with, the ones webrtc-rs's
/// `write_rtp_with_extensions` looks up for every packet (building a hash map of the extensions, marshalling each
/// into a buffer of its own and taking the track's lock) — looked up once here.
#[derive(Clone, Copy, Debug, Default)]
struct ExtensionIds {
    transport_cc: Option<u8>,
    mid: Option<u8>,
    rid: Option<u8>,
}

impl ExtensionIds {
    /// From (URI, id) pairs.
    fn of<'a>(extensions: impl Iterator<Item = (&'a str, u16)> + Clone) -> ExtensionIds {
        let id = |uri: &str| {
            (extensions.clone())
                .find(|(u, _)| *u == uri)
                .and_then(|(_, id)| u8::try_from(id).ok())
        };
        ExtensionIds {
            transport_cc: id(TRANSPORT_CC_URI),
            mid: id(SDES_MID_URI),
            rid: id(SDES_RTP_STREAM_ID_URI),
        }
    }
}

/// The value of the first `a=<name>:` line in the `m=video` section of `sdp`.
fn video_attribute<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    let section = &sdp[sdp.find("m=video")?..];
    let end = section[1..].find("\nm=").map_or(section.len(), |e| e + 1);
    let prefix = format!("a={name}:");
    section[..end]
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(prefix.as_str()))
}

/// The simulcast layers an answer takes: bit `i` for the layer with rid `rids[i]`, when the answer's video section
/// lists it under `a=simulcast:recv`; without such a line, only the first (a server that takes no simulcast
/// receives the full picture).
pub fn layers_taken(answer: &str, rids: &[String]) -> u8 {
    let Some(list) = video_attribute(answer, "simulcast") else {
        return 1;
    };
    // "recv h;m;l" (alternatives separated by commas; "~" marks a paused stream, still taken).
    let mut words = list.split_whitespace();
    let mut taken = 0u8;
    while let (Some(dir), Some(ids)) = (words.next(), words.next()) {
        if dir != "recv" {
            continue;
        }
        for id in ids.split([';', ',']) {
            let id = id.trim_start_matches('~');
            if let Some(i) = rids.iter().position(|r| r == id) {
                taken |= 1 << i;
            }
        }
    }
    if taken == 0 {
        1
    } else {
        taken
    }
}

fn webrtc_error(context: &str) -> impl Fn(webrtc::error::Error) -> Failure + '_ {
    move |e| {
        Failure::new(
            StopCode::ConnectFailed,
            format!("WebRTC {context} failed: {e}"),
        )
    }
}

fn transport_policy(relay_only: bool) -> RTCIceTransportPolicy {
    if relay_only {
        RTCIceTransportPolicy::Relay
    } else {
        RTCIceTransportPolicy::All
    }
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

/// Our codecs (H.264 with RTX, Opus) with the transport-wide sequence number extension, and the interceptors: no
/// default sender reports, NACK responder, transport-wide numbering or congestion control (the session sends its
/// own reports, keeps its own send history, numbers packets and estimates the bandwidth itself); retransmissions
/// rewrapped for RTX on the way out; keyframe requests, receiver reports and NACKs surfaced for the session, and
/// transport-wide feedback handed to `transport`.
fn media_engine(
    video: &RTCRtpCodecParameters,
    audio: &RTCRtpCodecParameters,
    simulcast: bool,
    transport: TransportFeedbackSink,
) -> Result<(MediaEngine, Registry), Failure> {
    let mut media = MediaEngine::default();
    media
        .register_codec(video.clone(), RtpCodecKind::Video)
        .map_err(webrtc_error("codec setup"))?;
    media
        .register_codec(rtx_codec(), RtpCodecKind::Video)
        .map_err(webrtc_error("codec setup"))?;
    media
        .register_codec(audio.clone(), RtpCodecKind::Audio)
        .map_err(webrtc_error("codec setup"))?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let uri = TRANSPORT_CC_URI.to_owned();
        media
            .register_header_extension(RTCRtpHeaderExtensionCapability { uri }, kind, None)
            .map_err(webrtc_error("header extension setup"))?;
    }
    if simulcast {
        for uri in [
            SDES_MID_URI,
            SDES_RTP_STREAM_ID_URI,
            SDES_REPAIR_RTP_STREAM_ID_URI,
        ] {
            let uri = uri.to_owned();
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability { uri },
                    RtpCodecKind::Video,
                    None,
                )
                .map_err(webrtc_error("header extension setup"))?;
        }
    }
    let tap = RtcpTap::new(is_feedback, Some(transport));
    let registry = RtxWrap::add_to(Registry::new()).with(Slot::from(14_000), tap);
    Ok((media, registry))
}

/// ICE timing: when a connection counts as disconnected and failed, and how long ICE waits before it settles for
/// a relayed path in case a direct one turns up (webrtc-rs: 2 s). With "relay only" nothing better can come;
/// otherwise a direct path shows within a few round trips.
/// Whether this host can join the mDNS multicast group (224.0.0.251). A host without a default route (only a route
/// to the server's subnet) cannot: webrtc-rs's mDNS socket then fails the whole set-up ("No such device"), though a
/// publisher needs mDNS only to resolve `.local` candidates, which servers do not send.
pub fn multicast_works() -> bool {
    let group = std::net::Ipv4Addr::new(224, 0, 0, 251);
    std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.join_multicast_v4(&group, &std::net::Ipv4Addr::UNSPECIFIED))
        .is_ok()
}

/// Where ICE gathers host candidates: every IPv4 interface and loopback, and every IPv6 interface when the host has
/// an IPv6 address beyond its link (without that, an IPv6-only network never connected; with none, `[::]` would
/// only add a candidate no peer can use).
fn udp_addrs(ipv6: bool) -> Vec<&'static str> {
    let mut addrs = vec!["0.0.0.0:0", "127.0.0.1:0"];
    if ipv6 {
        addrs.push("[::]:0");
    }
    addrs
}

/// Whether this host has an IPv6 address of global (or unique local) scope: Linux lists its addresses with their
/// scope in `/proc/net/if_inet6` (scope 00 is global; loopback, link and site scopes are not).
fn has_global_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|table| global_ipv6_in(&table))
}

fn global_ipv6_in(table: &str) -> bool {
    table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .any(|scope| scope == "00")
}

/// With simulcast the offer lists each layer's SSRCs too (`a=ssrc`, `a=ssrc-group:FID` for its RTX stream), for
/// servers that map streams (and retransmissions) by SSRC rather than by RID.
/// `mdns`: resolve the server's `.local` candidates (off where the host cannot multicast, see [`multicast_works`]).
fn ice_settings(relay_only: bool, mdns: bool) -> webrtc::peer_connection::SettingEngine {
    SettingEngineBuilder::new()
        .with_multicast_dns_mode(match mdns {
            true => MulticastDnsMode::QueryOnly,
            false => MulticastDnsMode::Disabled,
        })
        .with_write_ssrc_attributes_for_simulcast(true)
        // An ICE restart starts afresh: new sockets, so new host candidates and new TURN allocations. Keeping
        // them re-offered the old relay candidate after the TURN server had restarted (its allocation gone:
        // every refresh answered 437), and the restart could never bring the stream back.
        .with_discard_local_candidates_during_ice_restart(true)
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED),
            Some(ICE_FAILED),
            Some(Duration::from_secs(1)),
        )
        .with_relay_acceptance_min_wait(Some(if relay_only {
            Duration::ZERO
        } else {
            RELAY_ACCEPTANCE_WAIT
        }))
        .build()
}

/// A peer connection of ours and its two tracks.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    current: Arc<AtomicBool>,
    relay_only: bool,
    /// With simulcast: what each video packet carries to say which layer it belongs to.
    layer_tags: Option<LayerTags>,
    /// The video track's extension ids, then the audio track's.
    extension_ids: [ExtensionIds; 2],
    /// The layers' RTP stream ids, in order.
    rids: Vec<String>,
}

impl Peer {
    /// Builds the peer connection and sets its offer locally (candidate gathering begins); its events go to
    /// `inputs`. `ice_servers` are the spec's with stream TURN already bridged.
    pub async fn create(
        spec: &PeerSpec,
        ice_servers: &[IceServer],
        mdns: bool,
        inputs: UnboundedSender<Input>,
    ) -> Result<Peer, Failure> {
        let (video_codec, audio_codec) = (
            video_parameters(spec.video_codec, &spec.video_fmtp),
            opus_parameters(spec.stereo),
        );
        let current = Arc::new(AtomicBool::new(true));
        let events = Inputs {
            tx: inputs,
            current: current.clone(),
        };
        let transport = events.clone();
        let transport: TransportFeedbackSink =
            Box::new(move |f| transport.send(Input::Feedback(f)));
        let simulcast = spec.video.len() > 1;
        let (media, registry) = media_engine(&video_codec, &audio_codec, simulcast, transport)?;
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(rtc_ice_servers(ice_servers))
            .with_ice_transport_policy(transport_policy(spec.relay_only))
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(ice_settings(spec.relay_only, mdns))
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(events.clone()))
            .with_udp_addrs(udp_addrs(has_global_ipv6()))
            .build()
            .await
            .map_err(webrtc_error("set-up"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let video = local_track(MediaKind::Video, &video_codec, &spec.video, &spec.stream_id);
        let audio_layer = LayerSpec {
            rid: String::new(),
            ssrc: spec.audio_ssrc,
            rtx_ssrc: 0,
        };
        let audio = local_track(
            MediaKind::Audio,
            &audio_codec,
            &[audio_layer],
            &spec.stream_id,
        );
        let mut extension_ids = [ExtensionIds::default(); 2];
        for (track, ids) in [video.clone(), audio.clone()]
            .into_iter()
            .zip(&mut extension_ids)
        {
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![spec.stream_id.clone()],
                ..Default::default()
            };
            let transceiver = pc
                .add_transceiver_from_track(track as Arc<dyn TrackLocal>, Some(init))
                .await
                .map_err(webrtc_error("transceiver set-up"))?;
            let sender = transceiver.sender().await;
            if let Some(sender) = sender.map_err(webrtc_error("transceiver set-up"))? {
                let parameters = sender.get_parameters().await;
                let parameters = parameters.map_err(webrtc_error("transceiver set-up"))?;
                let extensions = &parameters.rtp_parameters.header_extensions;
                *ids = ExtensionIds::of(extensions.iter().map(|e| (e.uri.as_str(), e.id)));
            }
        }
        let offer = pc.create_offer(None).await.map_err(webrtc_error("offer"))?;
        let layer_tags = match simulcast {
            false => None,
            true => {
                let mid = video_attribute(&offer.sdp, "mid").ok_or_else(|| {
                    Failure::new(StopCode::Error, "WebRTC made an offer without a video MID")
                })?;
                Some(LayerTags {
                    mid: Bytes::copy_from_slice(mid.as_bytes()),
                    rids: (spec.video.iter())
                        .map(|l| (l.ssrc, Bytes::copy_from_slice(l.rid.as_bytes())))
                        .collect(),
                })
            }
        };
        pc.set_local_description(offer)
            .await
            .map_err(webrtc_error("offer"))?;
        let video_ssrcs = spec.video.iter().map(|l| l.ssrc).collect();
        tokio::spawn(forward_feedback(video.clone(), video_ssrcs, events.clone()));
        tokio::spawn(forward_feedback(
            audio.clone(),
            vec![spec.audio_ssrc],
            events,
        ));
        Ok(Peer {
            pc,
            video,
            audio,
            current,
            relay_only: spec.relay_only,
            layer_tags,
            extension_ids,
            rids: spec.video.iter().map(|l| l.rid.clone()).collect(),
        })
    }

    /// The local offer as it stands (with the candidates gathered so far).
    pub async fn local_offer(&self) -> Result<String, Failure> {
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| Failure::new(StopCode::ConnectFailed, "WebRTC produced no offer"))
    }

    /// Applies the server's answer; returns the payload types it settled on.
    pub async fn apply_answer(&self, sdp: String) -> Result<PayloadTypes, Failure> {
        let layers = match self.rids.len() {
            0 | 1 => 1,
            _ => layers_taken(&sdp, &self.rids),
        };
        crate::signal::answer::check_answer(&self.local_offer().await?, &sdp)?;
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| {
            Failure::new(
                StopCode::ConnectFailed,
                format!("The server's SDP answer is invalid: {e}"),
            )
        })?;
        self.pc.set_remote_description(answer).await.map_err(|e| {
            Failure::new(
                StopCode::ConnectFailed,
                format!("The server's SDP answer could not be used: {e}"),
            )
        })?;
        let mut pt = PayloadTypes {
            video: VIDEO_PAYLOAD_TYPE,
            audio: OPUS_PAYLOAD_TYPE,
            video_rtx: None,
            transport_cc: [false; 2],
            layers,
        };
        for sender in self.pc.get_senders().await {
            let Ok(params) = sender.get_parameters().await else {
                continue;
            };
            let numbered = params
                .rtp_parameters
                .header_extensions
                .iter()
                .any(|e| e.uri == TRANSPORT_CC_URI);
            let codecs = &params.rtp_parameters.codecs;
            if let Some(c) = codecs.first() {
                let mime = c.rtp_codec.mime_type.to_ascii_lowercase();
                if mime.starts_with("video/") && mime != "video/rtx" {
                    pt.transport_cc[0] = numbered;
                    pt.video = c.payload_type;
                    pt.video_rtx = codecs
                        .iter()
                        .find(|r| {
                            r.rtp_codec.mime_type.eq_ignore_ascii_case("video/rtx")
                                && r.rtp_codec
                                    .sdp_fmtp_line
                                    .contains(&format!("apt={}", c.payload_type))
                        })
                        .map(|r| r.payload_type);
                } else if c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                    pt.transport_cc[1] = numbered;
                    pt.audio = c.payload_type;
                }
            }
        }
        Ok(pt)
    }

    /// New ICE credentials and a new offer set locally, gathering with `ice_servers` (stream TURN bridged).
    pub async fn restart_ice(&self, ice_servers: &[IceServer]) -> Result<(), RequestError> {
        let failed = |e: webrtc::error::Error| RequestError::Failed(e.to_string());
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(rtc_ice_servers(ice_servers))
            .with_ice_transport_policy(transport_policy(self.relay_only))
            .build();
        self.pc
            .set_configuration(config)
            .await
            .map_err(|e| RequestError::Failed(format!("ICE servers could not be updated: {e}")))?;
        self.pc.restart_ice().await.map_err(failed)?;
        let offer = self.pc.create_offer(None).await.map_err(failed)?;
        self.pc.set_local_description(offer).await.map_err(failed)
    }

    /// One of the server's candidates (sent after its answer); an empty one ends them.
    pub async fn add_remote_candidate(&self, c: &RemoteCandidate) -> Result<(), String> {
        let init = webrtc::peer_connection::RTCIceCandidateInit {
            candidate: c.candidate.clone(),
            sdp_mid: Some(c.mid.clone()),
            sdp_mline_index: Some(c.mline),
            ..Default::default()
        };
        self.pc
            .add_ice_candidate(init)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn write_rtp(&self, p: RtpPacket) -> Result<(), String> {
        let (track, ids) = match p.kind {
            MediaKind::Video => (&self.video, self.extension_ids[0]),
            MediaKind::Audio => (&self.audio, self.extension_ids[1]),
        };
        let mut header = rtc::rtp::header::Header {
            version: 2,
            marker: p.marker,
            payload_type: p.payload_type,
            sequence_number: p.seq,
            timestamp: p.timestamp,
            ssrc: p.ssrc,
            ..Default::default()
        };
        // The transport-wide sequence number (two bytes, big-endian), and with simulcast the layer's MID and RID;
        // an extension the sender was not set up with is left out, as webrtc-rs does.
        let numbered = (p.transport_seq.zip(ids.transport_cc))
            .map(|(seq, id)| (id, Bytes::copy_from_slice(&seq.to_be_bytes())));
        let tags = (self.layer_tags.as_ref())
            .filter(|_| p.kind == MediaKind::Video)
            .and_then(|t| t.of(p.ssrc));
        let tags = tags.into_iter().flat_map(|(mid, rid)| {
            [(ids.mid, mid), (ids.rid, rid)]
                .into_iter()
                .filter_map(|(id, value)| Some((id?, value.clone())))
        });
        for (id, value) in numbered.into_iter().chain(tags) {
            header.set_extension(id, value).map_err(|e| e.to_string())?;
        }
        let packet = rtc::rtp::Packet {
            header,
            payload: p.payload,
        };
        track.write_rtp(packet).await.map_err(|e| e.to_string())
    }

    pub async fn write_report(&self, r: SenderReport) {
        let track = match r.kind {
            MediaKind::Video => &self.video,
            MediaKind::Audio => &self.audio,
        };
        let sr = rtc::rtcp::sender_report::SenderReport {
            ssrc: r.ssrc,
            ntp_time: r.ntp,
            rtp_time: r.rtp,
            packet_count: r.packets,
            octet_count: r.octets,
            ..Default::default()
        };
        // A lost report is harmless: the next one follows in a second.
        let _ = track.write_rtcp(vec![Box::new(sr)]).await;
    }

    /// Closes the connection (DTLS close, TURN allocations released) within [`CLOSE_LIMIT`]; its events are no
    /// longer the session's.
    pub async fn close(self) {
        self.current.store(false, Ordering::SeqCst);
        let _ = tokio::time::timeout(CLOSE_LIMIT, self.pc.close()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_ids_are_those_the_sender_was_set_up_with() {
        let set_up = [(SDES_MID_URI, 4), (TRANSPORT_CC_URI, 3), ("urn:x-other", 1)];
        let ids = ExtensionIds::of(set_up.into_iter());
        assert_eq!(
            (ids.transport_cc, ids.mid, ids.rid),
            (Some(3), Some(4), None)
        );
        // A two-byte id beyond what a header carries is left out.
        let ids = ExtensionIds::of([(TRANSPORT_CC_URI, 300)].into_iter());
        assert_eq!(ids.transport_cc, None);
    }

    #[test]
    fn ipv6_host_candidates_only_where_the_host_has_a_global_ipv6_address() {
        // /proc/net/if_inet6: address, interface index, prefix length, scope, flags, name.
        let loopback_and_link = "00000000000000000000000000000001 01 80 10 80       lo\n\
                                 fe80000000000000045f3dfffe6b2a11 02 40 20 80     eth0\n";
        let ula = "fd000233000000000000000000000001 03 40 00 80 veth-pub\n";
        assert!(!global_ipv6_in(loopback_and_link));
        assert!(global_ipv6_in(&format!("{loopback_and_link}{ula}")));
        assert!(!udp_addrs(false).contains(&"[::]:0"));
        assert!(udp_addrs(true).contains(&"[::]:0"));
    }

    #[test]
    fn the_layers_an_answer_takes_come_from_its_video_simulcast_line() {
        let rids: Vec<String> = ["f", "h", "q"].map(String::from).into();
        let answer = |video_lines: &str| {
            format!(
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=simulcast:recv x\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n{video_lines}"
            )
        };
        let taken = |lines: &str| layers_taken(&answer(lines), &rids);
        assert_eq!(taken("a=rid:f recv\r\na=simulcast:recv f;h;q\r\n"), 0b111);
        assert_eq!(taken("a=simulcast:recv q;~h\r\n"), 0b110, "paused is taken");
        assert_eq!(taken("a=simulcast:recv f,h\r\n"), 0b011, "alternatives");
        assert_eq!(taken(""), 0b001, "no simulcast: the full picture alone");
        assert_eq!(
            taken("a=simulcast:recv zz\r\n"),
            0b001,
            "nothing we offered"
        );
        assert_eq!(video_attribute(&answer(""), "mid"), Some("0"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_peer_connection_is_freed_with_its_event_handler() {
        // webrtc-rs 0.21.0 kept every closed connection alive through a reference cycle (its transceivers pointed
        // back at the connection: webrtc#906), with our event handler and the session's input channel in it — a
        // leak per session, and so per reconnect. Once closed and dropped, nothing of it may remain.
        let spec = PeerSpec {
            ice_servers: vec![],
            relay_only: false,
            stream_id: "obs".into(),
            video: vec![LayerSpec {
                rid: String::new(),
                ssrc: 1,
                rtx_ssrc: 2,
            }],
            audio_ssrc: 3,
            video_codec: VideoCodec::H264,
            video_fmtp: VideoCodec::H264.fmtp(&bytes::Bytes::new()),
            stereo: true,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let peer = Peer::create(&spec, &[], false, tx)
            .await
            .map_err(|f| f.message)
            .unwrap();
        let pc = Arc::downgrade(&peer.pc);
        peer.close().await;
        // The channel ends when its last sender — the handler's, the feedback tasks' — is dropped.
        let drained = async { while rx.recv().await.is_some() {} };
        let freed = tokio::time::timeout(Duration::from_secs(5), drained).await;
        assert!(
            freed.is_ok(),
            "the closed connection's event handler lives on"
        );
        assert_eq!(pc.strong_count(), 0, "the closed connection lives on");
    }
}
