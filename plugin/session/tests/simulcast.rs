//! Simulcast: each layer on its own RTP stream, keyframes asked of the layer's own encoder, layers paused and
//! resumed as the estimate falls and recovers (with hysteresis on both sides), layers the answer refuses never sent.
use super::super::layers::{FLAP_WINDOW, PAUSE_AFTER, RESUME_AFTER, RESUME_STEADY};
use super::*;
use std::collections::BTreeSet;

fn layer(i: u32, rid: &str, kbps: u32) -> VideoLayer {
    VideoLayer {
        rid: rid.into(),
        ids: StreamIds {
            ssrc: 0x1111 + i * 0x10,
            first_seq: (100 * i) as u16,
            rtp_offset: 1000 * i,
        },
        rtx_ssrc: 0x1112 + i * 0x10,
        extra_data: Bytes::new(),
        kbps,
    }
}

const SSRCS: [u32; 3] = [0x1111, 0x1121, 0x1131];

fn three_layers() -> Fake {
    Fake::new(|c| {
        c.rate.video_kbps = 2500;
        c.video = vec![layer(0, "f", 2500), layer(1, "h", 600), layer(2, "q", 150)];
    })
}

fn frame(layer: u8, n: i64, keyframe: bool) -> EncodedPacket {
    let mut p = video_frame(n, 500, keyframe);
    p.layer = layer;
    p
}

