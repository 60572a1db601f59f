//! Streaming: closing, recovery by ICE restart, sender reports, pacing.
use super::super::recovery::{DISCONNECTED_GRACE, RECOVERY_WINDOW, RESTART_RETRY};
use super::super::sender::{repair_copies, REPAIR_COPY_GAP, SENDER_REPORT_INTERVAL};
use super::*;

#[test]
fn closing_waits_for_the_server_at_most_its_deadline() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    let out = f.input(Input::Stop);
    assert_eq!(kinds(&out), ["end-server-session"]);
    assert!(
        failure(&out).is_none(),
        "a stop while streaming is no failure"
    );
    // The server has not answered the DELETE: the peer closes after its wait all the same.
    let wait = PEER_CLOSE_WAIT.as_millis() as u64;
    assert!(f.run_to(wait - 1).is_empty());
    let out: Vec<Output> = f.run_to(wait).into_iter().map(|(_, o)| o).collect();
    assert_eq!(kinds(&out), ["close-peer"]);
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
fn the_peer_closes_once_the_server_has_ended_its_session() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    assert_eq!(kinds(&f.input(Input::Stop)), ["end-server-session"]);
    f.now = f.at(40);
    let out = f.input(Input::ServerSessionEnded(Ok("DELETE answered 200".into())));
    assert_eq!(kinds(&out), ["close-peer"]);
    assert!(!f.s.is_closed());
    let out = f.input(Input::PeerClosed);
    assert!(f.s.is_closed(), "{out:?}");
    assert!(f.run_to(CLOSE_LIMIT.as_millis() as u64).is_empty());
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
            video_rtx: None,
            transport_cc: [false; 2],
            layers: 1,
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
fn a_restart_patch_answered_404_ends_the_stream_at_once_for_obs_to_reconnect() {
    // A WHIP server that restarted knows the session no more: retrying for 15 s cannot bring it back.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    f.input(Input::PeerState(PeerState::Disconnected));
    f.run_to(1000);
    let why = "the server no longer knows this session (HTTP 404 to the ICE restart: it restarted or dropped it)";
    let out = restart_round(&mut f, Err(RequestError::Gone(why.into())));
    assert_eq!(notes(&out), [format!("ICE restart 1 failed: {why}")]);
    let fail = failure(&out).expect("lost at once, not after 15 s");
    assert_eq!(fail.code, StopCode::Disconnected);
    assert!(fail.republish, "a new session may be taken at once");
    assert!(
        fail.message.contains(&format!("state disconnected; {why}")),
        "{fail:?}"
    );
}

/// RTCP from the server that changes nothing but its pace (a report for a stream we do not send).
fn rtcp() -> Input {
    Input::Feedback(Feedback::ReceiverReport {
        ssrc: 0x9999,
        fraction_lost: 0,
        lsr: 0,
        dlsr: 0,
        jitter: 0,
    })
}

/// Feeds [`rtcp`] every `every_ms` from `from_ms` up to `to_ms`; returns what came out.
fn rtcp_every(f: &mut Fake, every_ms: u64, from_ms: u64, to_ms: u64) -> Vec<Output> {
    let mut out = Vec::new();
    for t in (from_ms..=to_ms).step_by(every_ms as usize) {
        out.extend(f.run_to(t).into_iter().map(|(_, o)| o));
        out.extend(f.input(rtcp()));
    }
    out
}

