//! The hand-off between OBS's threads and the stream worker: a bounded queue that never blocks the caller, with
//! the policy for a full queue, and the counters OBS reads.
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::metrics::Sample;
use crate::session::MAX_LAYERS;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// The worker's end of the hand-off queue.
pub type PacketReceiver = mpsc::Receiver<EncodedPacket>;

/// Sees every packet OBS hands over, on OBS's own thread, before it is queued (it must not block).
pub type PacketWatcher = Arc<dyn Fn(&EncodedPacket) + Send + Sync>;

/// Counters OBS reads from its UI thread (status bar, stats dock).
#[derive(Debug, Default)]
pub struct StreamStats {
    pub bytes_sent: AtomicU64,
    pub video_packets: AtomicU64,
    pub audio_packets: AtomicU64,
    /// Video frames dropped because the queue was full (OBS's "dropped frames").
    pub dropped_frames: AtomicI32,
    pub dropped_audio: AtomicU64,
    pub queued: AtomicUsize,
    /// New sessions the stream worker made after the server lost one (not OBS's reconnects).
    pub republished: AtomicU64,
    /// Milliseconds from `start` until OBS began feeding packets; -1 before that.
    pub connect_time_ms: AtomicI32,
    /// The sink's view of network congestion, 0..1 (`f32` bits): loss the server reports.
    pub network_congestion: AtomicU32,
    /// Where the stream is (a [`crate::metrics::State`]), and the session's latest figures, for the metrics.
    pub state: AtomicU8,
    pub sample: Mutex<Sample>,
    /// The video layers' RTP stream ids and sizes, the full picture (`f`) first; one layer without simulcast.
    pub layer_rids: Vec<String>,
    pub layer_sizes: Vec<(u32, u32)>,
}

impl StreamStats {
    pub fn sample(&self) -> Sample {
        self.sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn network_congestion(&self) -> f32 {
        f32::from_bits(self.network_congestion.load(Ordering::Relaxed))
    }
}

/// What a full queue does to the next packets: drop video until the next keyframe of the same layer (never a
/// partial GOP), drop audio packets one by one.
#[derive(Debug, Default)]
pub struct DropPolicy {
    /// Per video layer (simulcast; the full picture is layer 0).
    waiting_for_keyframe: [bool; MAX_LAYERS],
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Send,
    Drop,
}

impl DropPolicy {
    /// Decides before trying the queue: while waiting for a keyframe, video is dropped without trying.
    pub fn before(&mut self, kind: MediaKind, layer: u8, keyframe: bool) -> Admission {
        let waiting = self.waiting_for_keyframe.get_mut(usize::from(layer));
        if let Some(waiting) = waiting.filter(|w| kind == MediaKind::Video && **w) {
            if keyframe {
                *waiting = false;
            } else {
                return Admission::Drop;
            }
        }
        Admission::Send
    }

    /// The queue refused a packet.
    pub fn refused(&mut self, kind: MediaKind, layer: u8) {
        if let Some(waiting) = self.waiting_for_keyframe.get_mut(usize::from(layer)) {
            *waiting |= kind == MediaKind::Video;
        }
    }
}

/// The producer side, owned by the output and called from OBS's output thread.
pub struct PacketQueue {
    sender: Mutex<Option<mpsc::Sender<EncodedPacket>>>,
    watcher: Option<PacketWatcher>,
    policy: Mutex<DropPolicy>,
    stats: Arc<StreamStats>,
    capacity: usize,
}

impl PacketQueue {
    pub fn new(capacity: usize, stats: Arc<StreamStats>) -> (PacketQueue, PacketReceiver) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let q = PacketQueue {
            sender: Mutex::new(Some(tx)),
            watcher: None,
            policy: Mutex::new(DropPolicy::default()),
            stats,
            capacity,
        };
        (q, rx)
    }

    /// The same queue, with `watcher` seeing every packet pushed.
    pub fn watched(mut self, watcher: Option<PacketWatcher>) -> PacketQueue {
        self.watcher = watcher;
        self
    }

    /// Never blocks. Returns whether the packet was queued.
    pub fn push(&self, packet: EncodedPacket) -> bool {
        if let Some(w) = &self.watcher {
            w(&packet);
        }
        let (kind, layer, keyframe) = (packet.kind, packet.layer, packet.keyframe);
        let mut policy = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if policy.before(kind, layer, keyframe) == Admission::Drop {
            self.count_drop(kind);
            return false;
        }
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = sender.as_ref() else {
            return false;
        };
        match tx.try_send(packet) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) => {
                policy.refused(kind, layer);
                self.count_drop(kind);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    fn count_drop(&self, kind: MediaKind) {
        match kind {
            MediaKind::Video => self.stats.dropped_frames.fetch_add(1, Ordering::Relaxed),
            MediaKind::Audio => self.stats.dropped_audio.fetch_add(1, Ordering::Relaxed) as i32,
        };
    }

    /// Closes the queue: the worker sees the end after at most the packets already queued.
    pub fn close(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Queue fill, 0..1, for OBS's congestion indicator.
    pub fn fill(&self) -> f32 {
        (self.stats.queued.load(Ordering::Relaxed) as f32 / self.capacity as f32).clamp(0.0, 1.0)
    }
}
