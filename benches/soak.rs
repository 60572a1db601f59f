//! Soak: one long stream, as a streamer's evening is — real libobs 29.0.2, x264 `zerolatency` 720p30 at
//! 2.5 Mbit/s, through our wire (1 % of the media lost at random on the way up, 10 ms each way) to our receiver —
//! with a 1.5 s cut of the link both ways every tenth of the run (every 6 minutes in an hour) and one server
//! crash at 55 % (our receiver exits at once with no goodbye; a new one listens on the same port and the plugin
//! publishes into it again). Every 10 s it samples the OBS process (RSS, threads, open files, and through the
//! runner's `--heap-log` glibc's heap) and the wire.
//!
//! Prints a table (a row per tenth of the run) and the verdicts the soak is for: RSS growth after the first
//! 5 minutes (a tenth of shorter runs), threads and files flat, each cut and the crash repaired (the seconds until
//! whole frames arrive again), the share of frames decodable, the A/V offset at the end. Writes
//! target/bench/soak.png (RSS, kbit/s and loss over time). Never fails on numbers.
//!
//! `make soak` runs it for 60 minutes; `RTC_SOAK_MINUTES=5 cargo bench --bench soak` for a shorter run. Needs root
//! (namespaces), the release plugin and runner (`make soak` builds them), Chromium for the PNG.
#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::bench_dir;
use support::browser::svg_to_png;
use support::netns::wire::{LinkConfig, LinkStats, DOWN, UP};
use support::netns::{LinkedHosts, RemoteReceiver};
use support::obs_run::{binaries, headless_in, publisher_args};
use support::procfs::status_field;

const SAMPLE: Duration = Duration::from_secs(10);
const CUT: Duration = Duration::from_millis(1500);
const KBPS: u32 = 2500;
/// The receiver's HTTP port (fixed: the restarted one must be found where the first was).
const PORT: u16 = 8089;

/// One sample of the OBS process and the wire's uplink.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    at: f64,
    rss_kb: u64,
    /// Of RSS: anonymous memory (heap, stacks) and pages of mapped files (code as it first runs).
    anon_kb: u64,
    file_kb: u64,
    threads: u64,
    fds: u64,
    wire: LinkStats,
}

/// The OBS process (the headless runner), once it runs.
fn runner_pid() -> Option<u32> {
    let runner = binaries().1;
    let out = std::process::Command::new("pgrep")
        .args(["-n", "-f"])
        .arg(runner.display().to_string())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn sample(pid: u32, at: f64, wire: LinkStats) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at,
        rss_kb: status_field(&status, "VmRSS:"),
        anon_kb: status_field(&status, "RssAnon:"),
        file_kb: status_field(&status, "RssFile:"),
        threads: status_field(&status, "Threads:"),
        fds,
        wire,
    })
}

fn receiver(hosts: &LinkedHosts, args: &[&str]) -> RemoteReceiver {
    let http = format!("{}:{PORT}", hosts.server_addr);
    let udp = format!("{}:0", hosts.server_addr);
    let mut all = vec!["--http", http.as_str(), "--udp", udp.as_str()];
    all.extend_from_slice(args);
    RemoteReceiver::start_in(
        &hosts.server,
        &binaries().1.with_file_name("mock_sfu"),
        &all,
    )
}

