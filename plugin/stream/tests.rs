//! The queue policy and the stop handshake, without libobs: a fake OBS output records what the worker asks of it,
//! and sinks of our own stand in for the network.
use super::*;
use bytes::Bytes;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc as std_mpsc;

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
        layer: 0,
        handoff_usec: 0,
    }
}

#[test]
fn full_queue_drops_video_until_the_next_keyframe() {
    let stats = Arc::new(StreamStats::default());
    let (q, mut rx) = PacketQueue::new(2, stats.clone());
    assert!(q.push(pkt(MediaKind::Video, true, 0)));
    assert!(q.push(pkt(MediaKind::Video, false, 1)));
    assert!(!q.push(pkt(MediaKind::Video, false, 2)), "queue is full");
    assert_eq!(q.fill(), 1.0);
    // Drain one slot: a P-frame still may not pass (its reference was dropped).
    rx.try_recv().unwrap();
    stats.queued.fetch_sub(1, Ordering::Relaxed);
    assert!(!q.push(pkt(MediaKind::Video, false, 3)));
    // Audio is independent of the video keyframe wait.
    assert!(q.push(pkt(MediaKind::Audio, false, 0)));
    rx.try_recv().unwrap();
    stats.queued.fetch_sub(1, Ordering::Relaxed);
    assert!(
        q.push(pkt(MediaKind::Video, true, 4)),
        "a keyframe resumes video"
    );
    assert_eq!(stats.dropped_frames.load(Ordering::Relaxed), 2);
    let mut rest = Vec::new();
    while let Ok(p) = rx.try_recv() {
        rest.push(p.pts);
    }
    assert_eq!(rest, vec![0, 4]);
}

#[test]
fn closed_queue_refuses_without_blocking() {
    let stats = Arc::new(StreamStats::default());
    let (q, mut rx) = PacketQueue::new(4, stats);
    q.close();
    assert!(!q.push(pkt(MediaKind::Audio, false, 0)));
    assert!(rx.blocking_recv().is_none());
}

/// What the worker asked of OBS, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Begin,
    End,
    Signal(StopCode),
    LastError(String),
    TapsOpened,
    TapsClosed,
}

/// An OBS output that records the worker's calls; `reconnecting` is what libobs would answer.
#[derive(Clone)]
struct FakeObs {
    calls: Arc<Mutex<Vec<Call>>>,
    reconnecting: bool,
    deliver: Arc<Mutex<Option<Deliver>>>,
}

struct FakeTaps(Arc<Mutex<Vec<Call>>>);

impl Drop for FakeTaps {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(Call::TapsClosed);
    }
}

