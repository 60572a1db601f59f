//! Send-side bandwidth estimation, sans-IO: how many bits a second the path to the server carries now. Every RTP
//! packet that leaves gets a transport-wide sequence number (the `transport-wide-cc` header extension) and is
//! logged with its size and the instant it left; the server's transport-wide feedback says which arrived and when
//! (on its clock). From that the delay half ([`delay`], [`aimd`]) and the loss half ([`loss`]) each keep a rate
//! and the lower wins; a server's REMB caps it; [`probe`] finds room again after a dip. Without transport-wide
//! feedback (a server that does not negotiate it), the loss that receiver reports give drives the loss half alone.
//! Time is an input; nothing here reads a clock.
pub mod aimd;
pub mod delay;
pub mod loss;
pub mod probe;
#[cfg(test)]
mod tests;

use aimd::{Observed, RateControl, ReceivedRate};
use delay::{DelayDetector, Timing, Usage};
use loss::LossControl;
use probe::{ProbeRequest, Prober};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A packet's bytes on the wire beyond its RTP payload: RTP header (12), transport-wide sequence number (8), SRTP
/// tag (10), UDP (8) and IPv4 (20).
pub const PACKET_OVERHEAD: usize = 58;
/// The estimate may go this far above the rate the streams are configured for. The pacer sends at the estimate —
/// faster, a keyframe would queue in the path's bottleneck and read as congestion — so this is how much faster
/// than the stream's average a keyframe leaves on a clear path.
pub const HEADROOM: f64 = 1.5;
/// The log keeps packets this long for their feedback.
const LOG_KEEP: Duration = Duration::from_secs(5);
/// The window over which unnumbered packets count as received.
const UNNUMBERED_WINDOW: Duration = Duration::from_millis(500);
/// After the path's queue grew and the estimate came down, losses are that queue overflowing (congestion) for
/// this long. (A decrease for loss alone says nothing of the kind: random loss does that too.)
const CONGESTED_AFTER_DROP: Duration = Duration::from_secs(1);

/// What the receiver said about one packet: its transport-wide sequence number and when it arrived on the
/// receiver's clock (None: not received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportAck {
    pub seq: u16,
    pub arrival: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    departure: Instant,
    size: usize,
    probe: Option<u32>,
    reported: bool,
}

/// Sent packets by transport-wide sequence number (numbered in send order, so a number's place is its distance
/// from the oldest kept).
#[derive(Debug, Default)]
struct SentLog {
    first: i64,
    newest: Option<i64>,
    packets: VecDeque<Sent>,
}

impl SentLog {
    fn unwrap(&self, seq: u16) -> i64 {
        match self.newest {
            None => i64::from(seq),
            Some(n) => n + i64::from(seq.wrapping_sub(n as u16) as i16),
        }
    }

    fn add(&mut self, seq: u16, s: Sent) {
        let u = self.unwrap(seq);
        if self.newest.is_some_and(|n| u != n + 1) {
            // Numbers are consecutive; anything else starts the log over.
            self.packets.clear();
        }
        if self.packets.is_empty() {
            self.first = u;
        }
        self.newest = Some(u);
        self.packets.push_back(s);
        while self
            .packets
            .front()
            .is_some_and(|p| s.departure.saturating_duration_since(p.departure) > LOG_KEEP)
        {
            self.packets.pop_front();
            self.first += 1;
        }
    }

    fn get_mut(&mut self, seq: u16) -> Option<&mut Sent> {
        let i = self.unwrap(seq) - self.first;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.packets.get_mut(i))
    }
}

/// What holds the estimate where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The path's queue grew (delay), or the delay half is climbing back.
    Delay,
    /// Packets were lost.
    Loss,
    /// The server's REMB.
    Remb,
    /// Nothing: the configured rate (with headroom).
    Configured,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Delay => "delay",
            Limit::Loss => "loss",
            Limit::Remb => "the server's REMB",
            Limit::Configured => "the configured rate",
        })
    }
}