/// Whole frames per second of media from a receiver's report.
fn intact(report: &Value) -> Vec<u64> {
    report["timeline"]["intact"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

/// Seconds from `from` (s of the receiver's media) until a second with 90 % of its frames whole.
fn back_after(frames: &[u64], from: usize) -> Option<usize> {
    frames
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, f)| **f >= 27)
        .map(|(s, _)| s - from)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let minutes: f64 = std::env::var("RTC_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(60.0);
    let seconds = (minutes * 60.0).round() as u64;
    let crash_at = seconds as f64 * 0.55;
    let cuts: Vec<f64> = (1..10)
        .map(|k| seconds as f64 * k as f64 / 10.0)
        .filter(|t| (t - crash_at).abs() > 30.0)
        .collect();
    let warmup = (seconds as f64 / 10.0).min(300.0);
    println!(
        "soak: {minutes} min, 720p30 x264 at {KBPS} kbit/s, 1 % media loss up; cuts of {} s at {cuts:?} s; \
         server crash at {crash_at:.0} s",
        CUT.as_secs_f64()
    );

    let hosts = LinkedHosts::create_wired("soak", 20261204);
    hosts.wire().set(UP, LinkConfig::lossy(0.01));
    hosts.wire().set(DOWN, LinkConfig::clear());
    let timeout = (seconds + 120).to_string();
    let crash = format!("{crash_at:.0}");
    let first = receiver(&hosts, &["--timeout", &timeout, "--crash-after", &crash]);
    let heap_log = bench_dir().join("soak-heap.txt");
    let mut args = publisher_args(seconds as u32, KBPS, &first.url);
    args.extend(["--heap-log".to_string(), heap_log.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let t0 = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (run, samples, reports) = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| headless_in(Some(&hosts.publisher), &args, None));
        let wire = hosts.wire();
        let mut samples = Vec::new();
        let mut reports = Vec::new();
        let mut first = Some(first);
        let mut second = None;
        let mut next_cut = cuts.iter().peekable();
        let mut next_sample = Duration::ZERO;
        while !publisher.is_finished() {
            let now = t0.elapsed().as_secs_f64();
            if first.is_some() && now >= crash_at {
                // The first receiver printed what it had and exited; a new one on the same port.
                reports.push(first.take().unwrap().report());
                second = Some(receiver(&hosts, &["--timeout", &timeout]));
                println!("{now:.0} s: server crashed and started again");
            }
            if let Some(&&cut) = next_cut.peek() {
                if now >= cut {
                    next_cut.next();
                    let cut_both = LinkConfig {
                        cut: true,
                        ..LinkConfig::clear()
                    };
                    wire.set(UP, cut_both.clone());
                    wire.set(DOWN, cut_both);
                    std::thread::sleep(CUT);
                    wire.set(UP, LinkConfig::lossy(0.01));
                    wire.set(DOWN, LinkConfig::clear());
                    println!("{now:.0} s: link cut for {} s", CUT.as_secs_f64());
                }
            }
            if t0.elapsed() >= next_sample {
                next_sample += SAMPLE;
                if let Some(s) = runner_pid().and_then(|pid| sample(pid, now, wire.stats(UP))) {
                    samples.push(s);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let run = publisher.join().unwrap();
        if let Some(r) = second.take() {
            reports.push(r.report());
        }
        (run, samples, reports)
    });

    print_table(&samples, seconds);
    let log = bench_dir().join("soak-obs.log");
    std::fs::write(&log, &run.log).unwrap();
    println!("OBS's log: {}", log.display());
    let plan = Plan {
        seconds,
        cuts,
        crash_at,
        warmup,
        started_unix,
    };
    verdicts(&run, &samples, &reports, &plan);
    heap_verdict(&heap_log, warmup);
    plot(&samples, seconds);
}

fn print_table(samples: &[Sample], seconds: u64) {
    println!("\n|   time | RSS (MB) | threads | open files | kbit/s up | media lost |");
    println!("|---|---|---|---|---|---|");
    let step = (seconds as f64 / 10.0).max(SAMPLE.as_secs_f64());
    let mut next = 0.0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.at < next {
            continue;
        }
        next += step;
        let dt = (b.at - a.at).max(1.0);
        let kbps = (b.wire.bytes - a.wire.bytes) as f64 * 8.0 / dt / 1000.0;
        let sent = (b.wire.packets - a.wire.packets).max(1);
        let lost = (b.wire.lost - a.wire.lost) as f64 / sent as f64 * 100.0;
        println!(
            "| {:>4.0} s | {:>8.1} | {:>7} | {:>10} | {kbps:>9.0} | {lost:>9.2} % |",
            b.at,
            b.rss_kb as f64 / 1024.0,
            b.threads,
            b.fds
        );
    }
}

/// What glibc's heap did after the warm-up (the runner's `--heap-log`): memory in use against RSS tells a leak
/// from freed memory the allocator keeps.
fn heap_verdict(path: &std::path::Path, warmup: f64) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let rows: Vec<[f64; 4]> = text
        .lines()
        .filter_map(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            <[f64; 4]>::try_from(v).ok()
        })
        .filter(|r| r[0] >= warmup)
        .collect();
    let (Some(a), Some(b)) = (rows.first(), rows.last()) else {
        println!("no heap figures in {}", path.display());
        return;
    };
    let mb = |x: f64| x / 1_048_576.0;
    println!(
        "heap after {warmup:.0} s (glibc, all arenas): in use {:.1} → {:.1} MB ({:+.1}), free but kept {:.1} → {:.1} MB, \
         mmapped {:.1} → {:.1} MB",
        mb(a[1] + a[3]),
        mb(b[1] + b[3]),
        mb(b[1] + b[3] - a[1] - a[3]),
        mb(a[2]),
        mb(b[2]),
        mb(a[3]),
        mb(b[3])
    );
}

struct Plan {
    seconds: u64,
    cuts: Vec<f64>,
    crash_at: f64,
    /// RSS is judged from here on.
    warmup: f64,
    /// The run's start, Unix time in s.
    started_unix: f64,
}

