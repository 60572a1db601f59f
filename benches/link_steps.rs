//! Link-steps benchmark: four publishers, one after the other, each through the same steps of our wire's bottleneck
//! (4 Mbit/s for 10 s, 1.5 for 15, 0.6 for 15, 4 again for 25; 100 ms queue, 10 ms each way) to our receiver,
//! which sends transport-wide feedback and measures by itself:
//! - RTC Studio: real libobs, x264 `zerolatency` 720p30 at 4 Mbit/s, bandwidth adaptation on (the default);
//! - the same with adaptation off (`--adaptive off`): what every publisher without an estimate does;
//! - libwebrtc: headless Chromium publishing its fake 720p camera over WHIP (tests/viewer/whip-publisher.html),
//!   its video capped at 4 Mbit/s;
//! - GStreamer 1.22's `webrtcbin` (scripts/gst-whip-publish.py) sending a 4 Mbit/s 720p file: webrtcbin has no
//!   estimator of its own (GStreamer's `webrtcsink`, which has one, is not in Debian 12).
//!
//! Per step it prints: the time until frames arrive whole again (every frame of 3 seconds in a row intact at the
//! receiver), the share of packets the bottleneck dropped once 5 s had passed, the frames intact, and the
//! bitrate that arrived as a share of the link. The last step's "adapt" is the time back to 90 % of the first
//! step's bitrate. Then target/bench/link-steps.png: the bitrate received per second and the frames intact per
//! second, the four side by side over the link's capacity.
//!
//! Needs root (namespaces), the release plugin and runner (`make bench` builds them), Chromium, GStreamer and
//! ffmpeg (`make deps`). Prints numbers and never fails on them. Alone: `cargo bench --bench link_steps`.
#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::browser::svg_to_png;
use support::netns::wire::{LinkConfig, LinkStats, Wire, DOWN, UP};
use support::netns::{LinkedHosts, RemoteReceiver};
use support::obs_run::{binaries, flash_beep_clip, headless_in, publisher_args};

/// (start in ms, Mbit/s): the link's capacity through the run.
const STEPS: [(u64, f64); 4] = [(0, 4.0), (10_000, 1.5), (25_000, 0.6), (40_000, 4.0)];
const SECONDS: u64 = 65;
/// Publishers connect in about a second: the steps start that much after the publisher does.
const CONNECT_MS: u64 = 1000;

/// What one publisher did: the receiver's report, its own target bitrate over time ([s, kbit/s]) where it says,
/// and the bottleneck's counters at each step's start, 5 s into it, and at the end.
struct Trace {
    name: &'static str,
    report: Value,
    target: Vec<(f64, f64)>,
    wire: Vec<LinkStats>,
}

/// Runs `publish` while the wire's direction `dir` steps through [`STEPS`]; returns the wire's counters.
fn stepping<T>(wire: &Wire, dir: usize, publish: impl FnOnce() -> T) -> (T, Vec<LinkStats>) {
    wire.set(dir, LinkConfig::bottleneck(STEPS[0].1));
    std::thread::scope(|scope| {
        let marks = scope.spawn(move || {
            let t0 = Instant::now();
            let at = |ms: u64| {
                std::thread::sleep(
                    Duration::from_millis(ms + CONNECT_MS).saturating_sub(t0.elapsed()),
                )
            };
            let mut marks = Vec::new();
            let ends = STEPS
                .iter()
                .skip(1)
                .map(|s| s.0)
                .chain([SECONDS * 1000 - 1000]);
            for ((start, mbps), end) in STEPS.iter().zip(ends) {
                at(*start);
                wire.set(dir, LinkConfig::bottleneck(*mbps));
                marks.push(wire.stats(dir));
                at(start + 5000);
                marks.push(wire.stats(dir));
                at(end);
            }
            marks.push(wire.stats(dir));
            marks
        });
        let out = publish();
        (out, marks.join().unwrap())
    })
}

fn mock_sfu() -> PathBuf {
    binaries().1.with_file_name("mock_sfu")
}

