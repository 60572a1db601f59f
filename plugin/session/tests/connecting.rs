//! Getting connected: offer timing, trickle ICE and its refusal, deadlines, a stop in every phase.
use super::*;

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
    f.input(answered(true));
    let out = f.input(applied_plainly());
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
    f.input(answered(true));
    f.input(applied_plainly());
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
    f.input(answered(false));
    let out = f.input(applied_plainly());
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
    assert_eq!(kinds(&outs), ["end-server-session"]);
    let wait = PEER_CLOSE_WAIT.as_millis() as u64;
    let out: Vec<Output> = f.run_to(4000 + wait).into_iter().map(|(_, o)| o).collect();
    assert_eq!(kinds(&out), ["close-peer"]);
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
/// server's session ended once an offer went out, the peer closed once one exists (after the server's session).
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
            &["end-server-session"],
        ),
        (
            "applying the answer",
            |f| {
                f.input(answered(false));
            },
            &["end-server-session"],
        ),
        (
            "connecting",
            |f| {
                f.input(applied_plainly());
            },
            &["end-server-session"],
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
        // The server's session ends first, then the peer closes.
        let mut asked = kinds(&out);
        while let Some(k) = asked.pop() {
            let done = match k {
                "end-server-session" => Input::ServerSessionEnded(Ok("DELETE answered 200".into())),
                _ => Input::PeerClosed,
            };
            asked.extend(kinds(&f.input(done)));
        }
        assert!(f.s.is_closed(), "{phase}");
        // Late replies from the old phases change nothing.
        assert!(f
            .input(Input::Answered(Err(Failure::new(StopCode::Error, "late"))))
            .is_empty());
    }
}

#[test]
fn the_servers_trickled_candidates_wait_for_its_answer_to_be_applied() {
    // Ant Media sends its candidates after its answer, and one may overtake the answer's application.
    let mut f = Fake::new(|_| {});
    f.drain();
    f.input(Input::Preflighted(Preflight::default()));
    f.input(Input::PeerCreated(Ok(())));
    f.input(Input::GatheringComplete);
    f.input(Input::Offer(Ok(OFFER.into())));
    f.input(answered(false));
    let early = RemoteCandidate {
        mline: 0,
        mid: "0".into(),
        candidate: "candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host".into(),
    };
    assert!(
        !kinds(&f.input(Input::RemoteCandidate(early.clone()))).contains(&"add-remote-candidate")
    );
    let applied = f.input(Input::AnswerApplied(Ok(PayloadTypes {
        video: 102,
        audio: 111,
        video_rtx: Some(103),
        transport_cc: [true; 2],
        layers: 0b1,
    })));
    assert_eq!(
        actions(&applied)
            .into_iter()
            .filter(|a| kind_of(a) == "add-remote-candidate")
            .collect::<Vec<_>>(),
        vec![&Action::AddRemoteCandidate(early)]
    );
    // Once applied, a candidate goes to the peer connection at once, also while streaming.
    let late = RemoteCandidate {
        mline: 1,
        mid: "1".into(),
        candidate: String::new(),
    };
    let out = f.input(Input::RemoteCandidate(late.clone()));
    assert_eq!(
        actions(&out),
        vec![&Action::AddRemoteCandidate(late.clone())]
    );
    f.input(Input::PeerState(PeerState::Connected));
    let out = f.input(Input::RemoteCandidate(late.clone()));
    assert_eq!(actions(&out), vec![&Action::AddRemoteCandidate(late)]);
}

#[test]
fn the_connect_timings_tell_ice_from_dtls() {
    let mut f = Fake::new(|_| {});
    f.drain();
    f.input(Input::Preflighted(Preflight::default()));
    f.input(Input::PeerCreated(Ok(())));
    f.input(Input::GatheringComplete);
    f.now = f.at(4);
    f.input(Input::Offer(Ok(OFFER.into())));
    f.now = f.at(12);
    f.input(answered(false));
    // ICE may find its path while the answer is still being applied.
    f.now = f.at(13);
    f.input(Input::IceConnected);
    f.input(applied_plainly());
    // Only the first time counts.
    f.now = f.at(20);
    f.input(Input::IceConnected);
    f.now = f.at(36);
    let out = f.input(Input::PeerState(PeerState::Connected));
    let Some(Output::Event(Event::Connected(t))) = out.first() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (t.offer_ms, t.answer_ms, t.ice_ms, t.connected_ms),
        (4, 12, Some(13), 36)
    );
}
