//! Headless runner: hosts real libobs (no OBS window), loads the RTC Studio plugin, encodes a scene with x264 +
//! Opus and streams it through `rtc_studio_output` for a while, then stops, shuts libobs down and prints a summary.
//!
//! Needs an X display: run under `xvfb-run -a`. See `--help`.
use rtc_studio::obs::data::Data;
mod host;

use host::{ObsHost, VideoMix, NOT_STOPPED};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const HELP: &str = "\
headless — stream a scene from real libobs through the RTC Studio plugin, without the OBS window

USAGE:
    xvfb-run -a headless [OPTIONS]

WHERE TO:
    --url URL            WHIP endpoint of the server (the service's `server` setting)
    --token TOKEN        bearer token sent to the server (never printed); with --janus-room, Janus's API secret/token
    --profile P          x264 profile: high (default), main or baseline (browsers decode main and baseline)
    --janus-room N       publish into Janus VideoRoom N through Janus's REST API (--url is then the API root,
                         e.g. http://host:8088/janus) instead of WHIP
    --janus-pin PIN      the room's PIN (never printed)
    --janus-display NAME the publisher's display name in the room (default OBS)
    --ant-media-stream ID  publish stream ID over Ant Media Server's WebSocket signalling (--url is then the
                         application's WebSocket URL or page, e.g. wss://host:5443/LiveApp/websocket; --token its
                         stream token)
    --ice-server URL     a STUN/TURN server (stun:host:port, turn:host:port); repeat for more
    --ice-username U     TURN username (with --turn-secret: appended to the expiry time)
    --ice-credential P   TURN password (never printed)
    --turn-secret S      coturn's static-auth-secret: time-limited TURN credentials are made from it (never printed)
    --ice-policy P       all (default) or relay: send only through TURN
    --adaptive on|off    follow the network: the video encoder's bitrate tracks the bandwidth estimate (default on)
    --min-bitrate KBPS   the lowest video bitrate adaptation may set (default 300)
    --layers N           simulcast: 1 (default) to 3 video layers, each smaller one at half the size of the one above
    --packet-log FILE    record every packet OBS hands the plugin as JSON lines in FILE instead of publishing
    --metrics ADDR       serve Prometheus metrics at http://ADDR/metrics (a port alone: on 127.0.0.1)
    --connect-timeout S  seconds allowed for WHIP signalling + ICE + DTLS (default 10)
    --stop-after SECS    stop the output this long after starting it, even if it is still connecting
    --heap-log FILE      every 10 s, append `<s> <heap in use> <heap free> <mmapped>` (bytes, glibc's mallinfo2
                         over all arenas) to FILE: tells a leak (in use grows) from freed memory the allocator keeps
    --packets-from P     encoders (default: straight from the encoders) or interleaver (through libobs's
                         interleaver, as OBS feeds outputs by itself; adds the video encoder's delay to audio)

WHAT TO STREAM:
    --media FILE         loop this media file (video and audio) as the scene; default: a solid colour with silence
    --duration SECS      how long to stream, in seconds (default 5)
    --width N            video width (default 640)
    --height N           video height (default 360)
    --fps N[/D]          frame rate, e.g. 30 or 30000/1001 (default 30)
    --video-encoder ID   OBS's video encoder: obs_x264 (default), or e.g. ffmpeg_svt_av1 / ffmpeg_aom_av1 (AV1; the
                         x264 options below then do not apply, --av1-preset does)
    --av1-preset N       the AV1 encoder's speed preset (default 12, SVT-AV1's fastest; AOM takes 0-9 here)
    --bitrate KBPS       video bitrate in kbit/s (default 1500)
    --keyint SECS        seconds between keyframes (default 2)
    --bframes N          x264 B-frames (default 0; WebRTC receivers prefer none)
    --preset NAME        x264 preset (default veryfast)
    --tune NAME          x264 tune, e.g. zerolatency (default none)
    --audio-bitrate KBPS Opus bitrate in kbit/s (default 128)

WHERE THINGS ARE:
    --plugin FILE        the plugin .so (default: librtc_studio.so next to this runner's build directory)
    --plugin-data DIR    the plugin's data directory (default: this repository's data/)
    --obs-plugins DIR    OBS's plugin binaries (default /usr/lib/x86_64-linux-gnu/obs-plugins)
    --obs-data DIR       OBS's plugin data (default /usr/share/obs/obs-plugins)

