//! Real libobs (Debian's 29.0.2) under Xvfb loads `librtc_studio.so` from the build directory through the headless
//! runner, encodes a test clip with x264 + Opus and hands the packets to our output. The packet log the plugin
//! writes is what OBS really delivered; these tests check it against what OBS is known to produce.
mod support;

use serde_json::Value;
use support::obs_run::{headless, test_clip, Run};

fn of_kind<'a>(run: &'a Run, kind: &str) -> Vec<&'a Value> {
    run.packets.iter().filter(|p| p["kind"] == kind).collect()
}

/// Packets per second over the span of their arrival (hand-off) times.
fn arrival_rate(packets: &[&Value]) -> f64 {
    let t: Vec<i64> = packets
        .iter()
        .map(|p| p["handoff_usec"].as_i64().unwrap())
        .collect();
    let span = (t[t.len() - 1] - t[0]) as f64 / 1e6;
    (t.len() - 1) as f64 / span
}

fn nals(p: &Value) -> Vec<u64> {
    p["nals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

fn assert_clean_run(run: &Run) {
    let s = &run.summary;
    assert_eq!(
        s["started"], true,
        "output did not start: {}\n{}",
        s, run.log
    );
    assert_eq!(
        s["ended_by_itself"], false,
        "output stopped on its own: {s}"
    );
    assert!(
        s["libobs"].as_str().unwrap().starts_with("29.0"),
        "expected Debian's libobs 29.0: {s}"
    );
    assert_eq!(s["leaks"], 0, "libobs reports leaked allocations: {s}");
    assert!(
        run.log.contains("[rtc-studio] version"),
        "plugin did not log its load"
    );
    assert!(
        run.log
            .contains("[rtc-studio] unloaded: every stream thread has ended"),
        "unload did not join threads"
    );
    // Stop must not wait on anything: obs_output_stop returns and the output is inactive well within 100 ms.
    assert!(
        s["stop_call_ms"].as_f64().unwrap() < 100.0,
        "obs_output_stop blocked: {s}"
    );
    assert!(
        s["stopped_ms"].as_f64().unwrap() < 100.0,
        "output took too long to stop: {s}"
    );
    assert_eq!(
        run.packets.last().unwrap()["event"],
        "end",
        "packet log not closed"
    );
}

#[test]
fn real_libobs_delivers_annexb_h264_and_opus_at_the_expected_rates() {
    let clip = test_clip();
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "4",
            "--fps",
            "30",
            "--keyint",
            "1",
            "--bframes",
            "0",
        ],
        Some("packets-30fps.jsonl"),
    );
    assert_clean_run(&run);
    let (video, audio) = (of_kind(&run, "video"), of_kind(&run, "audio"));

    // Stream description taken from the initialised encoders.
    assert_eq!(run.header["video"]["codec"], "h264");
    assert_eq!(run.header["video"]["width"], 640);
    assert_eq!(run.header["video"]["height"], 360);
    assert_eq!(
        run.header["video"]["extra_data_nals"],
        serde_json::json!([7, 8]),
        "extra data is SPS+PPS"
    );
    assert_eq!(run.header["audio"]["codec"], "opus");
    assert_eq!(run.header["audio"]["sample_rate"], 48000);
    assert_eq!(
        run.header["audio"]["extra_data_len"], 19,
        "extra data is an OpusHead"
    );

    // Video: ≈ 30 packets/s, Annex-B, SPS+PPS+IDR on every keyframe, one per second with keyint 1.
    assert!(
        video.len() >= 90,
        "only {} video packets in 4 s",
        video.len()
    );
    let rate = arrival_rate(&video);
    assert!(
        (25.5..34.5).contains(&rate),
        "video arrives at {rate:.1} packets/s, expected ≈30"
    );
    assert_eq!(video[0]["key"], true, "stream must start on a keyframe");
    let mut keyframes = 0;
    for (i, p) in video.iter().enumerate() {
        assert_eq!(p["annexb"], true, "video packet {i} is not Annex-B");
        assert_eq!(p["tb"], serde_json::json!([1, 30]));
        assert_eq!(p["pts"], p["dts"], "no B-frames were asked for");
        if i > 0 {
            assert_eq!(
                p["pts"].as_i64().unwrap(),
                video[i - 1]["pts"].as_i64().unwrap() + 1,
                "frame gap at {i}"
            );
        }
        let n = nals(p);
        if p["key"] == true {
            keyframes += 1;
            for t in [7, 8, 5] {
                assert!(n.contains(&t), "keyframe {i} lacks NAL type {t}: {n:?}");
            }
        } else {
            assert!(
                !n.contains(&5) && n.contains(&1),
                "P-frame {i} has unexpected NALs {n:?}"
            );
        }
    }
    assert!(
        (3..=6).contains(&keyframes),
        "{keyframes} keyframes in 4 s with keyint 1"
    );

    // Audio: Opus, 20 ms (960 samples at 48 kHz) per packet, ≈ 50 packets/s.
    assert!(
        audio.len() >= 150,
        "only {} audio packets in 4 s",
        audio.len()
    );
    let rate = arrival_rate(&audio);
    assert!(
        (42.5..57.5).contains(&rate),
        "audio arrives at {rate:.1} packets/s, expected ≈50"
    );
    for (i, p) in audio.iter().enumerate() {
        assert_eq!(p["tb"], serde_json::json!([1, 48000]));
        let size = p["size"].as_u64().unwrap();
        assert!(
            (2..=1275).contains(&size),
            "audio packet {i} has {size} bytes: not an Opus packet"
        );
        if i > 0 {
            assert_eq!(
                p["pts"].as_i64().unwrap() - audio[i - 1]["pts"].as_i64().unwrap(),
                960,
                "audio gap at {i}"
            );
        }
    }

    // OBS's own counters agree with what we recorded. OBS counts the frames its interleaver hands the output,
    // the same frames the encoder taps delivered a little earlier: at the stop, the two differ by the frames in
    // flight between them (one or two), never by more than a few.
    let s = &run.summary;
    let total = s["total_frames"].as_u64().unwrap();
    let logged = video.len() as u64;
    assert!(
        total.abs_diff(logged) <= 3,
        "OBS counted {total} video frames, the packet log has {logged}"
    );
    assert!(
        run.log.contains("packets come straight from the encoders"),
        "the encoder taps were not used"
    );
    assert_eq!(s["frames_dropped"], 0);
    let bytes: u64 = run.packets.iter().filter_map(|p| p["size"].as_u64()).sum();
    assert_eq!(s["total_bytes"].as_u64().unwrap(), bytes);
}

