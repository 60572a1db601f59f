//! One stream's life outside OBS's threads: the bounded hand-off queue that `encoded_packet` pushes into, and the
//! worker thread that connects, begins OBS's data capture, forwards packets to a [`PacketSink`] and tears down.
//!
//! OBS's threads only ever `try_send` into the queue or flip flags; the worker does everything that can wait.
use crate::media::latency::LatencyHistogram;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::metrics::State;
use crate::obs::log;
use crate::obs::output::OutputHandle;
use crate::obs::tap::{Deliver, EncoderTaps};
use crate::signal::{Failure, StopCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod queue;
pub use queue::{Admission, DropPolicy, PacketQueue, PacketReceiver, PacketWatcher, StreamStats};
/// Turns true once the stream is to stop (the output was stopped or destroyed, or the module unloads); readable
/// at once and awaitable.
pub type StopFlag = watch::Receiver<bool>;

/// Where packets go once connected: the WebRTC session, or the diagnostic recorder.
pub trait PacketSink: Send {
    /// Forwards queued packets until the queue closes or `stop` turns true (None), or the sink fails (the
    /// failure). Keeps `stats` current for OBS (bytes, packets, the queue's fill, congestion).
    fn run(
        &mut self,
        packets: &mut PacketReceiver,
        stats: &StreamStats,
        stop: &StopFlag,
    ) -> Option<Failure>;
    /// Tears the session down (runs on the worker thread, after OBS was told the stream stopped).
    fn close(&mut self);
    /// Once closed: OBS's counters with everything the session sent (bytes, video and audio packets) — what left
    /// while it closed too. None: nothing more than `run` counted.
    fn sent_in_all(&self) -> Option<(u64, u64, u64)> {
        None
    }
}

/// Closes `sink` and brings OBS's counters up to what it sent in all.
fn close_counted(sink: &mut dyn PacketSink, stats: &StreamStats) {
    sink.close();
    if let Some((bytes, video, audio)) = sink.sent_in_all() {
        stats.bytes_sent.store(bytes, Ordering::Relaxed);
        stats.video_packets.store(video, Ordering::Relaxed);
        stats.audio_packets.store(audio, Ordering::Relaxed);
    }
}

/// Something that can produce a connected sink (signalling, ICE, DTLS) — run on the worker thread, again for
/// each new session after a [`Failure::republish`]. It must give up promptly once the flag it is handed turns true.
pub type Connector = Box<dyn FnMut(StopFlag) -> Result<Box<dyn PacketSink>, Failure> + Send>;

/// After a failure marked [`Failure::republish`], new sessions are tried for this long before OBS's reconnect
/// (with its own delay, 2 s by default, and backoff) takes over.
pub const REPUBLISH_WINDOW: Duration = Duration::from_secs(10);
/// Between attempts to publish again while the server refuses or cannot be reached.
pub const REPUBLISH_RETRY: Duration = Duration::from_millis(250);

/// What the stream worker asks of OBS for one output: libobs through [`OutputHandle`], or a fake in tests.
pub trait ObsOutput: Clone + Send + Sync + 'static {
    type Taps;
    /// Initialises the output's encoders unless they are already.
    fn initialize_encoders(&self) -> bool;
    fn begin_data_capture(&self) -> bool;
    fn end_data_capture(&self);
    fn signal_stop(&self, code: StopCode);
    fn set_last_error(&self, message: &str);
    /// Whether libobs is waiting to restart the output (after a `Disconnected` stop).
    fn reconnecting(&self) -> bool;
    /// Packets straight from the output's encoders to `deliver`, while the returned taps live.
    fn tap_encoders(&self, deliver: Deliver) -> Result<Self::Taps, String>;
}

impl ObsOutput for OutputHandle {
    type Taps = EncoderTaps;
    fn initialize_encoders(&self) -> bool {
        OutputHandle::initialize_encoders(self)
    }
    fn begin_data_capture(&self) -> bool {
        OutputHandle::begin_data_capture(self)
    }
    fn end_data_capture(&self) {
        OutputHandle::end_data_capture(self)
    }
    fn signal_stop(&self, code: StopCode) {
        OutputHandle::signal_stop(self, code)
    }
    fn set_last_error(&self, message: &str) {
        OutputHandle::set_last_error(self, message)
    }
    fn reconnecting(&self) -> bool {
        OutputHandle::reconnecting(self)
    }
    fn tap_encoders(&self, deliver: Deliver) -> Result<EncoderTaps, String> {
        OutputHandle::tap_encoders(self, deliver)
    }
}

