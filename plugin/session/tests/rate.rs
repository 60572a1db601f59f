//! Following the network, closed loop with fake time: the session streams through a simulated bottleneck whose
//! receiver sends transport-wide feedback every 50 ms, and an encoder that makes frames at whatever bitrate the
//! session last set.
use super::*;
use crate::session::bwe::PACKET_OVERHEAD;
use crate::session::sender::MAX_VIDEO_DELAY;
use std::collections::VecDeque;

/// A bottleneck of `bps` with a 100 ms queue and 20 ms of propagation, and the receiver's feedback.
struct Path {
    bps: f64,
    busy_until: Option<Instant>,
    /// (transport seq, arrival) not yet reported.
    pending: VecDeque<(u16, Option<Instant>)>,
}

impl Path {
    fn carry(&mut self, at: Instant, p: &RtpPacket) {
        let size = (p.payload.len() + PACKET_OVERHEAD) as f64;
        let start = self.busy_until.map_or(at, |b| b.max(at));
        let arrival = if start.duration_since(at) > Duration::from_millis(100) {
            None
        } else {
            let done = start + Duration::from_secs_f64(size * 8.0 / self.bps);
            self.busy_until = Some(done);
            Some(done + Duration::from_millis(20))
        };
        if let Some(seq) = p.transport_seq {
            self.pending.push_back((seq, arrival));
        }
    }

    fn feedback(&mut self, now: Instant, t0: Instant) -> Option<Input> {
        let last = self
            .pending
            .iter()
            .rposition(|(_, a)| a.is_some_and(|a| a <= now))?;
        let acks = self
            .pending
            .drain(..=last)
            .map(|(seq, a)| TransportAck {
                seq,
                arrival: a.filter(|a| *a <= now).map(|a| a.duration_since(t0)),
            })
            .collect();
        Some(Input::Feedback(Feedback::TransportCc(acks)))
    }
}

struct Run {
    /// (ms, kbit/s) of every bitrate the session set.
    bitrates: Vec<(u64, u32)>,
    keyframe_requests: u64,
    sent: u64,
    dropped: u64,
}

/// Streams for `seconds` through `path`, the encoder starting at `kbps` and following the session.
fn stream_through(f: &mut Fake, path: &mut Path, seconds: u64, mut kbps: u32) -> Run {
    let mut run = Run {
        bitrates: Vec::new(),
        keyframe_requests: 0,
        sent: 0,
        dropped: 0,
    };
    let start = f.now.duration_since(f.t0).as_millis() as u64;
    let mut frame = 0i64;
    for ms in (start..start + seconds * 1000).step_by(5) {
        let mut out = f.run_to(ms);
        if ms % 50 == 0 {
            if let Some(fb) = path.feedback(f.now, f.t0) {
                out.extend(f.input(fb).into_iter().map(|o| (ms, o)));
            }
        }
        if ms % 20 == 0 {
            out.extend(
                f.input(Input::Media(audio_packet(ms as i64 / 20)))
                    .into_iter()
                    .map(|o| (ms, o)),
            );
        }
        if ms % 35 == 0 {
            let keyframe = frame % 60 == 0;
            let bytes = (f64::from(kbps) * 1000.0 / 8.0 / 30.0 * if keyframe { 4.0 } else { 0.95 })
                as usize;
            out.extend(
                f.input(Input::Media(video_frame(frame, bytes.max(100), keyframe)))
                    .into_iter()
                    .map(|o| (ms, o)),
            );
            frame += 1;
        }
        for (t, o) in out {
            match o {
                Output::Action(Action::SendRtp(p)) => {
                    path.carry(f.at(t), &p);
                    run.sent += 1;
                }
                Output::Action(Action::SetVideoBitrate(k)) => {
                    kbps = k;
                    run.bitrates.push((t, k));
                }
                Output::Action(Action::RequestKeyframe(_)) => run.keyframe_requests += 1,
                _ => {}
            }
        }
    }
    run.dropped = f.s.sender.dropped_frames;
    run
}

#[test]
fn through_a_narrow_path_the_encoder_is_set_to_what_it_carries() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    let mut path = Path {
        bps: 1_500_000.0,
        busy_until: None,
        pending: VecDeque::new(),
    };
    let run = stream_through(&mut f, &mut path, 30, 2500);
    let first = run.bitrates.first().expect("the bitrate went down");
    assert!(first.0 < 3000, "first change at {} ms", first.0);
    let late: Vec<u32> = run
        .bitrates
        .iter()
        .filter(|(t, _)| *t > 10_000)
        .map(|(_, k)| *k)
        .collect();
    let last = run.bitrates.last().unwrap().1;
    assert!(
        late.iter().chain([&last]).all(|k| (900..=1500).contains(k)),
        "60-100 % of the path after 10 s: {:?}",
        run.bitrates
    );
    assert!(
        f.s.congestion() > 0.2,
        "OBS sees the shortfall: {}",
        f.s.congestion()
    );
    let summary = f.s.rate_summary();
    assert!(summary.contains("video bitrate min"), "{summary}");
    assert!(summary.contains("transport-wide feedback"), "{summary}");
}

