//! Running the headless runner (real libobs under Xvfb + our plugin) from tests.
#![allow(dead_code)]
use super::netns::{LinkedHosts, RemoteReceiver};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

/// libobs runs are serialised: one display, one encoder load on a 2-core machine.
pub static OBS: Mutex<()> = Mutex::new(());

/// Held for the whole of a test whose receiver decodes a stream (and may decode more after OBS stops): measuring
/// lip sync while another test's receiver decodes on the same 2 cores starves OBS's renderer, which then shows the
/// flash a frame late — OBS's behaviour under load, not ours.
pub static RECEIVING: Mutex<()> = Mutex::new(());

pub fn receiving() -> std::sync::MutexGuard<'static, ()> {
    RECEIVING.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn build_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn newest_source_change() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            // Unit tests (`tests/` folders, `*_tests.rs`) are not in the plugin.
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name == "tests" || name.ends_with("_tests.rs") {
                continue;
            }
            if p.is_dir() {
                walk(&p, newest);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(m);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = SystemTime::UNIX_EPOCH;
    walk(&root.join("plugin"), &mut newest);
    walk(&root.join("obs-headers"), &mut newest);
    newest
}

/// The plugin and runner as `make build` leaves them; refuses a plugin older than its sources.
pub fn binaries() -> (PathBuf, PathBuf) {
    let dir = build_dir();
    let (plugin, runner) = (dir.join("librtc_studio.so"), dir.join("examples/headless"));
    assert!(
        plugin.exists() && runner.exists(),
        "build first: `cargo build --lib --examples` (make test does)"
    );
    let built = std::fs::metadata(&plugin).unwrap().modified().unwrap();
    assert!(
        built >= newest_source_change(),
        "{} is older than the sources: run `cargo build --lib --examples` (make test does)",
        plugin.display()
    );
    (plugin, runner)
}

/// A 6 s clip with moving video and a tone, made once per build directory.
pub fn test_clip() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libobs-test-clip.mkv");
    if !path.exists() {
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30",
                "-f",
                "lavfi",
            ])
            .args([
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                "6",
                "-c:v",
                "libx264",
                "-preset",
            ])
            .args(["ultrafast", "-pix_fmt", "yuv420p", "-c:a", "flac"])
            .arg(&path)
            .status()
            .expect("ffmpeg (make deps)");
        assert!(status.success(), "ffmpeg could not make the test clip");
    }
    path
}

pub struct Run {
    pub summary: Value,
    pub packets: Vec<Value>,
    pub header: Value,
    pub log: String,
}

pub fn headless(args: &[&str], with_packet_log: Option<&str>) -> Run {
    headless_in(None, args, with_packet_log)
}

/// [`headless`] on a thread of its own, while the test does something to the stream; join it for the run.
pub fn headless_meanwhile(args: &[impl AsRef<str>]) -> std::thread::JoinHandle<Run> {
    let owned: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        headless(&args, None)
    })
}

/// Prints the lines of `log` that contain any of `words`.
pub fn print_lines(log: &str, words: &[&str]) {
    for line in log.lines().filter(|l| words.iter().any(|w| l.contains(w))) {
        println!("{line}");
    }
}

/// How long until `done` holds, asked every `every`; None if not within `limit`.
pub fn time_until(
    limit: std::time::Duration,
    every: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> Option<std::time::Duration> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < limit {
        if done() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(every);
    }
    None
}

/// [`headless`] with more environment variables (e.g. `SSL_CERT_FILE`, a trust store of the test's own).
pub fn headless_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    run_headless(None, args, None, env)
}

/// [`headless`] inside network namespace `netns` (see `support::netns`), or in ours with None.
pub fn headless_in(netns: Option<&str>, args: &[&str], with_packet_log: Option<&str>) -> Run {
    run_headless(netns, args, with_packet_log, &[])
}

/// A 1 s stream with a 2 s connect timeout and `args` (the server's URL and settings) that must fail: with stop
/// code `code` and a message containing `words`, in bounded time (Start → the stop signal: the timeout and
/// teardown), with no leak, no panic, and no stream thread left at module unload. What went otherwise, one line
/// each, named `name`.
pub fn failed_clearly(name: &str, args: &[&str], code: i64, words: &str) -> Vec<String> {
    let t0 = std::time::Instant::now();
    let mut all = vec!["--duration", "1", "--connect-timeout", "2"];
    all.extend_from_slice(args);
    let run = headless(&all, None);
    let s = &run.summary;
    let error = s["last_error"].as_str().unwrap_or_default();
    println!(
        "{name:>14}: code {} in {:.1} s: {error}",
        s["stop_code"],
        t0.elapsed().as_secs_f64()
    );
    let bounded = s["start_ms"].as_f64().is_some_and(|ms| ms < 5000.0);
    let mut problems = Vec::new();
    if s["connected"] != false
        || s["stop_code"] != code
        || !error.contains(words)
        || s["leaks"] != 0
        || !bounded
    {
        problems.push(format!(
            "{name}: expected code {code} with {words:?}, got {s}"
        ));
    }
    if run.log.contains("panicked") {
        problems.push(format!("{name}: a panic was logged"));
    }
    if !run
        .log
        .contains("[rtc-studio] unloaded: every stream thread has ended")
    {
        problems.push(format!("{name}: a stream thread outlived module unload"));
    }
    problems
}

