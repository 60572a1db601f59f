//! Ant Media Server's native WebSocket signalling (issue #15, first part): the plugin's stream engine publishes
//! pre-encoded H.264 + Opus into a server of ours that speaks the protocol as Ant Media's Community Edition does
//! (`tests/support/ant_media.rs`: its answer without candidates, its candidates trickled after it), with our
//! receiver decoding behind it; and each way such a server refuses or breaks ends with a clear failure in bounded
//! time.
mod support;

use rtc_studio::publish::WhipSink;
use rtc_studio::signal::StopCode;
use rtc_studio::stream::PacketSink;
use rtc_studio::transport::driver::FixedEncoder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::ant_media::{AntMediaServer, Behaviour};
use support::obs_run::{flash_beep_clip, headless, packets_sent, receiving};
use support::receiver::{assert_av_in_sync, test_runtime};
use support::replay::Media;
use support::turn::{Turn, TurnAuth};

/// OBS_OUTPUT_INVALID_STREAM.
const INVALID_STREAM: i64 = -3;

#[test]
fn a_stream_published_over_ant_medias_websocket_signalling_is_decoded_whole() {
    let _alone = receiving();
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::Publishes));
    let media = Media::x264(&flash_beep_clip("640x360"));
    let sent_units = media.units.len() as u64;
    let mut config = media.config(server.url.replace("/websocket", ""), None, 1500);
    config.ant_media = Some("obs-studio-1".into());
    config.bearer_token = rtc_studio::secret::Secret::new("stream-token-77");
    let replayed = media.replay(config).unwrap();
    assert_eq!(replayed.failure, None);
    let on_wire = replayed.close();
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    let seen = server.seen.lock().unwrap();
    println!("server saw {seen:?}\nreceiver {r}");
    // Ant Media's messages, in its order: publish, the offer (our candidates in it, and those gathered after it
    // as takeCandidate — on loopback, as it happens), pings every 3 s, stop.
    assert_eq!(seen.stream_id.as_deref(), Some("obs-studio-1"));
    assert_eq!(seen.token.as_deref(), Some("stream-token-77"));
    assert_eq!(seen.commands.first().map(String::as_str), Some("publish"));
    assert_eq!(
        seen.commands.get(1).map(String::as_str),
        Some("takeConfiguration")
    );
    assert!(seen.pings >= 2, "{} pings in 8 s", seen.pings);
    assert!(seen.stopped, "no stop");
    // The server's candidates came only by takeCandidate: connecting at all proves they were taken.
    assert!(on_wire + 3 >= sent_units, "{on_wire} of {sent_units} sent");
    assert_eq!(r["video_frames_decoded"].as_u64(), Some(on_wire), "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert!(r["audio_packets"].as_u64().unwrap() > 350, "{r}");
    assert_eq!(r["delete_received"], true);
}

