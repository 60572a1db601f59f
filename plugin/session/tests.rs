//! The session's policies with fake time: a driver of our own feeds inputs at chosen instants and checks what the
//! session asks for.
use super::recovery::{DISCONNECTED_GRACE, RECOVERY_WINDOW, RESTART_RETRY};
use super::sender::{StreamIds, BURST_BYTES, SENDER_REPORT_INTERVAL};
use super::*;
use crate::media::packet::MediaKind;
use std::time::{Duration, Instant};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";
const RESTART_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:efgh\r\na=ice-pwd:fedcba9876543210fedcba9876\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.1 5002 typ host\r\n";
const ANSWER: &str = "v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:srv1\r\na=ice-pwd:serverpassword0123456789\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.2 6000 typ host\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";
const SERVER_RESTART: &str = "a=ice-ufrag:srv2\r\na=ice-pwd:serverpassword9876543210\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.2 6002 typ host\r\n\
a=end-of-candidates\r\n";

fn config(t0: Instant) -> SessionConfig {
    SessionConfig {
        signalling: "WHIP",
        ice_servers: Vec::new(),
        relay_only: false,
        connect_timeout: Duration::from_secs(10),
        max_payload: 1200,
        video_extra_data: Bytes::new(),
        audio_extra_data: Bytes::new(),
        capture: CaptureClock::new(t0, 1_000_000, 1_700_000_000_000_000),
        video: StreamIds {
            ssrc: 0x1111,
            first_seq: 100,
            rtp_offset: 0,
        },
        audio: StreamIds {
            ssrc: 0x2222,
            first_seq: 200,
            rtp_offset: 0,
        },
        stream_id: "obs-test".into(),
    }
}

/// The session and a fake clock. `run` moves time forward as a driver would, collecting what comes out.
struct Fake {
    s: Session,
    now: Instant,
    t0: Instant,
}

impl Fake {
    fn new(configure: impl FnOnce(&mut SessionConfig)) -> Fake {
        let t0 = Instant::now();
        let mut c = config(t0);
        configure(&mut c);
        Fake {
            s: Session::new(c, t0),
            now: t0,
            t0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Everything due now, until the session waits.
    fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match self.s.poll() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
        }
    }

    fn input(&mut self, i: Input) -> Vec<Output> {
        self.s.handle(i, self.now);
        self.drain()
    }

    /// Moves time to `ms` after the start, waking the session at each timeout it asked for on the way.
    fn run_to(&mut self, ms: u64) -> Vec<(u64, Output)> {
        let end = self.at(ms);
        let mut out: Vec<(u64, Output)> = Vec::new();
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
            self.now = next.max(self.now);
            self.s.handle_timeout(self.now);
        }
    }

    /// Pre-flight answered, peer created, gathering complete, offer read, answer applied, connected.
    fn connect(&mut self, preflight: Preflight, restarts: bool) -> Vec<Output> {
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
        }))));
        all.extend(self.input(Input::PeerState(PeerState::Connected)));
        all
    }
}

fn actions(out: &[Output]) -> Vec<&Action> {
    out.iter()
        .filter_map(|o| match o {
            Output::Action(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn notes(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Note(n)) => Some(n.text.as_str()),
            _ => None,
        })
        .collect()
}

fn failure(out: &[Output]) -> Option<&Failure> {
    out.iter().find_map(|o| match o {
        Output::Event(Event::Failed(f)) => Some(f),
        _ => None,
    })
}

fn kind_of(a: &Action) -> &'static str {
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
    }
}

fn kinds(out: &[Output]) -> Vec<&'static str> {
    actions(out).into_iter().map(kind_of).collect()
}

fn video_frame(n: i64, bytes: usize, keyframe: bool) -> EncodedPacket {
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
        handoff_usec: 1_000_000 + n * 33_333,
    }
}

fn audio_packet(n: i64) -> EncodedPacket {
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
        handoff_usec: 1_000_000 + n * 20_000,
    }
}