#[test]
fn a_server_whose_feedback_stops_counts_as_down_after_a_second_and_a_dead_one_is_published_again() {
    // Transport feedback every 100 ms, then none (the server died; ICE would notice only after 3 s): one second
    // after the last, an ICE restart. Its PATCH finds nothing listening: lost, marked for a new session at once.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    assert!(notes(&rtcp_every(&mut f, 100, 0, 3000)).is_empty());
    assert!(f.run_to(3999).is_empty(), "quiet for 999 ms: nothing yet");
    let out: Vec<Output> = f.run_to(4000).into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        notes(&out),
        [
            "no RTCP from the server for 1000 ms (it came at most 100 ms apart): the connection counts as down",
            "connection disconnected for 1000 ms: ICE restart 1 through the WHIP server"
        ]
    );
    assert_eq!(kinds(&out), ["restart-ice"]);
    let why = "the server is down: the ICE restart could not reach it (connection failed: connection refused)";
    let out = restart_round(&mut f, Err(RequestError::Gone(why.into())));
    let fail = failure(&out).expect("lost at once");
    assert!(fail.republish && fail.message.contains(why), "{fail:?}");
}

#[test]
fn after_a_silence_the_outage_ends_when_feedback_comes_again_not_when_the_restart_is_taken() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    rtcp_every(&mut f, 100, 0, 3000);
    f.run_to(4000);
    // ICE never left "connected": the restart's answer alone is no sign the path works.
    let out = restart_round(&mut f, Ok(SERVER_RESTART.into()));
    assert_eq!(
        notes(&out),
        ["ICE restart 1 accepted by the server: checking the new paths"]
    );
    assert!(
        f.run_to(5000).is_empty(),
        "no second restart within 3 s of the first"
    );
    f.now = f.at(5200);
    assert_eq!(
        notes(&f.input(rtcp())),
        ["connection back after 2200 ms (1 ICE restart(s), same session)"]
    );
    // And the watch goes on: silence again is another outage.
    rtcp_every(&mut f, 100, 5300, 7000);
    let out: Vec<Output> = f.run_to(8000).into_iter().map(|(_, o)| o).collect();
    assert_eq!(kinds(&out), ["restart-ice"]);
}

#[test]
fn a_server_that_reports_only_every_second_is_left_to_ice() {
    // Four times its longest gap is 4 s, beyond ICE's own 3 s: ICE speaks first.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), true);
    rtcp_every(&mut f, 1000, 0, 20_000);
    assert!(f.run_to(23_999).is_empty());
    let out: Vec<Output> = f.run_to(24_000).into_iter().map(|(_, o)| o).collect();
    assert_eq!(kinds(&out), ["restart-ice"]);
}

#[test]
fn without_ice_restarts_silence_is_left_to_ice_and_a_lost_session_is_published_again() {
    // The only remedy would be a new session, which an SFU's viewers notice more than a short freeze: a 1.5 s cut
    // heals by itself. ICE's verdict (3 s) and a second's grace end the session, marked for a new one.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    rtcp_every(&mut f, 100, 0, 3000);
    assert!(f.run_to(6000).is_empty(), "silence alone does nothing");
    f.input(Input::PeerState(PeerState::Disconnected));
    assert!(f.run_to(6999).is_empty());
    let out: Vec<Output> = f.run_to(7000).into_iter().map(|(_, o)| o).collect();
    let fail = failure(&out).expect("lost");
    assert!(fail.republish);
    assert!(
        fail.message.contains("the server takes no ICE restarts"),
        "{fail:?}"
    );
}

