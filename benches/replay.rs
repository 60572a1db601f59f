//! Replay benchmark: pre-encoded H.264 (Annex-B) + Opus, fed at real-time pace through the plugin's stream engine
//! (the bounded hand-off queue and the worker loop `encoded_packet` feeds in OBS, the WebRTC session behind it) and
//! published over WHIP to our receiver, side by side with a GStreamer `webrtcbin` publisher
//! (`scripts/gst-whip-publish.py`) sending the same file to the same kind of receiver, in the same run.
//!
//! Media (made once by ffmpeg in target/bench/): 1080p30 at 6 Mbit/s and 720p30 at 2.5 Mbit/s, x264 veryfast
//! main profile without B-frames, 2 s GOP, Opus 128 kbit/s.
//!
//! Per publisher and medium it prints: CPU ms per second of stream (the publisher's own process, user + system: ours
//! from its process CPU clock, GStreamer's from /proc in 10 ms ticks) and per RTP packet — for ours also the stream
//! thread's alone (CPU time of the thread that runs the session, its runtime and the WebRTC stack, per RTP packet it
//! sent: the engine's own cost, without connecting and without the thread that reads the file in OBS's place) and how
//! often that thread was woken —, its peak RSS (VmHWM) and its anonymous memory at the end of the stream (RssAnon: heap
//! and stacks, without the libraries it maps; ours runs the engine without libobs, which it needs only once loaded into
//! OBS), RTP packets per second (counted by the receiver) and, for ours, the delay of each packet from hand-off to the
//! UDP send (p50/p99/max). A third row per medium, "floor", is a bare sender of the benchmark's own ([`BareSink`]): the
//! same media, hand-off pace, queue and kind of runtime, our packetizer, SRTP and one UDP send per packet, nothing
//! else — what its thread costs per packet is what any stack shaped like ours must spend at least. Then what a wake-up
//! and a packet cost our stream thread and the floor's, fitted to both media, and ours / the floor's per packet. Then
//! the time to first frame (Start → first decoded frame at the receiver) over N starts for each publisher, and the
//! ratios ours / GStreamer.
//!
//! Every publisher runs in a process of its own, in a network namespace this benchmark creates (a veth address,
//! since GStreamer's ICE agent never uses loopback), with its own receiver: needs root, iproute2, ffmpeg and the
//! GStreamer packages (`scripts/deps.sh` installs them). Prints numbers and never fails on them.
//!
//! Run: `make bench`, or alone: `cargo build --release --example mock_sfu && cargo bench --bench replay`.
//! Environment: RTC_BENCH_SECONDS (stream length, default 10), RTC_BENCH_STARTS (starts per publisher, default 20),
//! RTC_BENCH_ONLY=ours (our publisher's rows and the floor alone), =ttff (our times to first frame alone, each start's
//! listed) or =loss (the loss table alone).
use bytes::Bytes;
use rtc_studio::media::h264::{annexb_units, split_at_aud, to_annexb, ParameterSets};
use rtc_studio::media::h264_rtp::{H264Packetizer, RtpPayload, DEFAULT_MAX_PAYLOAD};
use rtc_studio::media::packet::{EncodedPacket, MediaKind};
use rtc_studio::session::RateConfig;
use rtc_studio::stream::{PacketReceiver, PacketSink, StopFlag, StreamStats};
use rtc_studio::transport::driver::{LayerEncoder, PublishConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NS_ADDR: &str = "10.231.0.1";

#[allow(dead_code)]
#[path = "../tests/support/netns.rs"]
mod netns;
#[path = "../tests/support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/support/replay.rs"]
mod replay;
use netns::{LinkedHosts, RemoteReceiver};
use replay::{keyframes_marked, ogg_opus, replay};

/// Where a publisher runs, and a fresh receiver for it.
trait Hosts {
    fn publisher(&self, program: &dyn AsRef<std::ffi::OsStr>) -> Command;
    fn receiver(&self, timeout_s: f64) -> RemoteReceiver;
}

/// The benchmark's own namespace: publisher and receiver side by side (ICE on the veth address, HTTP on
/// loopback).
impl Hosts for Namespace {
    fn publisher(&self, program: &dyn AsRef<std::ffi::OsStr>) -> Command {
        LinkedHosts::command(&self.0, program)
    }
    fn receiver(&self, timeout_s: f64) -> RemoteReceiver {
        RemoteReceiver::start_in(
            &self.0,
            &mock_sfu(),
            &[
                "--udp",
                &format!("{NS_ADDR}:0"),
                "--timeout",
                &timeout_s.to_string(),
            ],
        )
    }
}

/// Two hosts joined by our wire: the publisher on one, the receiver on the other.
impl Hosts for LinkedHosts {
    fn publisher(&self, program: &dyn AsRef<std::ffi::OsStr>) -> Command {
        LinkedHosts::command(&self.publisher, program)
    }
    fn receiver(&self, timeout_s: f64) -> RemoteReceiver {
        let addr = format!("{}:0", self.server_addr);
        RemoteReceiver::start_in(
            &self.server,
            &mock_sfu(),
            &[
                "--http",
                &addr,
                "--udp",
                &addr,
                "--timeout",
                &timeout_s.to_string(),
            ],
        )
    }
}

struct Medium {
    name: &'static str,
    size: &'static str,
    kbps: u32,
}

const MEDIA: [Medium; 2] = [
    Medium {
        name: "1080p30 6 Mbit/s",
        size: "1920x1080",
        kbps: 6000,
    },
    Medium {
        name: "720p30 2.5 Mbit/s",
        size: "1280x720",
        kbps: 2500,
    },
];

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------------------------
// Media

/// target/bench/replay-<size>-<kbps>.{mkv,h264,ogg}: one ffmpeg encode, then the streams copied out of it.
fn make_media(m: &Medium, seconds: f64) -> (PathBuf, PathBuf, PathBuf) {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join(format!("replay-{}-{}k-{}s", m.size, m.kbps, seconds));
    let (mkv, h264, ogg) = (
        base.with_extension("mkv"),
        base.with_extension("h264"),
        base.with_extension("ogg"),
    );
    if !(mkv.exists() && h264.exists() && ogg.exists()) {
        let rate = format!("{}k", m.kbps);
        let run = |args: &[&str]| {
            let ok = Command::new("ffmpeg")
                .args(["-v", "error", "-y"])
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "ffmpeg failed (make deps): {args:?}");
        };
        let secs = seconds.to_string();
        // Moving, noisy content so the encoder really spends the bitrate.
        let video = format!("testsrc2=size={}:rate=30,noise=alls=10:allf=t", m.size);
        run(&[
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &secs,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "main",
            "-bf",
            "0",
            "-g",
            "60",
            "-b:v",
            &rate,
            "-maxrate",
            &rate,
            "-bufsize",
            &rate,
            "-x264-params",
            "aud=1",
            "-c:a",
            "libopus",
            "-b:a",
            "128k",
            "-ac",
            "2",
            mkv.to_str().unwrap(),
        ]);
        run(&[
            "-i",
            mkv.to_str().unwrap(),
            "-map",
            "0:v",
            "-c",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            h264.to_str().unwrap(),
        ]);
        run(&[
            "-i",
            mkv.to_str().unwrap(),
            "-map",
            "0:a",
            "-c",
            "copy",
            "-f",
            "ogg",
            ogg.to_str().unwrap(),
        ]);
    }
    (mkv, h264, ogg)
}

