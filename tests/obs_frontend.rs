//! Debian's real OBS 29.0.2 frontend under Xvfb, streaming through our plugin to our receiver:
//! - a profile with OBS's "WHIP" service (`whip_custom`, which Debian's OBS lacks and the plugin provides) streams
//!   with `obs --startstreaming`; the Stop Streaming hotkey ends the stream (WHIP DELETE); OBS exits cleanly;
//! - a streamer who typed the WHIP URL and token into "Custom..." picks Tools → RTC Studio in OBS's window: the
//!   profile's service becomes RTC Studio with that URL and token, and Start Streaming streams through it.
mod support;

use std::time::Duration;
use support::obs_frontend::{profile_dir, run_obs, FrontendRun, Scenario};
use support::obs_run::{flash_beep_clip, packets_sent, OBS};
use support::receiver::{test_runtime, Receiver, ReceiverOptions};

#[test]
fn the_obs_frontend_streams_through_the_plugin_and_stops_cleanly() {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries(); // refuses a stale plugin
    let clip = flash_beep_clip("640x360");
    let (rt, receiver) = receiver_requiring_token();
    let service = serde_json::json!({"type": "whip_custom",
        "settings": {"server": receiver.whip_url(), "bearer_token": TOKEN}});
    let run = run_obs(
        &Scenario::start_and_stop("obs-frontend-whip", service, 7),
        &clip,
    );
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!("receiver {r}");
    let log = &run.log;
    for expected in [
        "[rtc-studio] version",
        "OBS has no WHIP service of its own: Settings → Stream → WHIP now streams with RTC Studio",
        "Starting stream due to command line parameter",
        "[rtc-studio] streaming (connected in",
        "Stopping stream due to hotkey",
        "[rtc-studio] WHIP session ended (DELETE answered 200)",
        "[rtc-studio] unloaded: every stream thread has ended",
        "Number of memory leaks: 0",
    ] {
        assert!(
            log.contains(expected),
            "OBS's log lacks {expected:?}:\n{log}\n{}",
            run.console
        );
    }
    assert!(
        run.console.contains("obs exit 0"),
        "OBS did not exit cleanly: {}",
        run.console
    );
    // OBS 29's frontend chose an Opus encoder for our output by itself.
    assert!(
        log.contains("libopus encoder"),
        "no Opus encoder in OBS's log"
    );

    assert_received_everything(&run, &r);
    rt.block_on(receiver.stop());
}

const TOKEN: &str = "frontend-s3cret-token";

/// Our receiver, requiring the test's bearer token, on a runtime of its own.
fn receiver_requiring_token() -> (tokio::runtime::Runtime, Receiver) {
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions {
            token: Some(TOKEN.into()),
            ..Default::default()
        }))
        .unwrap();
    (rt, receiver)
}

/// The receiver decoded what OBS sent, in sync, and saw the DELETE; the token never reached OBS's log.
fn assert_received_everything(run: &FrontendRun, r: &serde_json::Value) {
    let log = &run.log;
    assert!(
        !log.contains(TOKEN),
        "the bearer token leaked into OBS's log"
    );
    let (video_sent, _) = packets_sent(log);
    let decoded = r["video_frames_decoded"].as_u64().unwrap();
    assert!(
        video_sent >= 120 && decoded as f64 >= 0.98 * video_sent as f64,
        "decoded {decoded} of {video_sent}: {r}"
    );
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        r["audio_packets"].as_u64().unwrap() > 200 && r["audio_decode_errors"] == 0,
        "{r}"
    );
    let offset = r["av_offset_ms"].as_f64().expect("no A/V measurement");
    assert!(offset.abs() <= 20.0, "audio/video offset {offset} ms");
    assert!(r["delete_received"] == true, "{r}");
}

#[test]
fn the_tools_menu_makes_rtc_studio_the_streaming_service_keeping_url_and_token() {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries();
    let clip = flash_beep_clip("640x360");
    let (rt, receiver) = receiver_requiring_token();
    // What a streamer on OBS 29 types into Settings → Stream → Custom...: the WHIP URL and the token as key.
    let service = serde_json::json!({"type": "rtmp_custom",
        "settings": {"server": receiver.whip_url(), "key": TOKEN}});
    // With OBS's window up: Alt+T opens Tools, R picks our entry (its mnemonic), Ctrl+F11 is Start Streaming.
    let script = "xdotool search --sync --onlyvisible --name '^OBS ' windowfocus --sync; sleep 2; \
                  xdotool key alt+t; sleep 1; xdotool key r; sleep 1; xdotool key ctrl+F11; sleep 7; \
                  xdotool key ctrl+F12; sleep 2";
    let scenario = Scenario {
        service,
        script: script.into(),
        start_streaming: false,
        name: "obs-frontend-menu",
    };
    let run = run_obs(&scenario, &clip);
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!("receiver {r}");
    let log = &run.log;
    for expected in [
        "added Tools menu entry to stream with RTC Studio",
        "Tools → RTC Studio: streaming service is now RTC Studio (was rtmp_custom; server http://127.0.0.1:",
        "bearer token kept)",
        "[rtc-studio] streaming (connected in",
        "Stopping stream due to hotkey",
        "[rtc-studio] WHIP session ended (DELETE answered 200)",
        "Number of memory leaks: 0",
    ] {
        assert!(log.contains(expected), "OBS's log lacks {expected:?}:\n{log}\n{}", run.console);
    }
    assert!(
        run.console.contains("obs exit 0"),
        "OBS did not exit cleanly: {}",
        run.console
    );
    // OBS saved the new service to the profile, as Settings → Apply would.
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profile_dir(scenario.name).join("service.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["type"], "rtc_studio_service", "{saved}");
    assert_eq!(saved["settings"]["server"], receiver.whip_url(), "{saved}");
    assert_eq!(saved["settings"]["bearer_token"], TOKEN, "{saved}");
    assert_received_everything(&run, &r);
    rt.block_on(receiver.stop());
}
