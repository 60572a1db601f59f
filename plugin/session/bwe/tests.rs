//! The estimator against a simulated path: a sender that encodes at the estimate (frames at 30 fps, a keyframe
//! every 2 s five times the size of the others, paced at the estimate), a bottleneck of a given rate with a
//! queue that drops what would wait longer than its limit, 20 ms of propagation, and a receiver that reports
//! every 50 ms. `RTC_SIM_TRACE=1 cargo test --lib bwe -- --nocapture` prints each run every 100 ms.
use super::*;
use std::collections::VecDeque;

const PACKET: usize = 1200;

struct Link {
    bps: f64,
    queue_limit: Duration,
    busy_until: Instant,
    propagation: Duration,
}

impl Link {
    /// When a packet sent at `at` arrives, or None if the queue drops it.
    fn carry(&mut self, at: Instant, size: usize) -> Option<Instant> {
        let start = self.busy_until.max(at);
        if start.saturating_duration_since(at) > self.queue_limit {
            return None;
        }
        self.busy_until = start + Duration::from_secs_f64(size as f64 * 8.0 / self.bps);
        Some(self.busy_until + self.propagation)
    }
}

struct Sim {
    t0: Instant,
    bwe: Bwe,
    link: Link,
    seq: u16,
    /// Sent, not yet reported: (seq, arrival at the receiver).
    in_flight: VecDeque<(u16, Option<Instant>)>,
    /// Packets waiting in the pacer: (size, probe mark).
    pacer: VecDeque<(usize, Option<(u32, bool)>)>,
    next_send: Instant,
    /// (ms, estimate) every 100 ms.
    trace: Vec<(u64, f64)>,
    lost: u64,
    sent: u64,
    /// Audio alongside the video (20 ms packets of `AUDIO` bytes), with transport-wide numbers or without
    /// (Janus takes the extension for video only).
    audio: Option<bool>,
}

const AUDIO: usize = 400;

impl Sim {
    fn new(wanted: f64, link_bps: f64) -> Sim {
        let t0 = Instant::now();
        let mut bwe = Bwe::new(wanted, 100_000.0);
        bwe.set_can_probe(true);
        Sim {
            t0,
            bwe,
            link: Link {
                bps: link_bps,
                queue_limit: Duration::from_millis(100),
                busy_until: t0,
                propagation: Duration::from_millis(20),
            },
            seq: 0,
            in_flight: VecDeque::new(),
            pacer: VecDeque::new(),
            next_send: t0,
            trace: Vec::new(),
            lost: 0,
            sent: 0,
            audio: None,
        }
    }

    fn send(&mut self, now: Instant, size: usize, probe: Option<(u32, bool)>) {
        let arrival = self.link.carry(now, size + PACKET_OVERHEAD);
        self.sent += 1;
        self.lost += u64::from(arrival.is_none());
        self.bwe.on_sent(self.seq, size, probe, now);
        self.in_flight.push_back((self.seq, arrival));
        self.seq = self.seq.wrapping_add(1);
    }

    /// Runs from `from_ms` to `to_ms`.
    fn run(&mut self, from_ms: u64, to_ms: u64) {
        for ms in from_ms..to_ms {
            let now = self.t0 + Duration::from_millis(ms);
            if ms % 33 == 0 {
                // The encoder gets what is left after audio and packet overhead: 85 % of the estimate.
                let average = 0.85 * self.bwe.estimate().min(self.bwe.wanted()) / 30.0;
                let frame_bits = average * if ms % 2000 < 33 { 5.0 } else { 0.93 };
                let packets = ((frame_bits / 8.0) as usize).div_ceil(PACKET);
                self.pacer.extend((0..packets).map(|_| (PACKET, None)));
            }
            if let Some(numbered) = self.audio.filter(|_| ms % 20 == 0) {
                if numbered {
                    self.send(now, AUDIO, None);
                } else {
                    self.link.carry(now, AUDIO + PACKET_OVERHEAD);
                    self.bwe.on_sent_unnumbered(AUDIO, now);
                }
            }
            if let Some(req) = self.bwe.probe_due(now) {
                let n = (req.bytes / PACKET).max(probe::MIN_PACKETS as usize);
                let gap = Duration::from_secs_f64(PACKET as f64 * 8.0 / req.bps as f64);
                for i in 0..n {
                    self.send(now + gap * i as u32, PACKET, Some((req.id, i + 1 == n)));
                }
            }
            // Paced at the estimate.
            while self.next_send <= now {
                let Some((size, probe)) = self.pacer.pop_front() else {
                    self.next_send = now + Duration::from_millis(1);
                    break;
                };
                self.send(now, size, probe);
                let gap = (size + PACKET_OVERHEAD) as f64 * 8.0 / self.bwe.estimate();
                self.next_send += Duration::from_secs_f64(gap);
            }
            if ms % 50 == 0 {
                self.feedback(now);
            }
            self.bwe.handle_timeout(now);
            if ms % 100 == 0 {
                self.trace.push((ms, self.bwe.estimate()));
                if std::env::var_os("RTC_SIM_TRACE").is_some() {
                    let queue = self.link.busy_until.saturating_duration_since(now);
                    let (e, link) = (self.bwe.estimate() / 1e6, self.link.bps / 1e6);
                    eprintln!(
                        "{ms} ms: estimate {e:.2} link {link:.2} Mbit/s, queue {queue:?}, {:?}",
                        self.bwe.state()
                    );
                }
            }
        }
    }

