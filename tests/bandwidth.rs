//! Following the network: OBS (real libobs, a live x264) publishes through a bottleneck of our own wire, slower
//! than the encoder's configured bitrate, to receivers that send transport-wide feedback; the encoder's bitrate (as
//! OBS's encoder settings show it, sampled by the headless host) must follow the link, and what arrives must
//! decode.
mod support;

use serde_json::Value;
use std::time::Duration;
use support::janus::{watch_through_janus, Watch};
use support::netns::wire::{LinkConfig, DOWN, UP};
use support::netns::LinkedHosts;
use support::obs_run::{binaries, publish_through, receiving, Run};

/// OBS at 1280x720 30 fps, x264 `zerolatency` at `kbps`, for `seconds`, to our receiver on the server host.
fn publish(hosts: &LinkedHosts, kbps: u32, seconds: u32) -> (Run, Value) {
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let addr = format!("{}:0", hosts.server_addr);
    let args = ["--http", &addr, "--udp", &addr, "--timeout", "90"];
    let (run, report) = publish_through(hosts, &mock_sfu, &args, kbps, seconds);
    println!("bitrates {}", run.summary["video_bitrates"]);
    (run, report)
}

/// The encoder's bitrate at `ms` into the stream, from the host's samples ([ms, kbps] at each change).
fn bitrate_at(run: &Run, ms: u64) -> u64 {
    let mut kbps = 0;
    for pair in run.summary["video_bitrates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if pair[0].as_u64().unwrap_or(0) <= ms {
            kbps = pair[1].as_u64().unwrap_or(0);
        }
    }
    kbps
}

/// The encoder's bitrate every 100 ms from `from` to `to` ms.
fn bitrates(run: &Run, from: u64, to: u64) -> Vec<u64> {
    (from..to)
        .step_by(100)
        .map(|ms| bitrate_at(run, ms))
        .collect()
}

/// The first instant (ms) from `from` on when the encoder's bitrate met `ok`.
fn first_time(run: &Run, from: u64, to: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
    (from..to).step_by(100).find(|ms| ok(bitrate_at(run, *ms)))
}

/// From `from` to `to` ms the encoder's bitrate was on average 60-100 % of a 1.5 Mbit/s link and never above it
/// (the sawtooth of a delay-based estimate dips by up to a third when the path's queue grows, and climbs back
/// within seconds).
fn assert_settled_under_the_link(run: &Run, from: u64, to: u64) {
    let settled = bitrates(run, from, to);
    let mean = settled.iter().sum::<u64>() as f64 / settled.len() as f64;
    let (min, max) = (settled.iter().min().unwrap(), settled.iter().max().unwrap());
    println!("encoder from {from} to {to} ms: mean {mean:.0}, min {min}, max {max} kbit/s");
    assert!(
        (900.0..=1500.0).contains(&mean) && *max <= 1500 && *min >= 500,
        "the encoder through a 1.5 Mbit/s link: mean {mean:.0}, min {min}, max {max} kbit/s: {}",
        run.summary["video_bitrates"]
    );
}

