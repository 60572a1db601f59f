//! Keyframes on request: a picture-loss indication (PLI) or full intra request (FIR) from the server asks the
//! encoder of the layer it names for a keyframe — at most every [`MIN_KEYFRAME_INTERVAL`] per layer, so a burst of
//! requests (several viewers, or one repeating itself) costs one keyframe — and the time from the request to the
//! next keyframe on the wire is measured, whatever brought it (the request, or the keyframe interval).
use super::io::MAX_LAYERS;
use super::{Action, Session};
use crate::media::latency::LatencyHistogram;
use crate::media::packet::{EncodedPacket, MediaKind};
use std::time::{Duration, Instant};

pub const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// One layer's requests.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    /// The oldest request not yet answered by a keyframe.
    waiting_since: Option<Instant>,
    last_ask: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct KeyframeRequests {
    layers: [Pending; MAX_LAYERS],
    /// Times an encoder was asked.
    pub asked: u64,
    /// Request → keyframe on the wire, µs.
    pub waits: LatencyHistogram,
}

impl Session {
    /// The server asked for a keyframe (PLI or FIR) of video layer `layer`.
    pub(super) fn keyframe_requested(&mut self, layer: usize) {
        let Some(k) = self.keyframes.layers.get_mut(layer) else {
            return;
        };
        k.waiting_since.get_or_insert(self.now);
        if k.last_ask
            .is_some_and(|t| self.now < t + MIN_KEYFRAME_INTERVAL)
        {
            return;
        }
        k.last_ask = Some(self.now);
        self.keyframes.asked += 1;
        self.act(Action::RequestKeyframe(layer));
    }

    /// A media packet of video layer `layer` goes out: a keyframe answers the request under way.
    pub(super) fn keyframe_check(&mut self, layer: usize, p: &EncodedPacket) {
        if p.kind != MediaKind::Video || !p.keyframe {
            return;
        }
        let Some(k) = self.keyframes.layers.get_mut(layer) else {
            return;
        };
        if let Some(since) = k.waiting_since.take() {
            let waited = self.now.saturating_duration_since(since);
            self.keyframes.waits.record(waited.as_micros() as i64);
        }
    }
}