#[test]
fn a_stream_that_starts_mid_picture_group_waits_for_a_keyframe_and_asks_for_one() {
    // OBS reconnecting: the encoder runs on, so the new session's first frames are not keyframes. Nothing a
    // receiver could decode before one is sent; the encoder is asked at once rather than after the server's PLI.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(500);
    let out = f.input(Input::Media(video_frame(0, 500, false)));
    assert_eq!(kinds(&out), ["request-keyframe"]);
    f.now = f.at(533);
    let out = f.input(Input::Media(video_frame(1, 500, false)));
    assert!(kinds(&out).is_empty(), "asked once: {:?}", kinds(&out));
    f.now = f.at(566);
    let out = f.input(Input::Media(video_frame(2, 5000, true)));
    assert!(
        kinds(&out).contains(&"rtp"),
        "the keyframe goes: {:?}",
        kinds(&out)
    );
    f.now = f.at(600);
    let out = f.input(Input::Media(video_frame(3, 500, false)));
    assert!(
        kinds(&out).contains(&"rtp"),
        "and what follows it: {:?}",
        kinds(&out)
    );
    assert!(!kinds(&out).contains(&"request-keyframe"));
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
fn keyframes_leave_at_the_estimated_rate_and_audio_is_never_held_behind_them() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    // A 100 KB keyframe: spread over as long as the estimate takes to carry it (84 packets with overhead).
    let out = f.input(Input::Media(video_frame(0, 100_000, true)));
    let at_once = sent_rtp(&out).len();
    // The bucket's worth (20 ms at the estimate) and the overdraft of one packet, of 1190 + 58 bytes each.
    let bucket = f.s.estimate() / 8.0 * crate::session::pacer::BURST_TIME.as_secs_f64() / 1248.0;
    assert!(
        (bucket.floor() as usize..=bucket.ceil() as usize + 1).contains(&at_once),
        "a full bucket's worth ({bucket:.1} packets) at once: {at_once}"
    );
    let out = f.input(Input::Media(audio_packet(0)));
    assert_eq!(kinds(&out), ["rtp"], "audio goes at once");
    let mut sent = Vec::new();
    for (t, o) in f.run_to(2000) {
        if let Output::Action(Action::SendRtp(p)) = o {
            sent.push((t, p.seq, p.marker));
        }
    }
    let wire = (100_000 + 84 * crate::session::bwe::PACKET_OVERHEAD) as f64 * 8.0;
    // Less the full bucket it starts with.
    let expected = 1000.0 + wire / f.s.estimate() * 1000.0
        - crate::session::pacer::BURST_TIME.as_secs_f64() * 1000.0;
    let last = sent.last().unwrap();
    assert!(
        (last.0 as f64 - expected).abs() <= 0.05 * (expected - 1000.0),
        "the last packet at {} ms, {expected:.0} expected",
        last.0
    );
    assert!(last.2, "marker on the last packet of the frame");
    let seqs: Vec<u16> = sent.iter().map(|(_, s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {seqs:?}"
    );
}

/// Connected, a 5 KB keyframe handed over at 1 s: the session and the packets it sent in the next 9 ms.
fn streaming_a_keyframe() -> (Fake, Vec<RtpPacket>) {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    let mut sent = sent_rtp(&f.input(Input::Media(video_frame(0, 5000, true))));
    sent.extend(f.run_to(1009).iter().filter_map(|(_, o)| match o {
        Output::Action(Action::SendRtp(p)) => Some(p.clone()),
        _ => None,
    }));
    (f, sent)
}

fn sent_rtp(out: &[Output]) -> Vec<RtpPacket> {
    actions(out)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendRtp(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_last_packets_are_still_repaired_while_closing_until_the_peer_closes() {
    let (mut f, sent) = streaming_a_keyframe();
    let lost = sent.last().expect("sent").seq;
    assert_eq!(kinds(&f.input(Input::Stop)), ["end-server-session"]);
    let nack = Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![lost],
    });
    let out = f.input(nack.clone());
    assert!(sent_rtp(&out).iter().any(|p| p.seq == lost), "{out:?}");
    let out = f.input(Input::ServerSessionEnded(Ok("DELETE answered 200".into())));
    assert_eq!(kinds(&out), ["close-peer"]);
    f.now = f.at(1200);
    assert!(
        sent_rtp(&f.input(nack)).is_empty(),
        "nothing once the peer closes"
    );
}

#[test]
fn nacked_packets_go_again_first_from_a_history_kept_by_time() {
    let (mut f, first) = streaming_a_keyframe();
    assert!(first.len() >= 4, "{}", first.len());
    let lost = first[2].clone();
    // A 100 KB keyframe is being paced out when the NACK arrives: the repair goes ahead of it.
    f.now = f.at(1010);
    f.input(Input::Media(video_frame(1, 100_000, true)));
    let out = f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![lost.seq, 9],
    }));
    let resent = sent_rtp(&out);
    let again = resent.first().expect("a repair");
    assert!(
        again.seq == lost.seq && again.payload == lost.payload,
        "the very packet, first"
    );
    assert_ne!(
        again.transport_seq, lost.transport_seq,
        "a transport-wide number of its own"
    );
    let r = f.s.retransmissions();
    assert_eq!((r.packets, r.gone), (1, 1), "seq 9 was never sent");
    // Asked again at once (a duplicate NACK): not sent twice within a round trip.
    f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![lost.seq],
    }));
    assert_eq!(f.s.retransmissions().too_soon, 1);
    // Its second copy follows 15 ms later, ahead of the keyframe still being paced.
    let copy = f.run_to(1025);
    let copies: Vec<(u64, u16)> = copy
        .iter()
        .filter_map(|(t, o)| match o {
            Output::Action(Action::SendRtp(p)) if p.seq == lost.seq => Some((*t, p.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        copies,
        vec![(1010 + REPAIR_COPY_GAP.as_millis() as u64, lost.seq)]
    );
    // Two seconds later the packet is out of the history (1 s without a known round trip).
    f.run_to(3100);
    f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![lost.seq],
    }));
    assert_eq!(f.s.retransmissions().gone, 2);
    // An audio NACK is counted apart, for the log to tell which stream the server asks for.
    f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x2222,
        seqs: vec![1, 2],
    }));
    let s = f.s.feedback_stats();
    assert_eq!(
        (s.nacks, s.nacked_packets, s.nacked_audio_packets),
        (4, 6, 2)
    );
}

