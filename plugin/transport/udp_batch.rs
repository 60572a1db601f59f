//! A frame's RTP packets leave in one UDP send: the peer connection's sockets hold what its driver sends while it
//! works through a burst, and send it, once the driver has nothing more to do, as UDP GSO runs (one `sendmsg` for
//! many same-size datagrams to one address; the kernel or the network card cuts them apart).
//!
//! webrtc-rs's driver takes one RTP packet per loop turn and hands each to its socket alone, so its own GSO
//! batching never sees more than one datagram. It sends through the [`Runtime`] it is given, so this is a Tokio
//! runtime of webrtc-rs's whose UDP sockets batch. Nothing is held longer than the rest of the runtime's current
//! turn: the flush is a task on the same runtime, which runs as soon as the driver waits again.
//!
//! The run-making is [`Batch`] (pure, unit-tested); [`BatchedSocket`] is its socket.
//!
//! **Not in use yet** (a peer connection would take it with `PeerConnectionBuilder::with_runtime(Arc::new(
//! BatchingRuntime))`): it saved ~12 % of the stream thread's CPU at 1080p, but on a 1.5 Mbit/s bottleneck the
//! simulcast half-size layer kept fewer frames whole with it (223–666, median 358, over five runs; 394–664, median
//! 590, over four without) — within the spread of that test, yet in the wrong direction for the work that matters
//! most, so it waits for a study of how it meets the delay-based estimate.
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, EcnCodepoint, JoinHandle,
    RecvMeta, Runtime, TokioRuntime, Transmit,
};

/// The most datagrams one GSO send carries (Linux's limit, `UDP_MAX_SEGMENTS`, on older kernels; newer ones take 128).
const MAX_SEGMENTS: usize = 64;
/// The most bytes one GSO send carries: all of them travel as one IP packet to the point where they are cut.
const MAX_RUN_BYTES: usize = 60_000;
/// How much may wait for the flush; a sender with more waits for it (as it would for a full socket buffer).
const MAX_PENDING_BYTES: usize = 256 * 1024;

/// Datagrams one GSO send can carry together: one destination, one segment size (the last may be shorter).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    to: SocketAddr,
    ecn: Option<EcnCodepoint>,
    src_ip: Option<IpAddr>,
    /// Where its bytes are in [`Batch::bytes`].
    start: usize,
    end: usize,
    segment: usize,
    /// Whether another datagram may join (not after a shorter one, which must be the last).
    open: bool,
}

impl Run {
    fn segments(&self) -> usize {
        match self.segment {
            0 => 1,
            s => (self.end - self.start).div_ceil(s),
        }
    }
}

/// One send of a batch: `segment_size` set when it carries more than one datagram.
#[derive(Debug, PartialEq)]
pub(crate) struct RunSend<'a> {
    pub to: SocketAddr,
    pub ecn: Option<EcnCodepoint>,
    pub src_ip: Option<IpAddr>,
    pub contents: &'a [u8],
    pub segment_size: Option<usize>,
    pub segments: usize,
}

/// Datagrams waiting to be sent, in order, grouped into the runs one GSO send each can carry.
#[derive(Debug)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    runs: VecDeque<Run>,
    max_segments: usize,
}

