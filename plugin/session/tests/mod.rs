//! The session's policies with fake time: a driver of our own feeds inputs at chosen instants and checks what the
//! session asks for.
mod connecting;
mod rate;
mod simulcast;
mod streaming;

use super::sender::StreamIds;
use super::*;
use crate::media::capture::CaptureClock;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::media::video::VideoCodec;
use crate::signal::{Failure, StopCode};
use bytes::Bytes;
use std::time::{Duration, Instant};

pub(super) const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";
pub(super) const RESTART_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:efgh\r\na=ice-pwd:fedcba9876543210fedcba9876\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 5002 typ host\r\n";
pub(super) const ANSWER: &str = "v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:srv1\r\na=ice-pwd:serverpassword0123456789\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.2 6000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";
pub(super) const SERVER_RESTART: &str = "a=ice-ufrag:srv2\r\na=ice-pwd:serverpassword9876543210\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.2 6002 typ host\r\n\
a=end-of-candidates\r\n";

pub(super) fn config(t0: Instant) -> SessionConfig {
    SessionConfig {
        signalling: "WHIP",
        ice_servers: Vec::new(),
        relay_only: false,
        connect_timeout: Duration::from_secs(10),
        max_payload: 1200,
        video_codec: VideoCodec::H264,
        audio_extra_data: Bytes::new(),
        capture: CaptureClock::new(t0, 1_000_000, 1_700_000_000_000_000),
        video: vec![VideoLayer::single(
            StreamIds {
                ssrc: 0x1111,
                first_seq: 100,
                rtp_offset: 0,
            },
            0x1112,
            Bytes::new(),
        )],
        audio: StreamIds {
            ssrc: 0x2222,
            first_seq: 200,
            rtp_offset: 0,
        },
        stream_id: "obs-test".into(),
        rate: RateConfig::default(),
    }
}

/// The session and a fake clock. `run` moves time forward as a driver would, collecting what comes out.
pub(super) struct Fake {
    pub(super) s: Session,
    pub(super) now: Instant,
    pub(super) t0: Instant,
}

impl Fake {
    pub(super) fn new(configure: impl FnOnce(&mut SessionConfig)) -> Fake {
        let t0 = Instant::now();
        let mut c = config(t0);
        configure(&mut c);
        Fake {
            s: Session::new(c, t0),
            now: t0,
            t0,
        }
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Everything due now, until the session waits.
    pub(super) fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match self.s.poll() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
        }
    }

    pub(super) fn input(&mut self, i: Input) -> Vec<Output> {
        self.s.handle(i, self.now);
        self.drain()
    }

    /// Moves time to `ms` after the start, waking the session at each timeout it asked for on the way.
    pub(super) fn run_to(&mut self, ms: u64) -> Vec<(u64, Output)> {
        let end = self.at(ms);
        let mut out: Vec<(u64, Output)> = Vec::new();
        let mut idle_wakes = 0;
        loop {
            let now_ms = self.now.duration_since(self.t0).as_millis() as u64;
            out.extend(self.drain().into_iter().map(|o| (now_ms, o)));
            let Output::Timeout(next) = self.s.poll() else {
                unreachable!()
            };
            if next > end {
                self.now = end;
                self.s.handle_timeout(end);
                let now_ms = ms;
                out.extend(self.drain().into_iter().map(|o| (now_ms, o)));
                return out;
            }
            idle_wakes = if next <= self.now { idle_wakes + 1 } else { 0 };
            assert!(
                idle_wakes < 1000,
                "the session keeps asking to be woken at {next:?} ≤ now"
            );
            self.now = next.max(self.now);
            self.s.handle_timeout(self.now);
        }
    }

    /// Pre-flight answered, peer created, gathering complete, offer read, answer applied, connected.
    pub(super) fn connect(&mut self, preflight: Preflight, restarts: bool) -> Vec<Output> {
        self.connect_with(preflight, restarts, [true; 2])
    }

    /// [`Self::connect`] with an answer that took transport-wide numbers for (video, audio) as given.
    pub(super) fn connect_with(
        &mut self,
        preflight: Preflight,
        restarts: bool,
        transport_cc: [bool; 2],
    ) -> Vec<Output> {
        self.connect_full(preflight, restarts, transport_cc, 0b111)
    }

    /// [`Self::connect_with`] with an answer that took the video layers `layers` (bit `i`: layer `i`).
    pub(super) fn connect_full(
        &mut self,
        preflight: Preflight,
        restarts: bool,
        transport_cc: [bool; 2],
        layers: u8,
    ) -> Vec<Output> {
        let mut all = self.drain();
        all.extend(self.input(Input::Preflighted(preflight)));
        all.extend(self.input(Input::PeerCreated(Ok(()))));
        all.extend(self.input(Input::GatheringComplete));
        all.extend(self.input(Input::Offer(Ok(OFFER.into()))));
        all.extend(self.input(Input::Answered(Ok(ServerAnswer {
            sdp: ANSWER.into(),
            restarts,
            ice_servers: Vec::new(),
        }))));
        all.extend(self.input(Input::AnswerApplied(Ok(PayloadTypes {
            video: 102,
            audio: 111,
            video_rtx: Some(103),
            transport_cc,
            layers,
        }))));
        all.extend(self.input(Input::PeerState(PeerState::Connected)));
        all
    }
}

