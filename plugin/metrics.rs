//! Stream health you can scrape: an opt-in Prometheus endpoint (the output setting `metrics_listen`, off unless
//! set; a bare port listens on 127.0.0.1). Every output that has it on shows its series, labelled with OBS's name
//! for the output: its state, connect time, the bandwidth estimate, target and sent bitrates, round trip, loss,
//! jitter, NACKs, retransmissions, keyframe requests, dropped frames, queue fill, ICE restarts, reconnects
//! and, with simulcast, each layer's size, frames and bitrate. The figures are what the stream worker last put
//! into the output's [`StreamStats`] (the session's once a second); serving them reads no OBS state, so a scrape
//! never waits for OBS or the network, and answers with what the stream looked like at most a second ago.
use crate::session::Figures;
use crate::stream::StreamStats;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where an output is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Stopped = 0,
    Connecting = 1,
    Streaming = 2,
    /// OBS is waiting to start the output again after a lost connection.
    Reconnecting = 3,
}

const STATES: [(State, &str); 4] = [
    (State::Stopped, "stopped"),
    (State::Connecting, "connecting"),
    (State::Streaming, "streaming"),
    (State::Reconnecting, "reconnecting"),
];

impl State {
    pub fn store(self, into: &AtomicU8) {
        into.store(self as u8, Ordering::Relaxed);
    }

    fn load(from: &AtomicU8) -> State {
        let v = from.load(Ordering::Relaxed);
        STATES
            .iter()
            .map(|(s, _)| *s)
            .find(|s| *s as u8 == v)
            .unwrap_or(State::Stopped)
    }
}

/// What the session looked like at its last sample, with the rates since the one before.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub figures: Figures,
    /// When it was taken.
    pub at: Option<Instant>,
    /// Bit/s sent since the sample before, on the wire and per video layer.
    pub sent_bps: f64,
    pub layer_bps: Vec<f64>,
}

impl Sample {
    /// The sample after `self`: `figures` taken at `at`, with the rates over the time between.
    pub fn next(&self, figures: Figures, at: Instant) -> Sample {
        let seconds = self
            .at
            .map_or(0.0, |t| at.saturating_duration_since(t).as_secs_f64());
        let bps = |bytes: u64| match seconds > 0.0 {
            true => bytes as f64 * 8.0 / seconds,
            false => 0.0,
        };
        let sent_bps = bps(figures.bytes_sent.saturating_sub(self.figures.bytes_sent));
        let layer_bps = (figures.layers.iter().enumerate())
            .map(|(i, l)| {
                let before = self.figures.layers.get(i).map_or(0, |b| b.octets);
                bps(u64::from(l.octets.wrapping_sub(before)))
            })
            .collect();
        Sample {
            figures,
            at: Some(at),
            sent_bps,
            layer_bps,
        }
    }
}

/// One output's figures, as the endpoint shows them.
pub struct OutputMetrics {
    /// OBS's name for the output (`adv_stream`, `simple_stream`, …).
    name: String,
    /// The current stream's counters (a new set per start).
    stats: Mutex<Arc<StreamStats>>,
    /// Starts OBS made to reconnect, and new sessions the earlier streams' workers made (see
    /// [`OutputMetrics::reconnects`]).
    pub reconnects: AtomicU64,
}

/// Every output with metrics on.
static OUTPUTS: Mutex<Vec<Weak<OutputMetrics>>> = Mutex::new(Vec::new());

impl OutputMetrics {
    pub fn new(name: &str) -> Arc<OutputMetrics> {
        Arc::new(OutputMetrics {
            name: name.to_string(),
            stats: Mutex::new(Arc::new(StreamStats::default())),
            reconnects: AtomicU64::new(0),
        })
    }

    /// Shows this output on the endpoint (once).
    pub fn publish(self: &Arc<Self>) {
        let mut outputs = OUTPUTS.lock().unwrap_or_else(|e| e.into_inner());
        outputs.retain(|w| w.strong_count() > 0);
        if !outputs
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self)))
        {
            outputs.push(Arc::downgrade(self));
        }
    }

    pub fn stats(&self) -> Arc<StreamStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_stats(&self, stats: Arc<StreamStats>) {
        let old = std::mem::replace(
            &mut *self.stats.lock().unwrap_or_else(|e| e.into_inner()),
            stats,
        );
        self.reconnects
            .fetch_add(old.republished.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Reconnects so far: OBS's, and the new sessions the plugin made by itself after a server lost one.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed) + self.stats().republished.load(Ordering::Relaxed)
    }
}

