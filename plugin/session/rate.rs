//! Following the network: the bandwidth estimate ([`super::bwe`]) sets the pacing rate and — when adaptation is on
//! and the encoder takes bitrate changes while encoding — the video encoder's bitrate: the estimate less audio and
//! packet overhead, between the floor and the configured bitrate. Down fast (at most every [`DOWN_INTERVAL`]), up
//! gently (at most every [`UP_INTERVAL`], by [`UP_STEP`] or [`UP_SHARE`] of the way to the target, whichever is
//! more: a link found clear again by a probe is used within seconds); changes under [`MIN_CHANGE`] are not worth an
//! encoder reconfiguration. The bitrates over the stream are kept for the summary at the end.
use super::bwe::{Bwe, PACKET_OVERHEAD};
use super::io::RateConfig;
use super::sender::MAX_VIDEO_DELAY;
use super::{Action, Note, Session};
use std::time::{Duration, Instant};

/// Video on the wire per bit of encoder output: 1200-byte payloads with [`PACKET_OVERHEAD`] each.
pub const VIDEO_OVERHEAD: f64 = (1200 + PACKET_OVERHEAD) as f64 / 1200.0;
/// Opus packets a second (20 ms frames), each with [`PACKET_OVERHEAD`].
const AUDIO_PACKETS_PER_SECOND: f64 = 50.0;
/// The video rate assumed when the encoder has no bitrate setting (constant quality): nothing to adapt, and the
/// pacer needs a rate.
const UNKNOWN_VIDEO_BPS: f64 = 20_000_000.0;
/// The lowest estimate there is.
const MIN_ESTIMATE: f64 = 30_000.0;
pub const DOWN_INTERVAL: Duration = Duration::from_millis(300);
pub const UP_INTERVAL: Duration = Duration::from_secs(1);
pub const UP_STEP: f64 = 1.25;
pub const UP_SHARE: f64 = 0.5;
pub const MIN_CHANGE: f64 = 0.05;

fn audio_wire_bps(c: &RateConfig) -> f64 {
    f64::from(c.audio_kbps) * 1000.0 + AUDIO_PACKETS_PER_SECOND * (PACKET_OVERHEAD * 8) as f64
}

/// Video of `kbps` (encoder output) on the wire, bit/s.
pub(super) fn video_wire_bps(kbps: u32) -> f64 {
    f64::from(kbps) * 1000.0 * VIDEO_OVERHEAD
}

/// The encoder output (bit/s) that `estimate` leaves room for once audio has its share.
pub(super) fn video_room_bps(estimate: f64, c: &RateConfig) -> f64 {
    (estimate - audio_wire_bps(c)) / VIDEO_OVERHEAD
}

/// What the streams need on the wire at their configured rates, bit/s.
pub fn wanted_bps(c: &RateConfig) -> f64 {
    let video = match c.video_kbps {
        0 => UNKNOWN_VIDEO_BPS,
        kbps => f64::from(kbps) * 1000.0,
    };
    video * VIDEO_OVERHEAD + audio_wire_bps(c)
}

/// The estimator for a session configured with `c`, and simulcast layers below the full picture configured for
/// `lower_kbps` together.
pub fn estimator(c: &RateConfig, lower_kbps: u32) -> Bwe {
    Bwe::new(wanted_bps(c) + video_wire_bps(lower_kbps), MIN_ESTIMATE)
}

#[derive(Debug)]
pub struct Adaptation {
    config: RateConfig,
    /// The encoder's bitrate now, kbit/s.
    current: u32,
    last_change: Option<Instant>,
    /// (from when, kbit/s) since streaming began.
    timeline: Vec<(Instant, u32)>,
    /// Said in the log that the video is being dropped.
    pub said_dropping: bool,
}

impl Adaptation {
    pub fn new(config: RateConfig) -> Adaptation {
        Adaptation {
            config,
            current: config.video_kbps,
            last_change: None,
            timeline: Vec::new(),
            said_dropping: false,
        }
    }

    /// The video bitrate the encoder was last given (its configured one until adaptation changes it), kbit/s.
    pub fn current_kbps(&self) -> u32 {
        self.current
    }

    /// Whether the encoder's bitrate follows the estimate.
    pub fn follows(&self) -> bool {
        self.config.adaptive && self.config.encoder_follows && self.config.video_kbps > 0
    }