fn verdicts(run: &support::obs_run::Run, samples: &[Sample], reports: &[Value], plan: &Plan) {
    let Plan {
        seconds,
        ref cuts,
        crash_at,
        warmup,
        started_unix,
    } = *plan;
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at >= warmup).collect();
    if let (Some(a), Some(b)) = (settled.first(), settled.last()) {
        let range = |f: fn(&Sample) -> u64| {
            let v = settled.iter().map(|s| f(s));
            (v.clone().min().unwrap_or(0), v.max().unwrap_or(0))
        };
        let mb = |kb: u64| kb as f64 / 1024.0;
        let growth = |f: fn(&Sample) -> u64| (f(b) as f64 - f(a) as f64) / 1024.0;
        println!(
            "\nRSS after {warmup:.0} s: {:.1} → {:.1} MB (growth {:+.1} MB; target < 5 MB) — anonymous {:.1} → {:.1} MB \
             ({:+.1}), mapped files {:.1} → {:.1} MB ({:+.1}); threads {:?}; open files {:?}",
            mb(a.rss_kb),
            mb(b.rss_kb),
            growth(|s| s.rss_kb),
            mb(a.anon_kb),
            mb(b.anon_kb),
            growth(|s| s.anon_kb),
            mb(a.file_kb),
            mb(b.file_kb),
            growth(|s| s.file_kb),
            range(|s| s.threads),
            range(|s| s.fds)
        );
    }
    // Media seconds of each receiver: the first from the start, the second from the crash (plus reconnecting).
    let mut whole = 0;
    for (i, r) in reports.iter().enumerate() {
        let frames = intact(r);
        whole += frames.iter().sum::<u64>();
        let events: Vec<(String, f64)> = match i {
            0 => cuts
                .iter()
                .filter(|c| **c < crash_at)
                .map(|c| (format!("cut at {c:.0} s"), *c))
                .collect(),
            _ => cuts
                .iter()
                .filter(|c| **c > crash_at)
                .map(|c| (format!("cut at {c:.0} s"), c - crash_at))
                .collect(),
        };
        for (what, at) in events {
            match back_after(&frames, at as usize) {
                Some(s) => println!("{what}: whole frames again within {s} s"),
                None => println!("{what}: NOT repaired (no whole second after it)"),
            }
        }
        println!(
            "receiver {}: {} WHIP session(s), {} s of media, {} frames whole, first frame at {:.1} s of the run",
            i + 1,
            r["sessions"],
            frames.len(),
            frames.iter().sum::<u64>(),
            r["first_frame_unix_ms"].as_f64().unwrap_or(0.0) / 1000.0 - started_unix
        );
        if i == 1 {
            println!(
                "server crash at {crash_at:.0} s: the new server's first frame {} ms after OBS's new offer; A/V offset at the end {} ms",
                r["first_frame_ms"], r["av_offset_ms"]
            );
        }
    }
    let expected = 30 * seconds;
    println!(
        "frames decodable: {whole} of {expected} made ({:.1} %; target ≥ 98 %)",
        whole as f64 / expected as f64 * 100.0
    );
    // Each line once, whichever of the words it has.
    support::obs_run::print_lines(
        &run.log,
        &[
            "connection back after",
            "ICE restart",
            "was lost",
            "stream ended",
        ],
    );
    println!("leaks at the end: {}", run.summary["leaks"]);
}

/// RSS (MB), kbit/s and media loss (%) over time, one above the other.
fn plot(samples: &[Sample], seconds: u64) {
    let (w, h, left) = (1000.0, 600.0, 70.0);
    let pw = w - left - 20.0;
    let x = |t: f64| left + pw * t / seconds as f64;
    let panels: [(&str, f64, f64); 3] = [
        ("RSS (MB)", 30.0, 160.0),
        ("kbit/s up", 220.0, 160.0),
        ("media lost (%)", 410.0, 160.0),
    ];
    let mut series: [Vec<(f64, f64)>; 3] = Default::default();
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let dt = (b.at - a.at).max(1.0);
        series[0].push((b.at, b.rss_kb as f64 / 1024.0));
        series[1].push((
            b.at,
            (b.wire.bytes - a.wire.bytes) as f64 * 8.0 / dt / 1000.0,
        ));
        let sent = (b.wire.packets - a.wire.packets).max(1) as f64;
        series[2].push((b.at, (b.wire.lost - a.wire.lost) as f64 / sent * 100.0));
    }
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\
         <rect width='100%' height='100%' fill='white'/>"
    );
    for ((name, top, ph), points) in panels.iter().zip(&series) {
        let max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let y = |v: f64| top + ph * (1.0 - v / max);
        svg += &format!(
            "<text x='{left}' y='{}' font-size='14'>{name}, 0 to {max:.1}</text>\
             <line x1='{left}' x2='{}' y1='{}' y2='{}' stroke='#ccc'/>",
            top - 6.0,
            left + pw,
            top + ph,
            top + ph
        );
        let line: String = points
            .iter()
            .map(|(t, v)| format!("{},{} ", x(*t), y(*v)))
            .collect();
        svg +=
            &format!("<polyline points='{line}' fill='none' stroke='#1f77b4' stroke-width='2'/>");
    }
    for m in (0..=seconds).step_by((seconds as usize / 10).max(60)) {
        svg += &format!(
            "<text x='{}' y='{}'>{} min</text>",
            x(m as f64) - 10.0,
            h - 10.0,
            m / 60
        );
    }
    svg += "</svg>";
    svg_to_png(&svg, &bench_dir().join("soak.png"), w as u32, h as u32);
}