/// Where `listen` (the setting) asks the endpoint to be: None when empty (off); a bare port is 127.0.0.1's.
pub fn listen_address(listen: &str) -> Result<Option<SocketAddr>, String> {
    let listen = listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    if let Ok(port) = listen.parse::<u16>() {
        return Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    }
    listen.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!(
            "the metrics address \"{listen}\" is not a port or an address with a port (e.g. 9464, 127.0.0.1:9464, \
             [::1]:9464)"
        )
    })
}

/// Label values are quoted; backslashes, quotes and newlines escaped (Prometheus's text format).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines, then a line per output (and per extra label set).
struct Family<'a> {
    text: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, name: &str, labels: &str, value: f64) {
        if value.is_finite() {
            let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
        }
    }
}

/// A metric read from one output's stream: its name, type, help, and the value (None: not known yet).
type Reading = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StreamStats, &Sample) -> Option<f64>,
);

const READINGS: &[Reading] = &[
    ("rtc_studio_connect_seconds", "gauge", "Start to connected (signalling, ICE and DTLS) of the current stream.",
     |st, _| match st.connect_time_ms.load(Ordering::Relaxed) { ms if ms >= 0 => Some(f64::from(ms) / 1000.0), _ => None }),
    ("rtc_studio_bandwidth_estimate_bps", "gauge", "The bandwidth estimate, bit/s.",
     |_, s| s.figures.streaming.then_some(s.figures.estimate_bps)),
    ("rtc_studio_video_target_bitrate_bps", "gauge", "The video bitrate asked of the encoder, bit/s.",
     |_, s| s.figures.streaming.then_some(f64::from(s.figures.video_target_kbps) * 1000.0)),
    ("rtc_studio_sent_bitrate_bps", "gauge", "Bit/s put on the wire over the last second (RTP, all streams).",
     |_, s| s.figures.streaming.then_some(s.sent_bps)),
    ("rtc_studio_rtt_seconds", "gauge", "Round-trip time from RTCP receiver reports.",
     |_, s| s.figures.rtt.map(|t| t.as_secs_f64())),
    ("rtc_studio_loss_ratio", "gauge", "Packet loss the server's latest receiver reports gave (0..1, the worse of video and audio).",
     |_, s| s.figures.streaming.then_some(s.figures.loss)),
    ("rtc_studio_jitter_seconds", "gauge", "Video interarrival jitter from the latest receiver report.",
     |_, s| s.figures.video_jitter.map(|t| t.as_secs_f64())),
    ("rtc_studio_nacks_total", "counter", "NACK messages from the server.",
     |_, s| Some(s.figures.nacks as f64)),
    ("rtc_studio_nacked_packets_total", "counter", "Packets the server's NACKs asked for.",
     |_, s| Some(s.figures.nacked_packets as f64)),
    ("rtc_studio_retransmitted_packets_total", "counter", "Packets sent again (copies included).",
     |_, s| Some(s.figures.retransmitted_packets as f64)),
    ("rtc_studio_keyframe_requests_total", "counter", "Keyframe requests from the server (PLI and FIR).",
     |_, s| Some(s.figures.keyframe_requests as f64)),
    ("rtc_studio_frames_dropped_total", "counter", "Video frames dropped: the send queue full, or the network behind.",
     |st, s| Some(f64::from(st.dropped_frames.load(Ordering::Relaxed).max(0)) + s.figures.frames_dropped as f64)),
    ("rtc_studio_queue_packets", "gauge", "Packets waiting in the hand-off queue from OBS.",
     |st, _| Some(st.queued.load(Ordering::Relaxed) as f64)),
    ("rtc_studio_ice_restarts_total", "counter", "Outages repaired by an ICE restart in the same session.",
     |_, s| Some(f64::from(s.figures.ice_restarts))),
];