fn receiver_in(ns: &str, addr: &str) -> RemoteReceiver {
    let a = format!("{addr}:0");
    let timeout = (SECONDS + 30).to_string();
    RemoteReceiver::start_in(
        ns,
        &mock_sfu(),
        &["--http", &a, "--udp", &a, "--timeout", &timeout],
    )
}

fn run_obs(name: &'static str, adaptive: &str) -> Trace {
    let hosts = LinkedHosts::create_wired("steps", 20261130);
    hosts.wire().set(DOWN, LinkConfig::clear());
    let receiver = receiver_in(&hosts.server, &hosts.server_addr);
    let mut args = publisher_args(SECONDS as u32, 4000, &receiver.url);
    args.extend(["--adaptive".to_string(), adaptive.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (run, wire) = stepping(hosts.wire(), UP, || {
        headless_in(Some(&hosts.publisher), &args, None)
    });
    let target = run.summary["video_bitrates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_f64().unwrap_or(0.0) / 1000.0,
                p[1].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    Trace {
        name,
        report: receiver.report(),
        target,
        wire,
    }
}

fn run_chromium() -> Trace {
    // Chromium runs on this machine; the receiver on the other end of the wire, whose DOWN direction steps.
    let hosts = LinkedHosts::wired_to_this_machine("stepsch", 20261130);
    hosts.wire().set(UP, LinkConfig::clear());
    let receiver = receiver_in(&hosts.publisher, &hosts.publisher_addr);
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer/whip-publisher.html");
    let query = format!("whip={}&seconds={SECONDS}&kbps=4000", receiver.url);
    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chromium-publisher");
    let camera = format!(
        "--use-file-for-fake-video-capture={}",
        chromium_camera().display()
    );
    let flags = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--disable-web-security",
        camera.as_str(),
    ];
    let limit = Duration::from_secs(SECONDS + 30);
    let (result, wire) = stepping(hosts.wire(), DOWN, || {
        support::browser::run_page_with(&page, &query, limit, &profile, &flags)
    });
    let result = result.unwrap_or_else(|e| json!({"ok": false, "error": e}));
    if result["ok"] != true {
        println!("Chromium: {result}");
    }
    let target = result["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["t_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                s["target_kbps"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    Trace {
        name: "libwebrtc (Chromium)",
        report: receiver.report(),
        target,
        wire,
    }
}

/// Chromium's camera: the clip OBS streams, 4 s of it as raw 720p30 video (Chromium loops it); its own test
/// pattern is so simple that its encoder never needs more than ~0.5 Mbit/s.
fn chromium_camera() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("link-steps-720p30.y4m");
    if !path.exists() {
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(flash_beep_clip("1280x720"))
            .args(["-t", "4", "-r", "30", "-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not make {}", path.display());
    }
    path
}

/// A 4 Mbit/s 720p30 H.264 (x264 zerolatency, main, no B-frames) + Opus file as long as the run, made once.
fn gstreamer_media() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("link-steps-720p-4000.mkv");
    if !path.exists() {
        let clip = flash_beep_clip("1280x720");
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-stream_loop", "-1", "-i"])
            .arg(&clip)
            .args([
                "-t",
                &(SECONDS + 10).to_string(),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
            ])
            .args([
                "zerolatency",
                "-profile:v",
                "main",
                "-bf",
                "0",
                "-g",
                "60",
                "-b:v",
                "4000k",
                "-maxrate",
            ])
            .args([
                "4000k", "-bufsize", "2000k", "-c:a", "libopus", "-b:a", "128k",
            ])
            .arg(&path)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not make {}", path.display());
    }
    path
}

fn run_gstreamer() -> Trace {
    let media = gstreamer_media();
    let hosts = LinkedHosts::create_wired("stepsgst", 20261130);
    hosts.wire().set(DOWN, LinkConfig::clear());
    let receiver = receiver_in(&hosts.server, &hosts.server_addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gst-whip-publish.py");
    let ((), wire) = stepping(hosts.wire(), UP, || {
        let mut child = LinkedHosts::command(&hosts.publisher, &script)
            .arg(&media)
            .arg(&receiver.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-whip-publish.py");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(stdin, "go");
        std::thread::sleep(Duration::from_secs(SECONDS));
        let _ = writeln!(stdin, "stop");
        drop(stdin);
        let _ = child.wait();
    });
    Trace {
        name: "GStreamer webrtcbin",
        report: receiver.report(),
        target: Vec::new(),
        wire,
    }
}

fn series(report: &Value, key: &str) -> Vec<f64> {
    report["timeline"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect()
}

/// One step's numbers for `trace`: (adapt s, loss after 5 s %, frames intact %, arrived / link %).
fn step_numbers(trace: &Trace, step: usize) -> (Option<f64>, f64, f64, f64) {
    let (kbps, intact) = (
        series(&trace.report, "kbps"),
        series(&trace.report, "intact"),
    );
    let fps = trace.report["timeline"]["expected_per_second"]
        .as_f64()
        .unwrap_or(30.0);
    let start = (STEPS[step].0 / 1000) as usize;
    let end = STEPS
        .get(step + 1)
        .map_or(SECONDS as usize - 1, |s| (s.0 / 1000) as usize);
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0);
    let adapt = if step + 1 == STEPS.len() {
        let first = (0..10).map(|i| at(&kbps, i)).sum::<f64>() / 10.0;
        (start..end)
            .find(|&i| at(&kbps, i) >= 0.9 * first)
            .map(|i| (i - start) as f64)
    } else {
        (start..end.saturating_sub(2))
            .find(|&i| (i..i + 3).all(|j| at(&intact, j) >= fps - 0.5))
            .map(|i| (i - start) as f64)
    };
    let (settled, last) = (&trace.wire[2 * step + 1], &trace.wire[2 * step + 2]);
    let sent = last.packets.saturating_sub(settled.packets).max(1);
    let loss = 100.0 * last.overflowed.saturating_sub(settled.overflowed) as f64 / sent as f64;
    let made = fps * (end - start) as f64;
    let whole = 100.0 * (start..end).map(|i| at(&intact, i)).sum::<f64>() / made;
    let from = (start + 5).min(end);
    let arrived = (from..end).map(|i| at(&kbps, i)).sum::<f64>() / (end - from).max(1) as f64;
    (
        adapt,
        loss,
        whole,
        100.0 * arrived / (STEPS[step].1 * 1000.0),
    )
}

fn print_table(traces: &[Trace]) {
    println!("\nlink steps: 4 → 1.5 → 0.6 → 4 Mbit/s (adapt: s until 3 s of whole frames; last step: back to 90 %)");
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "publisher", "step", "adapt s", "loss %", "whole %", "arrived %", "frames"
    );
    for t in traces {
        let intact: f64 = series(&t.report, "intact").iter().sum();
        for (i, (_, mbps)) in STEPS.iter().enumerate() {
            let (adapt, loss, whole, arrived) = step_numbers(t, i);
            let adapt = match adapt {
                _ if i == 0 => "–".to_string(),
                Some(a) => format!("{a:.0}"),
                None => "never".to_string(),
            };
            let frames = if i == 0 {
                format!("{intact:.0}")
            } else {
                String::new()
            };
            println!(
                "{:<24} {:>5.1} Mb/s {:>8} {:>8.1} {:>8.1} {:>9.0} {:>8}",
                if i == 0 { t.name } else { "" },
                mbps,
                adapt,
                loss,
                whole,
                arrived,
                frames
            );
        }
    }
}

/// An SVG of the four runs (received kbit/s and frames intact per second), made a PNG by headless Chromium.
fn plot(traces: &[Trace], png: &Path) {
    const COLOURS: [&str; 4] = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c"];
    let (w, h, left, top) = (1000.0, 640.0, 60.0, 30.0);
    let (pw, ph1, ph2) = (w - left - 20.0, 330.0, 170.0);
    let x = |s: f64| left + pw * s / SECONDS as f64;
    let y1 = |k: f64| top + ph1 * (1.0 - k.min(4500.0) / 4500.0);
    let top2 = top + ph1 + 60.0;
    let y2 = |f: f64| top2 + ph2 * (1.0 - f.min(32.0) / 32.0);
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\
         <rect width='100%' height='100%' fill='white'/>\
         <text x='{left}' y='18' font-size='14'>kbit/s received per second (grey: the link's capacity)</text>\
         <text x='{left}' y='{}' font-size='14'>frames decoded whole per second of media</text>",
        top2 - 12.0
    );
    for k in [0, 1000, 2000, 3000, 4000] {
        let yy = y1(k as f64);
        svg += &format!("<line x1='{left}' x2='{}' y1='{yy}' y2='{yy}' stroke='#eee'/><text x='8' y='{}'>{k}</text>", left + pw, yy + 4.0);
    }
    for f in [0, 10, 20, 30] {
        let yy = y2(f as f64);
        svg += &format!("<line x1='{left}' x2='{}' y1='{yy}' y2='{yy}' stroke='#eee'/><text x='30' y='{}'>{f}</text>", left + pw, yy + 4.0);
    }
    for s in (0..=SECONDS).step_by(10) {
        svg += &format!(
            "<text x='{}' y='{}'>{s} s</text>",
            x(s as f64) - 8.0,
            top2 + ph2 + 18.0
        );
    }
    let mut capacity = String::new();
    for (i, (start, mbps)) in STEPS.iter().enumerate() {
        let end = STEPS.get(i + 1).map_or(SECONDS * 1000, |s| s.0);
        let yy = y1(mbps * 1000.0);
        capacity += &format!(
            "{},{yy} {},{yy} ",
            x(*start as f64 / 1000.0),
            x(end as f64 / 1000.0)
        );
    }
    svg += &format!(
        "<polyline points='{capacity}' fill='none' stroke='#999' stroke-width='6' opacity='0.5'/>"
    );
    for (i, t) in traces.iter().enumerate() {
        // A series that ends early (nothing more arrived whole) goes on at zero.
        let points = |v: Vec<f64>, y: &dyn Fn(f64) -> f64| {
            v.iter()
                .chain(std::iter::repeat(&0.0))
                .take(SECONDS as usize)
                .enumerate()
                .map(|(s, k)| format!("{},{} ", x(s as f64 + 0.5), y(*k)))
                .collect::<String>()
        };
        let c = COLOURS[i % 4];
        svg += &format!(
            "<polyline points='{}' fill='none' stroke='{c}' stroke-width='2'/>",
            points(series(&t.report, "kbps"), &y1)
        );
        svg += &format!(
            "<polyline points='{}' fill='none' stroke='{c}' stroke-width='2'/>",
            points(series(&t.report, "intact"), &y2)
        );
        svg += &format!(
            "<rect x='{}' y='{}' width='14' height='4' fill='{c}'/><text x='{}' y='{}'>{}</text>",
            left + pw - 200.0,
            top + 8.0 + 16.0 * i as f64,
            left + pw - 180.0,
            top + 13.0 + 16.0 * i as f64,
            t.name
        );
    }
    svg += "</svg>";
    svg_to_png(&svg, png, 1000, 640);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let out = support::bench_dir();
    let only = std::env::var("RTC_BENCH_PUBLISHERS")
        .unwrap_or_else(|_| "ours,off,chromium,gstreamer".into());
    let mut traces = Vec::new();
    for p in only.split(',') {
        let trace = match p {
            "ours" => run_obs("RTC Studio", "on"),
            "off" => run_obs("RTC Studio, adaptation off", "off"),
            "chromium" => run_chromium(),
            "gstreamer" => run_gstreamer(),
            other => panic!("RTC_BENCH_PUBLISHERS: unknown publisher {other}"),
        };
        if std::env::var_os("RTC_BENCH_DEBUG").is_some() {
            println!(
                "{}: target {:?}\n{}",
                trace.name, trace.target, trace.report["timeline"]
            );
        }
        traces.push(trace);
    }
    print_table(&traces);
    plot(&traces, &out.join("link-steps.png"));
}
