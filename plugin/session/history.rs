//! What was sent, kept long enough to send again when the server NACKs it: per stream, every RTP packet of the
//! last [`Retention`] — by time, not by count, so a high bitrate does not shorten it below a round trip or a second.
//! A packet is re-sent at most once per round trip however often it is asked for (duplicate NACKs).
use super::sender::RtpPacket;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Kept at least this long, and at least three round trips, but never longer than [`MAX_RETENTION`].
pub const MIN_RETENTION: Duration = Duration::from_secs(1);
pub const MAX_RETENTION: Duration = Duration::from_secs(3);

/// How long the history keeps a packet given the round-trip time (when known).
pub fn retention(rtt: Option<Duration>) -> Duration {
    rtt.map_or(MIN_RETENTION, |r| {
        (r * 3).clamp(MIN_RETENTION, MAX_RETENTION)
    })
}

#[derive(Debug)]
struct Sent {
    at: Instant,
    packet: RtpPacket,
    resent_at: Option<Instant>,
}

/// Why a NACKed packet was not sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotResent {
    /// Older than the history keeps (or never sent).
    Gone,
    /// Already re-sent within the last round trip.
    TooSoon,
}

/// One stream's history. Packets are recorded in send order, which for one SSRC is sequence order, so a
/// sequence number's place is its distance from the oldest.
#[derive(Debug, Default)]
pub struct SendHistory {
    packets: VecDeque<Sent>,
}

impl SendHistory {
    /// Records a packet sent at `now`, forgetting those older than `keep`.
    pub fn record(&mut self, packet: &RtpPacket, now: Instant, keep: Duration) {
        self.packets.push_back(Sent {
            at: now,
            packet: packet.clone(),
            resent_at: None,
        });
        while self
            .packets
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > keep)
        {
            self.packets.pop_front();
        }
    }

    /// The packet with `seq` to send again at `now`, unless it is older than `keep` (or gone) or was re-sent
    /// within `rtt`.
    pub fn resend(
        &mut self,
        seq: u16,
        now: Instant,
        rtt: Duration,
        keep: Duration,
    ) -> Result<RtpPacket, NotResent> {
        let first = self.packets.front().ok_or(NotResent::Gone)?.packet.seq;
        let index = usize::from(seq.wrapping_sub(first));
        let sent = self
            .packets
            .get_mut(index)
            .filter(|s| s.packet.seq == seq && now.saturating_duration_since(s.at) <= keep)
            .ok_or(NotResent::Gone)?;
        if sent.resent_at.is_some_and(|t| now < t + rtt) {
            return Err(NotResent::TooSoon);
        }
        sent.resent_at = Some(now);
        Ok(sent.packet.clone())
    }

    /// The packets sent within `window` before `now`, newest first (at most 64).
    pub fn recent(&self, now: Instant, window: Duration) -> Vec<RtpPacket> {
        self.packets
            .iter()
            .rev()
            .take_while(|s| now.saturating_duration_since(s.at) <= window)
            .take(64)
            .map(|s| s.packet.clone())
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.packets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::packet::MediaKind;
    use bytes::Bytes;

    fn packet(seq: u16) -> RtpPacket {
        RtpPacket {
            kind: MediaKind::Video,
            ssrc: 1,
            payload_type: 102,
            seq,
            timestamp: 0,
            marker: false,
            payload: Bytes::from_static(b"x"),
            transport_seq: None,
        }
    }

    #[test]
    fn packets_are_kept_by_time_and_found_across_the_wrap() {
        let t0 = Instant::now();
        let mut h = SendHistory::default();
        // 2 s at 1000 packets a second, sequence numbers wrapping in the middle.
        for i in 0..2000u16 {
            let at = t0 + Duration::from_millis(u64::from(i));
            h.record(&packet(64_536u16.wrapping_add(i)), at, retention(None));
        }
        let now = t0 + Duration::from_millis(1999);
        assert_eq!(h.len(), 1001, "one second kept");
        let (rtt, keep) = (Duration::from_millis(50), retention(None));
        assert_eq!(
            h.resend(3, now, rtt, keep).map(|p| p.seq),
            Ok(3),
            "after the wrap"
        );
        assert_eq!(
            h.resend(65_535, now, rtt, keep).map(|p| p.seq),
            Ok(65_535),
            "before it"
        );
        assert_eq!(
            h.resend(64_600, now, rtt, keep),
            Err(NotResent::Gone),
            "older than a second"
        );
        assert_eq!(
            h.resend(2000, now, rtt, keep),
            Err(NotResent::Gone),
            "never sent"
        );
        assert!(h.resend(500, now, rtt, keep).is_ok());
        let soon = now + Duration::from_millis(49);
        assert_eq!(h.resend(500, soon, rtt, keep), Err(NotResent::TooSoon));
        assert!(h
            .resend(500, now + Duration::from_millis(50), rtt, keep)
            .is_ok());
        // Nothing sent since: what has aged past a second is gone all the same.
        let later = now + Duration::from_secs(2);
        assert_eq!(h.resend(4, later, rtt, keep), Err(NotResent::Gone));
    }

    #[test]
    fn retention_follows_the_round_trip_within_bounds() {
        assert_eq!(retention(None), MIN_RETENTION);
        assert_eq!(retention(Some(Duration::from_millis(100))), MIN_RETENTION);
        assert_eq!(
            retention(Some(Duration::from_millis(500))),
            Duration::from_millis(1500)
        );
        assert_eq!(retention(Some(Duration::from_secs(5))), MAX_RETENTION);
    }
}
