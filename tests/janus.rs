//! Real Janus 1.1.2 (Debian's package, started here): real libobs + our plugin publish into a Janus VideoRoom over
//! Janus's own REST API (native signalling) and over WHIP through Meetecho's simple-whip-server, and Janus's Admin
//! API shows the RTP arriving; headless Chromium watches; wrong rooms and PINs end with the right code and message.
//! A Janus of our own (its REST API in front of our receiver) sends events for other transactions, out of order,
//! or nothing of ours at all.
mod support;

use std::time::Duration;
use support::bad_janus::{self, Misbehaviour};
use support::janus::{wait_for_publisher_video, Janus, CONFIGURED_ROOM};
use support::obs_run::{
    failed_clearly, flash_beep_clip, headless, headless_meanwhile, packets_sent, print_lines,
    receiving, time_until,
};
use support::receiver::{test_runtime, Receiver, ReceiverOptions};
use support::whip_front::WhipFront;

const BAD_PATH: i64 = -1;
const CONNECT_FAILED: i64 = -2;
const INVALID_STREAM: i64 = -3;

/// What Janus received from its publishers so far, from the Admin API's `handle_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Inbound {
    video_packets: u64,
    video_bytes: u64,
    audio_packets: u64,
    nacks: u64,
    peer_connections: usize,
}

fn inbound(janus: &Janus) -> Inbound {
    let mut t = Inbound::default();
    for h in janus.handles() {
        let Some(media) = h["webrtc"]["media"].as_object() else {
            continue;
        };
        t.peer_connections += 1;
        for m in media.values() {
            let stats = &m["stats"]["in"];
            let n = |k: &str| stats[k].as_u64().unwrap_or(0);
            match (m["type"].as_str(), m["codecs"]["codec"].as_str()) {
                (Some("video"), Some("h264")) => {
                    t.video_packets += n("packets");
                    t.video_bytes += n("bytes");
                    t.nacks += n("nacks");
                }
                (Some("audio"), Some("opus")) => t.audio_packets += n("packets"),
                _ => {} // not negotiated yet
            }
        }
    }
    t
}

/// Publishes with the headless runner while sampling Janus's counters for our PeerConnection; asserts that video
/// and audio kept flowing without a NACK storm.
fn publish_and_watch_janus(janus: &Janus, args: &[&str]) -> support::obs_run::Run {
    let publisher = headless_meanwhile(args);
    let mut samples = Vec::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let s = inbound(janus);
        if s.video_packets > 0 {
            samples.push(s);
        }
        if samples.len() >= 6 {
            break;
        }
    }
    let run = publisher.join().unwrap();
    let s = &run.summary;
    println!("summary {s}\nJanus inbound samples {samples:?}");
    for l in run.log.lines().filter(|l| l.contains("connect timeline")) {
        println!("{l}");
    }
    assert_eq!(s["connected"], true, "{}\n{}", run.log, janus.log());
    assert!(
        samples.len() >= 6,
        "Janus saw no RTP from us: {samples:?}\n{}",
        janus.log()
    );
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    // ≥ 2.5 s between first and last sample: at 1.5 Mb/s and 50 audio packets/s, far more than these floors.
    assert!(
        last.video_packets > first.video_packets + 200
            && last.video_bytes > first.video_bytes + 200_000,
        "video did not keep flowing: {samples:?}"
    );
    assert!(
        last.audio_packets > first.audio_packets + 100,
        "audio did not keep flowing: {samples:?}"
    );
    assert!(last.nacks < 20, "NACK storm: {} NACKs", last.nacks);
    run
}

#[test]
fn obs_publishes_through_simple_whip_server_into_janus() {
    let janus = Janus::start_with("janus-whip", true);
    let room = janus.create_room(None);
    let front = WhipFront::start(
        janus.websocket.as_deref().unwrap(),
        "simple-whip-server-run",
    );
    let token = "whip-front-token-6120";
    let endpoint = front.create_endpoint("obs-test", room, token);
    let clip = flash_beep_clip("640x360");
    let args = [
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "8",
        "--url",
        &endpoint,
        "--token",
        token,
        "--bframes",
        "0",
    ];
    let run = publish_and_watch_janus(&janus, &args);
    assert_eq!(run.summary["stop_code"], 0, "{}", run.summary);
    assert!(
        run.log.contains("WHIP session ended (DELETE answered 200)"),
        "{}\n{}",
        run.log,
        front.log()
    );
    assert!(!run.log.contains(token), "the bearer token reached the log");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        inbound(&janus).peer_connections,
        0,
        "a PeerConnection is still open in Janus"
    );
}