#[test]
fn a_complete_offer_waits_for_gathering_at_most_one_second() {
    let mut f = Fake::new(|_| {});
    assert_eq!(kinds(&f.drain()), ["preflight"]);
    assert_eq!(
        kinds(&f.input(Input::Preflighted(Preflight::default()))),
        ["create-peer"]
    );
    assert!(
        f.input(Input::PeerCreated(Ok(()))).is_empty(),
        "waits for candidates"
    );
    // Gathering never completes (an unreachable STUN server): the offer is read 1 s after the peer was made.
    let out = f.run_to(999);
    assert!(kinds(&out.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()).is_empty());
    let out = f.run_to(1000);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0], (1000, Output::Action(Action::ReadOffer)));
    let out = f.input(Input::Offer(Ok(OFFER.into())));
    assert_eq!(actions(&out), [&Action::SendOffer(OFFER.into())]);
}

#[test]
fn a_server_that_takes_trickle_ice_gets_the_offer_at_once_then_candidates() {
    let mut f = Fake::new(|_| {});
    f.drain();
    f.input(Input::Preflighted(Preflight {
        ice_servers: Vec::new(),
        trickle: true,
    }));
    assert_eq!(kinds(&f.input(Input::PeerCreated(Ok(())))), ["read-offer"]);
    f.input(Input::Offer(Ok(OFFER.into())));
    let late = "candidate:2 1 udp 1694498815 203.0.113.5 5000 typ srflx raddr 10.0.0.1 rport 5000";
    // Gathered before the answer: held until the answer is applied (the PATCH needs the session).
    assert!(f.input(Input::LocalCandidate(late.into())).is_empty());
    f.input(Input::Answered(Ok(ServerAnswer {
        sdp: ANSWER.into(),
        restarts: true,
        ice_servers: Vec::new(),
    })));
    let out = f.input(Input::AnswerApplied(Ok(PayloadTypes {
        video: 102,
        audio: 111,
    })));
    let [Action::SendTrickle(fragment)] = actions(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(fragment.contains(late) && !fragment.contains("end-of-candidates"));
    // One PATCH at a time: end-of-candidates waits for the first to be answered.
    assert!(f.input(Input::GatheringComplete).is_empty());
    let out = f.input(Input::Trickled(Ok(())));
    let [Action::SendTrickle(fragment)] = actions(&out)[..] else {
        panic!("{out:?}")
    };
    assert!(fragment.contains("a=end-of-candidates") && !fragment.contains(late));
    assert!(f.input(Input::Trickled(Ok(()))).is_empty());
    let out = f.input(Input::PeerState(PeerState::Connected));
    let Some(Output::Event(Event::Connected(t))) = out.first() else {
        panic!("{out:?}")
    };
    assert!(t.trickle && t.end_of_candidates_sent && t.trickled_candidates == 1);
}

#[test]
fn trickle_refused_after_the_offer_ends_that_session_and_sends_a_complete_offer() {
    let mut f = Fake::new(|_| {});
    f.drain();
    f.input(Input::Preflighted(Preflight {
        ice_servers: Vec::new(),
        trickle: true,
    }));
    f.input(Input::PeerCreated(Ok(())));
    f.input(Input::Offer(Ok(OFFER.into())));
    f.input(Input::Answered(Ok(ServerAnswer {
        sdp: ANSWER.into(),
        restarts: true,
        ice_servers: Vec::new(),
    })));
    f.input(Input::AnswerApplied(Ok(PayloadTypes {
        video: 102,
        audio: 111,
    })));
    assert_eq!(kinds(&f.input(Input::GatheringComplete)), ["trickle"]);
    let out = f.input(Input::Trickled(Err(RequestError::Unsupported(
        "the server does not take trickle ICE after all (HTTP 405)".into(),
    ))));
    assert_eq!(
        kinds(&out),
        ["end-server-session", "close-peer", "create-peer"]
    );
    assert_eq!(
        notes(&out),
        ["trickle ICE refused after the offer (the server does not take trickle ICE after all (HTTP 405)): \
          sent a new, complete offer"]
    );
    // The second offer is a complete one: it waits for gathering.
    assert!(f.input(Input::PeerCreated(Ok(()))).is_empty());
    assert_eq!(kinds(&f.input(Input::GatheringComplete)), ["read-offer"]);
    assert_eq!(
        kinds(&f.input(Input::Offer(Ok(OFFER.into())))),
        ["send-offer"]
    );
    f.input(Input::Answered(Ok(ServerAnswer {
        sdp: ANSWER.into(),
        restarts: false,
        ice_servers: Vec::new(),
    })));
    let out = f.input(Input::AnswerApplied(Ok(PayloadTypes {
        video: 102,
        audio: 111,
    })));
    assert!(kinds(&out).is_empty(), "no trickling this time: {out:?}");
    let out = f.input(Input::PeerState(PeerState::Connected));
    assert!(matches!(out[0], Output::Event(Event::Connected(ref t)) if !t.trickle));
}

#[test]
fn a_server_that_never_answers_fails_at_the_connect_deadline_and_its_session_is_ended() {
    let mut f = Fake::new(|c| c.connect_timeout = Duration::from_secs(4));
    f.drain();
    f.input(Input::Preflighted(Preflight::default()));
    f.input(Input::PeerCreated(Ok(())));
    f.input(Input::GatheringComplete);
    f.input(Input::Offer(Ok(OFFER.into())));
    let out = f.run_to(4000);
    let (at, _) = out.first().expect("something at the deadline");
    assert_eq!(*at, 4000);
    let outs: Vec<Output> = out.into_iter().map(|(_, o)| o).collect();
    let fail = failure(&outs).expect("failed");
    assert_eq!(fail.code, StopCode::ConnectFailed);
    assert_eq!(fail.message, "The WHIP server did not answer within 4 s");
    assert_eq!(kinds(&outs), ["end-server-session", "close-peer"]);
}

#[test]
fn relay_only_without_a_relay_candidate_fails_before_the_offer_goes_out() {
    let mut f = Fake::new(|c| c.relay_only = true);
    f.drain();
    f.input(Input::Preflighted(Preflight::default()));
    f.input(Input::PeerCreated(Ok(())));
    f.input(Input::GatheringComplete);
    let out = f.input(Input::Offer(Ok(OFFER.into())));
    assert!(failure(&out)
        .unwrap()
        .message
        .contains("gave no relay address"));
    assert_eq!(
        kinds(&out),
        ["close-peer"],
        "no offer went out: nothing to end on the server"
    );
}

/// What a stop in each phase of connecting asks for: always a "stopped" failure (OBS's stop succeeded), the
/// server's session ended once an offer went out, the peer closed once one exists.
#[test]
fn a_stop_during_each_phase_ends_what_exists_and_nothing_else() {
    type Step = fn(&mut Fake);
    let steps: [(&str, Step, &[&str]); 6] = [
        ("pre-flight", |_| {}, &[]),
        (
            "creating the peer",
            |f| {
                f.input(Input::Preflighted(Preflight::default()));
            },
            &["close-peer"],
        ),
        (
            "gathering",
            |f| {
                f.input(Input::PeerCreated(Ok(())));
            },
            &["close-peer"],
        ),
        (
            "waiting for the answer",
            |f| {
                f.input(Input::GatheringComplete);
                f.input(Input::Offer(Ok(OFFER.into())));
            },
            &["end-server-session", "close-peer"],
        ),
        (
            "applying the answer",
            |f| {
                f.input(Input::Answered(Ok(ServerAnswer {
                    sdp: ANSWER.into(),
                    restarts: false,
                    ice_servers: Vec::new(),
                })));
            },
            &["end-server-session", "close-peer"],
        ),
        (
            "connecting",
            |f| {
                f.input(Input::AnswerApplied(Ok(PayloadTypes {
                    video: 102,
                    audio: 111,
                })));
            },
            &["end-server-session", "close-peer"],
        ),
    ];
    for n in 0..steps.len() {
        let mut f = Fake::new(|_| {});
        f.drain();
        for (_, step, _) in &steps[..=n] {
            step(&mut f);
        }
        let (phase, _, expected) = steps[n];
        let out = f.input(Input::Stop);
        let fail = failure(&out).unwrap_or_else(|| panic!("{phase}: {out:?}"));
        assert_eq!(
            (fail.code, fail.message.as_str()),
            (StopCode::Success, "stopped while connecting"),
            "{phase}"
        );
        assert_eq!(kinds(&out), expected, "{phase}");
        for k in expected.iter() {
            let done = match *k {
                "end-server-session" => Input::ServerSessionEnded(Ok("DELETE answered 200".into())),
                _ => Input::PeerClosed,
            };
            f.input(done);
        }
        assert!(f.s.is_closed(), "{phase}");
        // Late replies from the old phases change nothing.
        assert!(f
            .input(Input::Answered(Err(Failure::new(StopCode::Error, "late"))))
            .is_empty());
    }
}

#[test]
fn closing_waits_for_the_server_at_most_its_deadline() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    let out = f.input(Input::Stop);
    assert_eq!(kinds(&out), ["end-server-session", "close-peer"]);
    assert!(
        failure(&out).is_none(),
        "a stop while streaming is no failure"
    );
    f.input(Input::PeerClosed);
    assert!(!f.s.is_closed());
    let out = f.run_to(CLOSE_LIMIT.as_millis() as u64 - 1);
    assert!(out.is_empty(), "{out:?}");
    let out = f.run_to(CLOSE_LIMIT.as_millis() as u64);
    assert_eq!(
        out,
        [(
            CLOSE_LIMIT.as_millis() as u64,
            Output::Event(Event::Closed(Err("no answer within 2000 ms".into())))
        )]
    );
    assert!(f.s.is_closed());
}