#[test]
fn ant_media_refusals_and_breakage_end_clearly_and_in_bounded_time() {
    let _alone = receiving();
    let rt = test_runtime();
    let media = Media::x264(&flash_beep_clip("640x360"));
    // (how the server behaves, whether the plugin is told wss://, the stop code, how the message starts)
    let cases: [(Behaviour, bool, StopCode, &str); 7] = [
        (
            Behaviour::Refuses("streamIdInUse"),
            false,
            StopCode::InvalidStream,
            "The Ant Media server says this stream ID is already publishing",
        ),
        (
            Behaviour::Refuses("unauthorized_access"),
            false,
            StopCode::InvalidStream,
            "The Ant Media server refused the token for this stream ID",
        ),
        (
            Behaviour::Silent,
            false,
            StopCode::ConnectFailed,
            "The Ant Media server did not send its start within 1.5 s",
        ),
        (
            Behaviour::Hangs,
            false,
            StopCode::ConnectFailed,
            "The Ant Media server ended the connection before its start",
        ),
        (
            Behaviour::Garbles,
            false,
            StopCode::ConnectFailed,
            "The Ant Media server sent a message that is not its signalling",
        ),
        (
            Behaviour::NoApplication,
            false,
            StopCode::BadPath,
            "The WebSocket server at ws://127.0.0.1",
        ),
        (
            Behaviour::Publishes,
            true,
            StopCode::ConnectFailed,
            "Could not reach the WebSocket server at wss://127.0.0.1",
        ),
    ];
    let mut wrong = Vec::new();
    for (behaviour, tls, code, words) in cases {
        let server = rt.block_on(AntMediaServer::start(behaviour.clone()));
        // wss:// to a server that speaks plain TCP: the TLS handshake fails.
        let url = match tls {
            true => server.url.replace("ws://", "wss://"),
            false => server.url.clone(),
        };
        let mut config = media.config(url, None, 1500);
        config.ant_media = Some("obs-studio-1".into());
        config.connect_timeout = Duration::from_secs(2);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let began = Instant::now();
        let result = WhipSink::connect(config, Arc::new(FixedEncoder), stop);
        let took = began.elapsed();
        match result {
            Ok(mut sink) => {
                sink.close();
                wrong.push(format!("{behaviour:?}: connected"));
            }
            Err(f) => {
                println!(
                    "{behaviour:?}: {:?} \"{}\" after {took:?}",
                    f.code, f.message
                );
                if f.code != code || !f.message.starts_with(words) || took > Duration::from_secs(4)
                {
                    wrong.push(format!(
                        "{behaviour:?}: {:?} \"{}\" after {took:?}",
                        f.code, f.message
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn obs_publishes_into_ant_media_with_every_frame_decoded_in_sync() {
    let _alone = receiving();
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::Publishes));
    let clip = flash_beep_clip("640x360");
    // The application's page, as a streamer copies it from Ant Media's panel; the token never in OBS's log.
    let page = server.url.replace("/websocket", "");
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "6",
            "--url",
            &page,
            "--ant-media-stream",
            "obs-cam-7",
            "--token",
            "ant-token-31337",
        ],
        None,
    );
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    assert_eq!(s["connected"], true, "{}", run.log);
    assert_eq!(s["stop_code"], 0, "{s}");
    assert_eq!(s["leaks"], 0, "{s}");
    assert!(
        run.log.contains("(Ant Media WebSocket signalling)"),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("ant-token-31337"),
        "the stream token in OBS's log"
    );
    {
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.stream_id.as_deref(), Some("obs-cam-7"));
        assert_eq!(seen.token.as_deref(), Some("ant-token-31337"));
        assert!(seen.stopped, "no stop: {seen:?}");
    }
    let (video_sent, _) = packets_sent(&run.log);
    assert!(video_sent >= 150, "{video_sent} frames sent");
    assert_eq!(r["video_frames_decoded"].as_u64(), Some(video_sent), "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert_av_in_sync(&r, 4, "lip sync");
}

#[test]
fn obs_shows_ant_medias_refusal_in_its_words() {
    let _alone = receiving();
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::Refuses("streamIdInUse")));
    let run = headless(
        &[
            "--duration",
            "3",
            "--url",
            &server.url,
            "--ant-media-stream",
            "busy",
        ],
        None,
    );
    let s = &run.summary;
    println!("summary {s}");
    assert_eq!(s["connected"], false, "{s}");
    assert_eq!(s["stop_code"], INVALID_STREAM, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("The Ant Media server says this stream ID is already publishing"),
        "{s}"
    );
    assert!(s["start_ms"].as_f64().unwrap() < 2000.0, "{s}");
    assert_eq!(s["leaks"], 0, "{s}");
}

/// Ant Media's own JavaScript client at a pinned version (`npm pack`), its browser bundle; fetched once per build
/// directory.
fn webrtc_adaptor_bundle() -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("antmedia-webrtc-adaptor");
    let bundle = dir.join("package/dist/browser/webrtc_adaptor.js");
    if !bundle.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let packed = std::process::Command::new("npm")
            .args(["pack", "--silent", "@antmedia/webrtc_adaptor@2.16.2"])
            .current_dir(&dir)
            .output()
            .expect("npm (make deps)");
        assert!(
            packed.status.success(),
            "npm pack: {}",
            String::from_utf8_lossy(&packed.stderr)
        );
        let tgz = String::from_utf8_lossy(&packed.stdout).trim().to_string();
        let untar = std::process::Command::new("tar")
            .args(["xzf", &tgz])
            .current_dir(&dir)
            .status()
            .expect("tar");
        assert!(untar.success());
    }
    std::fs::read_to_string(bundle).unwrap()
}

