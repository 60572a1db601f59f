//! Debian's real OBS 29.0.2 frontend, headless under Xvfb: `obs --startstreaming` with a profile that selects the
//! RTC Studio service streams through our plugin to our receiver; the Stop Streaming hotkey ends the stream (WHIP
//! DELETE) and OBS exits cleanly with no leaks.
mod support;

use std::time::Duration;
use support::obs_frontend::stream_with_obs;
use support::obs_run::{flash_beep_clip, packets_sent, OBS};
use support::receiver::{Receiver, ReceiverOptions};

#[test]
fn the_obs_frontend_streams_through_the_plugin_and_stops_cleanly() {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries(); // refuses a stale plugin
    let clip = flash_beep_clip("640x360");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    let run = stream_with_obs(&receiver.whip_url(), &clip, 7);
    rt.block_on(receiver.wait_for_delete(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(300));
    let r = receiver.report();
    println!("receiver {r}");
    let log = &run.log;
    for expected in [
        "[rtc-studio] version",
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
    rt.block_on(receiver.stop());
}