    /// Streaming began at `now` (at the configured bitrate).
    pub fn start(&mut self, now: Instant) {
        if self.timeline.is_empty() {
            self.timeline.push((now, self.current));
        }
    }

    /// The video bitrate the estimate leaves room for, kbit/s, between the floor and the configured rate.
    pub fn target_kbps(&self, estimate: f64) -> u32 {
        let c = &self.config;
        let video = video_room_bps(estimate, c) / 1000.0;
        let floor = c.min_video_kbps.min(c.video_kbps);
        (video.max(0.0) as u32).clamp(floor, c.video_kbps)
    }

    /// The encoder's next bitrate (kbit/s), when it is to change at `now`.
    pub fn decide(&mut self, estimate: f64, now: Instant) -> Option<u32> {
        if !self.follows() || self.timeline.is_empty() {
            return None;
        }
        let target = self.target_kbps(estimate);
        let (current, configured) = (f64::from(self.current), self.config.video_kbps);
        let since = self.last_change.map(|t| now.saturating_duration_since(t));
        let waited = |interval| since.is_none_or(|s| s >= interval);
        let next = if f64::from(target) < current * (1.0 - MIN_CHANGE) && waited(DOWN_INTERVAL) {
            target
        } else if target > self.current
            && (f64::from(target) > current * (1.0 + MIN_CHANGE) || target == configured)
            && waited(UP_INTERVAL)
        {
            let step = (current * UP_STEP).max(current + UP_SHARE * (f64::from(target) - current));
            target.min(step as u32).max(self.current + 1)
        } else {
            return None;
        };
        self.current = next;
        self.last_change = Some(now);
        self.timeline.push((now, next));
        Some(next)
    }

    /// Changes made, and the lowest, time-weighted median and highest bitrate from the start to `now`.
    pub fn summary(&self, now: Instant) -> Option<(usize, u32, u32, u32)> {
        let mut spans: Vec<(u32, Duration)> = self
            .timeline
            .iter()
            .zip(self.timeline.iter().skip(1).map(|(t, _)| *t).chain([now]))
            .map(|((from, kbps), to)| (*kbps, to.saturating_duration_since(*from)))
            .collect();
        let (min, max) = spans
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), (k, _)| (lo.min(*k), hi.max(*k)));
        spans.sort_unstable();
        let total: Duration = spans.iter().map(|(_, d)| *d).sum();
        let mut run = Duration::ZERO;
        let median = spans.iter().find(|(_, d)| {
            run += *d;
            run * 2 >= total
        })?;
        Some((self.timeline.len() - 1, min, median.0, max))
    }
}

impl Session {
    /// Time passed or feedback arrived: a probe when one is due, the pacing rate, the encoder's bitrate.
    pub(super) fn follow_network(&mut self) {
        let now = self.now;
        self.bwe.handle_timeout(now);
        if let Some(req) = self.bwe.probe_due(now) {
            if self.sender.probe(req, now) == 0 {
                self.bwe.probe_abandoned(now);
            }
        }
        let pacing = if self.config.rate.adaptive {
            self.bwe.estimate()
        } else {
            self.bwe.max()
        };
        self.sender.set_pacing_rate(pacing, now);
        self.allocate_layers();
        // The full picture's encoder gets what the smaller layers leave.
        let estimate = self.bwe.estimate() - self.lower_layers_bps();
        if let Some(kbps) = self.adaptation.decide(estimate, now) {
            let (usage, loss, ..) = self.bwe.state();
            self.note(Note::info(format!(
                "video bitrate → {kbps} kbit/s (estimate {:.0} kbit/s, held by {}; delay {usage:?}, loss {:.1} %)",
                self.bwe.estimate() / 1000.0,
                self.bwe.limit(),
                loss * 100.0
            )));
            self.act(Action::SetVideoBitrate(kbps));
        }
    }

    /// A video frame was dropped because the pacer fell behind; `began`: the first of a run.
    pub(super) fn dropped_video(&mut self, layer: usize, began: bool) {
        if began {
            self.keyframe_requested(layer);
            if !self.adaptation.said_dropping {
                self.adaptation.said_dropping = true;
                let estimate = self.bwe.estimate() / 1000.0;
                self.note(Note::warn(format!(
                    "the network carries less than the video needs (about {estimate:.0} kbit/s; video waiting over \
                     {} ms): dropping video up to the next keyframe",
                    MAX_VIDEO_DELAY.as_millis()
                )));
            }
        }
    }