#[test]
fn a_path_wider_than_the_stream_leaves_the_encoder_alone_and_obs_sees_no_congestion() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    let mut path = Path {
        bps: 10_000_000.0,
        busy_until: None,
        pending: VecDeque::new(),
    };
    let run = stream_through(&mut f, &mut path, 10, 2500);
    assert!(run.bitrates.is_empty(), "{:?}", run.bitrates);
    assert_eq!(f.s.congestion(), 0.0);
    assert_eq!(run.dropped, 0);
}

#[test]
fn when_not_even_the_floor_fits_video_is_dropped_up_to_a_keyframe_which_is_asked_for() {
    // 150 kbit/s for a stream whose floor is 300.
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    let mut path = Path {
        bps: 150_000.0,
        busy_until: None,
        pending: VecDeque::new(),
    };
    let run = stream_through(&mut f, &mut path, 20, 2500);
    assert_eq!(
        run.bitrates.last().map(|b| b.1),
        Some(300),
        "{:?}",
        run.bitrates
    );
    assert!(run.dropped > 0, "nothing dropped");
    assert!(run.keyframe_requests > 0, "no keyframe asked for");
    assert!(
        f.s.sender.video_delay() <= MAX_VIDEO_DELAY * 2,
        "the pacer stays within bounds: {:?}",
        f.s.sender.video_delay()
    );
    assert!(f
        .s
        .rate_summary()
        .contains("dropped while the network was behind"));
}

#[test]
fn without_adaptation_the_encoder_is_never_touched_and_nothing_is_dropped() {
    let mut f = Fake::new(|c| c.rate.adaptive = false);
    f.connect(Preflight::default(), false);
    let mut path = Path {
        bps: 1_000_000.0,
        busy_until: None,
        pending: VecDeque::new(),
    };
    let run = stream_through(&mut f, &mut path, 10, 2500);
    assert!(run.bitrates.is_empty());
    assert_eq!(run.dropped, 0);
    assert!(
        f.s.congestion() > 0.5,
        "OBS still sees it: {}",
        f.s.congestion()
    );
    assert!(f.s.rate_summary().contains("adaptation is off"));
}

#[test]
fn every_packet_gets_the_next_transport_wide_number_repairs_included() {
    let mut f = Fake::new(|_| {});
    f.connect(Preflight::default(), false);
    f.now = f.at(1000);
    let mut sent = sent_numbers(&f.input(Input::Media(video_frame(0, 3000, true))));
    sent.extend(sent_numbers(&f.input(Input::Media(audio_packet(0)))));
    sent.extend(sent_numbers(
        &f.run_to(1100)
            .into_iter()
            .map(|(_, o)| o)
            .collect::<Vec<_>>(),
    ));
    let first_video = 100;
    sent.extend(sent_numbers(&f.input(Input::Feedback(Feedback::Nack {
        ssrc: 0x1111,
        seqs: vec![first_video],
    }))));
    let numbers: Vec<u16> = sent.iter().map(|n| n.expect("numbered")).collect();
    assert!(numbers.len() >= 5);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}

#[test]
fn only_the_streams_whose_answer_took_the_extension_are_numbered() {
    // Janus takes transport-wide-cc for video only: audio numbers would all count as lost.
    let mut f = Fake::new(|_| {});
    f.connect_with(Preflight::default(), false, [true, false]);
    f.now = f.at(1000);
    let mut out = f.input(Input::Media(video_frame(0, 3000, true)));
    out.extend(f.input(Input::Media(audio_packet(0))));
    out.extend(f.run_to(1100).into_iter().map(|(_, o)| o));
    out.extend(f.input(Input::Media(audio_packet(20_000))));
    out.extend(f.input(Input::Media(video_frame(33_333, 6000, false))));
    out.extend(f.run_to(1200).into_iter().map(|(_, o)| o));
    let sent: Vec<(bool, Option<u16>)> = actions(&out)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendRtp(p) => Some((p.kind == MediaKind::Video, p.transport_seq)),
            _ => None,
        })
        .collect();
    assert!(
        sent.iter().filter(|(video, _)| !video).count() >= 2,
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|(video, n)| *video == n.is_some()),
        "{sent:?}"
    );
    let numbers: Vec<u16> = sent.iter().filter_map(|(_, n)| *n).collect();
    assert!(
        numbers.len() >= 4 && numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "{numbers:?}"
    );
}

fn sent_numbers(out: &[Output]) -> Vec<Option<u16>> {
    actions(out)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendRtp(p) => Some(p.transport_seq),
            _ => None,
        })
        .collect()
}
