//! Probing: finding out fast that a link has room again. Below the configured rate, and while the path shows
//! neither overuse nor loss, a short cluster of packets (recent video packets sent again on the retransmission
//! stream) goes out at twice the estimate; the rate at which the receiver got them, when it got nearly all of them
//! about as fast as they left, is what the path carries — the estimate jumps there. A probe that succeeds is
//! followed by the next at twice the new estimate; one that fails backs off (doubling the wait, to
//! [`MAX_BACKOFF`]). Without probes a link that went from 0.6 to 4 Mbit/s would take half a minute to climb at
//! 8 % a second.
use std::time::{Duration, Instant};

/// A cluster lasts this long at its rate, and has at least [`MIN_PACKETS`] packets.
pub const DURATION: Duration = Duration::from_millis(30);
pub const MIN_PACKETS: u32 = 5;
/// Quiet time after a decrease before probing.
pub const AFTER_DECREASE: Duration = Duration::from_secs(3);
/// Waits between probes: after a success, and after failures (doubling, up to the max).
pub const AFTER_SUCCESS: Duration = Duration::from_millis(500);
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// Of a cluster this share must arrive, and the receiver must get it at this share of the sending rate.
const MIN_ARRIVED: f64 = 0.8;
/// A cluster is judged once every packet is reported or this long after its last left.
const VERDICT_WAIT: Duration = Duration::from_secs(1);

/// What to send: `bytes` at `bps`, its packets marked with `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub id: u32,
    pub bps: u64,
    pub bytes: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Cluster {
    id: u32,
    bps: f64,
    sent: u32,
    sent_bytes: usize,
    first_departure: Option<Instant>,
    last_departure: Option<Instant>,
    last_size: usize,
    /// The cluster's last packet has left.
    complete: bool,
    reported: u32,
    arrived: u32,
    arrived_bytes: usize,
    first_arrival: Option<(Duration, usize)>,
    last_arrival: Option<Duration>,
}

impl Cluster {
    /// The rate the path carried, if the cluster says anything, and whether the path held the probe back (the
    /// receiver got it clearly slower than it left: the rate is the path's capacity).
    fn result(&self) -> Option<(f64, bool)> {
        if f64::from(self.arrived) < MIN_ARRIVED * f64::from(self.sent) || self.arrived < 2 {
            return None;
        }
        let send_span = self
            .last_departure?
            .duration_since(self.first_departure?)
            .as_secs_f64();
        let (first_arrival, first_size) = self.first_arrival?;
        let recv_span = self
            .last_arrival?
            .saturating_sub(first_arrival)
            .as_secs_f64();
        let send = (self.sent_bytes - self.last_size) as f64 * 8.0 / send_span.max(0.001);
        let recv = (self.arrived_bytes - first_size) as f64 * 8.0 / recv_span.max(0.001);
        Some((send.min(recv), recv < 0.9 * send))
    }
}

#[derive(Debug)]
pub struct Prober {
    next_id: u32,
    active: Option<Cluster>,
    next_at: Option<Instant>,
    backoff: Duration,
    /// Probes sent, and those that showed more room.
    pub sent: u32,
    pub succeeded: u32,
}

impl Default for Prober {
    fn default() -> Self {
        Prober {
            next_id: 1,
            active: None,
            next_at: None,
            backoff: FIRST_BACKOFF,
            sent: 0,
            succeeded: 0,
        }
    }
}