#[test]
fn a_server_without_restarts_loses_the_stream_one_second_after_ice_goes_down() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.input(Input::PeerState(PeerState::Disconnected));
    assert!(f.run_to(999).is_empty());
    let out: Vec<Output> = f.run_to(1000).into_iter().map(|(_, o)| o).collect();
    let fail = failure(&out).expect("lost");
    assert_eq!(fail.code, StopCode::Disconnected);
    assert_eq!(
        fail.message,
        "The WebRTC connection to the server was lost (state disconnected; the server takes no ICE restarts)"
    );
}

/// Walks one restart through its steps with the server's answers; returns what it asked for.
fn restart_round(f: &mut Fake, server: Result<String, RequestError>) -> Vec<Output> {
    let mut out = f.input(Input::IceRestarted(Ok(())));
    out.extend(f.input(Input::GatheringComplete));
    out.extend(f.input(Input::Offer(Ok(RESTART_OFFER.into()))));
    let ok = server.is_ok();
    out.extend(f.input(Input::RestartAnswered(server)));
    if ok {
        out.extend(f.input(Input::AnswerApplied(Ok(PayloadTypes {
            video: 102,
            audio: 111,
        }))));
    }
    out
}

#[test]
fn ice_restarts_every_three_seconds_for_fifteen_then_the_stream_is_lost() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    f.input(Input::PeerState(PeerState::Disconnected));
    let mut restarts = Vec::new();
    let mut lost_at = None;
    let mut t = 0;
    while t < 20_000 && lost_at.is_none() {
        t += 100;
        for (at, o) in f.run_to(t) {
            match &o {
                Output::Action(Action::RestartIce(_)) => {
                    restarts.push(at);
                    // Each restart is taken by the server, but the path stays dead.
                    let out = restart_round(&mut f, Ok(SERVER_RESTART.into()));
                    assert_eq!(kinds(&out), ["read-offer", "send-restart", "apply-answer"]);
                    let [_, Action::SendRestart(fragment), Action::ApplyAnswer(answer)] =
                        actions(&out)[..]
                    else {
                        panic!()
                    };
                    assert!(fragment.contains("a=ice-ufrag:efgh"));
                    assert!(answer.contains("a=ice-ufrag:srv2") && !answer.contains("srv1"));
                }
                Output::Event(Event::Failed(fail)) => {
                    lost_at = Some(at);
                    assert!(
                        fail.message
                            .contains("not back within 15 s after 5 ICE restart(s)"),
                        "{fail:?}"
                    );
                }
                _ => {}
            }
        }
    }
    let grace = DISCONNECTED_GRACE.as_millis() as u64;
    let retry = RESTART_RETRY.as_millis() as u64;
    let expected: Vec<u64> = (0..5).map(|n| grace + n * retry).collect();
    assert_eq!(restarts, expected);
    assert_eq!(lost_at, Some(RECOVERY_WINDOW.as_millis() as u64));
}

