//! Real libobs 29.0.2 + our plugin → WHIP/WebRTC → our receiver, which decodes and measures; and the plugin against
//! WHIP servers that fail in every way we know, each ending with the right OBS stop code and a readable message.
mod support;

use std::time::Duration;
use support::bad_whip::{self, Misbehaviour};
use support::netns::wire::{LinkConfig, DOWN, UP};
use support::netns::{LinkedHosts, RemoteReceiver};
use support::obs_run::{
    binaries, failed_clearly, flash_beep_clip, headless, headless_in, headless_meanwhile,
    packets_sent, print_lines, publish_through, receiving,
};
use support::receiver::{assert_av_in_sync, test_runtime, Receiver, ReceiverOptions};

/// OBS_OUTPUT_* codes as libobs defines them.
const BAD_PATH: i64 = -1;
const CONNECT_FAILED: i64 = -2;
const INVALID_STREAM: i64 = -3;
const UNSUPPORTED: i64 = -6;

/// Publishes the flash/beep clip with x264 `bframes` and checks everything the receiver measured.
fn publish_and_measure(bframes: &str) {
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let token = "test-token-9f8e7d";
    // The receiver announces a STUN and a TURN server on OPTIONS; nothing listens there, so host candidates carry
    // the session, but the plugin must take them (and never print the TURN credential).
    let links = vec![
        "<stun:127.0.0.1:9>; rel=\"ice-server\"".to_string(),
        "<turn:127.0.0.1:9?transport=udp>; rel=\"ice-server\"; username=\"u1\"; credential=\"turn-secret-4711\"".to_string(),
    ];
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions {
            token: Some(token.into()),
            ice_links: links,
            ..Default::default()
        }))
        .unwrap();
    let url = receiver.whip_url();
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "6",
            "--bframes",
            bframes,
            "--url",
            &url,
            "--token",
            token,
        ],
        None,
    );
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    println!(
        "{}",
        run.log
            .lines()
            .filter(|l| l.contains("connect timeline"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_eq!(s["connected"], true, "did not connect: {s}\n{}", run.log);
    assert_eq!(s["ended_by_itself"], false, "{s}");
    assert_eq!(s["stop_code"], 0, "{s}");
    assert!(
        s["stop_call_ms"].as_f64().unwrap() < 100.0 && s["stopped_ms"].as_f64().unwrap() < 100.0,
        "{s}"
    );
    assert_eq!(s["leaks"], 0, "{s}");
    assert!(r["delete_received"] == true, "no WHIP DELETE after stop");
    assert!(run.log.contains("WHIP session ended (DELETE answered 200)"));
    assert!(
        run.log
            .contains("keyframe requests from the server: 1 (PLI 1, FIR 0)"),
        "PLI not counted"
    );
    assert!(
        !run.log.contains(token),
        "the bearer token appeared in OBS's log"
    );
    assert!(
        run.log.contains("ICE servers announced by the WHIP server")
            && run.log.contains("turn:127.0.0.1:9")
    );
    assert!(
        !run.log.contains("turn-secret-4711"),
        "a TURN credential appeared in OBS's log"
    );
    assert_eq!(r["auth_failures"], 0);

    let (video_sent, audio_sent) = packets_sent(&run.log);
    // OBS counts the frames its interleaver handed the output; the encoder taps delivered the same frames a
    // little earlier, and packets still queued when stop arrived are discarded: the counts differ by the few
    // frames in flight at the stop.
    let handed = s["total_frames"].as_u64().unwrap();
    assert!(
        video_sent.abs_diff(handed) <= 3,
        "OBS handed {handed} frames, {video_sent} sent"
    );
    let decoded = r["video_frames_decoded"].as_u64().unwrap();
    assert!(video_sent >= 150, "only {video_sent} frames sent in 6 s");
    assert!(
        decoded as f64 >= 0.98 * video_sent as f64,
        "decoded {decoded} of {video_sent} frames"
    );
    assert_eq!(r["decode_errors"], 0);
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        (r["fps"].as_f64().unwrap() - 30.0).abs() < 1.0,
        "fps {}",
        r["fps"]
    );
    let audio = r["audio_packets"].as_u64().unwrap();
    assert!(
        audio as f64 >= 0.98 * audio_sent as f64 && audio_sent >= 250,
        "audio {audio} of {audio_sent}"
    );
    assert_eq!(r["audio_decode_errors"], 0);
    assert!(r["first_frame_ms"].as_f64().is_some());

    // Lip sync: the flash and the beep of each second, placed on one clock through the sender reports.
    assert_av_in_sync(&r, 4, "lip sync");
    // openh264 cannot decode B slices; the receiver then measures with libavcodec (and says so).
    let decoder = if bframes == "0" {
        "openh264"
    } else {
        "libavcodec (B-frames)"
    };
    assert_eq!(r["decoder"], decoder, "{r}");
    rt.block_on(receiver.stop());
}

#[test]
fn obs_publishes_to_our_receiver_which_decodes_everything_in_sync() {
    publish_and_measure("0");
}

#[test]
fn b_frames_arrive_decodable_and_in_sync() {
    publish_and_measure("2");
}

struct Case {
    name: &'static str,
    server: Misbehaviour,
    code: i64,
    words: &'static str,
}

fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Misbehaviour {
    Misbehaviour::Status(
        code,
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body.into(),
    )
}

#[test]
fn failing_whip_servers_end_the_stream_with_the_right_code_and_message() {
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let cases = vec![
        Case {
            name: "401",
            server: status(401, &[], "token expired"),
            code: INVALID_STREAM,
            words: "token expired",
        },
        Case {
            name: "403",
            server: status(403, &[], ""),
            code: INVALID_STREAM,
            words: "bearer token",
        },
        Case {
            name: "404",
            server: status(404, &[], ""),
            code: BAD_PATH,
            words: "No WHIP endpoint",
        },
        Case {
            name: "500",
            server: status(500, &[], "database on fire"),
            code: CONNECT_FAILED,
            words: "database on fire",
        },
        Case {
            name: "503",
            server: status(503, &[("Retry-After", "30")], ""),
            code: CONNECT_FAILED,
            words: "retry in 30 s",
        },
        Case {
            name: "silent",
            server: Misbehaviour::Silent,
            code: CONNECT_FAILED,
            words: "did not answer",
        },
        Case {
            name: "no Location",
            server: status(201, &[], sdp),
            code: CONNECT_FAILED,
            words: "no Location",
        },
        Case {
            name: "malformed SDP",
            server: status(201, &[("Location", "/r/1")], "<html>hello</html>"),
            code: CONNECT_FAILED,
            words: "not an SDP",
        },
        Case {
            name: "redirect loop",
            server: Misbehaviour::RedirectLoop,
            code: BAD_PATH,
            words: "redirected more than",
        },
        Case {
            name: "oversized",
            server: Misbehaviour::Oversized,
            code: CONNECT_FAILED,
            words: "larger than",
        },
    ];
    expect_failures(cases);
}

/// Runs OBS against each misbehaving server: the stream must fail with the case's code and words within the
/// connect timeout (2 s) and a few seconds of teardown, leak nothing, panic nowhere and leave no thread behind.
fn expect_failures(cases: Vec<Case>) {
    let rt = test_runtime();
    let mut failures = Vec::new();
    for case in cases {
        let url = rt.block_on(bad_whip::serve(case.server.clone()));
        failures.extend(failed_clearly(
            case.name,
            &["--url", &url],
            case.code,
            case.words,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A WHIP answer: `video` and `audio` are the media sections after the session part (candidates and the DTLS
/// fingerprint included unless `session` drops them).
fn answer_sdp(session: &str, video: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n{session}{video}\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\n"
    )
}

const FINGERPRINT: &str = "a=fingerprint:sha-256 \
    AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n";
const ICE: &str = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:active\r\n";
const VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
    a=rtcp-mux\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

#[test]
fn hostile_answers_end_with_a_clear_error_in_bounded_time() {
    let created = |body: String, more: &[(&str, &str)]| {
        let mut headers: Vec<(&str, &str)> =
            vec![("Location", "/r/1"), ("Content-Type", "application/sdp")];
        headers.extend_from_slice(more);
        status(201, &headers, &body)
    };
    let session = format!("{FINGERPRINT}{ICE}");
    let candidates: String = (0..1000)
        .map(|i| {
            format!(
                "a=candidate:{i} 1 udp {} 192.0.2.{} {} typ host\r\n",
                2_000_000 - i,
                i % 250 + 1,
                10_000 + i
            )
        })
        .collect();
    let link =
        "<turn:192.0.2.1:3478?transport=udp>; rel=\"ice-server\"; username=\"u\"; credential=\"c\"";
    let links: Vec<(&str, &str)> = (0..10_000).map(|_| ("Link", link)).collect();
    let cases = vec![
        Case {
            name: "one byte a second",
            server: Misbehaviour::Dribble(
                201,
                vec![("Location".into(), "/r/1".into())],
                answer_sdp(&session, VIDEO),
            ),
            code: CONNECT_FAILED,
            words: "did not answer",
        },
        Case {
            name: "10,000 Link headers",
            server: created(answer_sdp(&session, VIDEO), &links),
            code: CONNECT_FAILED,
            words: "far more headers than a WHIP answer needs",
        },
        Case {
            name: "video port 0",
            server: created(
                answer_sdp(&session, &VIDEO.replace("m=video 9", "m=video 0")),
                &[],
            ),
            code: UNSUPPORTED,
            words: "The server refused the video (H.264)",
        },
        Case {
            name: "a codec never offered",
            server: created(
                answer_sdp(&session, &VIDEO.replace("102 H264/90000", "102 VP8/90000")),
                &[],
            ),
            code: UNSUPPORTED,
            words: "does not take the video (H.264): its answer names VP8",
        },
        Case {
            name: "unknown payload type",
            server: created(answer_sdp(&session, &VIDEO.replace("102", "121")), &[]),
            code: CONNECT_FAILED,
            words: "payload type(s) 121 that the offer never named",
        },
        Case {
            name: "1,000 candidates",
            server: created(answer_sdp(&format!("{session}{candidates}"), VIDEO), &[]),
            code: CONNECT_FAILED,
            words: "(ICE/DTLS) to the server did not connect within 2 s",
        },
        Case {
            name: "no DTLS fingerprint",
            server: created(answer_sdp(ICE, VIDEO), &[]),
            code: CONNECT_FAILED,
            words: "it has no DTLS fingerprint",
        },
    ];
    expect_failures(cases);
}

#[test]
fn nothing_listening_and_bad_urls_fail_fast_and_clearly() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = headless(
        &[
            "--duration",
            "1",
            "--url",
            &format!("http://127.0.0.1:{port}/whip"),
        ],
        None,
    );
    assert_eq!(run.summary["stop_code"], CONNECT_FAILED, "{}", run.summary);
    assert!(run.summary["last_error"]
        .as_str()
        .unwrap()
        .contains("Could not reach the WHIP server"));
    // Not a WHIP URL at all: refused before anything is sent.
    let run = headless(
        &["--duration", "1", "--url", "rtmp://example.invalid/live"],
        None,
    );
    assert_eq!(run.summary["started"], false, "{}", run.summary);
    assert!(
        run.summary["last_error"]
            .as_str()
            .unwrap()
            .contains("https://"),
        "{}",
        run.summary
    );
}

/// Publishes the flash/beep clip for `seconds` to a receiver started with `options`; the run and the receiver's
/// settled report.
fn publish_clip_to(
    options: ReceiverOptions,
    seconds: &str,
) -> (support::obs_run::Run, serde_json::Value) {
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt.block_on(Receiver::start(options)).unwrap();
    let url = receiver.whip_url();
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            seconds,
            "--url",
            &url,
        ],
        None,
    );
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!("summary {}\nreceiver {r}", run.summary);
    rt.block_on(receiver.stop());
    (run, r)
}

#[test]
fn a_lost_connection_stops_with_disconnected_and_obs_reconnects() {
    // The server drops the session (ICE notices after 3 s) and then answers offers 503 until 11 s after the first
    // it refused: the plugin's own attempts to publish again (every 250 ms for 10 s from the first) give up, the
    // stream stops with DISCONNECTED, and OBS's reconnect (2 s later) publishes into the recovered server.
    let _alone = receiving();
    let (run, r) = publish_clip_to(
        ReceiverOptions {
            drop_first_session_after: Some(Duration::from_secs(2)),
            refuse_offers_for: Duration::from_secs(11),
            ..Default::default()
        },
        "24",
    );
    assert!(
        run.log
            .contains("The WebRTC connection to the server was lost"),
        "loss not detected:\n{}",
        run.log
    );
    assert!(
        run.log
            .contains("publishing again failed: The WHIP server is busy (HTTP 503)"),
        "the plugin did not try and give up:\n{}",
        run.log
    );
    assert!(r["offers_refused"].as_u64().unwrap() > 20, "{r}");
    assert!(
        run.log.to_lowercase().contains("reconnect"),
        "OBS did not reconnect:\n{}",
        run.log
    );
    assert!(
        r["sessions"].as_u64().unwrap() >= 2,
        "no second WHIP session: {r}"
    );
    // The report covers the newest session: it decodes cleanly from its first keyframe.
    assert!(r["video_frames_decoded"].as_u64().unwrap() > 30, "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert!(r["delete_received"] == true, "{r}");
    // libobs re-bases audio and video pts separately on reconnect; the capture clock keeps them in sync.
    assert_av_in_sync(&r, 1, "after reconnect");
    assert_eq!(run.summary["leaks"], 0);
}

#[test]
fn a_whip_server_that_restarts_is_published_to_again_once_it_is_back() {
    // Our receiver as its own process, taking PATCH (ICE restarts): killed mid-stream (SIGKILL: no DELETE, no
    // goodbye), started again on the same port 2 s later. Its transport feedback stops: a second later the plugin
    // tries an ICE restart, whose PATCH finds nothing listening — the session is gone, and the stream worker
    // publishes again at once, every 250 ms until the new process takes the offer; OBS's capture runs on (no
    // reconnect with its 2 s delay). Before: ICE noticed after 3 s, then OBS's reconnect — 4.0 s from the server
    // being back to frames; and before that, retrying the restart for 15 s kept the streamer off the air for 20 s.
    let _alone = receiving();
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let addr = format!("127.0.0.1:{}", support::free_port());
    let args = [
        "--http",
        &addr,
        "--udp",
        "127.0.0.1:0",
        "--trickle",
        "--timeout",
        "40",
    ];
    let first = RemoteReceiver::start_here(&mock_sfu, &args);
    let clip = flash_beep_clip("640x360");
    let publisher = headless_meanwhile(&[
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "16",
        "--bframes",
        "0",
        "--url",
        &first.url,
    ]);
    // The fault, on a schedule: the stream is up well within 4 s of the start (connect takes ~0.3 s).
    std::thread::sleep(Duration::from_secs(4));
    first.kill();
    std::thread::sleep(Duration::from_secs(2));
    let second = RemoteReceiver::start_here(&mock_sfu, &args);
    let back_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0;
    let run = publisher.join().unwrap();
    let r = second.report();
    let back_to_frames = r["first_frame_unix_ms"].as_f64().map(|t| t - back_unix_ms);
    println!(
        "summary {}\nreceiver after the restart {r}\nserver back → first frame decoded: {back_to_frames:?} ms",
        run.summary
    );
    print_lines(
        &run.log,
        &["RTCP", "ICE restart", "lost", "again", "connect timeline"],
    );
    for step in [
        "no RTCP from the server for",
        "the server is down: the ICE restart could not reach it",
        "published again: a new session after",
    ] {
        assert!(run.log.contains(step), "no {step:?} in\n{}", run.log);
    }
    assert!(run.summary["last_error"].is_null(), "{}", run.summary);
    assert_eq!(r["sessions"], 1, "{r}");
    let decoded = r["video_frames_decoded"].as_u64().unwrap_or(0);
    assert!(
        decoded > 90 && r["decode_errors"] == 0,
        "the restarted server decoded {decoded} frames: {r}"
    );
    assert!(
        back_to_frames.is_some_and(|ms| ms > 0.0),
        "no frame after the server was back: {r}"
    );
    assert_eq!(run.summary["leaks"], 0);
}

#[test]
fn a_307_redirect_is_followed_to_the_real_endpoint() {
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions::default()))
        .unwrap();
    let front = rt.block_on(bad_whip::serve(status(
        307,
        &[("Location", &receiver.whip_url())],
        "",
    )));
    let run = headless(
        &[
            "--media",
            clip.to_str().unwrap(),
            "--duration",
            "3",
            "--url",
            &front,
        ],
        None,
    );
    rt.block_on(receiver.wait_for_delete(Duration::from_secs(3)));
    let r = receiver.report();
    assert_eq!(run.summary["connected"], true, "{}", run.summary);
    assert_eq!(r["sessions"], 1, "{r}");
    assert!(r["video_frames_decoded"].as_u64().unwrap() > 30, "{r}");
    // The session resource is resolved against the URL that answered, so the DELETE reached the receiver.
    assert!(r["delete_received"] == true, "{r}");
    rt.block_on(receiver.stop());
}

#[test]
fn an_untrusted_tls_certificate_is_refused() {
    let rt = test_runtime();
    let url = rt.block_on(bad_whip::serve_untrusted_tls());
    let run = headless(&["--duration", "1", "--url", &url], None);
    let s = &run.summary;
    let error = s["last_error"].as_str().unwrap_or_default();
    println!("untrusted TLS: {error}");
    assert_eq!(s["stop_code"], CONNECT_FAILED, "{s}");
    assert!(
        error.to_lowercase().contains("certificate"),
        "not a certificate error: {error}"
    );
    assert!(
        !error.contains("HTTP 404"),
        "the request went through an untrusted connection: {error}"
    );
}

#[test]
fn stopping_while_connecting_ends_at_once_and_unload_finds_no_thread() {
    // The server never answers and the connect timeout is long: stopping must not wait for it.
    let rt = test_runtime();
    let url = rt.block_on(bad_whip::serve(Misbehaviour::Silent));
    let t0 = std::time::Instant::now();
    let run = headless(
        &[
            "--duration",
            "1",
            "--url",
            &url,
            "--connect-timeout",
            "30",
            "--stop-after",
            "1",
        ],
        None,
    );
    let s = &run.summary;
    println!("{s} in {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(s["connected"], false, "{s}");
    assert!(
        s["stop_call_ms"].as_f64().unwrap() < 100.0 && s["stopped_ms"].as_f64().unwrap() < 100.0,
        "{s}"
    );
    // The connect was cancelled and OBS got its stop signal (success: the streamer stopped it) within 100 ms.
    assert_eq!(s["stop_code"], 0, "{s}");
    assert!(s["stop_signal_ms"].as_f64().unwrap() < 100.0, "{s}");
    assert!(
        run.log
            .contains("[rtc-studio] unloaded: every stream thread has ended"),
        "a stream thread outlived unload"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "the run waited for the connect timeout"
    );
    assert_eq!(s["leaks"], 0, "{s}");
}

#[test]
fn obs_congestion_square_shows_the_loss_of_a_shaped_link() {
    // Publisher and receiver on two hosts of our own (network namespaces) joined by a veth link: first clear,
    // then shaped to 400 kbit/s publisher → server (x264 sends 1.5 Mbit/s). OBS's congestion (what its status bar
    // square shows) follows the loss the receiver reports in RTCP receiver reports.
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let hosts = LinkedHosts::create("congest");
    let publish = || {
        let receiver = RemoteReceiver::start(&hosts, &mock_sfu);
        let run = headless_in(
            Some(&hosts.publisher),
            &[
                "--media",
                clip.to_str().unwrap(),
                "--duration",
                "5",
                "--url",
                &receiver.url,
            ],
            None,
        );
        (run, receiver.report())
    };
    let (clear, clear_report) = publish();
    let s = &clear.summary;
    assert_eq!(s["connected"], true, "{s}\n{}", clear.log);
    assert!(
        clear.log.contains("receiver reports from the server: ")
            && !clear.log.contains("receiver reports from the server: 0,"),
        "no RTCP receiver report reached the plugin:\n{}",
        clear.log
    );
    // Averaged over the stream (sampled every 100 ms): a moment of loss on a loaded machine may show on a clear
    // link; a congested link shows most of the time.
    let clear_congestion = s["congestion_mean"].as_f64().unwrap();
    assert!(
        clear_congestion < 0.2,
        "mean congestion {clear_congestion} on a clear link: {s}"
    );
    assert!(
        clear_report["video_frames_decoded"].as_u64().unwrap_or(0) >= 100,
        "{clear_report}"
    );

    hosts.shape_publisher_egress("400kbit");
    let (shaped, shaped_report) = publish();
    let s = &shaped.summary;
    assert_eq!(s["connected"], true, "{s}\n{}", shaped.log);
    let shaped_congestion = s["congestion_mean"].as_f64().unwrap();
    assert!(
        shaped_congestion >= 0.4 && s["congestion_max"].as_f64().unwrap() >= 0.99,
        "mean congestion only {shaped_congestion} through a 400 kbit/s link: {s}\nreceiver {shaped_report}"
    );
    assert_eq!(
        s["stop_code"], 0,
        "the output should keep streaming through loss: {s}"
    );
    println!(
        "mean congestion: clear {clear_congestion:.2}, shaped {shaped_congestion:.2} (max {}); shaped receiver decoded {}",
        s["congestion_max"], shaped_report["video_frames_decoded"]
    );
}

#[test]
fn a_server_that_refuses_trickled_candidates_gets_a_complete_offer() {
    // The server's OPTIONS promises trickle ICE (Accept-Patch), so the offer goes at once, but every PATCH is
    // answered 405: the plugin must end that session and send a complete offer (RFC 9725 §4.3.2).
    let _alone = receiving();
    let (run, r) = publish_clip_to(
        ReceiverOptions {
            refuse_patch: true,
            ..Default::default()
        },
        "4",
    );
    assert_eq!(run.summary["connected"], true, "{}", run.log);
    assert_eq!(run.summary["stop_code"], 0, "{}", run.summary);
    assert!(r["patches_refused"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(
        r["sessions"], 2,
        "the complete offer made a second session: {r}"
    );
    assert!(
        run.log
            .contains("trickle ICE refused after the offer (the server does not take trickle ICE after all (HTTP 405)): sent a new, complete offer"),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("offer ready") && run.log.contains("(all candidates)"),
        "the second offer should carry all candidates:\n{}",
        run.log
    );
    assert!(r["video_frames_decoded"].as_u64().unwrap() >= 60, "{r}");
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert!(r["delete_received"] == true, "{r}");
}

#[test]
fn a_dead_uplink_is_repaired_by_an_ice_restart_in_the_same_session() {
    // Publisher and a receiver that takes ICE restarts by PATCH on two hosts of our own; the link between
    // them drops everything for 5 s mid-stream. ICE goes disconnected; the plugin restarts ICE through the server
    // (PATCH, If-Match "*") and the stream goes on in the same WHIP session, with no OBS reconnect.
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let hosts = LinkedHosts::create("restart");
    // The 201 also announces a TURN server (nothing listens there): the plugin takes it for the restart, and
    // never prints its credential.
    let turn_link = "<turn:10.233.0.2:9?transport=udp>; rel=\"ice-server\"; username=\"u201\"; credential=\"cred-from-201\"";
    let receiver = RemoteReceiver::start_with(
        &hosts,
        &mock_sfu,
        &["--trickle", "--answer-link", turn_link],
    );
    let run = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(6));
            hosts.cut_link();
            std::thread::sleep(Duration::from_secs(5));
            hosts.restore_link();
        });
        headless_in(
            Some(&hosts.publisher),
            &[
                "--media",
                clip.to_str().unwrap(),
                "--duration",
                "18",
                "--url",
                &receiver.url,
            ],
            None,
        )
    });
    let r = receiver.report();
    let s = &run.summary;
    println!("summary {s}\nreceiver {r}");
    let notes: Vec<&str> = run
        .log
        .lines()
        .filter(|l| {
            l.contains("ICE restart") || l.contains("connection back") || l.contains("lost")
        })
        .collect();
    println!("{}", notes.join("\n"));
    assert_eq!(s["connected"], true, "{}", run.log);
    assert!(
        run.log.contains("ICE restart 1 through the WHIP server"),
        "no ICE restart:\n{}",
        run.log
    );
    assert!(
        run.log.contains("ICE restart(s), same session"),
        "the connection did not come back:\n{}",
        run.log
    );
    assert!(
        !run.log
            .contains("The WebRTC connection to the server was lost"),
        "{}",
        run.log
    );
    assert!(
        run.log.contains(
            "ICE servers announced with the server's answer (used for ICE restarts): [IceServer { urls: [\"turn:10.233.0.2:9?transport=udp\"], username: \"<redacted>\", credential: \"<redacted>\" }]"
        ),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("cred-from-201"),
        "a TURN credential was logged"
    );
    assert_eq!(s["stop_code"], 0, "{s}");
    assert_eq!(r["sessions"], 1, "a new WHIP session was made: {r}");
    assert!(r["ice_restarts"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["frames_after_restart"].as_u64().unwrap() >= 60,
        "too few frames after the restart: {r}"
    );
    assert!(r["delete_received"] == true, "{r}");
}