OUTPUT:
    libobs's log on stdout, then one line `summary {json}` with: libobs version, started, connected, start_ms
    (obs_output_start to active, or to the failure's stop signal), service_video_codecs (what the service tells
    OBS it takes), stop_call_ms (how long obs_output_stop blocked), stopped_ms (obs_output_stop to inactive),
    total_bytes, total_frames, frames_dropped, congestion_max and congestion_mean (obs_output_get_congestion
    sampled every 100 ms while streaming, and congestion_samples), video_bitrates ([ms since streaming began,
    kbit/s] each time the video encoder's bitrate setting changed, sampled every 100 ms), last_error, stop_code (OBS_OUTPUT_* code of the output's last
    `stop` signal: 0 success, -1 bad path, -2 connect failed, -3 invalid stream, -4 error, -5 disconnected,
    -6 unsupported), leaks (libobs allocations left after shutdown).
    With --packet-log, `arrived:` lines follow: packets per second and capture → plugin delay per media kind.
    Exit status 0 when the output started, streamed and stopped cleanly.
";

struct Options {
    url: String,
    token: String,
    janus_room: String,
    profile: String,
    janus_pin: String,
    ant_media_stream: String,
    janus_display: String,
    ice_servers: Vec<String>,
    ice_username: String,
    ice_credential: String,
    turn_secret: String,
    relay_only: bool,
    adaptive: bool,
    min_bitrate: i64,
    layers: i64,
    packet_log: String,
    metrics: String,
    media: Option<String>,
    duration: f64,
    width: u32,
    height: u32,
    fps: (u32, u32),
    bitrate: i64,
    keyint: i64,
    bframes: i64,
    preset: String,
    video_encoder: String,
    av1_preset: i64,
    tune: String,
    audio_bitrate: i64,
    connect_timeout: i64,
    through_interleaver: bool,
    stop_after: Option<f64>,
    heap_log: String,
    plugin: String,
    plugin_data: String,
    obs_plugins: String,
    obs_data: String,
}

fn default_plugin() -> String {
    // target/<profile>/examples/headless → target/<profile>/librtc_studio.so
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("librtc_studio.so")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "librtc_studio.so".into())
}

