//! The receiver's jitter buffer, as a real receiver has one: packets are released in sequence order; a gap is
//! NACKed at once, asked for again every RTT while it lasts, and given up once it is older than a few RTTs — then
//! the packets behind it go on to the depacketizer, which sees the hole. The RTT is learnt from how long
//! retransmissions take. Sans-IO: time is an argument.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Retransmissions asked for per packet before giving up on it.
const MAX_NACKS: u32 = 10;
/// The RTT assumed before a retransmission has been timed.
const INITIAL_RTT: Duration = Duration::from_millis(100);
/// Asked again after the RTT plus this.
const NACK_MARGIN: Duration = Duration::from_millis(20);
/// A gap this much larger than the stream has moved on is a restart, not loss.
const MAX_GAP: u64 = 1000;

#[derive(Debug)]
struct Missing {
    since: Instant,
    last_nack: Option<Instant>,
    first_nack: Option<Instant>,
    nacks: u32,
}

/// What the buffer has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets NACKed (each counted once however often asked for), and NACK requests sent.
    pub packets_nacked: u64,
    pub nack_requests: u64,
    /// NACKed packets that arrived afterwards.
    pub retransmissions_received: u64,
    /// Packets given up on (never arrived in time).
    pub packets_lost: u64,
    pub duplicates: u64,
}

#[derive(Debug)]
pub struct JitterBuffer<P> {
    /// The extended sequence number of the last packet seen (for unwrapping) and of the next to release.
    last: Option<u64>,
    next: Option<u64>,
    /// The highest extended sequence number seen.
    highest: u64,
    held: BTreeMap<u64, P>,
    missing: BTreeMap<u64, Missing>,
    /// Holes given up on that the release has not passed yet.
    skipped: BTreeSet<u64>,
    rtt: Duration,
    pub stats: JitterStats,
}

impl<P> Default for JitterBuffer<P> {
    fn default() -> Self {
        JitterBuffer {
            last: None,
            next: None,
            highest: 0,
            held: BTreeMap::new(),
            missing: BTreeMap::new(),
            skipped: BTreeSet::new(),
            rtt: INITIAL_RTT,
            stats: JitterStats::default(),
        }
    }
}

/// What a call to [`JitterBuffer::poll`] asks for.
#[derive(Debug, Default)]
pub struct Due<P> {
    /// Sequence numbers to NACK now.
    pub nack: Vec<u16>,
    /// Packets released because the gap before them was given up on.
    pub released: Vec<P>,
    /// Whether something was given up on (a keyframe is needed).
    pub gave_up: bool,
}

impl<P> JitterBuffer<P> {
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// How long a gap is waited for: a few round trips, at least 150 ms.
    fn patience(&self) -> Duration {
        (self.rtt * 4 + Duration::from_millis(50)).max(Duration::from_millis(150))
    }

