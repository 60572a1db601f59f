//! The delay half of the estimate: is the path's queue growing? Packets are grouped by when they left (a frame's
//! packets leave together and count as one), and for each pair of groups the change in one-way delay — how much
//! longer the second took to arrive than to leave — is summed. A queue that grows makes that sum climb; its slope
//! over the last [`WINDOW`] groups (a least-squares line, smoothed) is the trend. The trend, scaled, is compared with
//! a threshold that adapts to the path's own noise: above it for more than [`OVERUSE_TIME`] is overuse, below its
//! negative is underuse (a queue draining). This is the detector of Google Congestion Control
//! (draft-ietf-rmcat-gcc-02 §5.3–5.4, with the trendline filter libwebrtc replaced the Kalman filter with).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Packets that left within this of a group's first belong to it.
pub const GROUP_SPAN: Duration = Duration::from_millis(5);
/// Groups the trend is fitted over.
pub const WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
/// The trend is scaled by the number of deltas seen (at most [`MAX_DELTAS_SCALE`]) and this gain.
const THRESHOLD_GAIN: f64 = 4.0;
const MAX_DELTAS_SCALE: f64 = 60.0;
/// The adaptive threshold, ms: where it starts, its bounds, and how fast it moves towards the signal (up, down).
const THRESHOLD_INITIAL: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
/// A signal this far beyond the threshold is an outlier (a route change, a stall): the threshold ignores it.
const THRESHOLD_OUTLIER: f64 = 15.0;
/// Overuse must last this long (in sending time) before it counts.
pub const OVERUSE_TIME: f64 = 10.0;

/// What the detector concludes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Usage {
    #[default]
    Normal,
    Overusing,
    Underusing,
}

#[derive(Clone, Copy, Debug)]
struct Group {
    first_departure: Instant,
    last_departure: Instant,
    last_arrival: Duration,
}

/// One packet's departure (our clock) and arrival (the receiver's clock, any origin).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub departure: Instant,
    pub arrival: Duration,
}

/// Groups packets and reports, per completed group, (send delta, arrival delta) in ms to the group before.
#[derive(Debug, Default)]
struct Grouping {
    current: Option<Group>,
    previous: Option<Group>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn signed_ms(later: Duration, earlier: Duration) -> f64 {
    ms(later) - ms(earlier)
}

impl Grouping {
    fn add(&mut self, t: Timing) -> Option<(f64, f64, Duration)> {
        let Some(g) = self.current.as_mut() else {
            self.current = Some(Group {
                first_departure: t.departure,
                last_departure: t.departure,
                last_arrival: t.arrival,
            });
            return None;
        };
        if t.departure < g.first_departure {
            // Reordered behind a group already begun: it says nothing about the queue now.
            return None;
        }
        let in_span = t.departure.duration_since(g.first_departure) <= GROUP_SPAN;
        // A burst: packets that queued behind each other arrive back to back, closer than they left.
        let arrival_gap = signed_ms(t.arrival, g.last_arrival);
        let departure_gap = ms(t.departure.duration_since(g.last_departure));
        let burst =
            arrival_gap >= 0.0 && arrival_gap < ms(GROUP_SPAN) && arrival_gap < departure_gap;
        if in_span || burst {
            g.last_departure = g.last_departure.max(t.departure);
            if t.arrival > g.last_arrival {
                g.last_arrival = t.arrival;
            }
            return None;
        }
        let done = *g;
        self.current = Some(Group {
            first_departure: t.departure,
            last_departure: t.departure,
            last_arrival: t.arrival,
        });
        let deltas = self.previous.map(|p| {
            (
                ms(done.last_departure.duration_since(p.last_departure)),
                signed_ms(done.last_arrival, p.last_arrival),
                done.last_arrival,
            )
        });
        self.previous = Some(done);
        deltas
    }
}

/// The trend filter and the overuse detector with its adaptive threshold.
#[derive(Debug)]
pub struct DelayDetector {
    grouping: Grouping,
    first_arrival: Option<Duration>,
    accumulated: f64,
    smoothed: f64,
    window: VecDeque<(f64, f64)>,
    deltas: u32,
    trend: f64,
    threshold: f64,
    threshold_updated: Option<Instant>,
    time_over: f64,
    overuse_count: u32,
    usage: Usage,
    /// How many times overuse has been signalled: the trend above the threshold and still rising.
    overuse_signals: u64,
}

impl Default for DelayDetector {
    fn default() -> Self {
        DelayDetector {
            grouping: Grouping::default(),
            first_arrival: None,
            accumulated: 0.0,
            smoothed: 0.0,
            window: VecDeque::with_capacity(WINDOW + 1),
            deltas: 0,
            trend: 0.0,
            threshold: THRESHOLD_INITIAL,
            threshold_updated: None,
            time_over: -1.0,
            overuse_count: 0,
            usage: Usage::Normal,
            overuse_signals: 0,
        }
    }
}

/// The slope of the least-squares line through `points`, if they are not all at one x.
fn slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

impl DelayDetector {
    /// Takes one packet's timing (in send order) at `now`; returns the detector's conclusion so far.
    pub fn add(&mut self, t: Timing, now: Instant) -> Usage {
        if let Some((send_delta, arrival_delta, arrival)) = self.grouping.add(t) {
            if !(-1000.0..=10_000.0).contains(&arrival_delta) {
                // The receiver's clock jumped (a new feedback origin): start over.
                *self = DelayDetector {
                    overuse_signals: self.overuse_signals,
                    ..DelayDetector::default()
                };
                return self.usage;
            }
            self.update(send_delta, arrival_delta, arrival, now);
        }
        self.usage
    }

    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// How many times overuse has been signalled. The verdict stays [`Usage::Overusing`] while the trend is
    /// above the threshold, also once it falls (the queue draining after a decrease); a new signal needs the trend
    /// to rise again.
    pub fn overuse_signals(&self) -> u64 {
        self.overuse_signals
    }