fn parse_fps(s: &str) -> Result<(u32, u32), String> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let n: u32 = n.parse().map_err(|_| format!("bad --fps {s}"))?;
    let d: u32 = d.parse().map_err(|_| format!("bad --fps {s}"))?;
    if n == 0 || d == 0 {
        return Err(format!("bad --fps {s}"));
    }
    Ok((n, d))
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut o = Options {
        url: String::new(),
        token: String::new(),
        janus_room: String::new(),
        profile: "high".into(),
        janus_pin: String::new(),
        ant_media_stream: String::new(),
        janus_display: String::new(),
        ice_servers: Vec::new(),
        ice_username: String::new(),
        ice_credential: String::new(),
        turn_secret: String::new(),
        relay_only: false,
        adaptive: true,
        min_bitrate: 300,
        layers: 1,
        packet_log: String::new(),
        metrics: String::new(),
        media: None,
        duration: 5.0,
        width: 640,
        height: 360,
        fps: (30, 1),
        bitrate: 1500,
        keyint: 2,
        bframes: 0,
        preset: "veryfast".into(),
        video_encoder: "obs_x264".into(),
        av1_preset: 12,
        tune: String::new(),
        audio_bitrate: 128,
        connect_timeout: 10,
        through_interleaver: false,
        stop_after: None,
        heap_log: String::new(),
        plugin: default_plugin(),
        plugin_data: concat!(env!("CARGO_MANIFEST_DIR"), "/data").into(),
        obs_plugins: "/usr/lib/x86_64-linux-gnu/obs-plugins".into(),
        obs_data: "/usr/share/obs/obs-plugins".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |what: &str| {
            value
                .parse::<i64>()
                .map_err(|_| format!("{what} takes a whole number, got {value}"))
        };
        match flag.as_str() {
            "--url" => o.url = value.clone(),
            "--token" => o.token = value.clone(),
            "--janus-room" => o.janus_room = value.clone(),
            "--profile" => o.profile = value.clone(),
            "--janus-pin" => o.janus_pin = value.clone(),
            "--ant-media-stream" => o.ant_media_stream = value.clone(),
            "--janus-display" => o.janus_display = value.clone(),
            "--ice-server" => o.ice_servers.push(value.clone()),
            "--ice-username" => o.ice_username = value.clone(),
            "--ice-credential" => o.ice_credential = value.clone(),
            "--turn-secret" => o.turn_secret = value.clone(),
            "--ice-policy" => {
                o.relay_only = match value.as_str() {
                    "relay" => true,
                    "all" => false,
                    _ => return Err(format!("--ice-policy is all or relay, got {value}")),
                }
            }
            "--adaptive" => {
                o.adaptive = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--adaptive is on or off, got {value}")),
                }
            }
            "--min-bitrate" => o.min_bitrate = num("--min-bitrate")?,
            "--layers" => o.layers = num("--layers")?,
            "--packet-log" => o.packet_log = value.clone(),
            "--metrics" => o.metrics = value.clone(),
            "--media" => o.media = Some(value.clone()),
            "--duration" => {
                o.duration = value
                    .parse()
                    .map_err(|_| format!("--duration takes seconds, got {value}"))?;
                if !(o.duration > 0.0 && o.duration < 86_400.0) {
                    return Err("--duration must be between 0 and 86400 seconds".into());
                }
            }
            "--width" => o.width = num("--width")?.clamp(16, 8192) as u32,
            "--height" => o.height = num("--height")?.clamp(16, 8192) as u32,
            "--fps" => o.fps = parse_fps(value)?,
            "--bitrate" => o.bitrate = num("--bitrate")?,
            "--keyint" => o.keyint = num("--keyint")?,
            "--bframes" => o.bframes = num("--bframes")?.clamp(0, 16),
            "--preset" => o.preset = value.clone(),
            "--video-encoder" => o.video_encoder = value.clone(),
            "--av1-preset" => o.av1_preset = num("--av1-preset")?,
            "--tune" => o.tune = value.clone(),
            "--audio-bitrate" => o.audio_bitrate = num("--audio-bitrate")?,
            "--connect-timeout" => o.connect_timeout = num("--connect-timeout")?.clamp(1, 120),
            "--packets-from" => {
                o.through_interleaver = match value.as_str() {
                    "interleaver" => true,
                    "encoders" => false,
                    _ => {
                        return Err(format!(
                            "--packets-from is encoders or interleaver, got {value}"
                        ))
                    }
                }
            }
            "--stop-after" => {
                o.stop_after = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--stop-after takes seconds, got {value}"))?,
                )
            }
            "--heap-log" => o.heap_log = value.clone(),
            "--plugin" => o.plugin = value.clone(),
            "--plugin-data" => o.plugin_data = value.clone(),
            "--obs-plugins" => o.obs_plugins = value.clone(),
            "--obs-data" => o.obs_data = value.clone(),
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    Ok(Some(o))
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if done() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

