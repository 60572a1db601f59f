//! Keyframes on request: a picture-loss indication (PLI) or full intra request (FIR) from the server asks the
//! encoder for a keyframe — at most every [`MIN_KEYFRAME_INTERVAL`], so a burst of requests (several viewers, or
//! one repeating itself) costs one keyframe — and the time from the request to the next keyframe on the wire is
//! measured, whatever brought it (the request, or the keyframe interval).
use super::{Action, Session};
use crate::media::latency::LatencyHistogram;
use crate::media::packet::{EncodedPacket, MediaKind};
use std::time::{Duration, Instant};

pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct KeyframeRequests {
    /// The oldest request not yet answered by a keyframe.
    waiting_since: Option<Instant>,
    last_ask: Option<Instant>,
    /// Times the encoder was asked.
    pub asked: u64,
    /// Request → keyframe on the wire, µs.
    pub waits: LatencyHistogram,
}

impl Session {
    /// The server asked for a keyframe (PLI or FIR).
    pub(super) fn keyframe_requested(&mut self) {
        let k = &mut self.keyframes;
        k.waiting_since.get_or_insert(self.now);
        if k.last_ask
            .is_some_and(|t| self.now < t + MIN_KEYFRAME_INTERVAL)
        {
            return;
        }
        k.last_ask = Some(self.now);
        k.asked += 1;
        self.act(Action::RequestKeyframe);
    }

    /// A media packet goes out: a keyframe answers the request under way.
    pub(super) fn keyframe_check(&mut self, p: &EncodedPacket) {
        if p.kind != MediaKind::Video || !p.keyframe {
            return;
        }
        if let Some(since) = self.keyframes.waiting_since.take() {
            let waited = self.now.saturating_duration_since(since);
            self.keyframes.waits.record(waited.as_micros() as i64);
        }
    }
}