/// The server's answer ([`ANSWER`]), taking ICE restarts or not.
pub(super) fn answered(restarts: bool) -> Input {
    Input::Answered(Ok(ServerAnswer {
        sdp: ANSWER.into(),
        restarts,
        ice_servers: Vec::new(),
    }))
}

/// The answer applied: H.264 and Opus, without RTX, transport-wide feedback or simulcast.
pub(super) fn applied_plainly() -> Input {
    Input::AnswerApplied(Ok(PayloadTypes {
        video: 102,
        audio: 111,
        video_rtx: None,
        transport_cc: [false; 2],
        layers: 1,
    }))
}

pub(super) fn actions(out: &[Output]) -> Vec<&Action> {
    out.iter()
        .filter_map(|o| match o {
            Output::Action(a) => Some(a),
            _ => None,
        })
        .collect()
}

pub(super) fn notes(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Note(n)) => Some(n.text.as_str()),
            _ => None,
        })
        .collect()
}

pub(super) fn failure(out: &[Output]) -> Option<&Failure> {
    out.iter().find_map(|o| match o {
        Output::Event(Event::Failed(f)) => Some(f),
        _ => None,
    })
}

pub(super) fn kind_of(a: &Action) -> &'static str {
    match a {
        Action::Preflight { .. } => "preflight",
        Action::CreatePeer(_) => "create-peer",
        Action::ReadOffer => "read-offer",
        Action::SendOffer(_) => "send-offer",
        Action::ApplyAnswer(_) => "apply-answer",
        Action::SendTrickle(_) => "trickle",
        Action::RestartIce(_) => "restart-ice",
        Action::SendRestart(_) => "send-restart",
        Action::SendRtp(_) => "rtp",
        Action::SendReport(_) => "report",
        Action::EndServerSession => "end-server-session",
        Action::ClosePeer => "close-peer",
        Action::RequestKeyframe(_) => "request-keyframe",
        Action::ReleaseLayer(_) => "release-layer",
        Action::SetVideoBitrate(_) => "set-video-bitrate",
        Action::AddRemoteCandidate(_) => "add-remote-candidate",
    }
}

pub(super) fn kinds(out: &[Output]) -> Vec<&'static str> {
    actions(out).into_iter().map(kind_of).collect()
}

pub(super) fn video_frame(n: i64, bytes: usize, keyframe: bool) -> EncodedPacket {
    let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    data.resize(bytes, 0xab);
    EncodedPacket {
        kind: MediaKind::Video,
        data: Bytes::from(data),
        pts: n,
        dts: n,
        timebase_num: 1,
        timebase_den: 30,
        keyframe,
        dts_usec: n * 33_333,
        sys_dts_usec: 1_000_000 + n * 33_333,
        track: 0,
        layer: 0,
        handoff_usec: 1_000_000 + n * 33_333,
    }
}

pub(super) fn audio_packet(n: i64) -> EncodedPacket {
    EncodedPacket {
        kind: MediaKind::Audio,
        data: Bytes::from_static(&[0xfc, 1, 2, 3]),
        pts: n * 960,
        dts: n * 960,
        timebase_num: 1,
        timebase_den: 48_000,
        keyframe: false,
        dts_usec: n * 20_000,
        sys_dts_usec: 1_000_000 + n * 20_000,
        track: 0,
        layer: 0,
        handoff_usec: 1_000_000 + n * 20_000,
    }
}