/// Access units of an Annex-B file written with AUDs, read as needed (the file is never held whole).
struct AnnexBReader {
    file: std::fs::File,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Bytes>,
    eof: bool,
}

impl AnnexBReader {
    fn open(path: &Path) -> Self {
        AnnexBReader {
            file: std::fs::File::open(path).unwrap(),
            buf: Vec::new(),
            ready: Default::default(),
            eof: false,
        }
    }
}

impl Iterator for AnnexBReader {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(au) = self.ready.pop_front() {
                return Some(au);
            }
            if self.eof {
                return None;
            }
            let mut chunk = vec![0u8; 256 * 1024];
            let n = self.file.read(&mut chunk).unwrap();
            if n == 0 {
                self.eof = true;
                let rest = Bytes::from(std::mem::take(&mut self.buf));
                self.ready
                    .extend(split_at_aud(&rest).into_iter().filter(|a| !a.is_empty()));
                continue;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let all = Bytes::from(std::mem::take(&mut self.buf));
            let mut parts = split_at_aud(&all);
            // The last part may continue in the next chunk.
            if let Some(last) = parts.pop() {
                self.buf = last.to_vec();
            }
            self.ready.extend(parts);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Processes and the namespace

/// CPU time (user + system) of another process in milliseconds, from /proc/<pid>/stat (clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) * 10.0
}

/// Peak resident set (VmHWM) of a process in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// Its anonymous resident memory now (RssAnon: heap, stacks — what it allocated, not the libraries and code it
/// maps) in MiB.
fn anon_mib(pid: u32) -> f64 {
    status_mib(pid, "RssAnon:")
}

fn status_mib(pid: u32, key: &str) -> f64 {
    procfs::process_status_field(pid, key) as f64 / 1024.0
}

/// A network namespace of our own with one veth address (and no IPv6): every publisher and receiver runs inside.
struct Namespace(String);

impl Namespace {
    fn create() -> Namespace {
        let name = format!("rtcs-bench-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "ip {args:?} failed (root and iproute2 needed)");
        };
        ip(&["netns", "add", &name]);
        let ns = Namespace(name.clone());
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ])
            .args(["net.ipv6.conf.default.disable_ipv6=1"])
            .status();
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&[
            "-n", &name, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1",
        ]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{NS_ADDR}/24"),
            "dev",
            "bench0",
        ]);
        ip(&["-n", &name, "link", "set", "bench0", "up"]);
        ip(&["-n", &name, "link", "set", "bench1", "up"]);
        // webrtc-rs joins the mDNS multicast group, which needs a route.
        ip(&["-n", &name, "route", "add", "default", "dev", "bench0"]);
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn mock_sfu() -> PathBuf {
    for profile in ["release", "debug"] {
        let p = root().join(format!("target/{profile}/examples/mock_sfu"));
        if p.exists() {
            return p;
        }
    }
    panic!("build the receiver first: cargo build --release --example mock_sfu");
}