impl Prober {
    /// A probe to send now, if one is due: `allowed` says the path is quiet and below the configured rate.
    pub fn due(
        &mut self,
        now: Instant,
        allowed: bool,
        estimate: f64,
        max: f64,
    ) -> Option<ProbeRequest> {
        if !allowed || self.active.is_some() || self.next_at.is_some_and(|t| now < t) {
            return None;
        }
        let bps = (2.0 * estimate).min(max);
        if bps <= estimate * 1.1 {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.sent += 1;
        self.active = Some(Cluster {
            id,
            bps,
            ..Cluster::default()
        });
        let bytes = (bps * DURATION.as_secs_f64() / 8.0) as usize;
        Some(ProbeRequest {
            id,
            bps: bps as u64,
            bytes,
        })
    }

    /// A probe packet of cluster `id` left at `now`; `last` when it was the cluster's last.
    pub fn on_sent(&mut self, id: u32, size: usize, now: Instant, last: bool) {
        if let Some(c) = self.active.as_mut().filter(|c| c.id == id) {
            c.complete |= last;
            c.sent += 1;
            c.sent_bytes += size;
            c.first_departure.get_or_insert(now);
            c.last_departure = Some(now);
            c.last_size = size;
        }
    }

    /// The receiver's word on one probe packet of cluster `id`.
    pub fn on_report(&mut self, id: u32, size: usize, arrival: Option<Duration>) {
        if let Some(c) = self.active.as_mut().filter(|c| c.id == id) {
            c.reported += 1;
            if let Some(a) = arrival {
                c.arrived += 1;
                c.arrived_bytes += size;
                if c.first_arrival.is_none_or(|(f, _)| a < f) {
                    c.first_arrival = Some((a, size));
                }
                c.last_arrival = Some(c.last_arrival.map_or(a, |l| l.max(a)));
            }
        }
    }

    /// The verdict on the cluster under way, once it is in: on success, the rate the path carried and whether
    /// that was the path's limit.
    pub fn verdict(&mut self, now: Instant) -> Option<(f64, bool)> {
        let c = self.active?;
        let all_in = c.complete && c.reported >= c.sent;
        let timed_out = c.last_departure.is_some_and(|t| now >= t + VERDICT_WAIT);
        if !(all_in || timed_out) {
            return None;
        }
        self.active = None;
        match c.result().filter(|(r, _)| *r >= 0.5 * c.bps) {
            Some(r) => {
                self.succeeded += 1;
                self.backoff = FIRST_BACKOFF;
                self.next_at = Some(now + AFTER_SUCCESS);
                Some(r)
            }
            None => {
                self.next_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                None
            }
        }
    }

    /// The cluster under way could not be sent (nothing to send it with): try again after the backoff.
    pub fn abandon(&mut self, now: Instant) {
        if self.active.take().is_some() {
            self.sent -= 1;
            self.next_at = Some(now + self.backoff);
        }
    }

    /// Not before `at` (after a decrease, or when the path was not quiet).
    pub fn hold_until(&mut self, at: Instant) {
        if self.next_at.is_none_or(|t| t < at) {
            self.next_at = Some(at);
        }
    }

    /// When, after `now`, the prober next has something to decide.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        match self.active {
            Some(c) => c.last_departure.map(|t| t + VERDICT_WAIT),
            None => self.next_at,
        }
        .filter(|t| *t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_report(
        p: &mut Prober,
        req: ProbeRequest,
        t0: Instant,
        path_bps: f64,
        lose_every: u32,
    ) -> Option<(f64, bool)> {
        let size = 1000;
        let packets = (req.bytes / size).max(MIN_PACKETS as usize) as u32;
        let gap = Duration::from_secs_f64(size as f64 * 8.0 / req.bps as f64);
        let arrival_gap = Duration::from_secs_f64(size as f64 * 8.0 / path_bps.min(req.bps as f64));
        for i in 0..packets {
            p.on_sent(req.id, size, t0 + gap * i, i + 1 == packets);
        }
        for i in 0..packets {
            let lost = lose_every > 0 && i % lose_every == 0;
            p.on_report(
                req.id,
                size,
                (!lost).then(|| Duration::from_secs(5) + arrival_gap * i),
            );
        }
        p.verdict(t0 + Duration::from_millis(100))
    }

    #[test]
    fn a_probe_through_a_wide_path_shows_its_rate_and_the_next_follows_soon() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let req = p.due(t0, true, 1_000_000.0, 4_000_000.0).unwrap();
        assert_eq!(req.bps, 2_000_000);
        assert!(
            p.due(t0, true, 1_000_000.0, 4_000_000.0).is_none(),
            "one at a time"
        );
        let (r, limited) = send_and_report(&mut p, req, t0, 10_000_000.0, 0).unwrap();
        assert!((r / 2_000_000.0 - 1.0).abs() < 0.05 && !limited, "{r}");
        assert!(p
            .due(t0 + Duration::from_millis(200), true, r, 4_000_000.0)
            .is_none());
        let next = p
            .due(t0 + Duration::from_millis(700), true, r, 4_000_000.0)
            .unwrap();
        assert_eq!(next.bps, 4_000_000, "capped at the configured rate");
    }

    #[test]
    fn a_probe_through_a_narrow_path_shows_the_narrow_rate() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let req = p.due(t0, true, 1_000_000.0, 4_000_000.0).unwrap();
        let (r, limited) = send_and_report(&mut p, req, t0, 1_200_000.0, 0).unwrap();
        assert!((r / 1_200_000.0 - 1.0).abs() < 0.1 && limited, "{r}");
    }

    #[test]
    fn a_lossy_probe_fails_and_the_wait_doubles() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        let req = p.due(t0, true, 1_000_000.0, 4_000_000.0).unwrap();
        assert_eq!(send_and_report(&mut p, req, t0, 10_000_000.0, 2), None);
        let later = t0 + Duration::from_millis(100);
        assert!(p
            .due(
                later + FIRST_BACKOFF - Duration::from_millis(1),
                true,
                1e6,
                4e6
            )
            .is_none());
        let req = p.due(later + FIRST_BACKOFF, true, 1e6, 4e6).unwrap();
        let t1 = later + FIRST_BACKOFF;
        assert_eq!(send_and_report(&mut p, req, t1, 10_000_000.0, 2), None);
        let t2 = t1 + Duration::from_millis(100);
        assert!(p
            .due(
                t2 + FIRST_BACKOFF * 2 - Duration::from_millis(1),
                true,
                1e6,
                4e6
            )
            .is_none());
        assert!(p.due(t2 + FIRST_BACKOFF * 2, true, 1e6, 4e6).is_some());
    }

    #[test]
    fn nothing_to_probe_at_the_configured_rate_or_when_not_allowed() {
        let t0 = Instant::now();
        let mut p = Prober::default();
        assert!(p.due(t0, true, 3_900_000.0, 4_000_000.0).is_none());
        assert!(p.due(t0, false, 1_000_000.0, 4_000_000.0).is_none());
    }
}