impl FakeObs {
    fn new(reconnecting: bool) -> Self {
        FakeObs {
            calls: Arc::default(),
            reconnecting,
            deliver: Arc::default(),
        }
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    /// An encoder delivers a packet through the taps.
    fn encode(&self, p: EncodedPacket) {
        if let Some(d) = self.deliver.lock().unwrap().as_ref() {
            d(p);
        }
    }
}

impl ObsOutput for FakeObs {
    type Taps = FakeTaps;
    fn initialize_encoders(&self) -> bool {
        true
    }
    fn begin_data_capture(&self) -> bool {
        self.record(Call::Begin);
        true
    }
    fn end_data_capture(&self) {
        self.record(Call::End);
    }
    fn signal_stop(&self, code: StopCode) {
        self.record(Call::Signal(code));
    }
    fn set_last_error(&self, message: &str) {
        self.record(Call::LastError(message.into()));
    }
    fn reconnecting(&self) -> bool {
        self.reconnecting
    }
    fn tap_encoders(&self, deliver: Deliver) -> Result<FakeTaps, String> {
        *self.deliver.lock().unwrap() = Some(deliver);
        self.record(Call::TapsOpened);
        Ok(FakeTaps(self.calls.clone()))
    }
}

/// A sink that forwards what it gets to the test and fails when told to.
struct ChannelSink {
    got: std_mpsc::Sender<i64>,
    fail_at: Option<i64>,
    /// The failure at `fail_at` asks for a new session.
    republish: bool,
    closed: Arc<AtomicBool>,
}

impl PacketSink for ChannelSink {
    fn run(
        &mut self,
        packets: &mut PacketReceiver,
        stats: &StreamStats,
        stop: &StopFlag,
    ) -> Option<Failure> {
        while let Some(p) = packets.blocking_recv() {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            if *stop.borrow() {
                return None;
            }
            if Some(p.pts) == self.fail_at {
                return Some(Failure {
                    republish: self.republish,
                    ..Failure::new(StopCode::Disconnected, "link lost")
                });
            }
            let _ = self.got.send(p.pts);
        }
        None
    }
    fn close(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// Starts a stream whose connector succeeds at once with a [`ChannelSink`].
fn start(
    obs: &FakeObs,
    fail_at: Option<i64>,
) -> (Stream<FakeObs>, std_mpsc::Receiver<i64>, Arc<AtomicBool>) {
    let (tx, got) = std_mpsc::channel();
    let closed = Arc::new(AtomicBool::new(false));
    let sink_closed = closed.clone();
    let connector: Connector = Box::new(move |_stop| {
        Ok(Box::new(ChannelSink {
            got: tx.clone(),
            fail_at,
            republish: false,
            closed: sink_closed.clone(),
        }) as Box<dyn PacketSink>)
    });
    let stream = Stream::start(obs.clone(), connector, 16, Arc::default(), true, None, None);
    (stream, got, closed)
}

/// Waits (bounded) until `done` holds for the calls OBS saw.
fn wait_for_calls(obs: &FakeObs, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
    for _ in 0..500 {
        let calls = obs.calls();
        if done(&calls) {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("OBS never saw the expected calls: {:?}", obs.calls());
}

#[test]
fn a_stop_while_streaming_closes_the_taps_then_ends_capture_then_tears_down() {
    let obs = FakeObs::new(false);
    let (stream, got, closed) = start(&obs, None);
    wait_for_calls(&obs, |c| c.contains(&Call::Begin));
    obs.encode(pkt(MediaKind::Video, true, 0));
    assert_eq!(got.recv_timeout(Duration::from_secs(5)), Ok(0));
    stream.stop();
    let calls = wait_for_calls(&obs, |c| c.contains(&Call::End));
    assert_eq!(
        calls,
        [Call::TapsOpened, Call::Begin, Call::TapsClosed, Call::End]
    );
    assert_eq!(join_workers(Duration::from_secs(5)), 0);
    assert!(closed.load(Ordering::SeqCst), "the sink was torn down");
    // Packets after the stop go nowhere.
    obs.encode(pkt(MediaKind::Video, true, 1));
    assert!(got.try_recv().is_err());
}

#[test]
fn a_failure_is_signalled_once_and_a_later_stop_is_answered_at_once() {
    // libobs does not reconnect (e.g. the streamer disabled it): it ends capture itself on the signal, and the
    // stop OBS still hands us afterwards needs its own end_data_capture.
    let obs = FakeObs::new(false);
    let (stream, _got, closed) = start(&obs, Some(1));
    wait_for_calls(&obs, |c| c.contains(&Call::Begin));
    obs.encode(pkt(MediaKind::Video, true, 0));
    obs.encode(pkt(MediaKind::Video, false, 1));
    wait_for_calls(&obs, |c| c.iter().any(|x| matches!(x, Call::Signal(_))));
    assert_eq!(join_workers(Duration::from_secs(5)), 0);
    assert!(closed.load(Ordering::SeqCst));
    let before_stop = obs.calls();
    assert_eq!(
        before_stop,
        [
            Call::TapsOpened,
            Call::Begin,
            Call::TapsClosed,
            Call::LastError("link lost".into()),
            Call::Signal(StopCode::Disconnected)
        ]
    );
    stream.stop();
    assert_eq!(
        obs.calls().last(),
        Some(&Call::End),
        "the stop is answered by stop() itself"
    );
    assert_eq!(obs.calls().len(), before_stop.len() + 1);
}

#[test]
fn a_stop_during_the_connect_ends_capture_once_without_signalling_a_failure() {
    let obs = FakeObs::new(false);
    let (entered_tx, entered) = std_mpsc::channel();
    let connector: Connector = Box::new(move |mut stop: StopFlag| {
        entered_tx.send(()).unwrap();
        // A connect that gives up as soon as the stop flag turns, as the WebRTC connector does.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(10), stop.wait_for(|s| *s)).await;
        });
        Err(Failure::new(StopCode::Success, "stopped while connecting"))
    });
    let stream = Stream::start(obs.clone(), connector, 16, Arc::default(), true, None, None);
    entered.recv_timeout(Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    stream.stop();
    wait_for_calls(&obs, |c| c.contains(&Call::End));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the connect did not give up"
    );
    assert_eq!(join_workers(Duration::from_secs(5)), 0);
    assert_eq!(
        obs.calls(),
        [Call::End],
        "no capture began, no failure was signalled"
    );
}

/// Sinks and refusals, one per connect, in order: a connector for publishing again.
fn scripted(outcomes: Vec<Result<ChannelSink, Failure>>, calls: Arc<AtomicUsize>) -> Connector {
    let outcomes = Mutex::new(outcomes.into_iter());
    Box::new(move |_stop| {
        calls.fetch_add(1, Ordering::SeqCst);
        let next = outcomes.lock().unwrap().next().expect("a scripted outcome");
        next.map(|s| Box::new(s) as Box<dyn PacketSink>)
    })
}

/// Encodes video packets numbered from `from` until the test receives one (bounded).
fn encode_until_received(obs: &FakeObs, got: &std_mpsc::Receiver<i64>, from: i64) -> i64 {
    for n in from..from + 500 {
        obs.encode(pkt(MediaKind::Video, true, n));
        if let Ok(pts) = got.recv_timeout(Duration::from_millis(10)) {
            return pts;
        }
    }
    panic!("no packet reached a sink");
}

#[test]
fn a_session_the_server_lost_is_published_again_without_stopping_obs() {
    // The server's session is gone (a failure marked republish): the worker closes that sink and connects again
    // — the server refuses once (it is still starting), then takes the new session — while OBS's capture and
    // taps run on, untouched: no stop signalled, no second begin.
    let obs = FakeObs::new(false);
    let (tx, got) = std_mpsc::channel();
    let (first_closed, second_closed) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let sink = |fail_at, closed: &Arc<AtomicBool>| ChannelSink {
        got: tx.clone(),
        fail_at,
        republish: true,
        closed: closed.clone(),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = scripted(
        vec![
            Ok(sink(Some(1), &first_closed)),
            Err(Failure::new(StopCode::ConnectFailed, "connection refused")),
            Ok(sink(None, &second_closed)),
        ],
        calls.clone(),
    );
    let stats = Arc::new(StreamStats::default());
    let stream = Stream::start(obs.clone(), connector, 16, stats.clone(), true, None, None);
    wait_for_calls(&obs, |c| c.contains(&Call::Begin));
    assert_eq!(encode_until_received(&obs, &got, 0), 0);
    obs.encode(pkt(MediaKind::Video, true, 1));
    let later = encode_until_received(&obs, &got, 2);
    assert!(later >= 2, "{later}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        first_closed.load(Ordering::SeqCst),
        "the lost session was closed"
    );
    assert_eq!(stats.republished.load(Ordering::Relaxed), 1);
    assert_eq!(stats.state.load(Ordering::Relaxed), State::Streaming as u8);
    assert_eq!(obs.calls(), [Call::TapsOpened, Call::Begin]);
    stream.stop();
    wait_for_calls(&obs, |c| c.contains(&Call::End));
    assert_eq!(join_workers(Duration::from_secs(5)), 0);
    assert!(second_closed.load(Ordering::SeqCst));
}

#[test]
fn publishing_again_ends_with_a_refusal_that_trying_again_cannot_change() {
    // The new session is refused for good (the token was revoked meanwhile): OBS hears that refusal with the
    // loss, at once, and does not reconnect into it.
    let obs = FakeObs::new(false);
    let (tx, _got) = std_mpsc::channel();
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = scripted(
        vec![
            Ok(ChannelSink {
                got: tx,
                fail_at: Some(0),
                republish: true,
                closed: Arc::default(),
            }),
            Err(Failure::new(
                StopCode::InvalidStream,
                "the token was refused",
            )),
        ],
        calls.clone(),
    );
    let stats = Arc::new(StreamStats::default());
    let _stream = Stream::start(obs.clone(), connector, 16, stats.clone(), true, None, None);
    wait_for_calls(&obs, |c| c.contains(&Call::Begin));
    obs.encode(pkt(MediaKind::Video, true, 0));
    let seen = wait_for_calls(&obs, |c| c.iter().any(|x| matches!(x, Call::Signal(_))));
    assert_eq!(
        seen[2..],
        [
            Call::TapsClosed,
            Call::LastError("link lost; publishing again failed: the token was refused".into()),
            Call::Signal(StopCode::InvalidStream)
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(stats.republished.load(Ordering::Relaxed), 0);
    assert_eq!(join_workers(Duration::from_secs(5)), 0);
}
