//! One stream's life outside OBS's threads: the bounded hand-off queue that `encoded_packet` pushes into, and the
//! worker thread that connects, begins OBS's data capture, forwards packets to a [`PacketSink`] and tears down.
//!
//! OBS's threads only ever `try_send` into the queue or flip flags; the worker does everything that can wait.
use crate::media::latency::LatencyHistogram;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::obs::log;
use crate::obs::output::OutputHandle;
use crate::signal::{Failure, StopCode};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// Milliseconds from `start` until OBS began feeding packets; -1 before that.
    pub connect_time_ms: AtomicI32,
    /// The sink's view of network congestion, 0..1 (`f32` bits): loss the server reports.
    pub network_congestion: AtomicU32,
}

impl StreamStats {
    pub fn network_congestion(&self) -> f32 {
        f32::from_bits(self.network_congestion.load(Ordering::Relaxed))
    }
}

/// What a full queue does to the next packets: drop video until the next keyframe (never a partial GOP), drop
/// audio packets one by one.
#[derive(Debug, Default)]
pub struct DropPolicy {
    waiting_for_keyframe: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Send,
    Drop,
}

impl DropPolicy {
    /// Decides before trying the queue: while waiting for a keyframe, video is dropped without trying.
    pub fn before(&mut self, kind: MediaKind, keyframe: bool) -> Admission {
        if kind == MediaKind::Video && self.waiting_for_keyframe {
            if keyframe {
                self.waiting_for_keyframe = false;
            } else {
                return Admission::Drop;
            }
        }
        Admission::Send
    }

    /// The queue refused a packet.
    pub fn refused(&mut self, kind: MediaKind) {
        if kind == MediaKind::Video {
            self.waiting_for_keyframe = true;
        }
    }
}

/// The producer side, owned by the output and called from OBS's output thread.
pub struct PacketQueue {
    sender: Mutex<Option<SyncSender<EncodedPacket>>>,
    policy: Mutex<DropPolicy>,
    stats: Arc<StreamStats>,
    capacity: usize,
}

impl PacketQueue {
    pub fn new(capacity: usize, stats: Arc<StreamStats>) -> (PacketQueue, Receiver<EncodedPacket>) {
        let capacity = capacity.max(1);
        let (tx, rx) = sync_channel(capacity);
        let q = PacketQueue {
            sender: Mutex::new(Some(tx)),
            policy: Mutex::new(DropPolicy::default()),
            stats,
            capacity,
        };
        (q, rx)
    }