/// [`headless_in`] with more environment variables.
pub fn headless_in_env(netns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_headless(netns, args, None, env)
}

fn run_headless(
    netns: Option<&str>,
    args: &[&str],
    with_packet_log: Option<&str>,
    env: &[(&str, &str)],
) -> Run {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    let (plugin, runner) = binaries();
    let packet_log =
        with_packet_log.map(|name| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name));
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "xvfb-run"]);
            c
        }
        None => Command::new("xvfb-run"),
    };
    cmd.args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(&runner)
        .arg("--plugin")
        .arg(&plugin)
        .args(args)
        .envs(env.iter().copied());
    if let Some(p) = &packet_log {
        let _ = std::fs::remove_file(p);
        cmd.arg("--packet-log").arg(p);
    }
    let out = cmd.output().expect("xvfb-run (make deps)");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let summary = log
        .lines()
        .find_map(|l| l.strip_prefix("summary "))
        .map(|s| serde_json::from_str(s).unwrap())
        .unwrap_or_else(|| panic!("no summary from the headless runner:\n{log}"));
    let mut lines: Vec<Value> = packet_log
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default();
    let header = if lines.is_empty() {
        Value::Null
    } else {
        lines.remove(0)
    };
    Run {
        summary,
        packets: lines,
        header,
        log,
    }
}

/// The flash/beep demo clip (see scripts/demo-clip.sh) at `size`, made once per build directory.
pub fn flash_beep_clip(size: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("flash-beep-v3-{size}.mkv"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-clip.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&path)
        .args(["8", size])
        .status()
        .expect("bash");
    assert!(status.success(), "scripts/demo-clip.sh failed");
    path
}

/// Numbers from the plugin's "stream ended: V video and A audio packets" log line.
pub fn packets_sent(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.contains("[rtc-studio] stream ended:"))
        .expect("no 'stream ended' line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// The headless runner's arguments for OBS at 1280x720, 30 fps, x264 `zerolatency` at `kbps`, streaming the flash/beep
/// clip for `seconds` to `url`.
pub fn publisher_args(seconds: u32, kbps: u32, url: &str) -> Vec<String> {
    let clip = flash_beep_clip("1280x720");
    let (seconds, kbps) = (seconds.to_string(), kbps.to_string());
    [
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        &seconds,
        "--width",
        "1280",
        "--height",
        "720",
        "--bitrate",
        &kbps,
        "--tune",
        "zerolatency",
        "--url",
        url,
    ]
    .map(String::from)
    .to_vec()
}

/// OBS (headless, real libobs) at 1280x720, 30 fps, x264 `zerolatency` at `kbps` for `seconds`, to `receiver` (a
/// WHIP receiver program run on the server host with `args`) through the hosts' link.
pub fn publish_through(
    hosts: &LinkedHosts,
    receiver: &std::path::Path,
    args: &[&str],
    kbps: u32,
    seconds: u32,
) -> (Run, serde_json::Value) {
    publish_through_with(hosts, receiver, args, kbps, seconds, &[])
}

/// [`publish_through`] with more arguments for the headless runner (`--layers 3`, …).
pub fn publish_through_with(
    hosts: &LinkedHosts,
    receiver: &std::path::Path,
    args: &[&str],
    kbps: u32,
    seconds: u32,
    more: &[&str],
) -> (Run, serde_json::Value) {
    let receiver = RemoteReceiver::start_in(&hosts.server, receiver, args);
    let mut all = publisher_args(seconds, kbps, &receiver.url);
    all.extend(more.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let run = headless_in(Some(&hosts.publisher), &all, None);
    let report = receiver.report();
    let uplink = hosts.wired().map(|w| w.stats(super::netns::wire::UP));
    println!("uplink {uplink:?}\nreceiver {report}");
    print_network_lines(&run);
    assert_eq!(run.summary["connected"], true, "{}", run.log);
    (run, report)
}

/// Prints the plugin's log lines on repairs and bandwidth (NACKs, retransmissions, the estimate, bitrate changes,
/// dropped video).
pub fn print_network_lines(run: &Run) {
    const KEYS: [&str; 6] = [
        "NACKs from the server",
        "retransmissions of",
        "bandwidth estimat",
        "bitrate adaptation",
        "dropping video",
        "video bitrate →",
    ];
    for l in run
        .log
        .lines()
        .filter(|l| KEYS.iter().any(|k| l.contains(k)))
    {
        println!("{l}");
    }
}

/// A lossy-link test proves something only when the wire lost at least `at_least` packets (`lost`) and the run
/// negotiated retransmissions on their own stream.
pub fn assert_lossy_with_rtx(lost: u64, at_least: u64, run: &Run) {
    assert!(
        lost > at_least,
        "the wire lost too little to prove anything: {lost} packets"
    );
    assert!(
        run.log
            .contains("retransmissions of lost video packets on their own stream (RTX"),
        "RTX was not negotiated:\n{}",
        run.log
    );
}