#[test]
fn our_ant_media_server_takes_ant_medias_own_javascript_client() {
    // The test server must speak what Ant Media's client speaks, not what we imagine: Chromium's fake camera
    // published by Ant Media's webrtc_adaptor into it, decoded by our receiver behind it.
    let _alone = receiving();
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::Publishes));
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/viewer/ant-media-publisher.html"),
    )
    .unwrap();
    let page =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ant-media-publisher.html");
    // The bundle inlined (the page is served alone); no `</script>` can end it early.
    let bundle = webrtc_adaptor_bundle().replace("</script", "<\\/script");
    std::fs::write(&page, template.replace("/*WEBRTC_ADAPTOR*/", &bundle)).unwrap();
    let profile =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile-ant-media");
    let query = format!("ws={}&stream=chromium-cam&seconds=5", server.url);
    let result = support::browser::run_page_with(
        &page,
        &query,
        Duration::from_secs(40),
        &profile,
        &[
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
        ],
    );
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    let result = result.unwrap_or_else(|e| panic!("{e}\nreceiver {r}"));
    let seen = server.seen.lock().unwrap();
    println!("page {result}\nserver saw {seen:?}\nreceiver {r}");
    assert!(result.get("error").is_none(), "{result}");
    assert!(
        result["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "publish_started"),
        "{result}"
    );
    assert_eq!(seen.stream_id.as_deref(), Some("chromium-cam"));
    assert_eq!(seen.commands.first().map(String::as_str), Some("publish"));
    assert!(seen.commands.iter().any(|c| c == "takeConfiguration"));
    assert!(seen.stopped, "{seen:?}");
    // 5 s of Chromium's fake camera (about 20 frames/s headless): what it encoded arrives and decodes, and its
    // candidates came trickled, as Ant Media's client sends them.
    let encoded = result["video"]["framesEncoded"].as_u64().unwrap_or(0);
    let decoded = r["video_frames_decoded"].as_u64().unwrap_or(0);
    assert!(encoded >= 50, "{result}");
    assert!(seen.client_candidates > 0, "{seen:?}");
    assert!(
        decoded as f64 >= 0.9 * encoded as f64,
        "decoded {decoded} of {encoded}: {r}"
    );
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert!(r["audio_packets"].as_u64().unwrap_or(0) > 200, "{r}");
}

#[test]
fn obs_publishes_into_ant_media_through_turn_relay_only() {
    let _alone = receiving();
    let turn = Turn::start(
        "turn-ant-media",
        TurnAuth::LongTerm {
            user: "obs",
            password: "turn-pass-2718",
        },
    );
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::Publishes));
    let clip = flash_beep_clip("640x360");
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "5",
            "--url",
            &server.url,
            "--ant-media-stream",
            "relayed",
            "--ice-server",
            &turn.url(),
            "--ice-policy",
            "relay",
            "--ice-username",
            "obs",
            "--ice-credential",
            "turn-pass-2718",
        ],
        None,
    );
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    assert_eq!(s["connected"], true, "{}\n{}", run.log, turn.log());
    let (video_sent, _) = packets_sent(&run.log);
    assert!(video_sent >= 120, "{video_sent}");
    assert_eq!(r["video_frames_decoded"].as_u64(), Some(video_sent), "{r}");
    // Relay only: the media can only have come through coturn, whose log shows the allocation.
    let log = turn.log();
    assert!(
        log.contains("<obs>: incoming packet ALLOCATE processed, success"),
        "{log}"
    );
    assert!(
        log.contains("<obs>: incoming packet CREATE_PERMISSION processed, success"),
        "{log}"
    );
    assert!(!run.log.contains("turn-pass-2718"));
}

#[test]
fn a_stream_ant_media_ends_is_published_again_at_once() {
    // Ant Media ends the broadcast (publish_finished) 3 s in: the plugin publishes a new session by itself, OBS
    // never stops, and frames are decoded again.
    let _alone = receiving();
    let rt = test_runtime();
    let server = rt.block_on(AntMediaServer::start(Behaviour::FinishesFirstAfter(
        Duration::from_secs(3),
    )));
    let clip = flash_beep_clip("640x360");
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "8",
            "--url",
            &server.url,
            "--ant-media-stream",
            "again",
        ],
        None,
    );
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    support::obs_run::print_lines(
        &run.log,
        &["publishing again", "published again", "Ant Media"],
    );
    assert_eq!(s["connected"], true, "{s}");
    assert_eq!(s["stop_code"], 0, "OBS's stream was never stopped: {s}");
    assert!(
        run.log.contains(
            "the Ant Media server ended the stream (publish_finished)): publishing again at once"
        ),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("published again: a new session"),
        "{}",
        run.log
    );
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.finished_by_server, 1, "{seen:?}");
    assert_eq!(
        seen.commands.iter().filter(|c| *c == "publish").count(),
        2,
        "{seen:?}"
    );
    // The second session's measurements (the receiver starts anew with each): a few seconds of whole video.
    assert!(r["video_frames_decoded"].as_u64().unwrap() >= 60, "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
}