/// The average bitrate of an Annex-B clip at 30 fps, kbit/s.
fn clip_kbps(h264: &Path) -> u32 {
    let frames = AnnexBReader::open(h264).count().max(1) as f64;
    let bytes = std::fs::metadata(h264).map_or(0, |m| m.len()) as f64;
    (bytes * 8.0 / (frames / 30.0) / 1000.0) as u32
}

// ---------------------------------------------------------------------------------------------------------------
// Our publisher (a child process: `replay --publish H264 OGG URL SECONDS`)

/// Connects, then hands packets over at real-time pace for `seconds` (as OBS's encoders would), and prints one
/// JSON line: go_unix_ms (Start), connect_ms, cpu_ms and elapsed_ms over the window, peak RSS, plugin delays.
fn publish_ours(h264: &Path, ogg: &Path, url: &str, seconds: f64) {
    let go_unix_ms = unix_ms();
    let go = Instant::now();
    let own_cpu_ms = || replay::cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID).as_secs_f64() * 1000.0;
    let cpu0 = own_cpu_ms();
    let mut video = AnnexBReader::open(h264).peekable();
    let first = video.peek().cloned().expect("video");
    let mut params = ParameterSets::default();
    params.learn(&first);
    let (opus_head, audio) = ogg_opus(ogg);
    let config = PublishConfig {
        endpoint: url.into(),
        bearer_token: Default::default(),
        janus: None,
        ant_media: None,
        ice_servers: Vec::new(),
        relay_only: false,
        connect_timeout: Duration::from_secs(10),
        max_payload: DEFAULT_MAX_PAYLOAD,
        video_codec: rtc_studio::media::video::VideoCodec::H264,
        video: vec![LayerEncoder {
            extra_data: Bytes::from(to_annexb(&[
                params.sps().cloned().unwrap_or_default(),
                params.pps().cloned().unwrap_or_default(),
            ])),
            kbps: clip_kbps(h264),
        }],
        audio_extra_data: opus_head,
        capture: rtc_studio::publish::capture_clock_now(),
        // Pre-encoded media cannot follow the network: when the path carries less, video is dropped up to the
        // next keyframe, as for an OBS encoder without bitrate changes.
        rate: RateConfig {
            adaptive: std::env::var_os("RTC_BENCH_NO_ADAPTATION").is_none(),
            video_kbps: clip_kbps(h264),
            min_video_kbps: 300,
            encoder_follows: false,
            audio_kbps: 128,
        },
    };
    let r = match replay(config, keyframes_marked(video), audio.into_iter(), seconds) {
        Ok(r) => r,
        Err(e) => {
            println!("{}", json!({"error": e}));
            return;
        }
    };
    let elapsed_ms = go.elapsed().as_secs_f64() * 1000.0;
    let cpu = own_cpu_ms() - cpu0;
    println!(
        "{}",
        json!({
            "go_unix_ms": go_unix_ms, "connect_ms": r.connect.as_secs_f64() * 1000.0, "cpu_ms": cpu,
            "elapsed_ms": elapsed_ms, "peak_rss_mib": peak_rss_mib(std::process::id()),
            "anon_mib": anon_mib(std::process::id()),
            "plugin_ms": r.report.plugin_ms, "rtp_packets_sent": r.report.rtp_packets,
            "stream_thread_cpu_ms": r.stream_thread_cpu.as_secs_f64() * 1000.0,
            "stream_thread_wake_ups": r.stream_thread_wake_ups,
            "video_frames": r.video_frames, "audio_packets": r.audio_packets, "failure": r.failure,
        })
    );
    r.close();
}