    /// Reports what arrived by `now` (and the losses before the last arrival), arrival times on a clock of the
    /// receiver's own.
    fn feedback(&mut self, now: Instant) {
        let Some(last) = self
            .in_flight
            .iter()
            .rposition(|(_, a)| a.is_some_and(|a| a <= now))
        else {
            return;
        };
        let acks: Vec<TransportAck> = self
            .in_flight
            .drain(..=last)
            .map(|(seq, a)| TransportAck {
                seq,
                arrival: a
                    .filter(|a| *a <= now)
                    .map(|a| a.duration_since(self.t0) + Duration::from_secs(1000)),
            })
            .collect();
        self.bwe
            .on_transport_feedback(&acks, Duration::from_millis(40), now);
    }

    /// The estimate's lowest and highest between two instants (ms).
    fn range(&self, from: u64, to: u64) -> (f64, f64) {
        self.trace
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .fold((f64::MAX, 0.0f64), |(lo, hi), (_, e)| {
                (lo.min(*e), hi.max(*e))
            })
    }

    /// The first instant (ms) at or after `from` when the estimate met `ok`.
    fn first(&self, from: u64, ok: impl Fn(f64) -> bool) -> Option<u64> {
        self.trace
            .iter()
            .find(|(t, e)| *t >= from && ok(*e))
            .map(|(t, _)| t - from)
    }
}

#[test]
fn a_link_slower_than_the_configured_rate_is_found_and_followed() {
    let mut s = Sim::new(2_500_000.0, 1_500_000.0);
    s.run(0, 30_000);
    let (lo, hi) = s.range(5_000, 30_000);
    assert!(
        lo >= 0.6 * 1_500_000.0 && hi <= 1_500_000.0 * 1.1,
        "{lo}..{hi}: {:?}",
        s.trace
    );
    let settled = s.lost as f64 / s.sent as f64;
    assert!(settled < 0.02, "lost {} of {}", s.lost, s.sent);
}

#[test]
fn audio_without_transport_wide_numbers_still_counts_as_received() {
    // The same link and stream, audio numbered or not: on overuse the estimate goes to what arrived, audio
    // included either way.
    let mean = |numbered: bool| {
        let mut s = Sim::new(2_500_000.0, 1_500_000.0);
        s.audio = Some(numbered);
        s.run(0, 40_000);
        let settled: Vec<f64> = s
            .trace
            .iter()
            .filter(|(t, _)| *t >= 10_000)
            .map(|(_, e)| *e)
            .collect();
        settled.iter().sum::<f64>() / settled.len() as f64
    };
    let (all, video_only) = (mean(true), mean(false));
    assert!(
        (video_only / all - 1.0).abs() < 0.06,
        "mean estimate {video_only:.0} with video numbered only, {all:.0} with audio numbered too"
    );
}

#[test]
fn a_step_down_counts_as_congestion_a_clear_link_never_does() {
    let mut s = Sim::new(2_500_000.0, 5_000_000.0);
    let congested = |s: &mut Sim, from: u64, to: u64| {
        (from..to).step_by(10).any(|ms| {
            s.run(ms, ms + 10);
            s.bwe.congested(s.t0 + Duration::from_millis(ms + 10))
        })
    };
    assert!(!congested(&mut s, 0, 10_000), "{:?}", s.trace);
    s.link.bps = 1_000_000.0;
    assert!(congested(&mut s, 10_000, 11_000), "{:?}", s.trace);
}

