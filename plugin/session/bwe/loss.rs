//! The loss half of the estimate (draft-ietf-rmcat-gcc-02 §6): over [`HIGH_LOSS`] lost, the rate drops by half
//! the loss; under [`LOW_LOSS`] it may climb [`INCREASE_PER_SECOND`] a second; between the two it holds — a few per
//! cent of random loss (Wi-Fi) is what retransmission is for, not a reason to give up bitrate. Loss is counted
//! over at least [`MIN_PACKETS`] packets and [`MIN_SPAN`], from transport-wide feedback, or taken from receiver
//! reports when the server sends no such feedback.
use std::time::{Duration, Instant};

pub const LOW_LOSS: f64 = 0.02;
pub const HIGH_LOSS: f64 = 0.10;
pub const INCREASE_PER_SECOND: f64 = 1.08;
pub const MIN_PACKETS: u32 = 20;
pub const MIN_SPAN: Duration = Duration::from_millis(250);
/// Decreases are at least this (plus a round trip) apart.
const DECREASE_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub struct LossControl {
    target: f64,
    min: f64,
    max: f64,
    lost: u32,
    total: u32,
    since: Option<Instant>,
    last_decrease: Option<Instant>,
    last_update: Option<Instant>,
    /// The loss of the last full count.
    pub loss: f64,
}

impl LossControl {
    pub fn new(initial: f64, min: f64, max: f64) -> LossControl {
        LossControl {
            target: initial.clamp(min, max),
            min,
            max,
            lost: 0,
            total: 0,
            since: None,
            last_decrease: None,
            last_update: None,
            loss: 0.0,
        }
    }

    pub fn target(&self) -> f64 {
        self.target
    }

    /// A probe showed the path carries `bps`: the loss half does not hold the estimate below it.
    pub fn probed(&mut self, bps: f64) {
        self.target = self.target.max(bps).clamp(self.min, self.max);
    }

    /// Counts `lost` of `total` packets reported at `now`; once enough are counted, applies their loss.
    /// `current` is the combined estimate (what a decrease starts from), `rtt` spaces decreases.
    pub fn count(&mut self, lost: u32, total: u32, current: f64, rtt: Duration, now: Instant) {
        self.lost += lost;
        self.total += total;
        let since = *self.since.get_or_insert(now);
        if self.total >= MIN_PACKETS && now.saturating_duration_since(since) >= MIN_SPAN {
            let loss = f64::from(self.lost) / f64::from(self.total);
            (self.lost, self.total, self.since) = (0, 0, None);
            self.apply(loss, current, rtt, now);
        }
    }

    /// A loss fraction measured at `now` (a receiver report's).
    pub fn apply(&mut self, loss: f64, current: f64, rtt: Duration, now: Instant) {
        self.loss = loss;
        let dt = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(1));
        self.last_update = Some(now);
        if loss > HIGH_LOSS {
            if self
                .last_decrease
                .is_some_and(|t| now < t + DECREASE_INTERVAL + rtt)
            {
                return;
            }
            self.target = (current.min(self.target) * (1.0 - 0.5 * loss)).clamp(self.min, self.max);
            self.last_decrease = Some(now);
        } else if loss < LOW_LOSS {
            // Climbing from where the combined estimate is, so the loss half never holds a stale low cap.
            let from = self.target.max(current);
            self.target =
                (from * INCREASE_PER_SECOND.powf(dt.as_secs_f64())).clamp(self.min, self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(20);

    #[test]
    fn heavy_loss_halves_its_share_moderate_loss_holds_little_loss_climbs() {
        let t0 = Instant::now();
        let mut l = LossControl::new(2_000_000.0, 100_000.0, 4_000_000.0);
        l.count(6, 30, 2_000_000.0, RTT, t0);
        l.count(0, 0, 2_000_000.0, RTT, t0 + Duration::from_millis(300));
        assert!(
            (l.target() - 1_800_000.0).abs() < 1.0,
            "20 % loss: {}",
            l.target()
        );
        l.apply(0.05, 1_800_000.0, RTT, t0 + Duration::from_millis(700));
        assert!(
            (l.target() - 1_800_000.0).abs() < 1.0,
            "5 % holds: {}",
            l.target()
        );
        l.apply(0.0, 1_800_000.0, RTT, t0 + Duration::from_millis(1700));
        assert!(
            (l.target() - 1_944_000.0).abs() < 1.0,
            "no loss for a second: {}",
            l.target()
        );
    }

    #[test]
    fn too_few_packets_decide_nothing() {
        let t0 = Instant::now();
        let mut l = LossControl::new(1_000_000.0, 100_000.0, 4_000_000.0);
        l.count(5, 10, 1_000_000.0, RTT, t0);
        l.count(0, 0, 1_000_000.0, RTT, t0 + Duration::from_secs(1));
        assert_eq!(l.target(), 1_000_000.0);
    }
}