#[test]
fn obs_publishes_into_a_janus_videoroom_over_janus_signalling() {
    let janus = Janus::start("janus-native");
    let room = janus.create_room(Some("room-pin-31"));
    let clip = flash_beep_clip("640x360");
    let api = janus.api.clone();
    let room_arg = room.to_string();
    let args = [
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "8",
        "--url",
        &api,
        "--janus-room",
        &room_arg,
        "--janus-pin",
        "room-pin-31",
        "--janus-display",
        "RTC Studio test",
        "--bframes",
        "0",
    ];
    let run = publish_and_watch_janus(&janus, &args);
    let s = &run.summary;
    assert_eq!(s["stop_code"], 0, "{s}");
    for expected in [
        "connecting to http://127.0.0.1:".to_string(),
        format!("(Janus VideoRoom, room {room})"),
        "Janus VideoRoom session ended (left the room, session destroyed)".to_string(),
    ] {
        assert!(
            run.log.contains(&expected),
            "log lacks {expected:?}:\n{}",
            run.log
        );
    }
    assert!(!run.log.contains("room-pin-31"), "the PIN reached the log");
    // Janus let us go: no session left behind.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        inbound(&janus).peer_connections,
        0,
        "a PeerConnection is still open in Janus"
    );
}

#[test]
fn a_janus_that_restarts_is_published_to_again_once_it_is_back() {
    // Janus killed mid-stream (SIGKILL: no hangup, no goodbye) and started again 2 s later on the same
    // configuration (its configured room survives; the publisher's session does not). The plugin notices the
    // silence, finds its session gone and publishes again into the new Janus by itself, retrying while Janus is
    // still down; OBS's capture runs on. Measured: Janus's REST API answering again → our video at Janus again.
    let _alone = receiving();
    let mut janus = Janus::start("janus-restart");
    let clip = flash_beep_clip("640x360");
    // The room rides in the Server URL's fragment, as a streamer can type it into OBS's plain Server field: no
    // signalling or room setting is made.
    let url = format!("{}#room={CONFIGURED_ROOM}", janus.api);
    let publisher = headless_meanwhile(&[
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "16",
        "--url",
        &url,
        "--bframes",
        "0",
    ]);
    wait_for_publisher_video(&janus);
    std::thread::sleep(Duration::from_secs(2));
    janus.kill();
    std::thread::sleep(Duration::from_secs(2));
    janus.restart();
    let back_to_video = time_until(Duration::from_secs(10), Duration::from_millis(25), || {
        inbound(&janus).video_packets > 0
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = inbound(&janus);
    let run = publisher.join().unwrap();
    println!(
        "summary {}\nJanus back → our video at Janus again: {back_to_video:?}\nJanus inbound 2 s later: {after:?}",
        run.summary
    );
    print_lines(&run.log, &["RTCP", "lost", "again", "connect timeline"]);
    assert!(
        back_to_video.is_some(),
        "the publisher never came back:\n{}\n{}",
        run.log,
        janus.log()
    );
    assert!(
        run.log.contains("published again: a new session after"),
        "{}",
        run.log
    );
    assert!(run.summary["last_error"].is_null(), "{}", run.summary);
    assert_eq!(run.summary["stop_code"], 0, "{}", run.summary);
    assert!(
        after.video_packets > 200 && after.audio_packets > 50,
        "the stream did not go on into the new Janus: {after:?}"
    );
    assert_eq!(run.summary["leaks"], 0);
}

#[test]
fn wrong_rooms_and_pins_end_with_clear_errors() {
    let janus = Janus::start("janus-errors");
    let room = janus.create_room(Some("right-pin"));
    let api = janus.api.clone();
    for (room_arg, pin, code, message) in [
        (
            "987654321".to_string(),
            "",
            BAD_PATH,
            "There is no such Janus room",
        ),
        (
            room.to_string(),
            "wrong-pin",
            INVALID_STREAM,
            "The Janus room refused the PIN",
        ),
        (
            "lobby".to_string(),
            "",
            BAD_PATH,
            "The Janus room must be a positive number",
        ),
    ] {
        let run = headless(
            &[
                "--duration",
                "1",
                "--url",
                &api,
                "--janus-room",
                &room_arg,
                "--janus-pin",
                pin,
            ],
            None,
        );
        let s = &run.summary;
        println!("{room_arg}: {s}");
        // A room that is not a number fails at Start (OBS shows the message at once); the others once Janus answers.
        if s["started"] == false {
            assert_eq!(code, BAD_PATH);
        } else {
            assert_eq!(s["connected"], false, "{s}");
            assert_eq!(s["stop_code"], code, "{s}");
        }
        assert!(
            s["last_error"].as_str().unwrap_or("").starts_with(message),
            "{s}"
        );
    }
}

/// OBS publishes the flash/beep clip with `args` into a room of `janus` for video in `videocodec` while headless
/// Chromium watches for 5 s; the page's result (its snapshot saved as `name`.png) and the run.
fn watched_in_chromium(
    janus: &Janus,
    videocodec: &str,
    args: &[&str],
    name: &str,
) -> (serde_json::Value, support::obs_run::Run) {
    let room = janus.create_room_for(None, None, videocodec);
    let clip = flash_beep_clip("640x360");
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(
        [
            "--media",
            clip.to_str().unwrap(),
            "--url",
            &janus.api,
            "--janus-room",
            &room.to_string(),
        ]
        .map(String::from),
    );
    let publisher = headless_meanwhile(&args);
    // Chromium subscribes once our publisher is in the room and sending.
    wait_for_publisher_video(janus);
    let page =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer/janus-viewer.html");
    let profile = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile");
    let query = format!("api={}&room={room}&seconds=5", janus.api);
    let result = support::browser::run_page(&page, &query, Duration::from_secs(40), &profile);
    let run = publisher.join().unwrap();
    let result =
        result.unwrap_or_else(|e| panic!("{e}\npublisher: {}\n{}", run.summary, janus.log()));
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    if let Some(png) = result["snapshot"]["png"].as_str() {
        support::browser::save_data_url_png(png, &shot).unwrap();
    }
    let mut shown = result.clone();
    shown["snapshot"]["png"] = serde_json::json!(format!("saved to {}", shot.display()));
    println!("browser {shown}");
    assert!(
        result.get("error").is_none(),
        "the page failed: {shown}\n{}",
        janus.log()
    );
    assert_eq!(result["connection"], "connected", "{shown}");
    let v = &result["video"];
    assert_eq!(
        (v["frameWidth"].as_u64(), v["frameHeight"].as_u64()),
        (Some(640), Some(360)),
        "{shown}"
    );
    // 5 s of watching at 30 fps.
    assert!(v["framesDecoded"].as_u64().unwrap_or(0) >= 100, "{shown}");
    let a = &result["audio"];
    assert_eq!(a["codec"], "audio/opus", "{shown}");
    assert!(a["packetsReceived"].as_u64().unwrap_or(0) >= 200, "{shown}");
    // The picture is our moving test pattern, not a black or blank element.
    let snap = &result["snapshot"];
    assert_eq!(
        (snap["width"].as_u64(), snap["height"].as_u64()),
        (Some(640), Some(360)),
        "{shown}"
    );
    assert!(
        snap["lumaStd"].as_f64().unwrap_or(0.0) > 20.0,
        "the video element shows a flat picture: {shown}"
    );
    assert_eq!(run.summary["stop_code"], 0, "{}", run.summary);
    (shown, run)
}

#[test]
fn a_browser_watches_what_obs_publishes_into_janus() {
    let janus = Janus::start("janus-viewer");
    // Debian's Chromium decodes H.264 Baseline and Main over WebRTC, not High.
    let args = ["--duration", "16", "--bframes", "0", "--profile", "main"];
    let (result, _) = watched_in_chromium(&janus, "h264", &args, "janus-viewer");
    assert_eq!(result["video"]["codec"], "video/H264", "{result}");
}

#[test]
fn a_browser_watches_av1_from_obs_svt_av1_encoder_through_janus() {
    let janus = Janus::start("janus-av1");
    // SVT-AV1 as OBS 29 sets it up holds ~1.8 s of frames; a keyframe every second, as Janus asks for one (PLI)
    // when Chromium joins, and this encoder cannot be asked.
    let args = [
        "--duration",
        "18",
        "--video-encoder",
        "ffmpeg_svt_av1",
        "--keyint",
        "1",
    ];
    let (result, run) = watched_in_chromium(&janus, "av1", &args, "janus-av1-viewer");
    assert_eq!(result["video"]["codec"], "video/AV1", "{result}");
    assert!(run.log.contains("video codec: AV1 (the encoder's)"));
}

#[test]
fn janus_events_for_other_transactions_are_skipped_and_mixed_up_replies_end_clearly() {
    let _alone = receiving();
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    // Before each event of ours: a keepalive, another transaction's event with an SDP answer not ours, an event
    // without a transaction and another handle's webrtcup. The publisher takes its own and streams.
    let api = rt.block_on(bad_janus::serve(
        Misbehaviour::OthersFirst,
        receiver.whip_url(),
    ));
    let clip = flash_beep_clip("640x360");
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "4",
            "--url",
            &api,
            "--janus-room",
            "1234",
            "--bframes",
            "0",
        ],
        None,
    );
    let s = &run.summary;
    let report = rt.block_on(receiver.settled_report(Duration::from_secs(5)));
    println!("others first: {s}\nreceiver {report}");
    assert_eq!(s["stop_code"], 0, "{}", run.log);
    let (sent, _) = packets_sent(&run.log);
    let decoded = report["video_frames_decoded"].as_u64().unwrap_or(0);
    assert!(
        sent > 90 && decoded + 2 >= sent && report["decode_errors"] == 0,
        "{decoded} of {sent} frames decoded: {report}"
    );
    assert!(
        run.log
            .contains("Janus VideoRoom session ended (left the room, session destroyed)"),
        "{}",
        run.log
    );
    // The rest end with a clear error, in bounded time, and leave nothing behind.
    let mut failures = Vec::new();
    for (behaviour, words) in [
        (
            Misbehaviour::WrongTransaction,
            "Janus answered the session request for another request",
        ),
        (Misbehaviour::Garbage, "not JSON"),
        (Misbehaviour::NeverOurs, "did not answer"),
    ] {
        let api = rt.block_on(bad_janus::serve(behaviour, receiver.whip_url()));
        let name = format!("{behaviour:?}");
        let args = ["--url", &api, "--janus-room", "1234"];
        failures.extend(failed_clearly(&name, &args, CONNECT_FAILED, words));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn hevc_replayed_into_a_janus_h265_room_reaches_janus() {
    // OBS has no HEVC encoder here: x265's HEVC goes through the plugin's stream engine over Janus's own API into
    // a room for h265, and Janus's Admin API shows the HEVC packets arriving, its keyframe requests answered.
    let janus = Janus::start("janus-h265");
    let room = janus.create_room_for(None, None, "h265");
    let media = support::replay::Media::x265(&flash_beep_clip("640x360"));
    let config = media.config(
        janus.api.clone(),
        Some(rtc_studio::signal::janus::JanusRoom {
            room,
            pin: Default::default(),
            display: "x265".into(),
        }),
        1500,
    );
    let publisher = std::thread::spawn(move || media.replay(config).map(|r| r.close()));
    wait_for_publisher_video(&janus);
    // Janus's own statistics of the publisher's video, once it has had a few seconds of it.
    std::thread::sleep(Duration::from_secs(4));
    let video: Vec<serde_json::Value> = (janus.handles().iter())
        .filter_map(|h| h["webrtc"]["media"].as_object().cloned())
        .flat_map(|media| media.into_iter().map(|(_, m)| m))
        .filter(|m| m["type"] == "video")
        .collect();
    let sent = publisher
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", janus.log()));
    println!("Janus's video media: {video:?}\nvideo units sent {sent}");
    let hevc = video
        .iter()
        .find(|m| m["codecs"]["codec"] == "h265")
        .unwrap_or_else(|| panic!("no h265 video at Janus: {video:?}"));
    let packets = hevc["stats"]["in"]["packets"].as_u64().unwrap_or(0);
    // 4 s and more of 640x360 HEVC at 1.5 Mbit/s: hundreds of packets.
    assert!(
        packets > 300,
        "Janus received {packets} HEVC packets: {hevc}"
    );
    assert!(sent > 200, "{sent} units sent");
}
