//! The codecs besides H.264: AV1 from OBS's own SVT-AV1 encoder (real libobs 29.0.2) and HEVC from FFmpeg's x265
//! replayed through the plugin's stream engine, each decoded whole by our receiver (libavcodec); a server that
//! does not take the encoder's codec ends the stream with UNSUPPORTED, naming it.
mod support;

use std::time::Duration;
use support::obs_run::{flash_beep_clip, headless, packets_sent, receiving};
use support::receiver::{assert_av_in_sync, test_runtime, Receiver, ReceiverOptions};
use support::replay::Media;

/// OBS_OUTPUT_UNSUPPORTED.
const UNSUPPORTED: i64 = -6;

#[test]
fn av1_from_obs_svt_av1_encoder_is_decoded_whole_with_audio_in_sync() {
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    let url = receiver.whip_url();
    // SVT-AV1 as OBS 29 sets it up holds ~1.8 s of frames (its random-access structure): 9 s give 7 s of video.
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "9",
            "--video-encoder",
            "ffmpeg_svt_av1",
            "--url",
            &url,
        ],
        None,
    );
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    assert_eq!(s["connected"], true, "did not connect: {s}\n{}", run.log);
    assert_eq!(s["stop_code"], 0, "{s}");
    assert_eq!(s["leaks"], 0, "{s}");
    assert!(
        run.log.contains("video codec: AV1 (the encoder's)"),
        "{}",
        run.log
    );
    assert_eq!(r["video_codec"], "AV1");
    assert_eq!(r["decoder"], "libavcodec (AV1)");
    let (video_sent, audio_sent) = packets_sent(&run.log);
    let decoded = r["video_frames_decoded"].as_u64().unwrap();
    assert!(video_sent >= 150, "only {video_sent} AV1 frames sent");
    assert_eq!(
        decoded, video_sent,
        "decoded {decoded} of {video_sent} AV1 frames: {r}"
    );
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert_eq!(r["incomplete_units"], 0, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!((r["fps"].as_f64().unwrap() - 30.0).abs() < 1.0, "{r}");
    let audio = r["audio_packets"].as_u64().unwrap();
    assert!(
        audio as f64 >= 0.98 * audio_sent as f64,
        "audio {audio} of {audio_sent}"
    );
    // Lip sync: each second's flash and beep placed on one clock through the sender reports.
    assert_av_in_sync(&r, 4, "lip sync");
    assert!(r["delete_received"] == true);
}

#[test]
fn a_server_that_does_not_take_av1_ends_the_stream_as_unsupported_naming_it() {
    let _alone = receiving();
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions {
            h264_only: true,
            ..Default::default()
        }))
        .unwrap();
    let url = receiver.whip_url();
    let run = headless(
        &[
            "--duration",
            "4",
            "--video-encoder",
            "ffmpeg_svt_av1",
            "--url",
            &url,
        ],
        None,
    );
    let s = &run.summary;
    println!("summary {s}");
    assert_eq!(s["connected"], false, "{s}");
    assert_eq!(s["stop_code"], UNSUPPORTED, "{s}");
    let error = s["last_error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("The server refused the video (AV1)")
            || error.starts_with("The server does not take the video (AV1)"),
        "{s}"
    );
    assert_eq!(s["leaks"], 0, "{s}");
}

#[test]
fn hevc_from_x265_replayed_through_the_stream_engine_is_decoded_whole() {
    let _alone = receiving();
    let media = Media::x265(&flash_beep_clip("640x360"));
    let (units, keyframes) = (&media.units, media.keyframes());
    assert!(
        units.len() >= 200 && keyframes >= 7,
        "{} units, {keyframes} IRAP",
        units.len()
    );
    // The IRAP pictures' slices are larger than a packet: they go as fragmentation units.
    assert!(units.iter().any(|(u, key)| *key && u.len() > 4 * 1200));
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    let config = media.config(receiver.whip_url(), None, 1500);
    let sent = units.len() as u64;
    println!("{sent} access units, {keyframes} IRAP");
    let replayed = media.replay(config).unwrap();
    assert_eq!(replayed.failure, None);
    assert_eq!(replayed.video_frames, sent);
    assert_eq!(replayed.video_dropped, 0);
    // Units still paced out when the replay ends its stream leave while it closes, or not at all (as at a stop).
    let on_wire = replayed.close();
    println!("{on_wire} units sent");
    assert!(on_wire + 3 >= sent, "{on_wire} of {sent} sent");
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!("receiver {r}");
    assert_eq!(r["video_codec"], "HEVC");
    assert_eq!(r["decoder"], "libavcodec (HEVC)");
    assert_eq!(r["video_frames_decoded"].as_u64(), Some(on_wire), "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert_eq!(r["incomplete_units"], 0, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    // Every IRAP picture sent came whole with its parameter sets (the last may be among those not sent).
    assert!(
        r["keyframes"].as_u64().unwrap() + 1 >= keyframes as u64,
        "{r}"
    );
    assert!(r["delete_received"] == true);
    // The engine needs libobs only once loaded into it (for its log and clock): this process ran it without.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("libobs"), "libobs is mapped here");
}