/// The floor under our stream thread's cost: the same media handed over at the same pace through the same bounded
/// queue to a worker thread running a tokio runtime, which packetizes the video with our packetizer, protects each
/// RTP packet with SRTP (AES-128-GCM, as ours negotiates) and sends it with one UDP send — and does nothing else
/// (no pacing, RTCP, header extensions, congestion control, retransmission history or ICE). What any WebRTC stack
/// shaped like ours must spend at least.
struct BareSink {
    runtime: tokio::runtime::Runtime,
    sender: BareSender,
}

struct BareSender {
    socket: tokio::net::UdpSocket,
    to: std::net::SocketAddr,
    srtp: rtc::srtp::context::Context,
    packetizer: H264Packetizer,
    payloads: Vec<RtpPayload>,
    sequence: [u16; 2],
    sent: u64,
}

impl BareSink {
    fn new(to: std::net::SocketAddr) -> BareSink {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = runtime
            .block_on(tokio::net::UdpSocket::bind((NS_ADDR, 0)))
            .unwrap();
        let srtp = rtc::srtp::context::Context::new(
            &[7; 16],
            &[9; 12],
            rtc::srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
            None,
            None,
            &rtc::crypto::providers::RingCrypto,
        )
        .unwrap();
        BareSink {
            runtime,
            sender: BareSender {
                socket,
                to,
                srtp,
                packetizer: H264Packetizer::new(DEFAULT_MAX_PAYLOAD),
                payloads: Vec::new(),
                sequence: [0; 2],
                sent: 0,
            },
        }
    }
}

impl BareSender {
    async fn send(&mut self, p: EncodedPacket) {
        use rtc::shared::marshal::Marshal;
        self.payloads.clear();
        let (i, payload_type, timestamp) = match p.kind {
            MediaKind::Video => {
                let units: Vec<Bytes> =
                    annexb_units(&p.data).map(|u| p.data.slice_ref(u)).collect();
                self.packetizer.packetize(&units, &mut self.payloads);
                (0, 102, p.pts as u32 * 3000)
            }
            _ => {
                self.payloads.push(RtpPayload {
                    payload: p.data,
                    marker: false,
                });
                (1, 111, p.pts as u32)
            }
        };
        for payload in self.payloads.drain(..) {
            self.sequence[i] = self.sequence[i].wrapping_add(1);
            let header = rtc::rtp::Header {
                version: 2,
                marker: payload.marker,
                payload_type,
                sequence_number: self.sequence[i],
                timestamp,
                ssrc: 1000 + i as u32,
                ..Default::default()
            };
            let packet = rtc::rtp::Packet {
                header: header.clone(),
                payload: payload.payload,
            }
            .marshal()
            .unwrap();
            let protected = self.srtp.encrypt_rtp_with_header(&packet, &header).unwrap();
            if self.socket.send_to(&protected, self.to).await.is_ok() {
                self.sent += 1;
            }
        }
    }
}

impl PacketSink for BareSink {
    fn run(
        &mut self,
        packets: &mut PacketReceiver,
        _: &StreamStats,
        _: &StopFlag,
    ) -> Option<rtc_studio::signal::Failure> {
        let BareSink { runtime, sender } = self;
        runtime.block_on(async {
            while let Some(p) = packets.recv().await {
                sender.send(p).await;
            }
        });
        None
    }