#[test]
fn steps_down_are_followed_within_three_seconds_and_a_cleared_link_is_climbed_within_twenty() {
    // Configured for 4 Mbit/s on the wire; the link starts (and ends) clear at 5.
    let max = 4_000_000.0;
    let mut s = Sim::new(max, 5_000_000.0);
    s.run(0, 10_000);
    assert!(
        s.range(2_000, 10_000).0 >= max,
        "a clear link: {:?}",
        s.trace
    );
    for (at, bps) in [(10_000, 1_500_000.0), (30_000, 600_000.0)] {
        s.link.bps = bps;
        s.run(at, at + 20_000);
        let down = s.first(at, |e| e <= bps);
        assert!(
            down.is_some_and(|t| t <= 3_000),
            "down to {bps}: {down:?} ms {:?}",
            s.trace
        );
        let (lo, hi) = s.range(at + 5_000, at + 20_000);
        assert!(
            lo >= 0.5 * bps && hi <= 1.2 * bps,
            "at {bps}: {lo}..{hi} {:?}",
            s.trace
        );
    }
    s.link.bps = 5_000_000.0;
    s.run(50_000, 80_000);
    let up = s.first(50_000, |e| e >= 0.9 * max);
    assert!(
        up.is_some_and(|t| t <= 20_000),
        "back up: {up:?} ms {:?}",
        s.trace
    );
}

#[test]
fn a_link_just_as_fast_as_the_configured_rate_is_used_well() {
    let mut s = Sim::new(4_000_000.0, 4_000_000.0);
    s.run(0, 40_000);
    let mean = s
        .trace
        .iter()
        .filter(|(t, _)| *t >= 10_000)
        .map(|(_, e)| e.min(4_000_000.0))
        .sum::<f64>()
        / 300.0;
    assert!(mean >= 0.8 * 4_000_000.0, "{mean}: {:?}", s.trace);
    assert!(
        (s.lost as f64) < 0.01 * s.sent as f64,
        "lost {} of {}",
        s.lost,
        s.sent
    );
}

#[test]
fn random_loss_of_five_percent_keeps_the_rate() {
    let mut bwe = Bwe::new(2_000_000.0, 100_000.0);
    let t0 = Instant::now();
    let mut seq = 0u16;
    for round in 0..100u64 {
        let now = t0 + Duration::from_millis(round * 50);
        let mut acks = Vec::new();
        for i in 0..10u64 {
            let at = now + Duration::from_millis(i * 5);
            bwe.on_sent(seq, 1200, None, at);
            let lost = (round * 10 + i) % 20 == 7;
            acks.push(TransportAck {
                seq,
                arrival: (!lost).then(|| Duration::from_millis(round * 50 + i * 5 + 20)),
            });
            seq = seq.wrapping_add(1);
        }
        bwe.on_transport_feedback(
            &acks,
            Duration::from_millis(40),
            now + Duration::from_millis(60),
        );
    }
    assert!(bwe.estimate() >= 1_900_000.0, "{}", bwe.estimate());
}

#[test]
fn remb_caps_the_estimate_and_receiver_reports_drive_it_without_transport_feedback() {
    let t0 = Instant::now();
    let rtt = Duration::from_millis(40);
    let mut bwe = Bwe::new(2_000_000.0, 100_000.0);
    bwe.on_remb(800_000.0, t0);
    assert_eq!(bwe.estimate(), 800_000.0);
    let mut bwe = Bwe::new(2_000_000.0, 100_000.0);
    bwe.on_receiver_loss(0.3, rtt, t0);
    let start = 2_000_000.0 * HEADROOM;
    assert_eq!(bwe.estimate(), start * 0.85, "30 % lost: down by 15 %");
    bwe.on_receiver_loss(0.0, rtt, t0 + Duration::from_secs(1));
    assert!(bwe.estimate() > start * 0.9, "{}", bwe.estimate());
}

#[test]
fn the_log_finds_packets_across_the_sequence_wrap() {
    let t0 = Instant::now();
    let mut log = SentLog::default();
    for i in 0..100u16 {
        log.add(
            65_500u16.wrapping_add(i),
            Sent {
                departure: t0,
                size: usize::from(i),
                probe: None,
                reported: false,
            },
        );
    }
    assert_eq!(log.get_mut(65_500).map(|s| s.size), Some(0));
    assert_eq!(log.get_mut(10).map(|s| s.size), Some(46));
    assert!(log.get_mut(64_000).is_none());
    assert!(log.get_mut(100).is_none());
}
