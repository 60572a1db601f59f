//! The receiver's WebRTC side: answers the offer with webrtc-rs (receive-only video in the codec offered —
//! H.264, HEVC or AV1 — with NACK and RTX, Opus,
//! RTCP reports) and hands each track to its decoder.
use super::audio::receive_audio;
use super::rtx_unwrap::RtxUnwrap;
use super::video::receive_video;
use super::{ReceiverOptions, Shared};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc_studio::media::video::VideoCodec;
use rtc_studio::transport::feedback::RtcpTap;
use std::sync::Arc;
use std::time::Duration;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

struct Handler {
    stats: Shared,
    gathered: tokio::sync::watch::Sender<bool>,
    pli_every: Option<Duration>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, _state: RTCPeerConnectionState) {}

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        let stats = self.stats.clone();
        match kind {
            RtpCodecKind::Video => {
                tokio::spawn(receive_video(track, stats, self.pli_every));
            }
            _ => {
                stats.lock().unwrap().audio_ssrc = Some(ssrc);
                tokio::spawn(receive_audio(track, stats));
            }
        }
    }
}

fn fmtp_value<'a>(sdp: &'a str, key: &str) -> Option<&'a str> {
    let at = sdp.find(&format!("{key}="))? + key.len() + 1;
    sdp[at..]
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
}

/// The video codec the offer sends (the first in its video section that we decode — H.264, HEVC, AV1 — and
/// H.264 if none) and its `a=fmtp` parameters (for H.264 at least the packetization mode and a profile).
fn offered_video(offer: &str) -> (VideoCodec, String) {
    let video = offer
        .split("m=")
        .find(|s| s.starts_with("video"))
        .unwrap_or("");
    let known = video.lines().find_map(|l| {
        let (pt, rest) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        let name = rest.split('/').next()?;
        let codec = VideoCodec::from_rtp_name(name)?;
        Some((pt, codec))
    });
    let Some((pt, codec)) = known else {
        return (VideoCodec::H264, VideoCodec::H264.fmtp(&Default::default()));
    };
    let fmtp = video
        .lines()
        .find_map(|l| l.strip_prefix(&format!("a=fmtp:{pt} ")))
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let fmtp = match codec {
        // Ours, with the offer's profile (publishers offer several H.264 variants; mode 1 is what we take).
        VideoCodec::H264 => format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
            fmtp.and_then(|f| fmtp_value(f, "profile-level-id"))
                .unwrap_or("42e01f")
        ),
        _ => fmtp.map_or_else(|| codec.fmtp(&Default::default()), str::to_string),
    };
    (codec, fmtp)
}

pub(super) async fn answer(
    offer: String,
    stats: Shared,
    options: &ReceiverOptions,
) -> Result<(Box<dyn PeerConnection>, String), String> {
    let (codec, fmtp) = match offered_video(&offer) {
        (VideoCodec::H264, fmtp) => (VideoCodec::H264, fmtp),
        _ if options.h264_only => (VideoCodec::H264, VideoCodec::H264.fmtp(&Default::default())),
        other => other,
    };
    stats.lock().unwrap().video_codec = codec;
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: codec.mime_type(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: fmtp,
                    rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
                },
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| e.to_string())?;
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.into(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(|e| e.to_string())?;
    // Retransmissions on their own stream (RFC 4588), when the offer has them; webrtc-rs hands them to the
    // track as the packets they repair (a simulcast layer's: RtxUnwrap).
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: "video/rtx".into(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: "apt=102".into(),
                    rtcp_feedback: vec![],
                },
                payload_type: 103,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| e.to_string())?;
    // Simulcast: the layers are told apart by their MID and RID header extensions.
    if offer.contains("a=simulcast:") {
        configure_simulcast_extension_headers(&mut media).map_err(|e| e.to_string())?;
    }
    // Receiver reports; NACKs and keyframe requests come from our own jitter buffer (video.rs), not webrtc-rs's
    // generator.
    let mut registry = RtcpTap::add_to(configure_rtcp_reports(Registry::new()), |p| {
        p.as_any().is::<SenderReport>()
    });
    // Simulcast layers' retransmissions, which webrtc-rs drops, made back into the packets they repair.
    registry = RtxUnwrap::add_to(registry, 103, 102);
    // Arrival times for the publisher's bandwidth estimate (transport-cc feedback, as browsers and SFUs send).
    if options.twcc {
        registry = configure_twcc_receiver_only(registry, &mut media).map_err(|e| e.to_string())?;
    }
    let (gathered_tx, mut gathered) = tokio::sync::watch::channel(false);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        // Connectivity checks every 25 ms, as SFUs pace them (libnice: 20 ms), not webrtc-rs's default 200 ms, which
        // made every connect to this receiver take ~200 ms whatever the publisher did; the same 1.4 s until a pair
        // is given up.
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_ice_connection_attempts(Some(Duration::from_millis(25)), Some(56))
                // A server has no use for mDNS (its candidates are addresses), and a host that cannot multicast
                // (IPv6 only, no default route) fails the whole set-up with it.
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .build(),
        )
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            stats,
            gathered: gathered_tx,
            pli_every: options.pli_every,
        }))
        .with_udp_addrs(vec![options.udp.clone()])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let pc: Box<dyn PeerConnection> = Box::new(pc);
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .await
            .map_err(|e| e.to_string())?;
    }
    let offer = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(2), gathered.wait_for(|g| *g)).await;
    let sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .ok_or("no local description")?;
    Ok((pc, sdp))
}