    fn close(&mut self) {}
}

/// Runs the [`BareSink`] floor on the media (in the benchmark's namespace) with a receiving socket of its own,
/// and prints what it cost as JSON.
fn publish_bare(h264: &Path, ogg: &Path, seconds: f64) {
    let sink = std::net::UdpSocket::bind((NS_ADDR, 0)).unwrap();
    let to = sink.local_addr().unwrap();
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Counts what arrives until a second without any (or 20 s without a first).
    let received = std::thread::spawn(move || {
        let (mut n, mut buf, mut quiet) = (0u64, [0u8; 2048], 0);
        while quiet < if n == 0 { 40 } else { 2 } {
            match sink.recv(&mut buf) {
                Ok(_) => (n, quiet) = (n + 1, 0),
                Err(_) => quiet += 1,
            }
        }
        n
    });
    let video = keyframes_marked(AnnexBReader::open(h264));
    let (_, audio) = ogg_opus(ogg);
    let h = replay::hand_over(BareSink::new(to), video, audio.into_iter(), seconds);
    println!(
        "{}",
        json!({
            "rtp_packets_sent": h.sink.sender.sent,
            "stream_thread_cpu_ms": h.stream_thread_cpu.as_secs_f64() * 1000.0,
            "stream_thread_wake_ups": h.stream_thread_wake_ups,
            "received": received.join().unwrap(),
        })
    );
}

/// The [`BareSink`] floor's stream thread: µs per RTP packet, wake-ups a second, and RTP packets a second.
fn run_bare(hosts: &dyn Hosts, h264: &Path, ogg: &Path, seconds: f64) -> (f64, f64, f64) {
    let (h264, ogg) = (h264.to_str().unwrap(), ogg.to_str().unwrap());
    let row = run_self(hosts, "bare", &["--bare", h264, ogg, &seconds.to_string()]);
    let f = |k: &str| row[k].as_f64().unwrap_or(0.0);
    (
        f("stream_thread_cpu_ms") * 1000.0 / f("rtp_packets_sent").max(1.0),
        f("stream_thread_wake_ups") / seconds,
        f("rtp_packets_sent") / seconds,
    )
}

/// Runs this benchmark's own binary with `args` where `hosts` runs publishers; the JSON line it printed last (Null:
/// none), also printed with `who` under RTC_BENCH_DEBUG.
fn run_self(hosts: &dyn Hosts, who: &str, args: &[&str]) -> Value {
    let out = hosts
        .publisher(&std::env::current_exe().unwrap())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    if std::env::var("RTC_BENCH_DEBUG").is_ok() {
        println!("{who}: {row}");
    }
    row
}

// ---------------------------------------------------------------------------------------------------------------
// The runs

struct Row {
    cpu_per_s: f64,
    rss_mib: f64,
    anon_mib: f64,
    pps: f64,
    plugin_ms: Option<[f64; 3]>,
    /// Ours: the stream thread's CPU per RTP packet it sent, µs, how often it was woken a second, and the RTP
    /// packets it sent a second.
    engine_us_per_packet: Option<(f64, f64, f64)>,
    decoded: u64,
    errors: u64,
    ttff_ms: Option<f64>,
    /// What the receiver measured (frames intact, freezes, NACKs, retransmissions).
    receiver: Value,
}

fn run_ours(hosts: &dyn Hosts, h264: &Path, ogg: &Path, seconds: f64) -> Row {
    let receiver = hosts.receiver(seconds + 30.0);
    let (h264, ogg) = (h264.to_str().unwrap(), ogg.to_str().unwrap());
    let seconds_arg = seconds.to_string();
    let row = run_self(
        hosts,
        "ours",
        &["--publish", h264, ogg, &receiver.url, &seconds_arg],
    );
    let r = receiver.report();
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let plugin = row["plugin_ms"].as_array().map(|a| {
        let g = |i: usize| a.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        [g(0), g(1), g(2)]
    });
    Row {
        cpu_per_s: f(&row, "cpu_ms") / (f(&row, "elapsed_ms") / 1000.0).max(0.001),
        rss_mib: f(&row, "peak_rss_mib"),
        anon_mib: f(&row, "anon_mib"),
        pps: f(&r, "rtp_packets") / seconds,
        plugin_ms: plugin,
        engine_us_per_packet: Some((
            f(&row, "stream_thread_cpu_ms") * 1000.0 / f(&row, "rtp_packets_sent").max(1.0),
            f(&row, "stream_thread_wake_ups") / seconds,
            f(&row, "rtp_packets_sent") / seconds,
        )),
        decoded: r["video_frames_decoded"].as_u64().unwrap_or(0),
        errors: r["decode_errors"].as_u64().unwrap_or(0),
        ttff_ms: r["first_frame_unix_ms"]
            .as_f64()
            .map(|t| t - f(&row, "go_unix_ms")),
        receiver: r,
    }
}