/// Of the frames made from `from_s` seconds of media time on, the share the receiver decoded intact.
fn intact_share_after(report: &Value, from_s: usize) -> (u64, f64) {
    let t = &report["timeline"];
    let per_second = t["expected_per_second"].as_f64().unwrap_or(30.0);
    let intact: Vec<u64> = t["intact"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    // The last second is cut short by the stop.
    let window = &intact[from_s.min(intact.len())..intact.len().saturating_sub(1)];
    let got: u64 = window.iter().sum();
    (
        got,
        got as f64 / (per_second * window.len() as f64).max(1.0),
    )
}

#[test]
fn a_link_slower_than_the_encoder_is_followed_and_what_arrives_decodes() {
    let _alone = receiving();
    let hosts = LinkedHosts::create_wired("bw15", 20261201);
    hosts.wire().set(UP, LinkConfig::bottleneck(1.5));
    hosts.wire().set(DOWN, LinkConfig::clear());
    let (run, report) = publish(&hosts, 2500, 30);
    let (intact, share) = intact_share_after(&report, 5);
    assert!(
        share >= 0.95,
        "{intact} frames intact after 5 s: {:.1} % of those made\n{report}",
        share * 100.0
    );
    assert_settled_under_the_link(&run, 10_000, 30_000);
    assert!(
        run.log
            .contains("video bitrate back to the configured 2500 kbit/s"),
        "{}",
        run.log
    );
}

#[test]
fn link_steps_down_are_followed_within_three_seconds_and_a_cleared_link_is_used_again_within_twenty(
) {
    let _alone = receiving();
    let hosts = LinkedHosts::create_wired("bwsteps", 20261202);
    hosts.wire().set(UP, LinkConfig::bottleneck(4.0));
    hosts.wire().set(DOWN, LinkConfig::clear());
    // 4 Mbit/s for 10 s, 1.5 for 15, 0.6 for 15, 4 for 25: the wire changes while OBS streams.
    let steps = [(10_000u64, 1.5), (25_000, 0.6), (40_000, 4.0)];
    let (run, report) = std::thread::scope(|scope| {
        let wire = hosts.wire();
        scope.spawn(move || {
            let t0 = std::time::Instant::now();
            for (at, mbps) in steps {
                // Streaming begins about a second after the start (connect); close enough for seconds-long steps.
                std::thread::sleep(Duration::from_millis(at + 1000).saturating_sub(t0.elapsed()));
                wire.set(UP, LinkConfig::bottleneck(mbps));
            }
        });
        publish(&hosts, 4000, 65)
    });
    let down_15 = first_time(&run, 10_000, 25_000, |k| k <= 1500);
    let down_06 = first_time(&run, 25_000, 40_000, |k| k <= 600);
    let up = first_time(&run, 40_000, 65_000, |k| k >= 3600);
    println!("down to 1.5 after {down_15:?} ms, to 0.6 after {down_06:?} ms, back to 90 % after {up:?} ms");
    assert!(
        down_15.is_some_and(|t| t <= 10_000 + 4_000),
        "{}",
        run.summary["video_bitrates"]
    );
    assert!(
        down_06.is_some_and(|t| t <= 25_000 + 4_000),
        "{}",
        run.summary["video_bitrates"]
    );
    assert!(
        up.is_some_and(|t| t <= 40_000 + 21_000),
        "{}",
        run.summary["video_bitrates"]
    );
    let (intact, share) = intact_share_after(&report, 5);
    println!("{intact} frames intact after 5 s ({:.1} %)", share * 100.0);
}

#[test]
fn a_browser_watching_through_janus_on_a_slow_uplink_sees_no_freeze() {
    // OBS (720p, x264 zerolatency 2.5 Mbit/s) publishes into Janus through a 1.5 Mbit/s uplink of our wire; Janus
    // takes transport-wide congestion control for publishers. Headless Chromium joins once the stream has adapted
    // (8 s in) and watches for 15 s.
    let _alone = receiving();
    let hosts = LinkedHosts::wired_to_this_machine("janusbw", 1234);
    let janus = support::janus::Janus::start_on("janus-bw", &hosts.server_addr);
    hosts.wire().set(UP, LinkConfig::bottleneck(1.5));
    hosts.wire().set(DOWN, LinkConfig::clear());
    let watch = Watch {
        size: "1280x720",
        args: ["--bitrate", "2500", "--tune", "zerolatency"]
            .map(String::from)
            .to_vec(),
        seconds: 15,
        join_after: Duration::from_secs(8),
        ..Watch::default()
    };
    let (viewer, run) = watch_through_janus(&hosts, &janus, &watch);
    assert!(
        run.log
            .contains("bandwidth estimation from transport-wide congestion control feedback"),
        "Janus did not take transport-cc:\n{}",
        run.log
    );
    let frozen = viewer["totalFreezesDuration"].as_f64().unwrap_or(99.0);
    let decoded = viewer["framesDecoded"].as_u64().unwrap_or(0);
    println!(
        "viewer: {} freezes, {frozen:.2} s frozen, {decoded} frames decoded",
        viewer["freezeCount"]
    );
    assert!(frozen <= 0.5, "the viewer froze for {frozen} s: {viewer}");
    assert!(decoded >= 15 * 25, "{viewer}");
    assert_settled_under_the_link(&run, 10_000, 23_000);
}

#[test]
fn a_janus_room_bitrate_cap_reaches_the_encoder_through_remb() {
    // A room capped at 800 kbit/s for its publishers, on a clear link: Janus says so by REMB.
    let _alone = receiving();
    let hosts = LinkedHosts::wired_to_this_machine("janusremb", 4321);
    let janus = support::janus::Janus::start_on("janus-remb", &hosts.server_addr);
    hosts.wire().set(UP, LinkConfig::clear());
    hosts.wire().set(DOWN, LinkConfig::clear());
    let watch = Watch {
        args: ["--bitrate", "2500"].map(String::from).to_vec(),
        seconds: 8,
        room_bitrate: Some(800_000),
        ..Watch::default()
    };
    let (viewer, run) = watch_through_janus(&hosts, &janus, &watch);
    let kbps = bitrate_at(&run, 8_000);
    println!("the encoder at {kbps} kbit/s with the room capped at 800");
    assert!(
        kbps <= 800,
        "{}\n{}",
        run.summary["video_bitrates"],
        run.log
    );
    assert!(kbps >= 400, "{}", run.summary["video_bitrates"]);
    assert!(
        viewer["framesDecoded"].as_u64().unwrap_or(0) > 100,
        "{viewer}"
    );
}

#[test]
fn a_gstreamer_receiver_on_a_slow_link_gets_a_stream_that_follows_it() {
    // GStreamer 1.22's webrtcbin as the server through a 1.5 Mbit/s uplink, configured (as a GStreamer server must
    // be) to take transport-wide congestion control; it sends no receiver report in 30 s.
    let _alone = receiving();
    let hosts = LinkedHosts::create_wired("gstbw", 777);
    hosts.wire().set(UP, LinkConfig::bottleneck(1.5));
    hosts.wire().set(DOWN, LinkConfig::clear());
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gst-whip-receive.py");
    let addr = format!("{}:0", hosts.server_addr);
    let seconds = 30;
    let (run, report) = publish_through(
        &hosts,
        &script,
        &["--http", &addr, "--timeout", "60", "--twcc"],
        2500,
        seconds,
    );
    println!("bitrates {}", run.summary["video_bitrates"]);
    assert_eq!(run.summary["connected"], true, "{}", run.log);
    assert!(
        run.log
            .contains("bandwidth estimation from transport-wide congestion control feedback"),
        "webrtcbin did not take transport-cc:\n{}",
        run.log
    );
    assert_settled_under_the_link(&run, 10_000, u64::from(seconds) * 1000);
    // Whole frames decoded: at least 90 % of those made after the first 5 s. GStreamer 1.22 asks for no repair and
    // no keyframe (tests/loss.rs), so each packet the bottleneck's queue drops while the estimate probes upwards
    // freezes it until the next keyframe: over nine runs on 2026-12-05 it decoded 709–806 of the ~900 frames (1–6
    // freezes, 2.8–6.4 s frozen; 95 % of 750 failed once). A stream that did not follow the link leaves it next to
    // nothing (5 % loss: 6–22 frames).
    let decoded = report["video_frames_decoded"].as_u64().unwrap_or(0);
    let floor = (0.90 * 30.0 * (seconds - 5) as f64) as u64;
    assert!(
        decoded >= floor,
        "webrtcbin decoded {decoded} frames, fewer than {floor}: {report}"
    );
}
