//! The pacer: what leaves when. Video leaves at the pacing rate — the bandwidth estimate — through a token bucket
//! that holds at most [`BURST_TIME`] of sending, so a keyframe is spread over as long as the path needs to carry it
//! instead of flooding its bottleneck queue (and reading, to the estimator, as congestion). Repairs (NACKed
//! packets) and probes leave at their own times ahead of everything; audio is never held behind video. Everything
//! that leaves is counted against the bucket.
use super::bwe::PACKET_OVERHEAD;
use super::sender::RtpPacket;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The most the bucket holds: this long at the pacing rate (1.5× the configured bitrate on a clear path). An
/// ordinary frame leaves at once, in one wake-up of the stream thread; a keyframe, or a frame after the estimate fell,
/// is spread out. libwebrtc's pacer allows 40 ms. 5 ms woke the stream thread 214 times a second at 1080p30 6 Mbit/s
/// (twice as often as OBS hands packets over) and 112 with 20 ms; 40 ms saved only 15 more (replay benchmark).
pub const BURST_TIME: Duration = Duration::from_millis(20);
/// Once the bucket is spent, video waits until it holds this share of [`BURST_TIME`] again: the pacer wakes once
/// per few packets rather than once per packet (each wake-up of the stream thread costs more CPU than sending the
/// packets it releases), with the same rate and the same largest burst. Not the whole bucket: timers fire up to a
/// millisecond late, and a full bucket cannot hold what that millisecond adds — waiting for a full one lost that
/// much sending per wake-up (replay benchmark: video's p99 hand-off → UDP 104 → 126 ms, first frame 24 ms later).
const REFILL_SHARE: f64 = 0.5;
/// …and at least this many bytes (two full packets).
const MIN_BURST: f64 = 2.0 * 1250.0;

/// A packet waiting, and — on the last packet of an OBS packet — that packet's clocks, to measure capture → wire
/// when it leaves.
#[derive(Debug)]
pub struct Scheduled {
    pub packet: RtpPacket,
    pub last_of: Option<(i64, i64)>,
}

/// Why a packet left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Resend,
    /// Of probe cluster `id`; `last` on its last packet.
    Probe {
        id: u32,
        last: bool,
    },
    Audio,
    Video,
}

#[derive(Debug)]
pub struct Pacer {
    rate_bps: f64,
    tokens: f64,
    refilled: Option<Instant>,
    video: VecDeque<Scheduled>,
    video_bytes: usize,
    audio: VecDeque<Scheduled>,
    resend: VecDeque<(Instant, RtpPacket)>,
    probe: VecDeque<(Instant, RtpPacket, Lane)>,
}

fn wire_bytes(p: &RtpPacket) -> f64 {
    (p.payload.len() + PACKET_OVERHEAD) as f64
}