fn run_gstreamer(hosts: &dyn Hosts, mkv: &Path, seconds: f64) -> Row {
    let receiver = hosts.receiver(seconds + 30.0);
    let mut child = hosts
        .publisher(&root().join("scripts/gst-whip-publish.py"))
        .arg(mkv)
        .arg(&receiver.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("scripts/gst-whip-publish.py (GStreamer packages: scripts/deps.sh)");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "GStreamer publisher did not start");
    let mut stdin = child.stdin.take().unwrap();
    let cpu0 = cpu_ms(pid);
    let go_unix_ms = unix_ms();
    let go = Instant::now();
    writeln!(stdin, "go").unwrap();
    // The same window as ours: connect, then `seconds` of media (its connect time is not known from here: use
    // ours, ~0.2 s, plus a margin that only adds idle time to GStreamer's share).
    std::thread::sleep(Duration::from_secs_f64(seconds + 0.3));
    let cpu = cpu_ms(pid) - cpu0;
    let elapsed = go.elapsed().as_secs_f64();
    let rss = peak_rss_mib(pid);
    let anon = anon_mib(pid);
    writeln!(stdin, "stop").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let r = receiver.report();
    Row {
        cpu_per_s: cpu / elapsed,
        rss_mib: rss,
        anon_mib: anon,
        pps: r["rtp_packets"].as_f64().unwrap_or(0.0) / seconds,
        plugin_ms: None,
        engine_us_per_packet: None,
        decoded: r["video_frames_decoded"].as_u64().unwrap_or(0),
        errors: r["decode_errors"].as_u64().unwrap_or(0),
        ttff_ms: r["first_frame_unix_ms"].as_f64().map(|t| t - go_unix_ms),
        receiver: r,
    }
}

/// One loss condition of the table: media lost on the uplink at random (seeded) and a one-way delay each way.
struct Condition {
    name: &'static str,
    loss: f64,
    one_way: Duration,
}

const CONDITIONS: [Condition; 5] = [
    Condition {
        name: "0 %",
        loss: 0.0,
        one_way: Duration::ZERO,
    },
    Condition {
        name: "1 %",
        loss: 0.01,
        one_way: Duration::ZERO,
    },
    Condition {
        name: "5 %",
        loss: 0.05,
        one_way: Duration::ZERO,
    },
    Condition {
        name: "10 %",
        loss: 0.10,
        one_way: Duration::ZERO,
    },
    Condition {
        name: "5 %, 100 ms RTT",
        loss: 0.05,
        one_way: Duration::from_millis(50),
    },
];