/// Taps on encoders besides the output's own (simulcast layers), begun with the output's taps and ended with them.
pub trait ExtraTaps: Send + Sync {
    /// Starts them; their packets go to `deliver`.
    fn begin(&self, deliver: Deliver) -> Result<(), String>;
    /// Ends them: no packet is delivered afterwards.
    fn end(&self);
}

/// Threads that outlive an output (teardown after OBS destroyed it). Module unload waits for them.
static WORKERS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `work` on a thread named `name` that module unload waits for ([`join_workers`]).
pub(crate) fn spawn_worker(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> std::io::Result<()> {
    let handle = std::thread::Builder::new().name(name.into()).spawn(work)?;
    let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
    workers.retain(|w| !w.is_finished());
    workers.push(handle);
    Ok(())
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
    /// The worker ended OBS's capture on its way out (after a stop, or because the stop's closing of the queue
    /// ended it before `stop` got here).
    worker_ended_capture: bool,
}

/// While taps feed the stream, the packets OBS hands the main output (through its interleaver) are not sent:
/// only their capture → hand-off delay is kept, to show in the log what the interleaver would have added.
#[derive(Default)]
struct InterleavedProbe {
    video: LatencyHistogram,
    audio: LatencyHistogram,
}

/// Control of one running stream, held by the output.
pub struct Stream<O: ObsOutput = OutputHandle> {
    pub queue: Arc<PacketQueue>,
    /// Packets come from encoder taps ([`ObsOutput::tap_encoders`]), not from the main output's callback.
    direct: Arc<AtomicBool>,
    probe: Arc<Mutex<Option<InterleavedProbe>>>,
    stopping: Arc<watch::Sender<bool>>,
    ending: Arc<Mutex<Ending>>,
    output: O,
}

impl<O: ObsOutput> Stream<O> {
    /// Spawns the worker: connect, begin capture, forward packets until stopped or failed. With `direct`, the
    /// worker takes packets from encoder taps, bypassing libobs's interleaver (falling back to it if a tap
    /// cannot be opened).
    pub fn start(
        output: O,
        connector: Connector,
        capacity: usize,
        stats: Arc<StreamStats>,
        direct: bool,
        watcher: Option<PacketWatcher>,
        extra: Option<Arc<dyn ExtraTaps>>,
    ) -> Stream<O> {
        let (queue, rx) = PacketQueue::new(capacity, stats.clone());
        let queue = Arc::new(queue.watched(watcher));
        let direct = Arc::new(AtomicBool::new(direct));
        let probe = Arc::new(Mutex::new(None));
        let stopping = Arc::new(watch::Sender::new(false));
        let ending = Arc::new(Mutex::new(Ending::default()));
        let (worker_output, worker_stopping, worker_ending) =
            (output.clone(), stopping.subscribe(), ending.clone());
        let feed = Feed {
            queue: queue.clone(),
            direct: direct.clone(),
            probe: probe.clone(),
            extra,
        };
        let started = Instant::now();
        let spawned = spawn_worker("rtc-studio-stream", move || {
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
            e.worker_ended_capture = answered;
            let must_end = e.stop_requested && !answered;
            drop(e);
            if must_end {
                worker_output.end_data_capture();
            }
        });
        if let Err(e) = spawned {
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
        if packet.sys_dts_usec > 0 && packet.layer == 0 {
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
        self.stopping.send_replace(true);
        self.queue.close();
    }

    /// OBS asked to stop. Returns at once; the worker ends capture and tears down in the background — or, if it
    /// has already ended (after a failure, e.g. while OBS waits to reconnect), capture is ended here.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
        self.queue.close();
        let mut e = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        e.stop_requested = true;
        let must_end = e.worker_done && !e.worker_ended_capture;
        drop(e);
        if must_end {
            self.output.end_data_capture();
        }
    }
}

/// Reports a failure to OBS. Returns whether that answered a stop request (`asked`: one was made before): libobs
/// ends capture itself on `obs_output_signal_stop` unless it is going to reconnect.
fn fail(output: &impl ObsOutput, err: &Failure, asked: bool) -> bool {
    log::error(&format!("stream failed: {}", err.message));
    output.set_last_error(&err.message);
    output.signal_stop(err.code);
    asked && !output.reconnecting()
}

/// How packets reach the worker's queue.
struct Feed {
    queue: Arc<PacketQueue>,
    direct: Arc<AtomicBool>,
    probe: Arc<Mutex<Option<InterleavedProbe>>>,
    extra: Option<Arc<dyn ExtraTaps>>,
}

/// The taps a stream has open: the output's own, and any extra ones (ended when dropped).
struct OpenTaps<T> {
    _own: Option<T>,
    extra: Option<Arc<dyn ExtraTaps>>,
}

impl<T> Drop for OpenTaps<T> {
    fn drop(&mut self) {
        if let Some(extra) = &self.extra {
            extra.end();
        }
    }
}

impl Feed {
    /// Opens encoder taps when asked for (on failure packets come through the interleaver instead), and the
    /// extra taps after them.
    fn open_taps<O: ObsOutput>(&self, output: &O) -> OpenTaps<O::Taps> {
        let own = self.open_own_taps(output);
        let extra = match (&own, &self.extra) {
            (Some(_), Some(extra)) => {
                let queue = self.queue.clone();
                match extra.begin(Arc::new(move |p| {
                    queue.push(p);
                })) {
                    Ok(()) => Some(extra.clone()),
                    Err(e) => {
                        log::warn(&format!("simulcast layers could not start: {e}"));
                        extra.end();
                        None
                    }
                }
            }
            (None, Some(_)) => {
                log::warn("simulcast layers need packets straight from the encoders: only the full picture goes");
                None
            }
            _ => None,
        };
        OpenTaps { _own: own, extra }
    }

    fn open_own_taps<O: ObsOutput>(&self, output: &O) -> Option<O::Taps> {
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
/// that request). A failure reported before any stop request answers nothing. A panic becomes an OBS error.
fn run_worker(
    output: &impl ObsOutput,
    connector: Connector,
    rx: PacketReceiver,
    feed: Feed,
    stats: Arc<StreamStats>,
    stopping: StopFlag,
    started: Instant,
) -> bool {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        connect_and_stream(output, connector, rx, &feed, &stats, &stopping, started)
    }));
    let end = match output.reconnecting() {
        true => State::Reconnecting,
        false => State::Stopped,
    };
    end.store(&stats.state);
    match outcome {
        Ok(answered) => answered,
        Err(payload) => {
            let msg = crate::obs::guard::panic_message(&*payload).to_string();
            let asked = *stopping.borrow();
            fail(
                output,
                &Failure::new(StopCode::Error, format!("RTC Studio internal error: {msg}")),
                asked,
            )
        }
    }
}

/// Connects, begins OBS's capture, forwards packets until stopped or failed, ends capture, tears down.
fn connect_and_stream(
    output: &impl ObsOutput,
    mut connector: Connector,
    mut rx: PacketReceiver,
    feed: &Feed,
    stats: &StreamStats,
    stopping: &StopFlag,
    started: Instant,
) -> bool {
    let mut sink = match connector(stopping.clone()) {
        Ok(sink) => sink,
        Err(_) if *stopping.borrow() => {
            output.end_data_capture();
            return true;
        }
        Err(err) => return fail(output, &err, false),
    };
    if *stopping.borrow() {
        output.end_data_capture();
        sink.close();
        return true;
    }
    // Encoders not initialised at the start are now (see `RtcOutput::start`). Taps first, so they see the
    // encoders' very first packets (a keyframe); then OBS's own capture, which signals "started" to the frontend.
    let initialized = output.initialize_encoders();
    let taps = initialized.then(|| feed.open_taps(output));
    if !initialized || !output.begin_data_capture() {
        drop(taps);
        let could_not = Failure::new(
            StopCode::Error,
            match initialized {
                true => "OBS could not start sending encoded data to RTC Studio",
                false => "OBS could not initialise the encoders for RTC Studio",
            },
        );
        let answered = fail(output, &could_not, *stopping.borrow());
        sink.close();
        return answered;
    }
    let connect_ms = started.elapsed().as_millis();
    stats
        .connect_time_ms
        .store(connect_ms.min(i32::MAX as u128) as i32, Ordering::Relaxed);
    State::Streaming.store(&stats.state);
    log::info(&format!("streaming (connected in {connect_ms} ms)"));
    let failure = loop {
        let failure = sink.run(&mut rx, stats, stopping);
        let lost = match failure {
            Some(f) if f.republish && !*stopping.borrow() => f,
            other => break other,
        };
        log::warn(&format!("{}: publishing again at once", lost.message));
        State::Reconnecting.store(&stats.state);
        close_counted(sink.as_mut(), stats);
        match republish(&mut connector, &mut rx, stats, stopping, &lost) {
            Ok(new) => {
                sink = new;
                stats.republished.fetch_add(1, Ordering::Relaxed);
                // The new session's figures count from zero (a counter reset to whoever scrapes them).
                *stats.sample.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
                State::Streaming.store(&stats.state);
                // What the old session freed and the new one did not take again.
                crate::obs::return_free_memory();
            }
            // The old sink is closed already; closing it again does nothing.
            Err(gave_up) => break gave_up,
        }
    };
    // No packet reaches the queue once the taps are closed. Then tell OBS (the streamer sees "stopped" at once),
    // then tear down.
    drop(taps);
    let answered = match &failure {
        Some(err) => fail(output, err, *stopping.borrow()),
        None => {
            output.end_data_capture();
            true
        }
    };
    drop(rx);
    close_counted(sink.as_mut(), stats);
    drop(sink);
    crate::obs::return_free_memory();
    feed.log_probe();
    log::info(&format!(
        "stream ended: {} video and {} audio packets, {} bytes, {} frames dropped",
        stats.video_packets.load(Ordering::Relaxed),
        stats.audio_packets.load(Ordering::Relaxed),
        stats.bytes_sent.load(Ordering::Relaxed),
        stats.dropped_frames.load(Ordering::Relaxed)
    ));
    answered
}

/// Publishes again after a lost session: new sessions until one connects, the server refuses for good, the stop
/// flag turns or [`REPUBLISH_WINDOW`] ends. Packets queued meanwhile are stale and dropped (the new session starts
/// with a keyframe it asks for). Err(None): stopped; Err(Some(failure)): given up — `lost`'s code (OBS reconnects)
/// while the server could not be reached, the refusal's own (a token no longer valid) otherwise.
fn republish(
    connector: &mut Connector,
    rx: &mut PacketReceiver,
    stats: &StreamStats,
    stopping: &StopFlag,
    lost: &Failure,
) -> Result<Box<dyn PacketSink>, Option<Failure>> {
    let began = Instant::now();
    for attempt in 1.. {
        flush(rx, stats);
        let result = connector(stopping.clone());
        flush(rx, stats);
        if *stopping.borrow() {
            if let Ok(mut sink) = result {
                sink.close();
            }
            return Err(None);
        }
        let err = match result {
            Ok(sink) => {
                log::info(&format!(
                    "published again: a new session after {attempt} attempt(s), {} ms after the loss",
                    began.elapsed().as_millis()
                ));
                return Ok(sink);
            }
            Err(err) => err,
        };
        // Refusals that will not change by trying again end it (a token no longer valid, a wrong URL).
        let transient = matches!(err.code, StopCode::ConnectFailed | StopCode::Disconnected);
        if !transient || began.elapsed() + REPUBLISH_RETRY >= REPUBLISH_WINDOW {
            let code = if transient { lost.code } else { err.code };
            let message = format!("{}; publishing again failed: {}", lost.message, err.message);
            return Err(Some(Failure::new(code, message)));
        }
        log::warn(&format!(
            "publishing again, attempt {attempt}: {}",
            err.message
        ));
        if wait_or_stop(REPUBLISH_RETRY, stopping) {
            return Err(None);
        }
    }
    unreachable!("the attempts are bounded by the window")
}

/// Drops what is queued (counted out of the queue's fill).
fn flush(rx: &mut PacketReceiver, stats: &StreamStats) {
    while rx.try_recv().is_ok() {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits `time`, or less if the stop flag turns; returns whether it did.
fn wait_or_stop(time: Duration, stopping: &StopFlag) -> bool {
    let until = Instant::now() + time;
    while Instant::now() < until {
        if *stopping.borrow() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    *stopping.borrow()
}

#[cfg(test)]
mod tests;