#[test]
fn receiver_reports_give_the_round_trip_and_the_loss() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(500);
    let out = f.input(Input::Media(video_frame(0, 500, true)));
    let report = actions(&out)
        .into_iter()
        .find_map(|a| match a {
            Action::SendReport(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a sender report");
    // The server got it 20 ms later, held it 30 ms (DLSR in 1/65536 s) and reported 10 % loss.
    f.now = f.at(560);
    f.input(Input::Feedback(Feedback::ReceiverReport {
        ssrc: report.ssrc,
        fraction_lost: 26,
        lsr: (report.ntp >> 16) as u32,
        dlsr: 30 * 65_536 / 1000,
        jitter: 900,
    }));
    // Jitter in the video clock's units (90 kHz): 900 is 10 ms.
    assert_eq!(f.s.feedback_stats().jitter_us, [10_000, 0]);
    let rtt = f.s.rtt().expect("a round trip");
    assert!(
        rtt.abs_diff(Duration::from_millis(30)) < Duration::from_millis(1),
        "{rtt:?}"
    );
    assert_eq!(f.s.feedback_stats().fraction_lost, 26);
    assert!(
        (f.s.congestion() - 1.0).abs() < 0.02,
        "10 % loss is full congestion"
    );
    // A report about some other stream is not ours.
    f.input(Input::Feedback(Feedback::ReceiverReport {
        ssrc: 0xdead,
        fraction_lost: 255,
        lsr: 0,
        dlsr: 0,
        jitter: 0,
    }));
    assert_eq!(f.s.feedback_stats().worst_fraction_lost, 26);
}

#[test]
fn repairs_go_in_more_copies_the_more_the_path_loses() {
    assert_eq!(
        repair_copies(0.0),
        2,
        "the packet being repaired was lost: a path loses at least that"
    );
    assert_eq!(repair_copies(0.01), 2);
    assert_eq!(repair_copies(0.02), 2);
    assert_eq!(repair_copies(0.05), 3);
    assert_eq!(repair_copies(0.30), 3, "never more than three");
    // Reported loss raises the copies a NACK gets.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    let lost = sent_rtp(&f.input(Input::Media(video_frame(0, 3000, true))))[1].clone();
    f.input(Input::Feedback(Feedback::ReceiverReport {
        ssrc: 0x1111,
        fraction_lost: 13, // 5 %
        lsr: 0,
        dlsr: 0,
        jitter: 0,
    }));
    f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![lost.seq],
    }));
    f.run_to(1100);
    assert_eq!(f.s.retransmissions().packets, 3);
}