#[test]
fn a_restart_that_brings_the_connection_back_counts_as_repaired() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    f.now = f.at(10_000);
    f.input(Input::PeerState(PeerState::Disconnected));
    let out = f.run_to(11_000);
    assert_eq!(
        notes(&out.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()),
        ["connection disconnected for 1000 ms: ICE restart 1 through the WHIP server"]
    );
    // The connection comes back while the restart is under way: the outage ends when the restart has finished.
    assert!(notes(&f.input(Input::PeerState(PeerState::Connected))).is_empty());
    let out = restart_round(&mut f, Ok(SERVER_RESTART.into()));
    assert_eq!(
        notes(&out),
        [
            "ICE restart 1 accepted by the server: checking the new paths",
            "connection back after 1000 ms (1 ICE restart(s), same session)"
        ]
    );
    assert_eq!(f.s.ice_restarts(), 1);
}

#[test]
fn a_restart_patch_answered_405_ends_the_stream_instead_of_retrying() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    f.input(Input::PeerState(PeerState::Failed));
    let out = f.run_to(1000);
    assert!(out
        .iter()
        .any(|(_, o)| matches!(o, Output::Action(Action::RestartIce(_)))));
    let out = restart_round(
        &mut f,
        Err(RequestError::Unsupported(
            "the server takes no ICE restarts (HTTP 405)".into(),
        )),
    );
    assert_eq!(
        notes(&out),
        ["ICE restart 1 failed: the server takes no ICE restarts (HTTP 405)"]
    );
    let fail = failure(&out).expect("lost at once, not after 15 s");
    assert!(
        fail.message
            .contains("state failed; the server takes no ICE restarts"),
        "{fail:?}"
    );
}

