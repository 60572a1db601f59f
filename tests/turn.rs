//! TURN through Debian's real coturn 4.6.1: with "Relay only", the plugin offers nothing but coturn's relay address,
//! so every packet our receiver decodes went through coturn — with long-term credentials and with coturn's REST API
//! (time-limited credentials from a shared secret, here with a receiver that takes trickle ICE, so the relay
//! candidate follows the offer by PATCH), and over TCP and TLS (bridged: our WebRTC stack relays over UDP only).
//! Wrong credentials and unreachable TURN servers fail clearly. A studio network whose firewall lets no UDP out
//! streams through TURN over TCP and TLS without being told to relay.
mod support;

use std::time::Duration;
use support::netns::{checked, LinkedHosts, RemoteReceiver, SERVER_ADDR};
use support::obs_run::{
    binaries, flash_beep_clip, headless, headless_env, headless_in_env, headless_meanwhile,
    packets_sent, print_lines, receiving, time_until,
};
use support::receiver::{test_runtime, Receiver, ReceiverOptions};
use support::turn::{Turn, TurnAuth};

const CONNECT_FAILED: i64 = -2;

/// Streams through `turn` relay-only with `ice_args`; checks the receiver got it all and coturn relayed it.
/// `user_in_log`: how coturn's log ends the user name (`<obs>`, or `:obs-studio>` for REST credentials).
/// With `trickle`, the receiver takes trickle ICE: the offer goes at once and the relay candidate follows by PATCH.
/// `turn_url` is the URL given to the plugin (`turn.url()`: UDP); `env` goes to the headless runner.
fn publish_relayed(
    turn: &Turn,
    turn_url: &str,
    ice_args: &[&str],
    user_in_log: &str,
    secret: &str,
    trickle: bool,
    env: &[(&str, &str)],
) -> String {
    let _alone = receiving();
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions {
            trickle,
            ..Default::default()
        }))
        .unwrap();
    let url = receiver.whip_url();
    let mut args = vec![
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "5",
        "--bframes",
        "0",
        "--url",
        &url,
    ];
    args.extend(["--ice-server", turn_url, "--ice-policy", "relay"]);
    args.extend(ice_args);
    let run = headless_env(&args, env);
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
    assert_eq!(
        s["connected"],
        true,
        "did not connect: {s}\n{}\n{}",
        run.log,
        turn.log()
    );
    assert_eq!(s["stop_code"], 0, "{s}");
    if trickle {
        // The offer went before gathering ended: it holds the relay candidate or none; the rest came by PATCH
        // with the session's ETag, ending with end-of-candidates. Relay only: no host candidate exists at all.
        assert!(
            r["offer_candidate_types"] == serde_json::json!(["relay"])
                || r["offer_candidate_types"] == serde_json::json!([]),
            "{r}"
        );
        assert!(r["trickle_patches"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["end_of_candidates"], true, "{r}");
        assert_eq!(r["patch_precondition_failures"], 0, "{r}");
        assert!(
            run.log
                .contains("sent at once: the server takes trickle ICE")
                && run.log.contains("trickle ICE: ")
                && run.log.contains("then end-of-candidates"),
            "{}",
            run.log
        );
    } else {
        // The only candidates offered were relayed ones: the media can only have come through coturn.
        assert_eq!(
            r["offer_candidate_types"],
            serde_json::json!(["relay"]),
            "{r}"
        );
        assert_eq!(r["trickle_patches"], 0, "{r}");
    }
    let (video_sent, _) = packets_sent(&run.log);
    let decoded = r["video_frames_decoded"].as_u64().unwrap();
    assert!(
        video_sent >= 120 && decoded as f64 >= 0.98 * video_sent as f64,
        "decoded {decoded} of {video_sent}: {r}"
    );
    assert_eq!(r["decode_errors"], 0, "{r}");
    assert!(
        r["audio_packets"].as_u64().unwrap() > 150 && r["audio_decode_errors"] == 0,
        "{r}"
    );
    assert!(r["delete_received"] == true, "{r}");
    let log = turn.log();
    for expected in [
        format!("{user_in_log}: incoming packet ALLOCATE processed, success"),
        format!("{user_in_log}: incoming packet CREATE_PERMISSION processed, success"),
    ] {
        assert!(
            log.contains(&expected),
            "coturn's log lacks {expected:?}:\n{log}"
        );
    }
    assert!(
        !run.log.contains(secret),
        "a TURN credential reached OBS's log"
    );
    assert!(run.log.contains("relay only"), "{}", run.log);
    rt.block_on(receiver.stop());
    run.log
}