fn rtp(out: &[(u64, Output)]) -> Vec<RtpPacket> {
    out.iter()
        .filter_map(|(_, o)| match o {
            Output::Action(Action::SendRtp(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

/// Frame `n` of every layer at `ms`, then time runs 30 ms: the RTP packets sent, and everything else.
fn frames_at(
    f: &mut Fake,
    ms: u64,
    n: i64,
    keyframe: bool,
) -> (Vec<RtpPacket>, Vec<(u64, Output)>) {
    f.now = f.at(ms);
    let mut out: Vec<(u64, Output)> = Vec::new();
    for l in 0..3 {
        let o = f.input(Input::Media(frame(l, n, keyframe)));
        out.extend(o.into_iter().map(|o| (ms, o)));
    }
    out.extend(f.run_to(ms + 30));
    (rtp(&out), out)
}

fn set(ssrcs: &[u32]) -> BTreeSet<u32> {
    ssrcs.iter().copied().collect()
}

fn ssrcs(packets: &[RtpPacket]) -> BTreeSet<u32> {
    packets.iter().map(|p| p.ssrc).collect()
}

fn asked_keyframes(out: &[(u64, Output)]) -> Vec<usize> {
    out.iter()
        .filter_map(|(_, o)| match o {
            Output::Action(Action::RequestKeyframe(l)) => Some(*l),
            _ => None,
        })
        .collect()
}

#[test]
fn each_layer_goes_on_its_own_stream_with_its_own_numbers_reports_and_keyframes() {
    let mut f = three_layers();
    f.connect(Preflight::default(), false);
    let (sent, _) = frames_at(&mut f, 1000, 0, true);
    assert_eq!(ssrcs(&sent), set(&SSRCS));
    for (i, ssrc) in SSRCS.into_iter().enumerate() {
        let first = sent.iter().find(|p| p.ssrc == ssrc).unwrap();
        assert_eq!(
            first.seq,
            100 * i as u16,
            "layer {i} numbers its own packets"
        );
        assert_eq!(
            first.timestamp.wrapping_sub(1000 * i as u32),
            sent[0].timestamp,
            "the same capture instant on every layer's clock (its own offset)"
        );
    }
    // A NACK for the smallest layer repairs that layer's packet.
    let lost = sent.iter().find(|p| p.ssrc == SSRCS[2]).unwrap();
    f.input(Input::Feedback(Feedback::Nack {
        ssrc: SSRCS[2],
        seqs: vec![lost.seq],
    }));
    let repaired = rtp(&f.run_to(1100));
    assert_eq!(repaired.len(), 1);
    assert_eq!(
        (repaired[0].ssrc, repaired[0].seq, &repaired[0].payload),
        (lost.ssrc, lost.seq, &lost.payload)
    );
    // A sender report per layer.
    let reports: BTreeSet<u32> = f
        .run_to(2100)
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Action(Action::SendReport(r)) => Some(r.ssrc),
            _ => None,
        })
        .collect();
    assert_eq!(reports, set(&SSRCS));
    // A keyframe request names the layer's stream: that layer's encoder is asked.
    let out = f.input(Input::Feedback(Feedback::KeyframeRequest {
        ssrc: SSRCS[1],
        full: false,
    }));
    assert_eq!(actions(&out), [&Action::RequestKeyframe(1)]);
    let stats = f.s.layer_stats();
    assert_eq!(
        stats.iter().map(|l| l.frames).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    let summary = f.s.layer_summary().unwrap();
    assert!(
        summary.starts_with("simulcast layers sent: f 1 frames, "),
        "{summary}"
    );
    assert!(!summary.contains("paused"), "{summary}");
}

/// The notes about simulcast layers.
fn notes_of(out: &[(u64, Output)]) -> Vec<String> {
    out.iter()
        .filter_map(|(_, o)| match o {
            Output::Event(Event::Note(n)) if n.text.starts_with("simulcast") => {
                Some(n.text.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn layers_pause_from_the_top_when_the_estimate_stays_low_and_resume_one_by_one_at_keyframes() {
    let mut f = three_layers();
    f.connect(Preflight::default(), false);
    assert_eq!(ssrcs(&frames_at(&mut f, 1000, 0, true).0), set(&SSRCS));

    // 1 Mbit/s has room for the two smaller layers (150 + 600 kbit/s), not for the full picture at its floor too;
    // a dip shorter than PAUSE_AFTER pauses nothing.
    f.now = f.at(1100);
    f.input(Input::Feedback(Feedback::Remb(1_000_000)));
    assert_eq!(ssrcs(&frames_at(&mut f, 1200, 1, false).0), set(&SSRCS));
    f.now = f.at(1500);
    f.input(Input::Feedback(Feedback::Remb(20_000_000)));
    let (sent, out) = frames_at(&mut f, 2200, 2, false);
    assert_eq!(ssrcs(&sent), set(&SSRCS));
    assert!(notes_of(&out).is_empty(), "{:?}", notes_of(&out));

    // A lasting shortfall pauses the full picture after PAUSE_AFTER.
    f.now = f.at(2300);
    f.input(Input::Feedback(Feedback::Remb(1_000_000)));
    let paused_ms = 2300 + PAUSE_AFTER.as_millis() as u64;
    let out = f.run_to(paused_ms);
    assert!(
        notes_of(&out)
            .iter()
            .any(|n| n.starts_with("simulcast layer 0 (rid f) paused")),
        "{:?}",
        notes_of(&out)
    );
    assert_eq!(
        ssrcs(&frames_at(&mut f, paused_ms + 100, 3, false).0),
        set(&SSRCS[1..])
    );

    // 400 kbit/s: the smallest alone.
    f.now = f.at(3500);
    f.input(Input::Feedback(Feedback::Remb(400_000)));
    f.run_to(3500 + PAUSE_AFTER.as_millis() as u64);
    assert_eq!(
        ssrcs(&frames_at(&mut f, 4600, 4, false).0),
        set(&SSRCS[2..])
    );

    // Room again: the middle layer resumes once paused for RESUME_AFTER (and fitting for RESUME_STEADY), asking
    // its encoder for a keyframe and sending nothing before it; the full picture follows RESUME_STEADY later.
    f.now = f.at(4700);
    f.input(Input::Feedback(Feedback::Remb(20_000_000)));
    let middle_ms = 3500 + (PAUSE_AFTER + RESUME_AFTER).as_millis() as u64;
    let (sent, out) = frames_at(&mut f, middle_ms - 100, 5, false);
    assert_eq!(ssrcs(&sent), set(&SSRCS[2..]));
    assert!(asked_keyframes(&out).is_empty());
    let out = f.run_to(middle_ms);
    assert_eq!(asked_keyframes(&out), [1]);
    assert_eq!(
        ssrcs(&frames_at(&mut f, middle_ms + 10, 6, false).0),
        set(&SSRCS[2..])
    );
    assert_eq!(
        ssrcs(&frames_at(&mut f, middle_ms + 50, 7, true).0),
        set(&SSRCS[1..])
    );
    let top_ms = middle_ms + RESUME_STEADY.as_millis() as u64;
    assert!(asked_keyframes(&f.run_to(top_ms - 10)).is_empty());
    assert_eq!(asked_keyframes(&f.run_to(top_ms)), [0]);
    assert_eq!(
        ssrcs(&frames_at(&mut f, top_ms + 50, 8, true).0),
        set(&SSRCS)
    );
    let summary = f.s.layer_summary().unwrap();
    assert!(
        summary.contains("; h ") && summary.matches("paused 1 time(s)").count() == 2,
        "{summary}"
    );
}

#[test]
fn a_layer_at_its_configured_bitrate_goes_on_through_one_decrease_of_the_estimate() {
    let mut f = three_layers();
    f.connect(Preflight::default(), false);
    frames_at(&mut f, 1000, 0, true);
    // 900 kbit/s less audio (183 kbit/s on the wire) and the smallest layer leaves the middle one 534 kbit/s of its
    // 600: 89 %, more than one decrease of the estimate (0.85) leaves; it goes on however long that lasts (the full
    // picture, needing its floor, pauses).
    f.now = f.at(1100);
    f.input(Input::Feedback(Feedback::Remb(900_000)));
    let out = f.run_to(1100 + 5 * PAUSE_AFTER.as_millis() as u64);
    assert_eq!(
        notes_of(&out),
        ["simulcast layer 0 (rid f) paused: the estimate (900 kbit/s) has no room for it"]
    );
    assert_eq!(
        ssrcs(&frames_at(&mut f, 6200, 1, false).0),
        set(&SSRCS[1..])
    );
    // 750 kbit/s leaves it 391 kbit/s, 65 %: paused after PAUSE_AFTER.
    f.now = f.at(6300);
    f.input(Input::Feedback(Feedback::Remb(750_000)));
    let out = f.run_to(6300 + PAUSE_AFTER.as_millis() as u64);
    assert_eq!(
        notes_of(&out),
        ["simulcast layer 1 (rid h) paused: the estimate (750 kbit/s) has no room for it"]
    );
    assert_eq!(
        ssrcs(&frames_at(&mut f, 7400, 2, false).0),
        set(&SSRCS[2..])
    );
}

#[test]
fn a_layer_the_answer_refuses_is_released_and_never_sent() {
    let mut f = three_layers();
    let out = f.connect_full(Preflight::default(), false, [true; 2], 0b011);
    assert!(actions(&out).contains(&&Action::ReleaseLayer(2)));
    assert_eq!(ssrcs(&frames_at(&mut f, 1000, 0, true).0), set(&SSRCS[..2]));
    // Even with plenty of room it stays off.
    f.input(Input::Feedback(Feedback::Remb(50_000_000)));
    assert_eq!(ssrcs(&frames_at(&mut f, 5000, 1, true).0), set(&SSRCS[..2]));
}

#[test]
fn without_adaptation_every_layer_the_answer_took_goes_whatever_the_estimate() {
    let mut f = Fake::new(|c| {
        c.rate.adaptive = false;
        c.video = vec![layer(0, "f", 2500), layer(1, "h", 600), layer(2, "q", 150)];
    });
    f.connect(Preflight::default(), false);
    f.input(Input::Feedback(Feedback::Remb(300_000)));
    assert_eq!(ssrcs(&frames_at(&mut f, 1000, 0, true).0), set(&SSRCS));
}

#[test]
fn a_layer_paused_again_soon_after_resuming_waits_twice_as_long_next_time() {
    let mut f = three_layers();
    f.connect(Preflight::default(), false);
    frames_at(&mut f, 1000, 0, true);
    let remb = |f: &mut Fake, ms: u64, bps: u64| {
        f.run_to(ms);
        f.input(Input::Feedback(Feedback::Remb(bps)));
    };
    // When (ms) the full picture's encoder was asked for a keyframe — it resumed — up to `to`.
    let resumed = |f: &mut Fake, to: u64| -> Vec<u64> {
        f.run_to(to)
            .into_iter()
            .filter(|(_, o)| matches!(o, Output::Action(Action::RequestKeyframe(0))))
            .map(|(ms, _)| ms)
            .collect()
    };
    let (pause, resume) = (
        PAUSE_AFTER.as_millis() as u64,
        RESUME_AFTER.as_millis() as u64,
    );
    // Paused at 2100; room again at once: resumed RESUME_AFTER after the pause.
    remb(&mut f, 1100, 1_000_000);
    remb(&mut f, 1100 + pause + 100, 20_000_000);
    assert_eq!(
        resumed(&mut f, 1100 + pause + resume + 500),
        [1100 + pause + resume]
    );
    // Short again 2 s after resuming (a flap): the next resume waits 2 × RESUME_AFTER.
    let short = 1100 + pause + resume + 2000;
    remb(&mut f, short, 1_000_000);
    remb(&mut f, short + pause + 100, 20_000_000);
    let again = short + pause + 2 * resume;
    assert_eq!(resumed(&mut f, again + 500), [again]);
    // Short again long after that: back to RESUME_AFTER.
    let later = again + FLAP_WINDOW.as_millis() as u64 + 1000;
    remb(&mut f, later, 1_000_000);
    remb(&mut f, later + pause + 100, 20_000_000);
    assert_eq!(
        resumed(&mut f, later + pause + resume + 500),
        [later + pause + resume]
    );
}