/// Frames our receiver decoded whole (intact reference chain) and its freezes, for our publisher and GStreamer's,
/// through each [`CONDITIONS`] on a wire of our own between two hosts.
fn loss_table(medium: &Medium, seconds: f64) {
    use netns::wire::{LinkConfig, DOWN, UP};
    let (mkv, h264, ogg) = make_media(medium, seconds);
    println!(
        "loss ({}, {seconds} s; media lost at random on the uplink; receiver: ours, NACK + RTX, jitter buffer):",
        medium.name
    );
    println!(
        "{:<17} {:<10} {:>9} {:>9} {:>14} {:>8} {:>10} {:>9}",
        "loss", "publisher", "decoded", "intact", "freezes (ms)", "NACKed", "repaired", "given up"
    );
    let only: Option<usize> = std::env::var("RTC_BENCH_CONDITION")
        .ok()
        .and_then(|v| v.parse().ok());
    for (i, c) in CONDITIONS.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let hosts = LinkedHosts::create_wired("benchloss", 20261130);
        let link = |loss| LinkConfig {
            loss,
            media_only: true,
            delay: c.one_way,
            ..Default::default()
        };
        hosts.wire().set(UP, link(c.loss));
        hosts.wire().set(DOWN, link(0.0));
        let rows = [
            ("ours", run_ours(&hosts, &h264, &ogg, seconds)),
            ("GStreamer", run_gstreamer(&hosts, &mkv, seconds)),
        ];
        for (who, row) in rows {
            let r = &row.receiver;
            if std::env::var("RTC_BENCH_DEBUG").is_ok() {
                println!("{who} {r}");
            }
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            println!(
                "{:<17} {:<10} {:>9} {:>9} {:>6} ({:>5.0}) {:>8} {:>10} {:>9}",
                c.name,
                who,
                row.decoded,
                n("frames_intact"),
                n("freezes"),
                r["freeze_ms"].as_f64().unwrap_or(0.0),
                n("packets_nacked"),
                n("retransmissions_received"),
                n("packets_lost"),
            );
        }
    }
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--publish") && args.len() == 5 {
        publish_ours(
            Path::new(&args[1]),
            Path::new(&args[2]),
            &args[3],
            args[4].parse().unwrap(),
        );
        return;
    }
    if args.first().map(String::as_str) == Some("--bare") && args.len() == 4 {
        publish_bare(
            Path::new(&args[1]),
            Path::new(&args[2]),
            args[3].parse().unwrap(),
        );
        return;
    }
    let seconds = env_num("RTC_BENCH_SECONDS", 10.0);
    let starts = env_num("RTC_BENCH_STARTS", 20.0) as usize;
    if std::env::var("RTC_BENCH_ONLY").as_deref() == Ok("loss") {
        loss_table(&MEDIA[1], seconds);
        return;
    }
    let ns = Namespace::create();
    // RTC_BENCH_ONLY=ttff: our times to first frame alone, each start's in order (for outliers).
    if std::env::var("RTC_BENCH_ONLY").as_deref() == Ok("ttff") {
        let (ours, _) = time_to_first_frame(&ns, seconds, starts, false);
        let each: Vec<String> = ours.iter().map(|t| format!("{t:.0}")).collect();
        println!(
            "time to first frame, ours, each start: {} ms",
            each.join(" ")
        );
        print_ttff("ours", ours, starts);
        return;
    }
    println!("replay benchmark: {seconds} s per stream, {starts} starts per publisher for time to first frame");
    println!(
        "{:<19} {:<10} {:>9} {:>9} {:>22} {:>9} {:>9} {:>7} {:>22} {:>14}",
        "medium",
        "publisher",
        "CPU ms/s",
        "µs/pkt",
        "stream µs/pkt (woken)",
        "RSS MiB",
        "anon MiB",
        "pkt/s",
        "hand-off→UDP p50/p99/max",
        "decoded (err)"
    );
    let mut ratios = Vec::new();
    let (mut engine, mut floor) = (Vec::new(), Vec::new());
    // RTC_BENCH_ONLY=ours: our publisher's rows and the floor alone, for comparing two versions of the engine.
    let ours_only = std::env::var("RTC_BENCH_ONLY").as_deref() == Ok("ours");
    for m in &MEDIA {
        let (mkv, h264, ogg) = make_media(m, seconds);
        let ours = run_ours(&ns, &h264, &ogg, seconds);
        let rows = match ours_only {
            true => vec![("ours", ours)],
            false => vec![
                ("ours", ours),
                ("GStreamer", run_gstreamer(&ns, &mkv, seconds)),
            ],
        };
        for (who, row) in &rows {
            let lat = row.plugin_ms.map_or("-".to_string(), |p| {
                format!("{:.2}/{:.2}/{:.2} ms", p[0], p[1], p[2])
            });
            let engine = row
                .engine_us_per_packet
                .map_or("-".to_string(), |(us, woken, _)| {
                    format!("{us:.1} ({woken:.0}/s)")
                });
            println!(
                "{:<19} {:<10} {:>9.1} {:>9.1} {:>22} {:>9.1} {:>9.1} {:>7.0} {:>22} {:>9} ({})",
                m.name,
                who,
                row.cpu_per_s,
                row.cpu_per_s * 1000.0 / row.pps.max(1.0),
                engine,
                row.rss_mib,
                row.anon_mib,
                row.pps,
                lat,
                row.decoded,
                row.errors
            );
        }
        engine.extend(rows[0].1.engine_us_per_packet);
        let (us, woken, pps) = run_bare(&ns, &h264, &ogg, seconds);
        println!(
            "{:<19} {:<10} {:>9} {:>9} {:>22} {:>9} {:>9} {:>7.0}",
            m.name,
            "floor",
            "-",
            "-",
            format!("{us:.1} ({woken:.0}/s)"),
            "-",
            "-",
            pps
        );
        floor.push((us, woken, pps));
        if let [(_, ours), (_, gst)] = &rows[..] {
            ratios.push((
                m.name,
                ours.cpu_per_s / gst.cpu_per_s,
                ours.rss_mib / gst.rss_mib,
                ours.anon_mib / gst.anon_mib,
            ));
        }
    }
    print_wake_up_fit("stream thread", &engine);
    print_wake_up_fit("floor", &floor);
    for (m, (ours, floor)) in MEDIA.iter().zip(engine.iter().zip(&floor)) {
        println!(
            "  {:<19} stream thread / floor, per packet: {:.2}",
            m.name,
            ours.0 / floor.0
        );
    }
    if ours_only {
        return;
    }
    let (ours_ttff, gst_ttff) = time_to_first_frame(&ns, seconds, starts, true);
    println!("time to first frame (Start → first decoded frame), 720p30:");
    let mut medians = Vec::new();
    for (who, v) in [("ours", ours_ttff), ("GStreamer", gst_ttff)] {
        medians.push(print_ttff(who, v, starts));
    }
    println!("ratios ours / GStreamer (lower is better):");
    for (name, cpu, rss, anon) in ratios {
        println!("  {name:<19} CPU/s {cpu:.2}, RSS {rss:.2}, anonymous memory {anon:.2}");
    }
    println!(
        "  time to first frame (median) {:.2}",
        medians[0] / medians[1]
    );
    loss_table(&MEDIA[1], seconds);
}