#[test]
fn keyframe_requests_reach_the_encoder_at_most_every_half_second_and_are_timed() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    f.input(Input::Media(video_frame(0, 500, true)));
    // Three viewers ask within 300 ms: the encoder is asked once.
    let mut asked = Vec::new();
    for t in [1100, 1250, 1400] {
        f.now = f.at(t);
        asked.extend(kinds(&f.input(Input::Feedback(
            Feedback::KeyframeRequest {
                ssrc: 0x1111,
                full: false,
            },
        ))));
    }
    assert_eq!(asked, ["request-keyframe"]);
    // P-frames do not answer it; the keyframe 360 ms after the first request does.
    f.now = f.at(1420);
    f.input(Input::Media(video_frame(6, 500, false)));
    assert_eq!(f.s.keyframes().waits.count(), 0);
    f.now = f.at(1460);
    f.input(Input::Media(video_frame(7, 500, true)));
    let k = f.s.keyframes();
    assert_eq!((k.asked, k.waits.count()), (1, 1));
    assert_eq!(k.waits.quantile_ms(1.0).map(|ms| ms.round()), Some(360.0));
    // Half a second after the last asking, a new request goes through.
    f.now = f.at(1600);
    assert_eq!(
        kinds(&f.input(Input::Feedback(Feedback::KeyframeRequest {
            ssrc: 0x1111,
            full: true,
        }))),
        ["request-keyframe"]
    );
}

#[test]
fn a_server_that_says_the_session_is_gone_ends_it_at_once_for_a_new_one() {
    // Janus's event poll: Janus hung up our PeerConnection, or is down. Before streaming it changes nothing (the
    // connect's own errors tell).
    let mut f = Fake::new(|_| {});
    assert!(failure(&f.input(Input::ServerGone("early".into()))).is_none());
    f.connect(Preflight::default(), false);
    let why = "Janus's event poll failed: connection refused";
    let out = f.input(Input::ServerGone(why.into()));
    let fail = failure(&out).expect("lost at once");
    assert!(fail.republish && fail.message.contains(why), "{fail:?}");
}

#[test]
fn after_an_outage_what_went_into_it_is_not_sent_again_and_a_keyframe_is_asked_for() {
    // ICE disconnected just after a keyframe went out (at 1009 ms); back at 2000 ms, by itself. The receiver's
    // NACKs for what it missed would resend a second of stale media at once, holding new video back: they are not
    // answered, and the encoder is asked for a keyframe the moment the connection is back.
    let (mut f, sent) = streaming_a_keyframe();
    f.input(Input::PeerState(PeerState::Disconnected));
    f.run_to(1900);
    f.now = f.at(2000);
    let out = f.input(Input::PeerState(PeerState::Connected));
    assert_eq!(
        notes(&out),
        ["connection back after 991 ms (ICE recovered by itself)"]
    );
    assert!(
        kinds(&out).contains(&"request-keyframe"),
        "{:?}",
        kinds(&out)
    );
    f.now = f.at(2010);
    let out = f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![sent[0].seq, sent[1].seq],
    }));
    assert!(sent_rtp(&out).is_empty(), "nothing from before is resent");
    assert_eq!(f.s.retransmissions().gone, 2);
    // What is sent after it is repaired as ever.
    f.now = f.at(2600);
    let fresh = sent_rtp(&f.input(Input::Media(video_frame(60, 1000, true))));
    f.now = f.at(2650);
    let out = f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![fresh[0].seq],
    }));
    assert_eq!(sent_rtp(&out).first().map(|p| p.seq), Some(fresh[0].seq));
}