    /// The current trend (ms of delay growth per ms), for tests and logs.
    pub fn trend(&self) -> f64 {
        self.trend
    }

    fn update(&mut self, send_delta: f64, arrival_delta: f64, arrival: Duration, now: Instant) {
        let first = *self.first_arrival.get_or_insert(arrival);
        self.deltas = (self.deltas + 1).min(1000);
        self.accumulated += arrival_delta - send_delta;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        self.window
            .push_back((signed_ms(arrival, first), self.smoothed));
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        let previous = self.trend;
        if self.window.len() == WINDOW {
            self.trend = slope(&self.window).unwrap_or(previous);
        }
        self.detect(previous, send_delta, now);
    }

    fn detect(&mut self, previous_trend: f64, send_delta: f64, now: Instant) {
        if self.deltas < 2 {
            return;
        }
        let modified = f64::from(self.deltas).min(MAX_DELTAS_SCALE) * self.trend * THRESHOLD_GAIN;
        if modified > self.threshold {
            if self.time_over < 0.0 {
                self.time_over = send_delta / 2.0;
            } else {
                self.time_over += send_delta;
            }
            self.overuse_count += 1;
            if self.time_over > OVERUSE_TIME
                && self.overuse_count > 1
                && self.trend >= previous_trend
            {
                self.time_over = 0.0;
                self.overuse_count = 0;
                self.usage = Usage::Overusing;
                self.overuse_signals += 1;
            }
        } else if modified < -self.threshold {
            self.time_over = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Underusing;
        } else {
            self.time_over = -1.0;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.adapt_threshold(modified, now);
    }

    fn adapt_threshold(&mut self, modified: f64, now: Instant) {
        let last = *self.threshold_updated.get_or_insert(now);
        let size = modified.abs();
        if size > self.threshold + THRESHOLD_OUTLIER {
            self.threshold_updated = Some(now);
            return;
        }
        let k = if size < self.threshold { K_DOWN } else { K_UP };
        let dt = ms(now.saturating_duration_since(last)).min(100.0);
        self.threshold =
            (self.threshold + k * (size - self.threshold) * dt).clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.threshold_updated = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of `packets` packets every `frame` ms for `frames` frames, each group's one-way delay growing by
    /// `growth` ms per frame; returns the detector's conclusions.
    fn run(frames: u64, growth: f64, jitter: impl Fn(u64) -> f64) -> Vec<Usage> {
        let t0 = Instant::now();
        let mut d = DelayDetector::default();
        let mut out = Vec::new();
        for f in 0..frames {
            let sent = f * 33;
            let delay = 20.0 + growth * f as f64 + jitter(f);
            for p in 0..3u64 {
                let departure = t0 + Duration::from_millis(sent) + Duration::from_micros(p * 200);
                let arrival =
                    Duration::from_secs_f64((sent as f64 + delay) / 1000.0 + p as f64 * 0.0002);
                out.push(d.add(
                    Timing { departure, arrival },
                    departure + Duration::from_millis(60),
                ));
            }
        }
        out
    }

    #[test]
    fn a_steady_path_is_normal_even_with_jitter() {
        let usage = run(300, 0.0, |f| ((f * 7919) % 11) as f64 * 0.5);
        assert!(!usage.contains(&Usage::Overusing), "{usage:?}");
        assert_eq!(usage.last(), Some(&Usage::Normal));
    }

    #[test]
    fn a_growing_queue_is_overuse_once_the_window_fills() {
        // 2 ms more delay a frame (a path 6 % short of the rate); the trend needs WINDOW groups first.
        let usage = run(60, 2.0, |_| 0.0);
        let first = usage
            .iter()
            .position(|u| *u == Usage::Overusing)
            .map(|i| i / 3);
        assert!(
            first.is_some_and(|f| (WINDOW..WINDOW + 15).contains(&f)),
            "overuse first at frame {first:?}"
        );
    }

    #[test]
    fn a_draining_queue_is_underuse() {
        let t0 = Instant::now();
        let mut d = DelayDetector::default();
        let mut last = Usage::Normal;
        for f in 0..60u64 {
            let delay = (200.0 - 4.0 * f as f64).max(20.0);
            let departure = t0 + Duration::from_millis(f * 33);
            let arrival = Duration::from_secs_f64((f as f64 * 33.0 + delay) / 1000.0);
            last = d.add(Timing { departure, arrival }, departure);
            if f == 40 {
                assert_eq!(last, Usage::Underusing);
            }
        }
        assert_ne!(last, Usage::Overusing);
    }

    #[test]
    fn packets_of_one_frame_are_one_group() {
        let t0 = Instant::now();
        let mut g = Grouping::default();
        let at = |ms: u64, arr: u64| Timing {
            departure: t0 + Duration::from_millis(ms),
            arrival: Duration::from_millis(arr),
        };
        assert_eq!(g.add(at(0, 10)), None);
        assert_eq!(g.add(at(2, 12)), None);
        assert_eq!(
            g.add(at(33, 43)),
            None,
            "the first completed group has none before it"
        );
        assert_eq!(g.add(at(34, 44)), None);
        let (send, arrival, _) = g.add(at(66, 80)).unwrap();
        assert_eq!((send, arrival), (32.0, 32.0));
    }
}
