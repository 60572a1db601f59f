//! What the delay half does with the detector's verdict (draft-ietf-rmcat-gcc-02 §5.5, AIMD): overuse → the
//! target drops to [`DECREASE_FACTOR`] of what the path carried, then holds; underuse (a queue draining)
//! holds; normal → the target climbs — by [`INCREASE_PER_SECOND`] a second while far from the rate that last
//! overused the path, by about a packet per response time near it. The rate that overused ("link capacity") is
//! forgotten once the receiver gets clearly more or less (three deviations), so a link that cleared is climbed
//! fast again. The target never runs ahead of [`MAX_AHEAD`] × what arrives: an encoder that sends less than it may
//! (a still picture) proves nothing about the path.
//!
//! What the path carried, at an overuse, is the higher of the received rate and its peak over short windows since
//! the last decrease: an encoder that makes less than its target gets through a path at less than the path
//! carries, and a burst that filled the bottleneck (a probe, a keyframe) arrived at the bottleneck's rate. Cutting
//! to 0.85 × the encoder's own rate after each probe held a 1.5 Mbit/s link at 0.9–1.2 Mbit/s. One decrease
//! answers one overuse signal: while the queue a decrease answered drains the verdict stays "overusing" (the
//! trend is still above the threshold, but falling), and a second decrease then cut the target twice for one
//! queue; a new signal needs the trend to rise again.
//!
//! An overuse while the path delivered about what left, at a rate well under the one it last overused at, is a
//! burst of a stream that does not fill the path (a keyframe, a probe, a layer resuming) queueing for a moment, not
//! a narrower path: the target drops to [`DECREASE_FACTOR`] of that capacity, which is kept. Cutting to 0.85 × the
//! stream's own rate there took a 1.5 Mbit/s link's estimate to 0.6–0.9 Mbit/s in 4 of 11 runs of a three-layer
//! simulcast with the full picture paused, pausing the half-size layer for seconds. A second such overuse soon
//! after one is answered as usual: a queue that stays is a path that narrowed.
use super::delay::Usage;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const DECREASE_FACTOR: f64 = 0.85;
pub const INCREASE_PER_SECOND: f64 = 1.08;
/// Changes that are not decreases are this far apart at least.
const INTERVAL: Duration = Duration::from_millis(200);
/// The target may be at most this times the received rate (plus [`AHEAD_SLACK`]).
pub const MAX_AHEAD: f64 = 1.5;
const AHEAD_SLACK: f64 = 10_000.0;
/// The least additive increase, bit/s per second.
const MIN_ADDITIVE: f64 = 4_000.0;
/// The packet size the additive increase is reckoned in, bits.
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// The path delivered what left when what left (over [`LONG_WINDOW`]) was at most this times what it carried.
const DELIVERED: f64 = 1.1;
/// An overuse within this long of a burst's decrease is answered as a narrower path's.
const BURST_AGAIN: Duration = Duration::from_secs(2);

/// The received rate: the higher of the bytes that arrived over the last [`SHORT_WINDOW`] and over the last
/// [`LONG_WINDOW`] of the receiver's clock. At an overuse (a keyframe filling the bottleneck) the short window
/// shows the bottleneck's rate rather than the stream's average; the long one keeps a quiet moment of the encoder
/// (a still picture) from reading as a narrow path.
pub const SHORT_WINDOW: Duration = Duration::from_millis(150);
pub const LONG_WINDOW: Duration = Duration::from_millis(500);

/// Bytes over time by their arrival on the receiver's clock; the estimator keeps a second one by the departures of
/// the packets reported on, on ours (its [`ReceivedRate::long_bps`] only).
#[derive(Debug, Default)]
pub struct ReceivedRate {
    arrivals: VecDeque<(Duration, usize)>,
    /// The short window's rate at each [`ReceivedRate::mark`] since the last [`ReceivedRate::forget_peaks`],
    /// those within [`LONG_WINDOW`] of the newest arrival: (newest arrival then, bit/s).
    peaks: VecDeque<(Duration, f64)>,
}

impl ReceivedRate {
    pub fn add(&mut self, arrival: Duration, size: usize) {
        let newest = self
            .arrivals
            .back()
            .map_or(arrival, |(a, _)| (*a).max(arrival));
        self.arrivals.push_back((arrival, size));
        while self
            .arrivals
            .front()
            .is_some_and(|(a, _)| newest.saturating_sub(*a) > LONG_WINDOW)
        {
            self.arrivals.pop_front();
        }
    }