#[derive(Debug)]
pub struct Bwe {
    log: SentLog,
    delay: DelayDetector,
    rate: RateControl,
    received: ReceivedRate,
    /// The rate at which the packets reported on left (on our clock, from `sent_since`).
    sent: ReceivedRate,
    sent_since: Option<Instant>,
    /// When the estimate last came down for a growing queue.
    last_drop: Option<Instant>,
    /// Packets sent without a transport-wide number in the last [`UNNUMBERED_WINDOW`]: (when, size on the wire).
    unnumbered: VecDeque<(Instant, usize)>,
    loss: LossControl,
    prober: Prober,
    remb: Option<f64>,
    /// Transport-wide feedback has arrived: the delay half is in play.
    transport_feedback: bool,
    /// Probes can be sent (the server took a retransmission stream).
    can_probe: bool,
    min: f64,
    max: f64,
    /// What the streams can use at most (their configured rates, on the wire).
    wanted: f64,
    estimate: f64,
}

impl Bwe {
    /// An estimator for streams configured for `wanted` bit/s (on the wire), starting at [`HEADROOM`] × that (its
    /// most), at least `min`.
    pub fn new(wanted: f64, min: f64) -> Bwe {
        let max = (wanted * HEADROOM).max(min);
        let initial = max;
        Bwe {
            log: SentLog::default(),
            delay: DelayDetector::default(),
            rate: RateControl::new(initial, min, max),
            received: ReceivedRate::default(),
            sent: ReceivedRate::default(),
            sent_since: None,
            unnumbered: VecDeque::new(),
            last_drop: None,
            loss: LossControl::new(initial, min, max),
            prober: Prober::default(),
            remb: None,
            transport_feedback: false,
            can_probe: false,
            min,
            max,
            wanted,
            estimate: initial,
        }
    }

    /// The estimate, bit/s.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// The most the estimate goes to.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// What the streams can use at most.
    pub fn wanted(&self) -> f64 {
        self.wanted
    }

    /// Whether transport-wide feedback has arrived.
    pub fn has_transport_feedback(&self) -> bool {
        self.transport_feedback
    }

    /// The delay detector's verdict, the latest loss counted, and probes sent / successful (for the log).
    pub fn state(&self) -> (Usage, f64, u32, u32) {
        (
            self.delay.usage(),
            self.loss.loss,
            self.prober.sent,
            self.prober.succeeded,
        )
    }

    pub fn set_can_probe(&mut self, yes: bool) {
        self.can_probe = yes;
    }

    /// Packet `seq` (transport-wide) of `payload` bytes left at `now`; `probe`: of that cluster, and its last.
    pub fn on_sent(&mut self, seq: u16, payload: usize, probe: Option<(u32, bool)>, now: Instant) {
        let size = payload + PACKET_OVERHEAD;
        self.log.add(
            seq,
            Sent {
                departure: now,
                size,
                probe: probe.map(|p| p.0),
                reported: false,
            },
        );
        if let Some((id, last)) = probe {
            self.prober.on_sent(id, size, now, last);
        }
    }

    /// Whether the path is congested at `now`: its queue growing, or it grew and the estimate came down within the
    /// last second. Losses then are the queue overflowing, not the random kind more copies of a repair would get
    /// through.
    pub fn congested(&self, now: Instant) -> bool {
        self.delay.usage() == Usage::Overusing
            || self
                .last_drop
                .is_some_and(|t| now.saturating_duration_since(t) < CONGESTED_AFTER_DROP)
    }