/// Our stream thread's CPU a second as (wake-ups a second) × x + (packets a second) × y, solved for the two media
/// (`engine`: µs per packet, wake-ups a second, packets a second, per medium): what a wake-up and a packet cost.
/// Two equations for two unknowns, so it moves with each run's noise: compare several invocations.
fn print_wake_up_fit(who: &str, engine: &[(f64, f64, f64)]) {
    let [(us1, w1, p1), (us2, w2, p2)] = engine else {
        return;
    };
    let det = w1 * p2 - w2 * p1;
    if det.abs() <= f64::EPSILON {
        return;
    }
    let (c1, c2) = (us1 * p1, us2 * p2);
    let per_wake_up = (c1 * p2 - c2 * p1) / det;
    let per_packet = (w1 * c2 - w2 * c1) / det;
    if per_wake_up > 0.0 && per_packet > 0.0 {
        println!(
            "{who}, fitted to both media (CPU = wake-ups × x + packets × y): {per_wake_up:.0} µs a wake-up, \
             {per_packet:.1} µs a packet"
        );
    }
}

/// Time to first frame: short streams of the 720p medium, fresh receiver and publisher process each time (ours,
/// and GStreamer's with `gstreamer`); ms, in the order of the starts.
fn time_to_first_frame(
    ns: &Namespace,
    seconds: f64,
    starts: usize,
    gstreamer: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mkv, h264, ogg) = make_media(&MEDIA[1], seconds);
    let (mut ours_ttff, mut gst_ttff) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        if let Some(t) = run_ours(ns, &h264, &ogg, 1.0).ttff_ms {
            ours_ttff.push(t);
        }
        if !gstreamer {
            continue;
        }
        if let Some(t) = run_gstreamer(ns, &mkv, 1.0).ttff_ms {
            gst_ttff.push(t);
        }
    }
    (ours_ttff, gst_ttff)
}

/// Prints `who`'s times to first frame; the median.
fn print_ttff(who: &str, mut v: Vec<f64>, starts: usize) -> f64 {
    let (median, p90) = (quantile(&mut v, 0.5), quantile(&mut v, 0.9));
    let (min, max) = (quantile(&mut v, 0.0), quantile(&mut v, 1.0));
    println!(
        "  {who:<10} median {median:.0} ms, p90 {p90:.0} ms, min {min:.0}, max {max:.0} ({} of {starts} starts decoded)",
        v.len()
    );
    median
}