    fn unwrap(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => (1 << 16) + u64::from(seq),
            Some(last) => {
                let delta = seq.wrapping_sub(last as u16) as i16 as i64;
                (last as i64 + delta).max(0) as u64
            }
        };
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        ext
    }

    /// Takes one packet arriving at `now`; returns the packets now releasable, in order.
    pub fn push(&mut self, seq: u16, packet: P, now: Instant) -> Vec<P> {
        let ext = self.unwrap(seq);
        if self.next.is_none() {
            self.next = Some(ext);
            self.highest = ext;
        }
        let next = self.next.unwrap_or(ext);
        if ext < next || self.held.contains_key(&ext) || self.skipped.contains(&ext) {
            self.stats.duplicates += 1;
            return Vec::new();
        }
        if let Some(m) = self.missing.remove(&ext) {
            self.stats.retransmissions_received += 1;
            if let (1, Some(asked)) = (m.nacks, m.first_nack) {
                // Timed by the only request: a round trip.
                let sample = now.saturating_duration_since(asked);
                self.rtt = (self.rtt * 7 + sample) / 8;
            }
        }
        if ext > self.highest + MAX_GAP {
            // The stream restarted: start over from here.
            self.held.clear();
            self.missing.clear();
            self.skipped.clear();
            self.next = Some(ext);
        } else {
            for gap in self.highest + 1..ext {
                self.missing.insert(
                    gap,
                    Missing {
                        since: now,
                        last_nack: None,
                        first_nack: None,
                        nacks: 0,
                    },
                );
            }
        }
        self.highest = self.highest.max(ext);
        self.held.insert(ext, packet);
        self.release()
    }

    /// Everything contiguous from the next expected packet, stepping over holes given up on.
    fn release(&mut self) -> Vec<P> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        loop {
            if let Some(p) = self.held.remove(&next) {
                out.push(p);
            } else if !self.skipped.remove(&next) {
                break;
            }
            next += 1;
        }
        self.next = Some(next);
        out
    }

    /// What is due at `now`: NACKs for new gaps and for gaps whose last request got no answer within an RTT,
    /// and the packets behind gaps given up on.
    pub fn poll(&mut self, now: Instant) -> Due<P> {
        let mut due = Due {
            nack: Vec::new(),
            released: Vec::new(),
            gave_up: false,
        };
        let (patience, retry) = (self.patience(), self.rtt + NACK_MARGIN);
        let mut lost = Vec::new();
        for (&seq, m) in self.missing.iter_mut() {
            if now.saturating_duration_since(m.since) >= patience || m.nacks >= MAX_NACKS {
                lost.push(seq);
            } else if m.last_nack.is_none_or(|t| now >= t + retry) {
                if m.nacks == 0 {
                    self.stats.packets_nacked += 1;
                    m.first_nack = Some(now);
                }
                m.nacks += 1;
                m.last_nack = Some(now);
                due.nack.push(seq as u16);
            }
        }
        if !due.nack.is_empty() {
            self.stats.nack_requests += 1;
        }
        for seq in lost {
            self.missing.remove(&seq);
            self.skipped.insert(seq);
            self.stats.packets_lost += 1;
            due.gave_up = true;
        }
        if due.gave_up {
            due.released = self.release();
        }
        due
    }

    /// When [`Self::poll`] has something to do next.
    pub fn next_due(&self) -> Option<Instant> {
        let (patience, retry) = (self.patience(), self.rtt + NACK_MARGIN);
        self.missing
            .values()
            .map(|m| match m.last_nack {
                None => m.since,
                Some(t) => (t + retry).min(m.since + patience),
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_gap_is_nacked_at_once_and_filled_by_the_retransmission() {
        let t0 = Instant::now();
        let mut j = JitterBuffer::default();
        assert_eq!(j.push(10, 10, t0), vec![10]);
        assert_eq!(j.push(12, 12, t0), Vec::<u16>::new(), "held behind the gap");
        let due = j.poll(t0);
        assert_eq!(due.nack, vec![11]);
        assert!(
            j.poll(ms(t0, 50)).nack.is_empty(),
            "not again within an RTT"
        );
        assert_eq!(j.push(11, 11, ms(t0, 40)), vec![11, 12]);
        assert_eq!(j.stats.retransmissions_received, 1);
        assert_eq!(j.rtt(), (INITIAL_RTT * 7 + Duration::from_millis(40)) / 8);
        assert!(j.next_due().is_none());
    }

    #[test]
    fn unanswered_nacks_are_repeated_then_given_up_and_the_rest_flows() {
        let t0 = Instant::now();
        let mut j = JitterBuffer::default();
        j.push(65534, 0, t0);
        j.push(1, 3, t0); // 65535 and 0 are missing, across the wrap
        let mut asked = 0;
        let mut released = Vec::new();
        let mut t = t0;
        while j.next_due().is_some() {
            t = j.next_due().unwrap().max(t);
            let due = j.poll(t);
            asked += due.nack.len();
            released.extend(due.released);
        }
        assert_eq!(released, vec![3]);
        assert_eq!(j.stats.packets_lost, 2);
        assert!(asked >= 4, "asked {asked} times");
        assert!(t.duration_since(t0) >= Duration::from_millis(150));
        // A packet that turns up after it was given up on is too late.
        assert!(j.push(65535, 1, t).is_empty());
    }
}