#[test]
fn media_flows_through_coturn_with_long_term_credentials() {
    let turn = Turn::start(
        "turn-lt",
        TurnAuth::LongTerm {
            user: "obs",
            password: "turn-pass-5521",
        },
    );
    publish_relayed(
        &turn,
        &turn.url(),
        &[
            "--ice-username",
            "obs",
            "--ice-credential",
            "turn-pass-5521",
        ],
        "<obs>",
        "turn-pass-5521",
        false,
        &[],
    );
}

#[test]
fn media_flows_through_coturn_with_rest_credentials_and_trickle_ice() {
    let turn = Turn::start("turn-rest", TurnAuth::SharedSecret("shared-s3cret-88"));
    // coturn logs the computed username `<expiry>:obs-studio`; the secret itself never travels.
    publish_relayed(
        &turn,
        &turn.url(),
        &[
            "--turn-secret",
            "shared-s3cret-88",
            "--ice-username",
            "obs-studio",
        ],
        ":obs-studio>",
        "shared-s3cret-88",
        true,
        &[],
    );
}

#[test]
fn media_flows_through_coturn_over_tcp_and_over_tls() {
    // Our WebRTC stack relays over UDP only; the plugin bridges TURN over TCP/TLS (plugin/transport/turn_bridge.rs).
    // Relay only: every decoded frame came through coturn's TCP, then TLS, listener.
    let turn = Turn::start_with(
        "turn-stream",
        TurnAuth::LongTerm {
            user: "obs",
            password: "tcp-pass-5150",
        },
        true,
    );
    let credentials = ["--ice-username", "obs", "--ice-credential", "tcp-pass-5150"];
    let tcp = format!("turn:127.0.0.1:{}?transport=tcp", turn.port);
    let log = publish_relayed(
        &turn,
        &tcp,
        &credentials,
        "<obs>",
        "tcp-pass-5150",
        false,
        &[],
    );
    assert!(
        log.contains(&format!(
            "TURN over TCP to 127.0.0.1:{} (bridged for WebRTC",
            turn.port
        )),
        "{log}"
    );
    // coturn served it over TCP (its TLS sessions name a cipher), relayed the media through a channel, and the
    // allocation was released (lifetime 0) before the bridge closed.
    let coturn = turn.log();
    let session = |log: &str, tls: bool| {
        log.lines().any(|l| {
            l.contains("new, realm=<test.local>, username=<obs>, lifetime=600")
                && l.contains("method=TLS") == tls
        })
    };
    assert!(
        coturn.contains("tcp or tls connected to: 127.0.0.1"),
        "{coturn}"
    );
    assert!(
        session(&coturn, false),
        "no TCP allocation in coturn's log:\n{coturn}"
    );
    assert!(
        coturn.contains("incoming packet CHANNEL_BIND processed, success"),
        "{coturn}"
    );

    let (tls_port, ca) = turn.tls.clone().unwrap();
    let tls = format!("turns:localhost:{tls_port}");
    let ca = ca.to_str().unwrap();
    let log = publish_relayed(
        &turn,
        &tls,
        &credentials,
        "<obs>",
        "tcp-pass-5150",
        false,
        &[("SSL_CERT_FILE", ca)],
    );
    assert!(
        log.contains(&format!(
            "TURN over TLS to localhost:{tls_port} (bridged for WebRTC"
        )),
        "{log}"
    );
    let after = turn.log()[coturn.len()..].to_string();
    assert!(
        session(&after, true),
        "no TLS allocation in coturn's log:\n{after}"
    );
}