/// The exposition of every output with metrics on (Prometheus's text format 0.0.4).
pub fn render() -> String {
    let outputs: Vec<Arc<OutputMetrics>> = OUTPUTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let streams: Vec<(String, Arc<StreamStats>, Sample, &OutputMetrics)> = outputs
        .iter()
        .map(|o| {
            let stats = o.stats();
            let sample = stats.sample();
            (
                format!("output=\"{}\"", label(&o.name)),
                stats,
                sample,
                &**o,
            )
        })
        .collect();
    let mut text = String::new();
    let mut f = Family { text: &mut text };
    f.head(
        "rtc_studio_state",
        "gauge",
        "1 for the output's state (stopped, connecting, streaming, reconnecting).",
    );
    for (labels, stats, _, _) in &streams {
        let now = State::load(&stats.state);
        for (state, name) in STATES {
            f.line(
                "rtc_studio_state",
                &format!("{labels},state=\"{name}\""),
                f64::from(u8::from(state == now)),
            );
        }
    }
    f.head(
        "rtc_studio_reconnects_total",
        "counter",
        "Reconnects after a lost connection: OBS's, and new sessions published at once when the server lost one.",
    );
    for (labels, _, _, o) in &streams {
        f.line("rtc_studio_reconnects_total", labels, o.reconnects() as f64);
    }
    for (name, kind, help, read) in READINGS {
        f.head(name, kind, help);
        for (labels, stats, sample, _) in &streams {
            if let Some(v) = read(stats, sample) {
                f.line(name, labels, v);
            }
        }
    }
    type LayerReading = (
        &'static str,
        &'static str,
        &'static str,
        fn(usize, &StreamStats, &Sample) -> Option<f64>,
    );
    const LAYERS: &[LayerReading] = &[
        (
            "rtc_studio_layer_active",
            "gauge",
            "1 while the video layer is sent (simulcast: 0 while paused or refused).",
            |i, _, s| {
                s.figures
                    .layers
                    .get(i)
                    .map(|l| f64::from(u8::from(l.active)))
            },
        ),
        (
            "rtc_studio_layer_width",
            "gauge",
            "The video layer's width, pixels.",
            |i, st, _| st.layer_sizes.get(i).map(|(w, _)| f64::from(*w)),
        ),
        (
            "rtc_studio_layer_height",
            "gauge",
            "The video layer's height, pixels.",
            |i, st, _| st.layer_sizes.get(i).map(|(_, h)| f64::from(*h)),
        ),
        (
            "rtc_studio_layer_frames_total",
            "counter",
            "Frames of the video layer sent.",
            |i, _, s| s.figures.layers.get(i).map(|l| l.frames as f64),
        ),
        (
            "rtc_studio_layer_bitrate_bps",
            "gauge",
            "The video layer's bit/s over the last second (RTP payload and headers).",
            |i, _, s| s.layer_bps.get(i).copied(),
        ),
        (
            "rtc_studio_layer_retransmitted_packets_total",
            "counter",
            "Packets of the video layer sent again on a NACK.",
            |i, _, s| s.figures.layers.get(i).map(|l| l.resent as f64),
        ),
    ];
    for (name, kind, help, read) in LAYERS {
        f.head(name, kind, help);
        for (labels, stats, sample, _) in &streams {
            for (i, rid) in stats.layer_rids.iter().enumerate() {
                if let Some(v) = read(i, stats, sample) {
                    f.line(name, &format!("{labels},rid=\"{}\"", label(rid)), v);
                }
            }
        }
    }
    text
}

/// Addresses the endpoint listens on (once each, for as long as the plugin's runtime runs).
static LISTENING: Mutex<Vec<SocketAddr>> = Mutex::new(Vec::new());
/// Scrapes answered at once at most; more connections wait for a turn.
const CONCURRENT: usize = 8;
/// A request must arrive whole within this, and be no larger than [`MAX_REQUEST`].
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8 * 1024;

/// Listens on `addr` (unless already), answering `GET /metrics` on the plugin's runtime. Fails when the address
/// cannot be had (in use, not this machine's).
pub fn serve(addr: SocketAddr) -> Result<(), String> {
    let mut listening = LISTENING.lock().unwrap_or_else(|e| e.into_inner());
    if listening.contains(&addr) {
        return Ok(());
    }
    let runtime = crate::transport::runtime().map_err(|e| e.to_string())?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let listener = {
        let _in_runtime = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?
    };
    listening.push(addr);
    let turns = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    runtime.spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                // Out of descriptors, say: try again a little later rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(turn) = turns.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(REQUEST_DEADLINE, answer(conn)).await;
                drop(turn);
            });
        }
    });
    Ok(())
}

/// Forgets the addresses listened on (the runtime that served them is gone: module unload).
pub fn forget_listeners() {
    LISTENING.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Reads one HTTP request and answers it: the metrics for `GET /metrics`, a pointer to them for `GET /`.
async fn answer(mut conn: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || request.len() + n > MAX_REQUEST {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "RTC Studio: metrics at /metrics\n".into(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests;