    /// Bits per second over the arrivals within `window` of the newest: the bytes after the first over the time
    /// since it, once that is a tenth of a second.
    fn over(&self, window: Duration) -> Option<f64> {
        let last = self.arrivals.back()?.0;
        let mut first = None;
        let mut bytes = 0;
        for &(a, size) in self.arrivals.iter().rev() {
            if last.saturating_sub(a) > window {
                break;
            }
            bytes += size;
            first = Some((a, size));
        }
        let (first, first_size) = first?;
        let span = last.saturating_sub(first);
        (span >= Duration::from_millis(100))
            .then(|| (bytes - first_size) as f64 * 8.0 / span.as_secs_f64())
    }

    /// Notes the short window's rate now (after a feedback's arrivals).
    pub fn mark(&mut self) {
        let Some(&(last, _)) = self.arrivals.back() else {
            return;
        };
        if let Some(bps) = self.over(SHORT_WINDOW) {
            self.peaks.push_back((last, bps));
        }
        while self
            .peaks
            .front()
            .is_some_and(|(a, _)| last.saturating_sub(*a) > LONG_WINDOW)
        {
            self.peaks.pop_front();
        }
    }

    /// The highest short-window rate noted within the long window and since the peaks were last forgotten.
    pub fn peak(&self) -> Option<f64> {
        self.peaks.iter().map(|(_, bps)| *bps).reduce(f64::max)
    }

    /// The rate over the last [`LONG_WINDOW`] alone.
    pub fn long_bps(&self) -> Option<f64> {
        self.over(LONG_WINDOW)
    }

    /// After a decrease: what came before it (a link that since got narrower) says nothing about the next one.
    pub fn forget_peaks(&mut self) {
        self.peaks.clear();
    }

