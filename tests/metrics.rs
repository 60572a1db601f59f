//! Stream health you can scrape: Debian's real Prometheus server scrapes the plugin's endpoint every second while
//! real libobs streams three simulcast layers to our receiver; its HTTP API then holds the output's series.
mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::free_port;
use support::obs_run::{flash_beep_clip, headless_env, receiving};
use support::receiver::{test_runtime, Receiver, ReceiverOptions};

/// A Prometheus server scraping `target` every second, killed when dropped.
struct Prometheus {
    child: Child,
    api: String,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: obs\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("prometheus (make deps)");
        let p = Prometheus {
            child,
            api: format!("http://{listen}"),
            dir,
        };
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(200));
            curl(&[&format!("{}/-/ready", p.api)]).is_some()
        });
        assert!(ready, "Prometheus never got ready: {}", p.log());
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let body = curl(&[
            "-G",
            &format!("{}/api/v1/query", self.api),
            "--data-urlencode",
            &format!("query={promql}"),
        ])
        .unwrap_or_else(|| panic!("Prometheus did not answer {promql}: {}", self.log()));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `promql` (panics unless there is exactly one series).
    fn value(&self, promql: &str) -> f64 {
        let r = self.query(promql);
        assert_eq!(r.len(), 1, "{promql}: {r:?}");
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET with curl (`args`): the body on success (HTTP 2xx), None otherwise.
fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn prometheus_scrapes_an_outputs_health_and_each_simulcast_layer_while_it_streams() {
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let prometheus = Prometheus::start(&metrics);
    let started = Instant::now();
    // Switched on as a streamer running OBS's window does it (its output settings have no page there).
    let run = headless_env(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "8",
            "--layers",
            "3",
            "--url",
            &receiver.whip_url(),
        ],
        &[("RTC_STUDIO_METRICS", &metrics)],
    );
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    assert_eq!(run.summary["connected"], true, "{}", run.log);
    assert!(
        run.log.contains(&format!(
            "metrics for Prometheus at http://{metrics}/metrics"
        )),
        "{}",
        run.log
    );
    // Over the run (Prometheus marks the series stale once the runner is gone, so over a window).
    let window = format!("{}s", started.elapsed().as_secs() + 5);
    let max = |series: &str| prometheus.value(&format!("max_over_time({series}[{window}])"));
    let up = max("up{job=\"obs\"}");
    assert_eq!(up, 1.0, "never scraped: {}", prometheus.log());
    assert_eq!(
        max("rtc_studio_state{output=\"stream\",state=\"streaming\"}"),
        1.0
    );
    let connect = max("rtc_studio_connect_seconds");
    assert!(connect > 0.0 && connect < 5.0, "connect {connect} s");
    let sent = max("rtc_studio_sent_bitrate_bps");
    let estimate = max("rtc_studio_bandwidth_estimate_bps");
    let target = max("rtc_studio_video_target_bitrate_bps");
    let rtt = max("rtc_studio_rtt_seconds");
    println!(
        "Prometheus saw: connect {connect:.3} s, sent {sent:.0} bit/s, estimate {estimate:.0}, target {target:.0}, \
         round trip {rtt:.4} s"
    );
    // 1500 kbit/s of video and its two smaller layers (375 + 93 kbit/s) and audio, on loopback.
    assert!(sent > 1_000_000.0 && sent < 4_000_000.0, "{sent}");
    assert!(estimate > 1_000_000.0, "{estimate}");
    assert_eq!(target, 1_500_000.0);
    assert!(rtt > 0.0 && rtt < 0.5, "{rtt}");
    for series in [
        "rtc_studio_loss_ratio",
        "rtc_studio_jitter_seconds",
        "rtc_studio_nacks_total",
        "rtc_studio_retransmitted_packets_total",
        "rtc_studio_keyframe_requests_total",
        "rtc_studio_frames_dropped_total",
        "rtc_studio_queue_packets",
        "rtc_studio_ice_restarts_total",
        "rtc_studio_reconnects_total",
    ] {
        assert_eq!(
            prometheus
                .query(&format!("max_over_time({series}[{window}])"))
                .len(),
            1,
            "{series}"
        );
    }
    // Each layer: its size and the frames it sent, as the receiver decoded them.
    for (rid, (w, h)) in [("f", (640, 360)), ("h", (320, 180)), ("q", (160, 90))] {
        let labels = format!("{{rid=\"{rid}\"}}");
        assert_eq!(
            max(&format!("rtc_studio_layer_width{labels}")),
            f64::from(w)
        );
        assert_eq!(
            max(&format!("rtc_studio_layer_height{labels}")),
            f64::from(h)
        );
        assert_eq!(max(&format!("rtc_studio_layer_active{labels}")), 1.0);
        let frames = max(&format!("rtc_studio_layer_frames_total{labels}"));
        let decoded = match rid {
            "f" => &r,
            _ => &r["layers"][rid],
        }["video_frames_decoded"]
            .as_f64()
            .unwrap_or(0.0);
        println!("layer {rid}: {frames} frames sent by the last scrape, {decoded} decoded in all");
        // Scraped each second: the last scrape is at most a second or so of frames short of the end.
        assert!(
            frames >= 150.0 && frames <= decoded + 1.0,
            "{rid}: {frames} of {decoded}"
        );
        assert!(max(&format!("rtc_studio_layer_bitrate_bps{labels}")) > 0.0);
    }
    rt.block_on(receiver.stop());
}