fn ms(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| {
        json!((d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
    })
}

fn run(o: &Options) -> Result<serde_json::Value, String> {
    let host = ObsHost::start()?;
    let version = host.version();
    let summary = stream(&host, o);
    // Everything created in `stream` is released by now; shut down and count leaks.
    let leaks = host.shutdown();
    let mut summary = summary?;
    summary["libobs"] = json!(version);
    summary["leaks"] = json!(leaks);
    Ok(summary)
}

fn stream(host: &ObsHost, o: &Options) -> Result<serde_json::Value, String> {
    host.reset_video(VideoMix {
        width: o.width,
        height: o.height,
        fps_num: o.fps.0,
        fps_den: o.fps.1,
    })?;
    host.reset_audio(48_000, true)?;
    for module in ["obs-ffmpeg", "obs-x264", "obs-outputs", "image-source"] {
        host.load_module(
            &format!("{}/{module}.so", o.obs_plugins),
            &format!("{}/{module}", o.obs_data),
        )?;
    }
    host.load_module(&o.plugin, &o.plugin_data)?;
    host.post_load_modules();

    let scene = host.create_scene("headless scene")?;
    let source = match &o.media {
        Some(file) => {
            let mut s = Data::new();
            s.set_bool("is_local_file", true)
                .set_string("local_file", file)
                .set_bool("looping", true)
                .set_bool("restart_on_activate", true)
                .set_bool("hw_decode", false);
            host.create_source("ffmpeg_source", "media", &s)?
        }
        None => {
            let mut s = Data::new();
            s.set_int("color", 0xff3366cc)
                .set_int("width", o.width as i64)
                .set_int("height", o.height as i64);
            host.create_source("color_source_v3", "colour", &s)?
        }
    };
    scene.add(&source);
    host.set_program(&scene);

    let mut v = Data::new();
    v.set_string("rate_control", "CBR")
        .set_int("bitrate", o.bitrate)
        .set_int("keyint_sec", o.keyint);
    if o.video_encoder == "obs_x264" {
        v.set_string("preset", &o.preset)
            .set_string("profile", &o.profile)
            .set_string("tune", &o.tune)
            .set_string("x264opts", &format!("bframes={}", o.bframes));
    } else {
        v.set_int("preset", o.av1_preset);
    }
    let video = host.create_video_encoder(&o.video_encoder, "video", &v)?;
    let mut a = Data::new();
    a.set_int("bitrate", o.audio_bitrate);
    let audio = host.create_audio_encoder("ffmpeg_opus", "audio", &a)?;

    let mut svc = Data::new();
    svc.set_string("server", &o.url)
        .set_string("bearer_token", &o.token);
    svc.set_string("ice_servers", &o.ice_servers.join("\n"))
        .set_string("ice_username", &o.ice_username)
        .set_string("ice_credential", &o.ice_credential)
        .set_string("turn_secret", &o.turn_secret)
        .set_bool("ice_relay_only", o.relay_only)
        .set_bool("adaptive_bitrate", o.adaptive)
        .set_int("min_bitrate_kbps", o.min_bitrate)
        .set_int("simulcast_layers", o.layers);
    if !o.janus_room.is_empty() {
        svc.set_string("signalling", "janus")
            .set_string("janus_room", &o.janus_room)
            .set_string("janus_pin", &o.janus_pin)
            .set_string("janus_display", &o.janus_display);
    }
    if !o.ant_media_stream.is_empty() {
        svc.set_string("signalling", "antmedia")
            .set_string("ant_media_stream_id", &o.ant_media_stream);
    }
    let service = host.create_service("rtc_studio_service", "service", &svc)?;
    let mut out = Data::new();
    out.set_string("packet_log", &o.packet_log)
        .set_string("metrics_listen", &o.metrics)
        .set_int("connect_timeout_s", o.connect_timeout)
        .set_bool("direct_from_encoders", !o.through_interleaver);
    let output = host.create_output("rtc_studio_output", "stream", &out)?;
    output.set_encoders(&video, &audio);
    output.set_service(&service);

    let t0 = Instant::now();
    let started = output.start();
    let mut summary =
        json!({"started": started, "service_video_codecs": service.supported_video_codecs()});
    if started {
        // Connected (active) or failed (stop signal) — whichever comes first.
        let limit = Duration::from_secs(o.connect_timeout as u64 + 5);
        let give_up = o.stop_after.map(Duration::from_secs_f64);
        wait_until(limit, || {
            output.active()
                || output.stop_code() != NOT_STOPPED
                || give_up.is_some_and(|g| t0.elapsed() >= g)
        });
        let active = output.active().then(|| t0.elapsed());
        summary["connected"] = json!(active.is_some());
        summary["start_ms"] =
            ms(active.or_else(|| (output.stop_code() != NOT_STOPPED).then(|| t0.elapsed())));
        if active.is_some() {
            let end = Instant::now() + Duration::from_secs_f64(o.duration);
            // Stop early if the output stops by itself (a failure). OBS's status bar reads the congestion
            // every second; sample it more often.
            let mut congestion = Vec::new();
            let mut bitrates: Vec<(u64, i64)> = Vec::new();
            let streaming = Instant::now();
            let mut next_sample = Instant::now();
            while Instant::now() < end && output.active() {
                if Instant::now() >= next_sample {
                    congestion.push(output.congestion() as f64);
                    let kbps = video.bitrate();
                    if bitrates.last().is_none_or(|(_, b)| *b != kbps) {
                        bitrates.push((streaming.elapsed().as_millis() as u64, kbps));
                    }
                    next_sample += Duration::from_millis(100);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            summary["video_bitrates"] = json!(bitrates);
            summary["congestion_samples"] = json!(congestion);
            summary["ended_by_itself"] = json!(!output.active());
            summary["congestion_max"] = json!(congestion.iter().copied().fold(0.0, f64::max));
            summary["congestion_mean"] =
                json!(congestion.iter().sum::<f64>() / congestion.len().max(1) as f64);
        }
        let t_stop = Instant::now();
        // libobs ignores obs_output_stop for an output that is not active yet (still connecting); one that has
        // already stopped (a failure) needs nothing.
        if output.active() {
            output.stop();
        } else if output.stop_code() == NOT_STOPPED {
            summary["force_stop"] = json!(true);
            output.force_stop();
        }
        summary["stop_call_ms"] = ms(Some(t_stop.elapsed()));
        summary["stopped_ms"] =
            ms(wait_until(Duration::from_secs(10), || !output.active()).map(|_| t_stop.elapsed()));
        // OBS's "stop" signal may follow a moment later (e.g. when stopped while still connecting).
        summary["stop_signal_ms"] = ms(wait_until(Duration::from_secs(10), || {
            output.stop_code() != NOT_STOPPED
        })
        .map(|_| t_stop.elapsed()));
    }
    summary["total_bytes"] = json!(output.total_bytes());
    summary["total_frames"] = json!(output.total_frames());
    summary["frames_dropped"] = json!(output.frames_dropped());
    summary["last_error"] = json!(output.last_error());
    let code = output.stop_code();
    summary["stop_code"] = if code == NOT_STOPPED {
        serde_json::Value::Null
    } else {
        json!(code)
    };

    drop(output);
    drop(service);
    drop(audio);
    drop(video);
    host.clear_program();
    drop(scene);
    drop(source);
    Ok(summary)
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// A few human lines about what the plugin received, from its packet log.
fn describe_packet_log(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let header = lines.first()?;
    let mut out = String::new();
    for kind in ["video", "audio"] {
        let pkts: Vec<&serde_json::Value> = lines.iter().filter(|p| p["kind"] == kind).collect();
        if pkts.len() < 2 {
            out += &format!("arrived: {} {kind} packets\n", pkts.len());
            continue;
        }
        let t = |p: &serde_json::Value, k: &str| p[k].as_i64().unwrap_or(0) as f64;
        let span = (t(pkts[pkts.len() - 1], "handoff_usec") - t(pkts[0], "handoff_usec")) / 1e6;
        let rate = (pkts.len() - 1) as f64 / span.max(1e-6);
        let delay: Vec<f64> = pkts
            .iter()
            .map(|p| (t(p, "handoff_usec") - t(p, "sys_dts_usec")) / 1000.0)
            .collect();
        let detail = if kind == "video" {
            let keys = pkts.iter().filter(|p| p["key"] == true).count();
            let v = &header["video"];
            format!(
                "{keys} keyframes, {}x{} {}",
                v["width"],
                v["height"],
                v["codec"].as_str().unwrap_or("?")
            )
        } else {
            let a = &header["audio"];
            format!(
                "{} at {} Hz",
                a["codec"].as_str().unwrap_or("?"),
                a["sample_rate"]
            )
        };
        out += &format!(
            "arrived: {} {kind} packets ({rate:.1}/s, {detail}); capture → plugin p50 {:.1} ms, p99 {:.1} ms\n",
            pkts.len(),
            percentile(delay.clone(), 0.5),
            percentile(delay, 0.99)
        );
    }
    Some(out)
}

/// Samples glibc's heap every 10 s into a file while it lives (`--heap-log`).
struct HeapLog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeapLog {
    fn start(path: &str) -> HeapLog {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, path) = (stop.clone(), path.to_string());
        let thread = std::thread::spawn(move || {
            let Ok(mut file) = std::fs::File::create(&path) else {
                eprintln!("headless: cannot write {path}");
                return;
            };
            let t0 = Instant::now();
            let mut next = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                if t0.elapsed() >= next {
                    next += Duration::from_secs(10);
                    // SAFETY: mallinfo2 only reads the allocator's counters.
                    let m = unsafe { libc::mallinfo2() };
                    let _ = writeln!(
                        file,
                        "{:.0} {} {} {}",
                        t0.elapsed().as_secs_f64(),
                        m.uordblks,
                        m.fordblks,
                        m.hblkhd
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        HeapLog {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HeapLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("headless: {e}");
            return ExitCode::from(2);
        }
    };
    let heap_log = (!options.heap_log.is_empty()).then(|| HeapLog::start(&options.heap_log));
    let result = run(&options);
    drop(heap_log);
    match result {
        Ok(summary) => {
            println!("summary {summary}");
            if !options.packet_log.is_empty() {
                print!(
                    "{}",
                    describe_packet_log(&options.packet_log).unwrap_or_default()
                );
            }
            let ok = summary["started"] == json!(true)
                && summary["ended_by_itself"] == json!(false)
                && !summary["stopped_ms"].is_null();
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("headless: {e}");
            ExitCode::FAILURE
        }
    }
}