/// A 1 s relay-only start through `ice_server` (with username `obs` and `credential`, if any) to a WHIP URL where
/// nothing listens; the runner's summary.
#[test]
fn a_relay_only_stream_comes_back_after_coturn_restarts() {
    // coturn killed under a relay-only stream (every allocation gone) and started again 2 s later. The receiver's
    // feedback stops; the plugin restarts ICE, which needs a new allocation: while coturn is down there is no
    // relay candidate, and once it is back the restart goes through it — same WHIP session. Measured: coturn
    // listening again → the receiver decoding frames again.
    let _alone = receiving();
    let mut turn = Turn::start(
        "coturn-restart",
        TurnAuth::LongTerm {
            user: "obs",
            password: "restart-secret",
        },
    );
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let receiver = rt
        .block_on(Receiver::start(ReceiverOptions {
            trickle: true,
            ..Default::default()
        }))
        .unwrap();
    let (url, turn_url) = (receiver.whip_url(), turn.url());
    let publisher = headless_meanwhile(&[
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        "14",
        "--bframes",
        "0",
        "--url",
        &url,
        "--ice-server",
        &turn_url,
        "--ice-username",
        "obs",
        "--ice-credential",
        "restart-secret",
        "--ice-policy",
        "relay",
    ]);
    let decoded = || {
        receiver.report()["video_frames_decoded"]
            .as_u64()
            .unwrap_or(0)
    };
    let streaming = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        decoded() > 30
    });
    assert!(streaming, "no stream through coturn:\n{}", turn.log());
    std::thread::sleep(Duration::from_secs(1));
    turn.kill();
    std::thread::sleep(Duration::from_secs(2));
    let before = decoded();
    let intact_before = receiver.report()["frames_intact"].as_u64().unwrap_or(0);
    turn.restart();
    let back_to_frames = time_until(Duration::from_secs(8), Duration::from_millis(10), || {
        decoded() > before
    });
    let run = publisher.join().unwrap();
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!(
        "summary {}\nreceiver {r}\ncoturn back → frames decoded again: {back_to_frames:?}",
        run.summary
    );
    print_lines(
        &run.log,
        &["RTCP", "ICE restart", "lost", "again", "connection back"],
    );
    std::fs::write(turn.dir.join("obs.log"), &run.log).unwrap();
    assert!(
        back_to_frames.is_some(),
        "no frame after coturn was back:\n{}\n{}",
        run.log,
        turn.log()
    );
    assert!(run.summary["last_error"].is_null(), "{}", run.summary);
    assert!(
        run.log.contains("ICE restart(s), same session") && r["sessions"] == 1,
        "{r}\n{}",
        run.log
    );
    // Frames sent into the outage are lost (decode errors until the next keyframe are expected); from coturn's
    // return to the end, ~7 s of stream must arrive whole.
    let after = r["frames_intact"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(intact_before);
    assert!(
        after > 150,
        "{after} intact frames after coturn was back: {r}\n{}",
        run.log
    );
    assert!(
        !run.log.contains("restart-secret"),
        "a TURN credential reached the log"
    );
    assert_eq!(run.summary["leaks"], 0);
    rt.block_on(receiver.stop());
}

fn relay_only_start(ice_server: &str, credential: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "--duration",
        "1",
        "--url",
        "http://127.0.0.1:9/whip",
        "--ice-server",
        ice_server,
        "--ice-policy",
        "relay",
    ];
    if let Some(c) = credential {
        args.extend(["--ice-username", "obs", "--ice-credential", c]);
    }
    let s = headless(&args, None).summary;
    println!("{ice_server}: {s}");
    s
}