    /// Never blocks. Returns whether the packet was queued.
    pub fn push(&self, packet: EncodedPacket) -> bool {
        let (kind, keyframe) = (packet.kind, packet.keyframe);
        let mut policy = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        if policy.before(kind, keyframe) == Admission::Drop {
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
                policy.refused(kind);
                self.count_drop(kind);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
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

/// Where packets go once connected: the WebRTC session, or the diagnostic recorder.
pub trait PacketSink: Send {
    /// Sends one packet; returns the bytes it put on the wire.
    fn send(&mut self, packet: &EncodedPacket) -> Result<u64, Failure>;
    /// Tears the session down (runs on the worker thread, after OBS was told the stream stopped).
    fn close(&mut self);
    /// Network congestion as the sink sees it, 0..1 (e.g. from the server's loss reports).
    fn congestion(&self) -> f32 {
        0.0
    }
}

/// Something that can produce a connected sink (signalling, ICE, DTLS) — run on the worker thread. It must give
/// up promptly once the flag it is handed turns true (the output was stopped or destroyed, or the module unloads).
pub type Connector =
    Box<dyn FnOnce(Arc<AtomicBool>) -> Result<Box<dyn PacketSink>, Failure> + Send>;

/// Threads that outlive an output (teardown after OBS destroyed it). Module unload waits for them.
static WORKERS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

fn keep_worker(handle: JoinHandle<()>) {
    let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    workers.retain(|w| !w.is_finished());
    workers.push(handle);
}

/// Waits for every stream worker to end, up to `deadline`; returns how many were still running.
pub fn join_workers(deadline: Duration) -> usize {
    let until = Instant::now() + deadline;
    loop {
        let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
        let (done, running): (Vec<_>, Vec<_>) = workers.drain(..).partition(|w| w.is_finished());
        for w in done {
            let _ = w.join();
        }
        let left = running.len();
        *workers = running;
        drop(workers);
        if left == 0 || Instant::now() >= until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Who answers OBS's stop. libobs waits (in `obs_output_destroy`, for one) for an `obs_output_end_data_capture`
/// after every stop it hands us — also when our worker has already ended capture after a failure, or is waiting
/// for OBS to reconnect, and `obs_output_force_stop` reached us anyway. A running worker answers the request on its
/// way out; once it is done, `stop` answers at once.
#[derive(Debug, Default)]
struct Ending {
    stop_requested: bool,
    worker_done: bool,
}

/// While taps feed the stream, the packets OBS hands the main output (through its interleaver) are not sent:
/// only their capture → hand-off delay is kept, to show in the log what the interleaver would have added.
#[derive(Default)]
struct InterleavedProbe {
    video: LatencyHistogram,
    audio: LatencyHistogram,
}

/// Control of one running stream, held by the output.
pub struct Stream {
    pub queue: Arc<PacketQueue>,
    /// Packets come from encoder taps ([`OutputHandle::tap_encoders`]), not from the main output's callback.
    direct: Arc<AtomicBool>,
    probe: Arc<Mutex<Option<InterleavedProbe>>>,
    stopping: Arc<AtomicBool>,
    ending: Arc<Mutex<Ending>>,
    output: OutputHandle,
}

impl Stream {
    /// Spawns the worker: connect, begin capture, forward packets until stopped or failed. With `direct`, the
    /// worker takes packets from encoder taps, bypassing libobs's interleaver (falling back to it if a tap
    /// cannot be opened).
    pub fn start(
        output: OutputHandle,
        connector: Connector,
        capacity: usize,
        stats: Arc<StreamStats>,
        direct: bool,
    ) -> Stream {
        let (queue, rx) = PacketQueue::new(capacity, stats.clone());
        let queue = Arc::new(queue);
        let direct = Arc::new(AtomicBool::new(direct));
        let probe = Arc::new(Mutex::new(None));
        let stopping = Arc::new(AtomicBool::new(false));
        let ending = Arc::new(Mutex::new(Ending::default()));
        let (worker_output, worker_stopping, worker_ending) =
            (output.clone(), stopping.clone(), ending.clone());
        let feed = Feed {
            queue: queue.clone(),
            direct: direct.clone(),
            probe: probe.clone(),
        };
        let started = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("rtc-studio-stream".into())
            .spawn(move || {
                let answered = run_worker(
                    &worker_output,
                    connector,
                    rx,
                    feed,
                    stats,
                    worker_stopping,
                    started,
                );
                let mut e = worker_ending.lock().unwrap_or_else(|e| e.into_inner());
                e.worker_done = true;
                let must_end = e.stop_requested && !answered;
                drop(e);
                if must_end {
                    worker_output.end_data_capture();
                }
            });
        match spawned {
            Ok(handle) => keep_worker(handle),
            Err(e) => {
                // start() already returned true: OBS must hear that the stream ended.
                fail(
                    &output,
                    &Failure::new(
                        StopCode::Error,
                        format!("cannot start the stream thread: {e}"),
                    ),
                    false,
                );
                ending.lock().unwrap_or_else(|e| e.into_inner()).worker_done = true;
            }
        }
        Stream {
            queue,
            direct,
            probe,
            stopping,
            ending,
            output,
        }
    }

    /// A packet OBS handed the main output (on OBS's output thread): queued, unless taps feed the stream.
    pub fn offer(&self, packet: EncodedPacket) {
        if !self.direct.load(Ordering::SeqCst) {
            self.queue.push(packet);
            return;
        }
        if packet.sys_dts_usec > 0 {
            let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
            let probe = probe.get_or_insert_with(InterleavedProbe::default);
            let h = match packet.kind {
                MediaKind::Video => &mut probe.video,
                MediaKind::Audio => &mut probe.audio,
            };
            h.record(packet.handoff_usec - packet.sys_dts_usec);
        }
    }

    /// Lets the worker wind down without touching OBS's capture: for a stream being replaced (OBS restarts the
    /// output to reconnect) or destroyed.
    pub fn abandon(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.queue.close();
    }

    /// OBS asked to stop. Returns at once; the worker ends capture and tears down in the background — or, if it
    /// has already ended (after a failure, e.g. while OBS waits to reconnect), capture is ended here.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.queue.close();
        let mut e = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        e.stop_requested = true;
        let must_end = e.worker_done;
        drop(e);
        if must_end {
            self.output.end_data_capture();
        }
    }
}

/// Reports a failure to OBS. Returns whether that answered a stop request (`asked`: one was made before): libobs
/// ends capture itself on `obs_output_signal_stop` unless it is going to reconnect.
fn fail(output: &OutputHandle, err: &Failure, asked: bool) -> bool {
    log::error(&format!("stream failed: {}", err.message));
    output.set_last_error(&err.message);
    output.signal_stop(err.code);
    asked && !output.reconnecting()
}

/// Forwards queued packets to the sink until the queue closes, `stopping` turns true or the sink fails (the
/// failure is returned). The stream worker's loop, also driven by the replay benchmark.
pub fn pump(
    rx: &Receiver<EncodedPacket>,
    sink: &mut dyn PacketSink,
    stats: &StreamStats,
    stopping: &AtomicBool,
) -> Option<Failure> {
    while let Ok(packet) = rx.recv() {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        match sink.send(&packet) {
            Ok(bytes) => {
                stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                stats
                    .network_congestion
                    .store(sink.congestion().to_bits(), Ordering::Relaxed);
                match packet.kind {
                    MediaKind::Video => stats.video_packets.fetch_add(1, Ordering::Relaxed),
                    MediaKind::Audio => stats.audio_packets.fetch_add(1, Ordering::Relaxed),
                };
            }
            Err(err) => return Some(err),
        }
    }
    None
}

/// How packets reach the worker's queue.
struct Feed {
    queue: Arc<PacketQueue>,
    direct: Arc<AtomicBool>,
    probe: Arc<Mutex<Option<InterleavedProbe>>>,
}

impl Feed {
    /// Opens encoder taps when asked for; on failure packets come through the interleaver instead.
    fn open_taps(&self, output: &OutputHandle) -> Option<crate::obs::tap::EncoderTaps> {
        if !self.direct.load(Ordering::SeqCst) {
            log::info("packets come through OBS's interleaver (as asked in the output settings)");
            return None;
        }
        let queue = self.queue.clone();
        match output.tap_encoders(Arc::new(move |p| {
            queue.push(p);
        })) {
            Ok(taps) => {
                log::info("packets come straight from the encoders (OBS's interleaver bypassed)");
                Some(taps)
            }
            Err(e) => {
                log::warn(&format!(
                    "packets come through OBS's interleaver (adds latency): {e}"
                ));
                self.direct.store(false, Ordering::SeqCst);
                None
            }
        }
    }

    fn log_probe(&self) {
        if let Some(p) = self
            .probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            log::info(&format!(
                "OBS's interleaver (bypassed) handed the same packets over at capture + video {}; audio {}",
                p.video.summary(),
                p.audio.summary()
            ));
        }
    }
}

/// Runs one stream; returns whether it ended OBS's data capture after a stop had been requested (which answers
/// that request). A failure reported before any stop request answers nothing.
fn run_worker(
    output: &OutputHandle,
    connector: Connector,
    rx: Receiver<EncodedPacket>,
    feed: Feed,
    stats: Arc<StreamStats>,
    stopping: Arc<AtomicBool>,
    started: Instant,
) -> bool {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> bool {
        let mut sink = match connector(stopping.clone()) {
            Ok(sink) => sink,
            Err(err) => {
                if stopping.load(Ordering::SeqCst) {
                    output.end_data_capture();
                    return true;
                }
                return fail(output, &err, false);
            }
        };
        if stopping.load(Ordering::SeqCst) {
            output.end_data_capture();
            sink.close();
            return true;
        }
        // Taps first, so they see the encoders' very first packets (a keyframe); then OBS's own capture, which
        // signals "started" to the frontend.
        let taps = feed.open_taps(output);
        if !output.begin_data_capture() {
            drop(taps);
            let asked = stopping.load(Ordering::SeqCst);
            let answered = fail(
                output,
                &Failure::new(
                    StopCode::Error,
                    "OBS could not start sending encoded data to RTC Studio",
                ),
                asked,
            );
            sink.close();
            return answered;
        }
        stats.connect_time_ms.store(
            started.elapsed().as_millis().min(i32::MAX as u128) as i32,
            Ordering::Relaxed,
        );
        log::info(&format!(
            "streaming (connected in {} ms)",
            started.elapsed().as_millis()
        ));
        let failure = pump(&rx, sink.as_mut(), &stats, &stopping);
        // No packet reaches the queue once the taps are closed. Then tell OBS (the streamer sees "stopped" at
        // once), then tear down.
        drop(taps);
        let asked = stopping.load(Ordering::SeqCst);
        let answered = match &failure {
            Some(err) => fail(output, err, asked),
            None => {
                output.end_data_capture();
                true
            }
        };
        drop(rx);
        sink.close();
        feed.log_probe();
        log::info(&format!(
            "stream ended: {} video and {} audio packets, {} bytes, {} frames dropped",
            stats.video_packets.load(Ordering::Relaxed),
            stats.audio_packets.load(Ordering::Relaxed),
            stats.bytes_sent.load(Ordering::Relaxed),
            stats.dropped_frames.load(Ordering::Relaxed)
        ));
        answered
    }));
    match outcome {
        Ok(answered) => answered,
        Err(payload) => {
            let msg = crate::obs::guard::panic_message(&*payload).to_string();
            let asked = stopping.load(Ordering::SeqCst);
            fail(
                output,
                &Failure::new(StopCode::Error, format!("RTC Studio internal error: {msg}")),
                asked,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(kind: MediaKind, keyframe: bool, n: i64) -> EncodedPacket {
        EncodedPacket {
            kind,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            pts: n,
            dts: n,
            timebase_num: 1,
            timebase_den: 30,
            keyframe,
            dts_usec: 0,
            sys_dts_usec: 0,
            track: 0,
            handoff_usec: 0,
        }
    }

    #[test]
    fn full_queue_drops_video_until_the_next_keyframe() {
        let stats = Arc::new(StreamStats::default());
        let (q, rx) = PacketQueue::new(2, stats.clone());
        assert!(q.push(pkt(MediaKind::Video, true, 0)));
        assert!(q.push(pkt(MediaKind::Video, false, 1)));
        assert!(!q.push(pkt(MediaKind::Video, false, 2)), "queue is full");
        assert_eq!(q.fill(), 1.0);
        // Drain one slot: a P-frame still may not pass (its reference was dropped).
        rx.recv().unwrap();
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        assert!(!q.push(pkt(MediaKind::Video, false, 3)));
        // Audio is independent of the video keyframe wait.
        assert!(q.push(pkt(MediaKind::Audio, false, 0)));
        rx.recv().unwrap();
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        assert!(
            q.push(pkt(MediaKind::Video, true, 4)),
            "a keyframe resumes video"
        );
        assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 2);
        let rest: Vec<i64> = rx.try_iter().map(|p| p.pts).collect();
        assert_eq!(rest, vec![0, 4]);
    }

    #[test]
    fn closed_queue_refuses_without_blocking() {
        let stats = Arc::new(StreamStats::default());
        let (q, rx) = PacketQueue::new(4, stats);
        q.close();
        assert!(!q.push(pkt(MediaKind::Audio, false, 0)));
        assert!(rx.recv().is_err());
    }
}
