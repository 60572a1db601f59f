//! Packet loss between OBS and the server: OBS (real libobs, x264) publishes across a wire of our own that drops
//! the media at random; what the receiver can decode, and how the repair went.
mod support;

use support::netns::wire::{LinkConfig, UP};
use support::netns::{LinkedHosts, RemoteReceiver};
use support::obs_run::{binaries, flash_beep_clip, headless_in, receiving};

/// OBS at 1280x720, 30 fps, x264 `zerolatency` at 2.5 Mbit/s for `seconds`, through `loss` on the uplink's media.
fn publish_through_loss(tag: &str, loss: f64, seconds: u32) -> (serde_json::Value, serde_json::Value, String) {
    let _alone = receiving();
    let clip = flash_beep_clip("1280x720");
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let hosts = LinkedHosts::create_wired(tag, 20261130);
    hosts.wire().set(
        UP,
        LinkConfig {
            loss,
            media_only: true,
            ..Default::default()
        },
    );
    let receiver = RemoteReceiver::start(&hosts, &mock_sfu);
    let run = headless_in(
        Some(&hosts.publisher),
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            &seconds.to_string(),
            "--width",
            "1280",
            "--height",
            "720",
            "--bitrate",
            "2500",
            "--tune",
            "zerolatency",
            "--url",
            &receiver.url,
        ],
        None,
    );
    let up = hosts.wire().stats(UP);
    println!("uplink: {up:?}");
    (run.summary, receiver.report(), run.log)
}

#[test]
fn five_percent_loss_survey() {
    for (tag, loss) in [("l0", 0.0), ("l1", 0.01), ("l5", 0.05)] {
        let (s, r, log) = publish_through_loss(tag, loss, 10);
        for l in log.lines().filter(|l| l.contains("NACKs from the server") || l.contains("retransmissions of lost")) {
            println!("{l}");
        }
        println!(
            "loss {:.0} %: connected {}, sent {:?}; decoded {} intact {} (errors {}), freezes {} ({} ms), NACKed {} \
             retransmitted {} lost {} PLIs {} rtt {} ms",
            loss * 100.0,
            s["connected"],
            s["total_frames"],
            r["video_frames_decoded"],
            r["frames_intact"],
            r["decode_errors"],
            r["freezes"],
            r["freeze_ms"],
            r["packets_nacked"],
            r["retransmissions_received"],
            r["packets_lost"],
            r["plis_sent"],
            r["rtt_ms"]
        );
    }
}