#[test]
fn wrong_turn_credentials_and_unreachable_turn_servers_fail_clearly() {
    let turn = Turn::start_with(
        "turn-wrong",
        TurnAuth::LongTerm {
            user: "obs",
            password: "right",
        },
        true,
    );
    let s = relay_only_start(&turn.url(), Some("wrong"));
    assert_eq!(s["stop_code"], CONNECT_FAILED, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or("")
            .starts_with("The TURN server gave no relay address"),
        "{s}"
    );
    assert!(
        turn.log().contains("error 401"),
        "coturn did not refuse: {}",
        turn.log()
    );

    // TURN over TCP with nothing listening, and over TLS with a certificate nobody trusts (no SSL_CERT_FILE here):
    // the stop message says what the bridge met.
    let (tls_port, _) = turn.tls.clone().unwrap();
    for (url, met) in [
        (
            "turn:127.0.0.1:9?transport=tcp".to_string(),
            "TURN over TCP to 127.0.0.1:9: Connection refused".to_string(),
        ),
        (
            format!("turns:localhost:{tls_port}"),
            format!("TURN over TLS to localhost:{tls_port}: TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        ),
    ] {
        let s = relay_only_start(&url, Some("right"));
        assert_eq!(s["stop_code"], CONNECT_FAILED, "{s}");
        let error = s["last_error"].as_str().unwrap_or("");
        assert!(
            error.starts_with("The TURN server gave no relay address") && error.contains(&met),
            "{s}"
        );
    }

    // "Relay only" with no TURN server at all is refused at Start.
    let s = relay_only_start("stun:127.0.0.1:9", None);
    assert_eq!(s["started"], false, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("\"Relay only\" needs a TURN server"),
        "{s}"
    );
}

/// `nft` in namespace `ns` with `args`; its standard output.
fn nft(ns: &str, args: &[&str]) -> String {
    checked(
        LinkedHosts::command(ns, "nft").args(args),
        &format!("nft {args:?}"),
    )
}

#[test]
fn behind_a_firewall_that_lets_no_udp_out_the_stream_goes_through_turn_over_tcp_and_tls() {
    // The studio's firewall drops every UDP packet leaving the publisher (loopback aside, where the plugin's TURN
    // bridge meets our WebRTC stack). The publisher is given coturn over UDP and over TCP (then TLS), and is free
    // to use host candidates — nothing says "relay only": it must find the one way out by itself.
    let _alone = receiving();
    let hosts = LinkedHosts::create("noudp");
    let password = "studio-pass-77";
    let turn = Turn::start_at(
        "turn-noudp",
        TurnAuth::LongTerm {
            user: "obs",
            password,
        },
        true,
        Some(&hosts.server),
        SERVER_ADDR,
    );
    nft(&hosts.publisher, &["add", "table", "inet", "studio"]);
    nft(
        &hosts.publisher,
        &[
            "add",
            "chain",
            "inet",
            "studio",
            "out",
            "{ type filter hook output priority 0 ; }",
        ],
    );
    nft(
        &hosts.publisher,
        &[
            "add", "rule", "inet", "studio", "out", "oifname", "!=", "lo", "meta", "l4proto",
            "udp", "counter", "drop",
        ],
    );
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let clip = flash_beep_clip("640x360");
    let (tls_port, ca) = turn.tls.clone().unwrap();
    let udp = turn.url();
    let tcp = format!("turn:{SERVER_ADDR}:{}?transport=tcp", turn.port);
    let tls = format!("turns:{SERVER_ADDR}:{tls_port}");
    for (way_out, over) in [(&tcp, "TCP"), (&tls, "TLS")] {
        let receiver = RemoteReceiver::start(&hosts, &mock_sfu);
        let run = headless_in_env(
            Some(&hosts.publisher),
            &[
                "--media",
                clip.to_str().unwrap(),
                "--duration",
                "5",
                "--bframes",
                "0",
                "--url",
                &receiver.url,
                "--ice-server",
                &udp,
                "--ice-server",
                way_out,
                "--ice-username",
                "obs",
                "--ice-credential",
                password,
            ],
            &[("SSL_CERT_FILE", ca.to_str().unwrap())],
        );
        let r = receiver.report();
        let s = &run.summary;
        let timeline: Vec<&str> = run
            .log
            .lines()
            .filter(|l| l.contains("connect timeline"))
            .collect();
        println!("over {over}: {s}\nreceiver {r}\n{timeline:?}");
        assert_eq!(s["connected"], true, "{}\n{}", run.log, turn.log());
        assert_eq!(s["stop_code"], 0, "{s}");
        assert!(
            run.log
                .contains(&format!("TURN over {over} to {SERVER_ADDR}:")),
            "{}",
            run.log
        );
        let (sent, _) = packets_sent(&run.log);
        let decoded = r["video_frames_decoded"].as_u64().unwrap_or(0);
        assert!(
            sent >= 120 && decoded as f64 >= 0.98 * sent as f64 && r["decode_errors"] == 0,
            "decoded {decoded} of {sent}: {r}"
        );
        assert!(
            !run.log.contains(password),
            "the TURN password reached the log"
        );
    }
    // The firewall did its part (host candidates' checks, TURN over UDP), and coturn relayed over TCP and TLS.
    let counted = nft(
        &hosts.publisher,
        &["list", "chain", "inet", "studio", "out"],
    );
    let dropped: u64 = counted
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    println!("UDP packets the firewall dropped: {dropped}");
    assert!(dropped > 0, "{counted}");
    let coturn = turn.log();
    for tls in [false, true] {
        assert!(
            coturn.lines().any(|l| {
                l.contains("new, realm=<test.local>, username=<obs>, lifetime=600")
                    && l.contains("method=TLS") == tls
            }),
            "no allocation over {} in coturn's log:\n{coturn}",
            if tls { "TLS" } else { "TCP" }
        );
    }
}