impl Pacer {
    pub fn new(rate_bps: f64) -> Pacer {
        Pacer {
            rate_bps,
            tokens: 0.0,
            refilled: None,
            video: VecDeque::new(),
            video_bytes: 0,
            audio: VecDeque::new(),
            resend: VecDeque::new(),
            probe: VecDeque::new(),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate_bps
    }

    /// Paces video at `bps` from `now` on.
    pub fn set_rate(&mut self, bps: f64, now: Instant) {
        self.refill(now);
        self.rate_bps = bps.max(1.0);
    }

    pub fn push_video(&mut self, s: Scheduled) {
        self.video_bytes += s.packet.payload.len();
        self.video.push_back(s);
    }

    pub fn push_audio(&mut self, s: Scheduled) {
        self.audio.push_back(s);
    }

    /// A repair to leave at `at`, after those due at or before then.
    pub fn push_resend(&mut self, at: Instant, p: RtpPacket) {
        let i = self.resend.partition_point(|(t, _)| *t <= at);
        self.resend.insert(i, (at, p));
    }

    /// A probe cluster: `packets` from `start`, spaced to leave at `bps`.
    pub fn push_probe(&mut self, id: u32, packets: Vec<RtpPacket>, bps: f64, start: Instant) {
        let mut at = start;
        let n = packets.len();
        for (i, p) in packets.into_iter().enumerate() {
            let gap = Duration::from_secs_f64(wire_bytes(&p) * 8.0 / bps.max(1.0));
            self.probe.push_back((
                at,
                p,
                Lane::Probe {
                    id,
                    last: i + 1 == n,
                },
            ));
            at += gap;
        }
    }

    /// How long the video waiting would take to leave at the pacing rate.
    pub fn video_delay(&self) -> Duration {
        Duration::from_secs_f64(self.video_bytes as f64 * 8.0 / self.rate_bps)
    }

    /// The next packet due at `now`: repairs, then probes, then audio, then video when the bucket allows.
    pub fn poll(&mut self, now: Instant) -> Option<(Scheduled, Lane)> {
        self.refill(now);
        let (s, lane) = if self.resend.front().is_some_and(|(at, _)| *at <= now) {
            let (_, packet) = self.resend.pop_front()?;
            (
                Scheduled {
                    packet,
                    last_of: None,
                },
                Lane::Resend,
            )
        } else if self.probe.front().is_some_and(|(at, _, _)| *at <= now) {
            let (_, packet, lane) = self.probe.pop_front()?;
            (
                Scheduled {
                    packet,
                    last_of: None,
                },
                lane,
            )
        } else if let Some(s) = self.audio.pop_front() {
            (s, Lane::Audio)
        } else if self.tokens > 0.0 && !self.video.is_empty() {
            let s = self.video.pop_front()?;
            self.video_bytes -= s.packet.payload.len();
            (s, Lane::Video)
        } else {
            return None;
        };
        self.tokens -= wire_bytes(&s.packet);
        Some((s, lane))
    }

    /// When the next packet is due (after [`Self::poll`] has handed out everything due now).
    pub fn next_due(&self) -> Option<Instant> {
        let video = self.refilled.filter(|_| !self.video.is_empty()).map(|at| {
            if self.tokens > 0.0 {
                at
            } else {
                // A microsecond past the instant the bucket holds its refill share again.
                let short = self.burst() * REFILL_SHARE - self.tokens;
                at + Duration::from_secs_f64(short * 8.0 / self.rate_bps) + Duration::from_micros(1)
            }
        });
        [
            self.resend.front().map(|(at, _)| *at),
            self.probe.front().map(|(at, _, _)| *at),
            self.audio.front().and(self.refilled),
            video,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The most the bucket holds, bytes.
    fn burst(&self) -> f64 {
        (self.rate_bps / 8.0 * BURST_TIME.as_secs_f64()).max(MIN_BURST)
    }

    fn refill(&mut self, now: Instant) {
        let burst = self.burst();
        let Some(last) = self.refilled else {
            self.tokens = burst;
            self.refilled = Some(now);
            return;
        };
        let dt = now.saturating_duration_since(last).as_secs_f64();
        self.tokens = (self.tokens + self.rate_bps / 8.0 * dt).min(burst);
        self.refilled = Some(now.max(last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::packet::MediaKind;
    use bytes::Bytes;

    fn packet(kind: MediaKind, seq: u16, size: usize) -> RtpPacket {
        RtpPacket {
            kind,
            ssrc: 1,
            payload_type: 96,
            seq,
            timestamp: 0,
            marker: false,
            payload: Bytes::from(vec![0; size]),
            transport_seq: None,
        }
    }

    /// `n` full video packets (1250 bytes on the wire each), numbered from 0.
    fn queue_video(p: &mut Pacer, n: u16) {
        for seq in 0..n {
            p.push_video(Scheduled {
                packet: packet(MediaKind::Video, seq, 1192),
                last_of: None,
            });
        }
    }

    /// Runs the pacer from `t0` until it has nothing left; (ms, seq, lane) of what left.
    fn drain(p: &mut Pacer, t0: Instant) -> Vec<(f64, u16, Lane)> {
        drain_woken_late(p, t0, Duration::ZERO)
    }

    /// [`drain`] with every wake-up `late` after the instant asked for, as a timer fires.
    fn drain_woken_late(p: &mut Pacer, t0: Instant, late: Duration) -> Vec<(f64, u16, Lane)> {
        let mut out = Vec::new();
        let mut now = t0;
        for _ in 0..100_000 {
            while let Some((s, lane)) = p.poll(now) {
                out.push((
                    now.duration_since(t0).as_secs_f64() * 1000.0,
                    s.packet.seq,
                    lane,
                ));
            }
            match p.next_due() {
                Some(t) => now = now.max(t + late),
                None => break,
            }
        }
        out
    }

    #[test]
    fn a_keyframe_leaves_at_the_pacing_rate_and_audio_is_not_held_behind_it() {
        let t0 = Instant::now();
        // 1 Mbit/s: 100 packets of 1192 + 58 bytes take 1 s.
        let mut p = Pacer::new(1_000_000.0);
        queue_video(&mut p, 100);
        assert!(
            (p.video_delay().as_secs_f64() - 0.9536).abs() < 0.01,
            "{:?}",
            p.video_delay()
        );
        let first = p.poll(t0);
        assert!(first.is_some());
        p.push_audio(Scheduled {
            packet: packet(MediaKind::Audio, 1000, 200),
            last_of: None,
        });
        let out = drain(&mut p, t0);
        let audio = out.iter().find(|(_, s, _)| *s == 1000).unwrap();
        assert!(audio.0 < 1.0, "audio at {} ms", audio.0);
        let last = out
            .iter()
            .filter(|(_, _, l)| *l == Lane::Video)
            .map(|(t, _, _)| *t)
            .fold(0.0, f64::max);
        // 1 s, less the full bucket it starts with (two packets: 20 ms) and the overdraft the last packet may
        // take (10 ms), plus the audio packet's 2 ms.
        assert!(
            (965.0..990.0).contains(&last),
            "the keyframe took {last} ms"
        );
    }

    #[test]
    fn repairs_and_probes_leave_at_their_times_ahead_of_video() {
        let t0 = Instant::now();
        let mut p = Pacer::new(500_000.0);
        queue_video(&mut p, 20);
        p.push_resend(
            t0 + Duration::from_millis(10),
            packet(MediaKind::Video, 500, 1192),
        );
        let probe: Vec<RtpPacket> = (600..605)
            .map(|s| packet(MediaKind::Video, s, 1192))
            .collect();
        p.push_probe(7, probe, 2_000_000.0, t0 + Duration::from_millis(20));
        let out = drain(&mut p, t0);
        let at = |seq| out.iter().find(|(_, s, _)| *s == seq).unwrap().0;
        assert_eq!(at(500), 10.0);
        assert_eq!(at(600), 20.0);
        assert!(
            (at(604) - 20.0 - 4.0 * 5.0).abs() < 0.01,
            "5 ms apart at 2 Mbit/s: {}",
            at(604)
        );
        assert_eq!(
            out.iter().find(|(_, s, _)| *s == 604).unwrap().2,
            Lane::Probe { id: 7, last: true }
        );
    }

    #[test]
    fn a_long_queue_leaves_a_few_packets_per_wake_up_at_the_rate_and_never_more_than_the_bucket() {
        let t0 = Instant::now();
        // 10 Mbit/s: the bucket holds 25 000 bytes (20 ms), twenty packets of 1250 bytes.
        let mut p = Pacer::new(10_000_000.0);
        queue_video(&mut p, 400);
        let out = drain(&mut p, t0);
        assert_eq!(out.len(), 400);
        let mut wake_ups: Vec<(f64, usize)> = Vec::new();
        for (t, _, _) in &out {
            match wake_ups.last_mut() {
                Some((at, n)) if at == t => *n += 1,
                _ => wake_ups.push((*t, 1)),
            }
        }
        // 500 000 bytes at 10 Mbit/s: 400 ms, less the full bucket it starts with (20 ms).
        let last = out.last().unwrap().0;
        assert!((380.0..390.0).contains(&last), "took {last} ms");
        // The full bucket and the overdraft first (21 packets), then half the bucket a wake-up (10 packets, 11 with
        // the overdraft).
        let most = wake_ups.iter().map(|(_, n)| *n).max().unwrap();
        assert!(most <= 21, "{most} packets at once");
        assert!(
            (30..45).contains(&wake_ups.len()),
            "{} wake-ups for 400 packets",
            wake_ups.len()
        );
    }

    #[test]
    fn a_timer_firing_a_millisecond_late_costs_no_sending() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000_000.0);
        queue_video(&mut p, 400);
        let out = drain_woken_late(&mut p, t0, Duration::from_millis(1));
        // As on time (380–390 ms): what the late millisecond adds still fits in the bucket. Waiting for a full
        // bucket instead (with a 5 ms bucket) took 474 ms instead of 390–400.
        let last = out.last().unwrap().0;
        assert!((380.0..392.0).contains(&last), "took {last} ms");
    }

    #[test]
    fn a_faster_rate_empties_the_queue_sooner() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1_000_000.0);
        queue_video(&mut p, 50);
        p.poll(t0);
        p.set_rate(4_000_000.0, t0);
        let last = drain(&mut p, t0).last().unwrap().0;
        assert!((110.0..130.0).contains(&last), "{last} ms");
    }
}