    /// A packet without a transport-wide number left at `now` (a stream whose answer did not take the extension):
    /// the receiver's reports cannot say it arrived, so the received rate counts it as it was sent.
    pub fn on_sent_unnumbered(&mut self, payload: usize, now: Instant) {
        self.unnumbered.push_back((now, payload + PACKET_OVERHEAD));
        while self
            .unnumbered
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > UNNUMBERED_WINDOW)
        {
            self.unnumbered.pop_front();
        }
    }

    /// The rate of unnumbered packets over the last [`UNNUMBERED_WINDOW`], bit/s.
    fn unnumbered_bps(&self) -> f64 {
        let bytes: usize = self.unnumbered.iter().map(|(_, size)| size).sum();
        bytes as f64 * 8.0 / UNNUMBERED_WINDOW.as_secs_f64()
    }

    /// Transport-wide feedback arrived at `now`.
    pub fn on_transport_feedback(&mut self, acks: &[TransportAck], rtt: Duration, now: Instant) {
        self.transport_feedback = true;
        let (mut lost, mut total) = (0, 0);
        for ack in acks {
            let Some(s) = self.log.get_mut(ack.seq) else {
                continue;
            };
            if s.reported {
                continue;
            }
            s.reported = true;
            let s = *s;
            total += 1;
            let since = *self.sent_since.get_or_insert(s.departure);
            self.sent
                .add(s.departure.saturating_duration_since(since), s.size);
            match ack.arrival {
                None => lost += 1,
                Some(arrival) => {
                    self.received.add(arrival, s.size);
                    self.delay.add(
                        Timing {
                            departure: s.departure,
                            arrival,
                        },
                        now,
                    );
                }
            }
            if let Some(id) = s.probe {
                self.prober.on_report(id, s.size, ack.arrival);
            }
        }
        self.received.mark();
        let unnumbered = self.unnumbered_bps();
        let seen = Observed {
            usage: self.delay.usage(),
            overuse_signals: self.delay.overuse_signals(),
            received: self.received.bps().map(|r| r + unnumbered),
            peak: self.received.peak().map(|r| r + unnumbered),
            sent: self.sent.long_bps().map(|r| r + unnumbered),
        };
        let decreased = self.rate.last_decrease;
        self.rate.update(seen, rtt, now);
        if self.rate.last_decrease != decreased {
            self.received.forget_peaks();
        }
        self.loss.count(lost, total, self.estimate, rtt, now);
        self.judge_probe(now);
        self.combine(now);
    }

    /// A receiver report's loss (0..1), used when there is no transport-wide feedback.
    pub fn on_receiver_loss(&mut self, loss: f64, rtt: Duration, now: Instant) {
        if !self.transport_feedback {
            self.loss.apply(loss, self.estimate, rtt, now);
            self.combine(now);
        }
    }

    /// The server's REMB: at most this much.
    pub fn on_remb(&mut self, bps: f64, now: Instant) {
        self.remb = Some(bps);
        self.combine(now);
    }

    /// A probe to send now, if one is due.
    pub fn probe_due(&mut self, now: Instant) -> Option<ProbeRequest> {
        let quiet = self.transport_feedback
            && self.can_probe
            && self.delay.usage() == Usage::Normal
            && self.loss.loss < loss::LOW_LOSS
            && self.remb.is_none_or(|r| r > self.estimate * 1.2)
            && self.estimate < 0.9 * self.wanted;
        self.prober.due(now, quiet, self.estimate, self.max)
    }

    /// The probe just asked for could not be sent.
    pub fn probe_abandoned(&mut self, now: Instant) {
        self.prober.abandon(now);
    }

    /// Time passed: a probe whose feedback never came is judged.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.judge_probe(now);
        self.combine(now);
    }

    /// When, after `now`, the estimator next has something to decide.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.prober.next_due(now)
    }

    fn judge_probe(&mut self, now: Instant) {
        if let Some((bps, _limited)) = self.prober.verdict(now) {
            self.rate.probed(bps, now);
            self.loss.probed(bps);
        }
    }

    /// What holds the estimate where it is.
    pub fn limit(&self) -> Limit {
        let (delay, loss) = (self.rate.target(), self.loss.target());
        let e = self.estimate;
        if e >= self.max {
            Limit::Configured
        } else if self.remb.is_some_and(|r| r <= e) {
            Limit::Remb
        } else if self.transport_feedback && delay <= loss {
            Limit::Delay
        } else {
            Limit::Loss
        }
    }

    fn combine(&mut self, now: Instant) {
        let mut e = if self.transport_feedback {
            self.rate.target().min(self.loss.target())
        } else {
            self.loss.target()
        };
        if let Some(r) = self.remb {
            e = e.min(r);
        }
        let e = e.clamp(self.min, self.max);
        if e < self.estimate * 0.95 {
            self.prober.hold_until(now + probe::AFTER_DECREASE);
            if self.delay.usage() == Usage::Overusing {
                self.last_drop = Some(now);
            }
        }
        self.estimate = e;
    }
}