#[test]
fn sender_reports_follow_the_first_packet_then_every_second() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(500);
    let out = f.input(Input::Media(video_frame(0, 500, true)));
    assert_eq!(kinds(&out), ["rtp", "report"], "only video has sent yet");
    let mut reports = Vec::new();
    for n in 1..=250 {
        // 5 s of audio at 50 packets a second.
        let at = 500 + n * 20;
        for (t, o) in f.run_to(at) {
            if let Output::Action(Action::SendReport(r)) = o {
                reports.push((t, r.kind));
            }
        }
        for o in f.input(Input::Media(audio_packet(n as i64))) {
            if let Output::Action(Action::SendReport(r)) = o {
                reports.push((at, r.kind));
            }
        }
    }
    let interval = SENDER_REPORT_INTERVAL.as_millis() as u64;
    let expected: Vec<(u64, MediaKind)> = (1..=5)
        .flat_map(|k| {
            [
                (500 + k * interval, MediaKind::Video),
                (500 + k * interval, MediaKind::Audio),
            ]
        })
        .collect();
    assert_eq!(reports, expected);
}

#[test]
fn keyframes_leave_in_paced_bursts_and_audio_is_never_held_behind_them() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    // A 100 KB keyframe: 24 KB bursts 1 ms apart.
    let out = f.input(Input::Media(video_frame(0, 100_000, true)));
    let first_burst: usize = actions(&out)
        .iter()
        .filter_map(|a| match a {
            Action::SendRtp(p) => Some(p.payload.len()),
            _ => None,
        })
        .sum();
    assert!(
        (BURST_BYTES..BURST_BYTES + 1200).contains(&first_burst),
        "{first_burst}"
    );
    let out = f.input(Input::Media(audio_packet(0)));
    assert_eq!(kinds(&out), ["rtp"], "audio goes at once");
    let mut sent = Vec::new();
    for (t, o) in f.run_to(1010) {
        if let Output::Action(Action::SendRtp(p)) = o {
            sent.push((t, p.seq, p.marker));
        }
    }
    let times: Vec<u64> = sent.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times.first(), Some(&1001));
    assert_eq!(
        times.last(),
        Some(&1003),
        "100 KB in four bursts of ~25 KB, 1 ms apart"
    );
    assert!(
        sent.last().unwrap().2,
        "marker on the last packet of the frame"
    );
    let seqs: Vec<u16> = sent.iter().map(|(_, s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {seqs:?}"
    );
}