#[test]
fn a_keyframe_request_is_answered_by_x264_zerolatency_and_x264_is_left_as_it_was() {
    // Our receiver asks for a keyframe (PLI) a second into the stream. With a keyframe interval of 8 s, a 5 s stream
    // has one keyframe of its own: a second one can only be x264 answering the request, and no more than two means
    // the plugin gave x264 its own options back. With x264's lookahead (any other tune) it cannot be asked: one
    // keyframe, and the log says why.
    let _alone = receiving();
    let rt = test_runtime();
    let publish = |tune: Option<&str>| {
        let receiver = rt
            .block_on(Receiver::start(ReceiverOptions::default()))
            .unwrap();
        let url = receiver.whip_url();
        let mut args = vec!["--duration", "5", "--keyint", "8", "--url", &url];
        if let Some(t) = tune {
            args.extend(["--tune", t]);
        }
        let run = headless(&args, None);
        let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
        println!("tune {tune:?}: receiver {r}");
        assert_eq!(run.summary["connected"], true, "{}", run.log);
        (run, r)
    };
    let (run, r) = publish(Some("zerolatency"));
    assert_eq!(r["plis_sent"], 1, "{r}");
    assert_eq!(
        r["keyframes"], 2,
        "the first keyframe and the one asked for: {r}"
    );
    assert_eq!(
        r["keyframe_waits_ms"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    assert!(
        run.log.contains("the encoder was asked 1 time(s)"),
        "{}",
        run.log
    );
    let (run, r) = publish(None);
    assert_eq!(
        r["keyframes"], 1,
        "x264 with a lookahead made a keyframe after all: {r}"
    );
    assert!(
        run.log
            .contains("cannot be asked for one (x264 decides frame types on its lookahead thread"),
        "{}",
        run.log
    );
}

/// Streams 4 s from the publisher host to our receiver on the server host (HTTP and ICE on the server's address);
/// nearly every frame must be decoded. The run and the receiver's report.
fn streams_across(hosts: &LinkedHosts) -> (support::obs_run::Run, serde_json::Value) {
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let ip: std::net::IpAddr = hosts.server_addr.parse().unwrap();
    let addr = std::net::SocketAddr::new(ip, 0).to_string();
    let (run, r) = publish_through(
        hosts,
        &mock_sfu,
        &["--http", &addr, "--udp", &addr, "--timeout", "30"],
        1500,
        4,
    );
    let (sent, _) = packets_sent(&run.log);
    let decoded = r["video_frames_decoded"].as_u64().unwrap_or(0);
    assert!(
        sent >= 90 && decoded as f64 >= 0.95 * sent as f64,
        "{decoded} of {sent}: {r}"
    );
    assert_eq!(r["decode_errors"], 0, "{r}");
    (run, r)
}

#[test]
fn a_host_without_a_default_route_streams_without_mdns() {
    // The publisher reaches the server's subnet and nothing else: no default route, so no multicast group can be
    // joined — webrtc-rs's mDNS socket failed the whole set-up there ("No such device (os error 19)").
    let _alone = receiving();
    let hosts = LinkedHosts::create_wired("nodefault", 1);
    hosts.wire().set(UP, LinkConfig::clear());
    hosts.wire().set(DOWN, LinkConfig::clear());
    hosts.without_default_route();
    let (run, _) = streams_across(&hosts);
    assert!(
        run.log.contains("mDNS is off: this host cannot multicast"),
        "{}",
        run.log
    );
}

#[test]
fn an_ipv6_only_network_streams() {
    // Publisher and server on a link with IPv6 addresses only: the WHIP URL has a bracketed IPv6 literal, ICE
    // gathers and pairs IPv6 host candidates (before, only IPv4 was gathered and it never connected), and every
    // frame arrives.
    let _alone = receiving();
    let hosts = LinkedHosts::create_ipv6_only("ipv6");
    let (_, r) = streams_across(&hosts);
    assert!(
        r["offer_candidate_types"].to_string().contains("host"),
        "{r}"
    );
}

#[test]
fn a_publisher_with_several_networks_streams_over_the_one_that_reaches_the_server() {
    // Two more interfaces on the publisher that lead nowhere the server is (as a studio machine on a production
    // network, a management network and a capture network): their host candidates are offered too, ICE finds the
    // pair that works, and every frame arrives.
    let _alone = receiving();
    let hosts = LinkedHosts::create_wired("multinic", 3);
    hosts.wire().set(UP, LinkConfig::clear());
    hosts.wire().set(DOWN, LinkConfig::clear());
    hosts.add_publisher_interface("mgmt0", "10.99.0.1");
    hosts.add_publisher_interface("capture0", "192.168.77.1");
    let (run, r) = streams_across(&hosts);
    assert!(
        run.log.contains("[rtc-studio] streaming (connected in"),
        "{}",
        run.log
    );
    // Candidates on the wire's address and on the two others.
    let offered = r["offer_candidate_addresses"].to_string();
    for addr in [hosts.publisher_addr.as_str(), "10.99.0.1", "192.168.77.1"] {
        assert!(
            offered.contains(&format!("\"{addr}\"")),
            "{addr} not in {offered}"
        );
    }
}