    /// The received rate, bit/s.
    pub fn bps(&self) -> Option<f64> {
        match (self.over(SHORT_WINDOW), self.over(LONG_WINDOW)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The received rate at which the path last overused, and how much it varies.
#[derive(Debug, Default, Clone, Copy)]
struct Capacity {
    estimate: Option<f64>,
    /// Normalised variance (kbit/s).
    variance: f64,
}

impl Capacity {
    fn deviation(&self) -> f64 {
        self.estimate
            .map_or(0.0, |e| (self.variance * e / 1000.0).sqrt() * 1000.0)
    }

    fn update(&mut self, sample: f64) {
        let Some(e) = self.estimate else {
            self.estimate = Some(sample);
            self.variance = 0.4;
            return;
        };
        let alpha = 0.05;
        let e = (1.0 - alpha) * e + alpha * sample;
        let norm = (e / 1000.0).max(1.0);
        let diff = (e - sample) / 1000.0;
        self.variance =
            ((1.0 - alpha) * self.variance + alpha * diff * diff / norm).clamp(0.4, 2.5);
        self.estimate = Some(e);
    }

    /// Forgets the capacity when `received` is clearly above it (the path got wider), or — at an overuse — clearly
    /// below (it got narrower).
    fn check(&mut self, received: f64, overuse: bool) {
        if let Some(e) = self.estimate {
            if received > e + 3.0 * self.deviation() || (overuse && self.clearly_above(received)) {
                self.estimate = None;
            }
        }
    }

    /// Whether the capacity is known and `rate` clearly below it.
    fn clearly_above(&self, rate: f64) -> bool {
        self.estimate
            .is_some_and(|e| rate < e - 3.0 * self.deviation())
    }
}

/// What the path showed at one feedback.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    /// The delay detector's verdict, and its count of overuse signals.
    pub usage: Usage,
    pub overuse_signals: u64,
    /// The received rate now, and its short-window peak since the last decrease ([`ReceivedRate::peak`]).
    pub received: Option<f64>,
    pub peak: Option<f64>,
    /// The rate at which the packets reported on left, over [`LONG_WINDOW`] of our clock.
    pub sent: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Hold,
    Increase,
    Decrease,
}

#[derive(Debug)]
pub struct RateControl {
    target: f64,
    min: f64,
    max: f64,
    state: State,
    capacity: Capacity,
    last_change: Option<Instant>,
    /// When the target last went down.
    pub last_decrease: Option<Instant>,
    /// The overuse signal the last decrease answered.
    answered_signal: u64,
    /// When the last decrease answered a burst (the capacity kept).
    last_burst: Option<Instant>,
}

impl RateControl {
    pub fn new(initial: f64, min: f64, max: f64) -> RateControl {
        RateControl {
            target: initial.clamp(min, max),
            min,
            max,
            state: State::Hold,
            capacity: Capacity::default(),
            last_change: None,
            last_decrease: None,
            answered_signal: 0,
            last_burst: None,
        }
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    /// A probe showed the path carries `bps` — its capacity when `limited` (the receiver got the probe slower
    /// than it left), at least that otherwise: the target goes there at once (never down). Either way nothing
    /// beyond `bps` is known, so from there the target grows additively — as near a known capacity — until what
    /// arrives shows more room, or the next probe does (growing multiplicatively from a probe's rate overshot a
    /// 1.5 Mbit/s link by a fifth before the queue said so).
    pub fn probed(&mut self, bps: f64, now: Instant) {
        if bps > self.target {
            self.target = bps.clamp(self.min, self.max);
            self.capacity = Capacity::default();
            self.capacity.update(bps);
            self.last_change = Some(now);
        }
    }

    /// Takes what the path showed at `now`; `rtt` sets the pace of additive increase.
    pub fn update(&mut self, seen: Observed, rtt: Duration, now: Instant) -> f64 {
        let received = seen.received;
        self.state = match (seen.usage, self.state) {
            (Usage::Overusing, _) => State::Decrease,
            (Usage::Underusing, _) => State::Hold,
            (Usage::Normal, State::Hold) => State::Increase,
            (Usage::Normal, s) => s,
        };
        let since = self.last_change.map(|t| now.saturating_duration_since(t));
        match self.state {
            State::Hold => {}
            State::Decrease => {
                let Some(received) = received else {
                    return self.target;
                };
                if seen.overuse_signals == self.answered_signal {
                    // The queue the last decrease answered is draining.
                    self.state = State::Hold;
                    return self.target;
                }
                if since.is_some_and(|s| s < rtt.max(INTERVAL))
                    && self.last_decrease == self.last_change
                {
                    // One decrease per round trip: the last one has not had time to show.
                    return self.target;
                }
                let carried = seen.peak.map_or(received, |p| p.max(received));
                // A burst: the capacity it stayed clearly under, kept.
                let burst = self.capacity.estimate.filter(|_| {
                    self.capacity.clearly_above(carried)
                        && seen.sent.is_some_and(|s| s <= DELIVERED * carried)
                        && self.last_burst.is_none_or(|t| now >= t + BURST_AGAIN)
                });
                let from = match burst {
                    Some(capacity) => {
                        self.last_burst = Some(now);
                        capacity
                    }
                    None => {
                        self.capacity.check(carried, true);
                        self.capacity.update(carried);
                        carried
                    }
                };
                self.target = (DECREASE_FACTOR * from)
                    .min(self.target)
                    .clamp(self.min, self.max);
                self.answered_signal = seen.overuse_signals;
                self.last_change = Some(now);
                self.last_decrease = Some(now);
                self.state = State::Hold;
            }
            State::Increase => {
                if since.is_some_and(|s| s < INTERVAL) {
                    return self.target;
                }
                let dt = since
                    .unwrap_or(INTERVAL)
                    .min(Duration::from_secs(1))
                    .as_secs_f64();
                if let Some(r) = received {
                    self.capacity.check(r, false);
                }
                let raised = match self.capacity.estimate {
                    Some(_) => self.target + self.additive_per_second(rtt) * dt,
                    None => self.target * INCREASE_PER_SECOND.powf(dt),
                };
                let ceiling = received.map_or(f64::MAX, |r| MAX_AHEAD * r + AHEAD_SLACK);
                if raised > self.target {
                    self.target = raised
                        .min(ceiling.max(self.target))
                        .clamp(self.min, self.max);
                }
                self.last_change = Some(now);
            }
        }
        self.target
    }

    /// About one average packet per response time (a round trip and 100 ms).
    fn additive_per_second(&self, rtt: Duration) -> f64 {
        let frame_bits = self.target / 30.0;
        let packets = (frame_bits / PACKET_BITS).ceil().max(1.0);
        let response = (rtt + Duration::from_millis(100)).as_secs_f64();
        (frame_bits / packets / response).max(MIN_ADDITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(20);

    fn normal(received: f64) -> Observed {
        Observed {
            usage: Usage::Normal,
            overuse_signals: 0,
            received: Some(received),
            peak: None,
            sent: None,
        }
    }

    /// The detector's `signal`th overuse signal (or its verdict still standing).
    fn overuse(signal: u64, received: f64) -> Observed {
        Observed {
            usage: Usage::Overusing,
            overuse_signals: signal,
            ..normal(received)
        }
    }

    /// [`overuse`] of a stream whose packets left at `sent`.
    fn overuse_of(signal: u64, received: f64, sent: f64) -> Observed {
        Observed {
            sent: Some(sent),
            ..overuse(signal, received)
        }
    }

    /// A control whose path overused at 1.5 Mbit/s (2 Mbit/s left), its target since back at 1.45 Mbit/s.
    fn after_an_overuse_at_1500(t0: Instant) -> RateControl {
        let mut r = RateControl::new(2_500_000.0, 100_000.0, 2_500_000.0);
        let cut = r.update(overuse_of(1, 1_500_000.0, 2_000_000.0), RTT, t0);
        assert_eq!(cut, 1_275_000.0);
        r.target = 1_450_000.0;
        r
    }

    #[test]
    fn a_burst_of_a_stream_that_does_not_fill_the_path_cuts_from_its_capacity() {
        // 0.9 Mbit/s of streams, all of which arrives, queue a keyframe for a moment: 0.85 × the capacity, kept.
        let t0 = Instant::now();
        let mut r = after_an_overuse_at_1500(t0);
        let t1 = t0 + Duration::from_secs(5);
        let cut = r.update(overuse_of(2, 900_000.0, 950_000.0), RTT, t1);
        assert_eq!(cut, 0.85 * 1_500_000.0);
        assert_eq!(r.capacity.estimate, Some(1_500_000.0));
        // The queue stays (a new signal within two seconds): the path narrowed after all.
        let t2 = t1 + Duration::from_secs(1);
        let cut = r.update(overuse_of(3, 900_000.0, 950_000.0), RTT, t2);
        assert_eq!(cut, 0.85 * 900_000.0);
        assert_eq!(r.capacity.estimate, Some(900_000.0));
    }

    #[test]
    fn an_overuse_where_less_arrives_than_left_is_a_narrower_path() {
        // 1.4 Mbit/s left, 0.9 arrives: the path narrowed; the capacity goes and the cut is from what arrived.
        let t0 = Instant::now();
        let mut r = after_an_overuse_at_1500(t0);
        let t1 = t0 + Duration::from_secs(5);
        let cut = r.update(overuse_of(2, 900_000.0, 1_400_000.0), RTT, t1);
        assert_eq!(cut, 0.85 * 900_000.0);
        // Near the old capacity (within three deviations) an overuse is the path as known, burst or not.
        let mut r = after_an_overuse_at_1500(t0);
        let cut = r.update(overuse_of(2, 1_480_000.0, 1_450_000.0), RTT, t1);
        assert!((cut - 0.85 * 1_480_000.0).abs() < 1.0, "{cut}");
    }

    #[test]
    fn overuse_drops_to_a_share_of_what_arrives_once_per_round_trip() {
        let t0 = Instant::now();
        let mut r = RateControl::new(2_500_000.0, 100_000.0, 2_500_000.0);
        assert_eq!(r.update(overuse(1, 1_500_000.0), RTT, t0), 1_275_000.0);
        let same = r.update(overuse(2, 1_000_000.0), RTT, t0 + Duration::from_millis(50));
        assert_eq!(same, 1_275_000.0, "a second decrease within the interval");
        let again = r.update(
            overuse(2, 1_000_000.0),
            RTT,
            t0 + Duration::from_millis(300),
        );
        assert_eq!(again, 850_000.0);
    }

    #[test]
    fn one_overuse_signal_is_answered_by_one_decrease() {
        let t0 = Instant::now();
        let mut r = RateControl::new(2_500_000.0, 100_000.0, 2_500_000.0);
        assert_eq!(r.update(overuse(1, 1_500_000.0), RTT, t0), 1_275_000.0);
        // The verdict stands while the queue drains; what arrives falls with the target.
        for ms in [300, 600, 900] {
            let t = r.update(overuse(1, 1_200_000.0), RTT, t0 + Duration::from_millis(ms));
            assert_eq!(t, 1_275_000.0, "at {ms} ms, with no new signal");
        }
        // The trend rose again: a new signal, a new decrease.
        let t = r.update(
            overuse(2, 1_200_000.0),
            RTT,
            t0 + Duration::from_millis(1200),
        );
        assert_eq!(t, 1_020_000.0);
    }

    #[test]
    fn an_overuse_cuts_from_what_the_path_carried_at_its_peak() {
        // An encoder making 1.1 Mbit/s of a 1.5 Mbit/s target; a probe filled the bottleneck, which carried
        // 1.45 Mbit/s over a short window.
        let t0 = Instant::now();
        let mut r = RateControl::new(1_500_000.0, 100_000.0, 2_500_000.0);
        let seen = Observed {
            peak: Some(1_450_000.0),
            ..overuse(1, 1_100_000.0)
        };
        assert_eq!(r.update(seen, RTT, t0), 0.85 * 1_450_000.0);
        // Never up at an overuse, whatever the peak.
        let seen = Observed {
            peak: Some(3_000_000.0),
            ..overuse(2, 1_100_000.0)
        };
        assert_eq!(
            r.update(seen, RTT, t0 + Duration::from_secs(1)),
            0.85 * 1_450_000.0
        );
    }

    #[test]
    fn the_peak_is_of_short_windows_since_it_was_last_forgotten() {
        let mut rate = ReceivedRate::default();
        // 200 ms at 2 Mbit/s, then 1 Mbit/s; a mark every 50 ms.
        let mut t = Duration::ZERO;
        for i in 0..60u64 {
            let gap = if i < 40 { 5 } else { 10 };
            t += Duration::from_millis(gap);
            rate.add(t, 1250);
            if i % 5 == 4 {
                rate.mark();
            }
        }
        let peak = rate.peak().unwrap();
        assert!((peak - 2_000_000.0).abs() < 100_000.0, "{peak}");
        rate.forget_peaks();
        assert_eq!(rate.peak(), None);
        for _ in 0..20 {
            t += Duration::from_millis(10);
            rate.add(t, 1250);
        }
        rate.mark();
        let peak = rate.peak().unwrap();
        assert!((peak - 1_000_000.0).abs() < 100_000.0, "{peak}");
    }

    #[test]
    fn far_from_capacity_the_target_climbs_eight_percent_a_second() {
        let t0 = Instant::now();
        let mut r = RateControl::new(1_000_000.0, 100_000.0, 10_000_000.0);
        let mut target: f64 = 0.0;
        for i in 0..=50 {
            let now = t0 + Duration::from_millis(i * 200);
            target = r.update(normal(target.max(1_000_000.0)), RTT, now);
        }
        let expected = 1_000_000.0 * INCREASE_PER_SECOND.powf(10.0);
        assert!(
            (target / expected - 1.0).abs() < 0.1,
            "{target} vs {expected}"
        );
    }

    #[test]
    fn near_the_rate_that_overused_the_climb_is_additive_until_the_receiver_gets_clearly_more() {
        let t0 = Instant::now();
        let mut r = RateControl::new(1_000_000.0, 100_000.0, 10_000_000.0);
        r.update(overuse(1, 1_000_000.0), RTT, t0);
        let mut now = t0;
        let mut target = r.target();
        for _ in 0..10 {
            now += Duration::from_millis(200);
            target = r.update(normal(1_000_000.0), RTT, now);
        }
        // Two seconds of additive increase: a few tens of kbit/s.
        assert!(target < 1_000_000.0, "{target}");
        // The link cleared: the receiver gets far more than the old capacity; multiplicative again.
        let before = target;
        for _ in 0..5 {
            now += Duration::from_millis(200);
            target = r.update(normal(1_600_000.0), RTT, now);
        }
        assert!(target > before * 1.07, "{before} → {target}");
    }

    #[test]
    fn the_target_does_not_run_ahead_of_what_arrives() {
        let t0 = Instant::now();
        let mut r = RateControl::new(300_000.0, 100_000.0, 10_000_000.0);
        for i in 0..200 {
            r.update(normal(200_000.0), RTT, t0 + Duration::from_millis(i * 200));
        }
        assert!(
            r.target() <= MAX_AHEAD * 200_000.0 + AHEAD_SLACK,
            "{}",
            r.target()
        );
    }

    #[test]
    fn the_received_rate_counts_the_last_window() {
        let mut rate = ReceivedRate::default();
        assert_eq!(rate.bps(), None);
        for i in 0..100u64 {
            rate.add(Duration::from_millis(i * 10), 1250);
        }
        let bps = rate.bps().unwrap();
        assert!((bps - 1_000_000.0).abs() < 30_000.0, "{bps}");
    }
}
