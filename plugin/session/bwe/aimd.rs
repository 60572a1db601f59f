//! What the delay half does with the detector's verdict (draft-ietf-rmcat-gcc-02 §5.5, AIMD): overuse → the
//! target drops to [`DECREASE_FACTOR`] of what the receiver is getting, then holds; underuse (a queue draining)
//! holds; normal → the target climbs — by [`INCREASE_PER_SECOND`] a second while far from the rate that last
//! overused the path, by about a packet per response time near it. The rate that overused ("link capacity") is
//! forgotten once the receiver gets clearly more or less (three deviations), so a link that cleared is climbed
//! fast again. The target never runs ahead of [`MAX_AHEAD`] × what arrives: an encoder that sends less than it may
//! (a still picture) proves nothing about the path.
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

/// The received rate: the higher of the bytes that arrived over the last [`SHORT_WINDOW`] and over the last
/// [`LONG_WINDOW`] of the receiver's clock. At an overuse (a keyframe filling the bottleneck) the short window
/// shows the bottleneck's rate rather than the stream's average; the long one keeps a quiet moment of the encoder
/// (a still picture) from reading as a narrow path.
pub const SHORT_WINDOW: Duration = Duration::from_millis(150);
pub const LONG_WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct ReceivedRate {
    arrivals: VecDeque<(Duration, usize)>,
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
            let band = 3.0 * self.deviation();
            if received > e + band || (overuse && received < e - band) {
                self.estimate = None;
            }
        }
    }
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

    /// Takes the detector's verdict and the received rate at `now`; `rtt` sets the pace of additive increase.
    pub fn update(
        &mut self,
        usage: Usage,
        received: Option<f64>,
        rtt: Duration,
        now: Instant,
    ) -> f64 {
        self.state = match (usage, self.state) {
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
                if since.is_some_and(|s| s < rtt.max(INTERVAL))
                    && self.last_decrease == self.last_change
                {
                    // One decrease per round trip: the last one has not had time to show.
                    return self.target;
                }
                self.capacity.check(received, true);
                self.capacity.update(received);
                self.target = (DECREASE_FACTOR * received)
                    .min(self.target)
                    .clamp(self.min, self.max);
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

    #[test]
    fn overuse_drops_to_a_share_of_what_arrives_once_per_round_trip() {
        let t0 = Instant::now();
        let mut r = RateControl::new(2_500_000.0, 100_000.0, 2_500_000.0);
        assert_eq!(
            r.update(Usage::Overusing, Some(1_500_000.0), RTT, t0),
            1_275_000.0
        );
        let same = r.update(
            Usage::Overusing,
            Some(1_000_000.0),
            RTT,
            t0 + Duration::from_millis(50),
        );
        assert_eq!(same, 1_275_000.0, "a second decrease within the interval");
        let again = r.update(
            Usage::Overusing,
            Some(1_000_000.0),
            RTT,
            t0 + Duration::from_millis(300),
        );
        assert_eq!(again, 850_000.0);
    }

    #[test]
    fn far_from_capacity_the_target_climbs_eight_percent_a_second() {
        let t0 = Instant::now();
        let mut r = RateControl::new(1_000_000.0, 100_000.0, 10_000_000.0);
        let mut target: f64 = 0.0;
        for i in 0..=50 {
            let now = t0 + Duration::from_millis(i * 200);
            target = r.update(Usage::Normal, Some(target.max(1_000_000.0)), RTT, now);
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
        r.update(Usage::Overusing, Some(1_000_000.0), RTT, t0);
        let mut now = t0;
        let mut target = r.target();
        for _ in 0..10 {
            now += Duration::from_millis(200);
            target = r.update(Usage::Normal, Some(1_000_000.0), RTT, now);
        }
        // Two seconds of additive increase: a few tens of kbit/s.
        assert!(target < 1_000_000.0, "{target}");
        // The link cleared: the receiver gets far more than the old capacity; multiplicative again.
        let before = target;
        for _ in 0..5 {
            now += Duration::from_millis(200);
            target = r.update(Usage::Normal, Some(1_600_000.0), RTT, now);
        }
        assert!(target > before * 1.07, "{before} → {target}");
    }

    #[test]
    fn the_target_does_not_run_ahead_of_what_arrives() {
        let t0 = Instant::now();
        let mut r = RateControl::new(300_000.0, 100_000.0, 10_000_000.0);
        for i in 0..200 {
            r.update(
                Usage::Normal,
                Some(200_000.0),
                RTT,
                t0 + Duration::from_millis(i * 200),
            );
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