/// How far the audio delivered before each video packet runs ahead of that video frame, at most: capture time of
/// the audio minus capture time of the video, in milliseconds, over the whole log.
fn audio_lead_ms(run: &Run) -> f64 {
    let mut latest_audio = i64::MIN;
    let mut lead = i64::MIN;
    for p in &run.packets {
        let Some(sys) = p["sys_dts_usec"].as_i64() else {
            continue;
        };
        match p["kind"].as_str() {
            Some("audio") => latest_audio = latest_audio.max(sys),
            Some("video") if latest_audio > i64::MIN => lead = lead.max(latest_audio - sys),
            _ => {}
        }
    }
    lead as f64 / 1000.0
}

#[test]
fn audio_is_not_held_behind_the_video_encoders_lookahead() {
    // x264 veryfast without zerolatency holds ≥ 10 frames (333 ms at 30 fps) in its lookahead. Through libobs's
    // interleaver, audio leaves in timestamp order with the video, so it waits as long; straight from the
    // encoders it does not. Ordering, not timing: the capture times in the packet log say which packet came first.
    let clip = test_clip();
    let args = ["--media", clip.to_str().unwrap(), "--duration", "3"];
    let direct = headless(&args, Some("packets-direct.jsonl"));
    assert_clean_run(&direct);
    let mut through = args.to_vec();
    through.extend(["--packets-from", "interleaver"]);
    let interleaved = headless(&through, Some("packets-interleaved.jsonl"));
    assert_clean_run(&interleaved);
    assert!(interleaved
        .log
        .contains("packets come through OBS's interleaver"));

    let (direct_lead, interleaved_lead) = (audio_lead_ms(&direct), audio_lead_ms(&interleaved));
    assert!(
        interleaved_lead < 100.0,
        "through the interleaver audio should leave in timestamp order with video, but ran {interleaved_lead:.0} ms ahead"
    );
    assert!(
        direct_lead > 200.0,
        "straight from the encoders audio should run ahead of the video lookahead, but led by {direct_lead:.0} ms"
    );
    // Both paths deliver every frame in order from a keyframe, and OBS counts them alike.
    for run in [&direct, &interleaved] {
        let video = of_kind(run, "video");
        assert_eq!(video[0]["key"], true);
        assert!(video
            .windows(2)
            .all(|w| w[1]["pts"].as_i64().unwrap() == w[0]["pts"].as_i64().unwrap() + 1));
        let total = run.summary["total_frames"].as_u64().unwrap();
        assert!(
            total.abs_diff(video.len() as u64) <= 3,
            "{total} vs {}",
            video.len()
        );
    }
}

#[test]
fn b_frames_at_59_94_fps_arrive_in_decode_order_with_distinct_pts() {
    let clip = test_clip();
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "3",
            "--fps",
            "60000/1001",
            "--bframes",
            "2",
        ],
        Some("packets-bframes.jsonl"),
    );
    assert_clean_run(&run);
    let video = of_kind(&run, "video");
    assert!(
        video.len() >= 120,
        "only {} video packets in 3 s at 59.94",
        video.len()
    );
    let rate = arrival_rate(&video);
    assert!(
        (51.0..69.0).contains(&rate),
        "video arrives at {rate:.1} packets/s, expected ≈59.94"
    );
    assert!(video
        .iter()
        .all(|p| p["tb"] == serde_json::json!([1001, 60000])));
    let dts: Vec<i64> = video.iter().map(|p| p["dts"].as_i64().unwrap()).collect();
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "dts must increase (decode order)"
    );
    let reordered = video.iter().filter(|p| p["pts"] != p["dts"]).count();
    assert!(
        reordered > video.len() / 2,
        "x264 bframes=2 should reorder most frames, got {reordered}"
    );
    let mut pts: Vec<i64> = video.iter().map(|p| p["pts"].as_i64().unwrap()).collect();
    pts.sort_unstable();
    pts.dedup();
    assert_eq!(pts.len(), video.len(), "pts must be unique");
}

#[test]
fn starting_without_a_server_url_fails_with_a_clear_message() {
    let run = headless(&["--duration", "1"], None);
    let s = &run.summary;
    assert_eq!(s["started"], false, "{s}");
    let error = s["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("No server URL"), "unclear error: {error:?}");
    assert_eq!(s["leaks"], 0, "{s}");
}