    /// The bitrate timeline and what the estimator saw, for the log at the end.
    pub fn rate_summary(&self) -> String {
        let (_, loss, probes, found) = self.bwe.state();
        let feedback = if self.bwe.has_transport_feedback() {
            "transport-wide feedback"
        } else {
            "receiver reports only (the server sent no transport-wide feedback)"
        };
        let mut s = format!(
            "bandwidth estimate at the end {:.0} kbit/s (from {feedback}; last loss {:.1} %; probes {probes}, {found} \
             found room)",
            self.bwe.estimate() / 1000.0,
            loss * 100.0
        );
        match self.adaptation.summary(self.now) {
            Some((changes, min, median, max)) if self.adaptation.follows() => s.push_str(&format!(
                "; video bitrate min {min} / median {median} / max {max} kbit/s, {changes} change(s)"
            )),
            _ if !self.config.rate.adaptive => s.push_str("; adaptation is off"),
            _ => s.push_str("; the encoder's bitrate was left as it was"),
        }
        if self.sender.dropped_frames > 0 {
            s.push_str(&format!(
                "; {} video frame(s) dropped while the network was behind",
                self.sender.dropped_frames
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_leaves_room_for_audio_and_overhead_within_floor_and_ceiling() {
        let a = Adaptation::new(RateConfig::default());
        let audio = 160_000.0 + 50.0 * 58.0 * 8.0;
        assert_eq!(a.target_kbps(audio + 1_000_000.0 * VIDEO_OVERHEAD), 1000);
        assert_eq!(a.target_kbps(100_000.0), 300, "the floor");
        assert_eq!(a.target_kbps(10_000_000.0), 2500, "the configured rate");
        let wanted = wanted_bps(&RateConfig::default());
        assert_eq!(a.target_kbps(wanted), 2500);
    }

    #[test]
    fn down_fast_up_gently_and_small_changes_left_alone() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut a = Adaptation::new(RateConfig::default());
        let bps =
            |kbps: f64| kbps * 1000.0 * VIDEO_OVERHEAD + audio_wire_bps(&RateConfig::default());
        assert_eq!(a.decide(bps(1000.0), t0), None, "not streaming yet");
        a.start(t0);
        assert_eq!(a.decide(bps(1000.0), at(0)), Some(1000));
        assert_eq!(
            a.decide(bps(800.0), at(200)),
            None,
            "300 ms between decreases"
        );
        assert_eq!(a.decide(bps(800.0), at(300)), Some(800));
        assert_eq!(a.decide(bps(820.0), at(2000)), None, "under 5 %");
        assert_eq!(
            a.decide(bps(2500.0), at(1200)),
            None,
            "a second before an increase"
        );
        assert_eq!(
            a.decide(bps(2500.0), at(1300)),
            Some(1650),
            "half the way up (more than 25 %)"
        );
        assert_eq!(a.decide(bps(2500.0), at(2300)), Some(2075));
        assert_eq!(
            a.decide(bps(2300.0), at(3300)),
            Some(2300),
            "25 % is more than half of what is left, and the target is nearer"
        );
        assert_eq!(a.decide(bps(9000.0), at(4300)), Some(2500));
        let (changes, min, median, max) = a.summary(at(5300)).unwrap();
        assert_eq!((changes, min, max), (6, 800, 2500));
        assert_eq!(median, 2075, "time-weighted over 5.3 s");
    }

    #[test]
    fn nothing_changes_without_adaptation_or_an_encoder_that_follows() {
        let t0 = Instant::now();
        for c in [
            RateConfig {
                adaptive: false,
                ..RateConfig::default()
            },
            RateConfig {
                encoder_follows: false,
                ..RateConfig::default()
            },
            RateConfig {
                video_kbps: 0,
                ..RateConfig::default()
            },
        ] {
            let mut a = Adaptation::new(c);
            a.start(t0);
            assert_eq!(a.decide(100_000.0, t0), None, "{c:?}");
        }
    }
}