impl Batch {
    pub fn new(max_segments: usize) -> Batch {
        Batch {
            bytes: Vec::new(),
            runs: VecDeque::new(),
            max_segments: max_segments.clamp(1, MAX_SEGMENTS),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Appends `t`'s datagrams (one, or its GSO segments); false, and nothing appended, when the batch is full.
    pub fn push(&mut self, t: &Transmit<'_>) -> bool {
        if !self.is_empty() && self.bytes.len() + t.contents.len() > MAX_PENDING_BYTES {
            return false;
        }
        match t.segment_size {
            Some(s) if s > 0 && s < t.contents.len() => {
                for datagram in t.contents.chunks(s) {
                    self.push_one(t, datagram);
                }
            }
            _ => self.push_one(t, t.contents),
        }
        true
    }

    fn push_one(&mut self, t: &Transmit<'_>, datagram: &[u8]) {
        let start = self.bytes.len();
        let len = datagram.len();
        self.bytes.extend_from_slice(datagram);
        let max_segments = self.max_segments;
        let joins = |r: &Run| {
            r.open
                && (r.to, r.ecn, r.src_ip) == (t.destination, t.ecn, t.src_ip)
                && (1..=r.segment).contains(&len)
                && r.segments() < max_segments
                && r.end - r.start + len <= MAX_RUN_BYTES
        };
        match self.runs.back_mut() {
            Some(r) if joins(r) => {
                r.end += len;
                r.open = len == r.segment;
            }
            _ => self.runs.push_back(Run {
                to: t.destination,
                ecn: t.ecn,
                src_ip: t.src_ip,
                start,
                end: start + len,
                segment: len,
                open: len > 0,
            }),
        }
    }

    /// The next send.
    pub fn front(&self) -> Option<RunSend<'_>> {
        self.runs.front().map(|r| RunSend {
            to: r.to,
            ecn: r.ecn,
            src_ip: r.src_ip,
            contents: &self.bytes[r.start..r.end],
            segment_size: (r.segments() > 1).then_some(r.segment),
            segments: r.segments(),
        })
    }

    /// The next send is done (or given up).
    pub fn pop_front(&mut self) {
        self.runs.pop_front();
        if self.runs.is_empty() {
            self.bytes.clear();
        }
    }

    /// The next send's datagrams as sends of their own, and every later datagram alone too (the socket cannot send
    /// GSO runs).
    pub fn split_front(&mut self) {
        let Some(r) = self.runs.pop_front() else {
            return;
        };
        let mut parts = Vec::new();
        let mut at = r.start;
        while at < r.end {
            let end = (at + r.segment.max(1)).min(r.end);
            parts.push(Run {
                start: at,
                end,
                segment: end - at,
                open: false,
                ..r
            });
            at = end;
        }
        for p in parts.into_iter().rev() {
            self.runs.push_front(p);
        }
        self.max_segments = 1;
    }
}

/// Counts of one socket's sends (for tests and benchmarks).
#[derive(Debug, Default)]
pub struct SendCounts {
    /// `sendmsg` calls made.
    pub sends: AtomicU64,
    /// Datagrams those carried.
    pub datagrams: AtomicU64,
    /// Sends the system refused (the datagrams are dropped, as the driver would have).
    pub failed: AtomicU64,
}

/// All batched sockets' counts since the process started.
pub static TOTALS: SendCounts = SendCounts {
    sends: AtomicU64::new(0),
    datagrams: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

impl SendCounts {
    fn add(&self, sends: u64, datagrams: u64, failed: u64) {
        for (c, n) in [
            (&self.sends, sends),
            (&self.datagrams, datagrams),
            (&self.failed, failed),
        ] {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct State {
    batch: Batch,
    /// Senders waiting for the batch to drain.
    waiting: Vec<Waker>,
    /// The socket has been dropped: the flush ends once the batch is out.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    inner: Arc<dyn AsyncUdpSocket>,
    state: Mutex<State>,
    flush: tokio::sync::Notify,
    counts: SendCounts,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends what waits; Ready once the batch is empty.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state();
        loop {
            let gso = self.inner.max_gso_segments();
            let Some(send) = state.batch.front() else {
                return Poll::Ready(());
            };
            let segments = send.segments;
            if segments > gso {
                state.batch.split_front();
                continue;
            }
            let transmit = Transmit {
                destination: send.to,
                ecn: send.ecn,
                contents: send.contents,
                segment_size: send.segment_size,
                src_ip: send.src_ip,
            };
            match self.inner.poll_send(cx, &transmit) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(_)) => {
                    self.counts.add(1, segments as u64, 0);
                    TOTALS.add(1, segments as u64, 0);
                    state.batch.pop_front();
                }
                // A device or system without (working) segmentation offload: these datagrams one by one, and no
                // more runs on this socket.
                Poll::Ready(Err(_)) if segments > 1 => state.batch.split_front(),
                // As webrtc-rs's driver does with a send that fails: the datagram is gone (ICE and RTP recover).
                Poll::Ready(Err(_)) => {
                    self.counts.add(0, 0, 1);
                    TOTALS.add(0, 0, 1);
                    state.batch.pop_front();
                }
            }
        }
    }
}

/// Runs for as long as its socket: after each burst, sends it.
async fn flush_when_told(shared: Arc<Shared>) {
    loop {
        shared.flush.notified().await;
        std::future::poll_fn(|cx| shared.poll_flush(cx)).await;
        let (waiting, closed) = {
            let mut state = shared.state();
            (std::mem::take(&mut state.waiting), state.closed)
        };
        waiting.into_iter().for_each(Waker::wake);
        if closed {
            return;
        }
    }
}

/// A UDP socket whose sends wait for the end of the runtime's turn and leave as GSO runs (see the module doc).
#[derive(Debug)]
pub struct BatchedSocket {
    shared: Arc<Shared>,
}

impl BatchedSocket {
    /// `inner`, batched where it can send GSO runs and a Tokio runtime is running this thread (else as it is). Linux
    /// only: Windows's counterpart (USO) has not been tried with this plugin, and sends there go one by one as before.
    pub fn wrap(inner: Arc<dyn AsyncUdpSocket>) -> Arc<dyn AsyncUdpSocket> {
        match BatchedSocket::new(inner.clone()) {
            Some(s) => s,
            None => inner,
        }
    }

    pub fn new(inner: Arc<dyn AsyncUdpSocket>) -> Option<Arc<BatchedSocket>> {
        let segments = inner.max_gso_segments();
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if segments < 2 || !cfg!(target_os = "linux") {
            return None;
        }
        let shared = Arc::new(Shared {
            inner,
            state: Mutex::new(State {
                batch: Batch::new(segments),
                waiting: Vec::new(),
                closed: false,
            }),
            flush: tokio::sync::Notify::new(),
            counts: SendCounts::default(),
        });
        runtime.spawn(flush_when_told(shared.clone()));
        Some(Arc::new(BatchedSocket { shared }))
    }

    pub fn counts(&self) -> &SendCounts {
        &self.shared.counts
    }
}

impl Drop for BatchedSocket {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.flush.notify_one();
    }
}

impl AsyncUdpSocket for BatchedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.inner.local_addr()
    }

    /// Taken into the batch (Ready at once), or Pending while the batch is full.
    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let mut state = self.shared.state();
        let was_empty = state.batch.is_empty();
        if state.batch.push(transmit) {
            if was_empty {
                self.shared.flush.notify_one();
            }
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        self.shared.flush.notify_one();
        Poll::Pending
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.shared.inner.poll_recv(cx, bufs, meta)
    }

    /// One: the driver hands over single datagrams, and the runs are made here.
    fn max_gso_segments(&self) -> usize {
        1
    }

    fn max_gro_segments(&self) -> usize {
        self.shared.inner.max_gro_segments()
    }
}

/// webrtc-rs's Tokio runtime, with [`BatchedSocket`]s for UDP.
#[derive(Debug)]
pub struct BatchingRuntime;

static TOKIO: TokioRuntime = TokioRuntime;

impl Runtime for BatchingRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TOKIO.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TOKIO.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        TOKIO.wrap_udp_socket(socket).map(BatchedSocket::wrap)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TOKIO.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TOKIO.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TOKIO.resolve_host(host)
    }

    fn now(&self) -> Instant {
        TOKIO.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TOKIO.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TOKIO.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TOKIO.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TOKIO.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio, batched UDP sends"
    }
}

#[cfg(test)]
#[path = "udp_batch_tests.rs"]
mod tests;
