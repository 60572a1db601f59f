//! TURN through Debian's real coturn 4.6.1: with "Relay only", the plugin offers nothing but coturn's relay address,
//! so every packet our receiver decodes went through coturn — with long-term credentials and with coturn's REST API
//! (time-limited credentials from a shared secret, here with a receiver that takes trickle ICE, so the relay
//! candidate follows the offer by PATCH). Wrong credentials and unusable TURN URLs fail clearly.
mod support;

use std::time::Duration;
use support::obs_run::{flash_beep_clip, headless, packets_sent, receiving};
use support::receiver::{test_runtime, Receiver, ReceiverOptions};
use support::turn::{Turn, TurnAuth};

const CONNECT_FAILED: i64 = -2;

/// Streams through `turn` relay-only with `ice_args`; checks the receiver got it all and coturn relayed it.
/// `user_in_log`: how coturn's log ends the user name (`<obs>`, or `:obs-studio>` for REST credentials).
/// With `trickle`, the receiver takes trickle ICE: the offer goes at once and the relay candidate follows by PATCH.
fn publish_relayed(turn: &Turn, ice_args: &[&str], user_in_log: &str, secret: &str, trickle: bool) {
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
    let turn_url = turn.url();
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
    args.extend(["--ice-server", &turn_url, "--ice-policy", "relay"]);
    args.extend(ice_args);
    let run = headless(&args, None);
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
        &[
            "--ice-username",
            "obs",
            "--ice-credential",
            "turn-pass-5521",
        ],
        "<obs>",
        "turn-pass-5521",
        false,
    );
}

#[test]
fn media_flows_through_coturn_with_rest_credentials_and_trickle_ice() {
    let turn = Turn::start("turn-rest", TurnAuth::SharedSecret("shared-s3cret-88"));
    // coturn logs the computed username `<expiry>:obs-studio`; the secret itself never travels.
    publish_relayed(
        &turn,
        &[
            "--turn-secret",
            "shared-s3cret-88",
            "--ice-username",
            "obs-studio",
        ],
        ":obs-studio>",
        "shared-s3cret-88",
        true,
    );
}

#[test]
fn wrong_turn_credentials_and_unusable_turn_urls_fail_clearly() {
    let turn = Turn::start(
        "turn-wrong",
        TurnAuth::LongTerm {
            user: "obs",
            password: "right",
        },
    );
    let turn_url = turn.url();
    let run = headless(
        &[
            "--duration",
            "1",
            "--url",
            "http://127.0.0.1:9/whip",
            "--ice-server",
            &turn_url,
            "--ice-policy",
            "relay",
            "--ice-username",
            "obs",
            "--ice-credential",
            "wrong",
        ],
        None,
    );
    let s = &run.summary;
    println!("wrong password: {s}");
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

    // TURN over TCP is not available in our WebRTC stack: said at once, never silently ignored.
    let tcp = format!("turn:127.0.0.1:{}?transport=tcp", turn.port);
    let run = headless(
        &[
            "--duration",
            "1",
            "--url",
            "http://127.0.0.1:9/whip",
            "--ice-server",
            &tcp,
            "--ice-policy",
            "relay",
        ],
        None,
    );
    let s = &run.summary;
    println!("tcp only: {s}");
    assert_eq!(s["started"], false, "{s}");
    assert!(
        s["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("\"Relay only\" needs a TURN server"),
        "{s}"
    );
    assert!(
        run.log
            .contains("skipped: TURN over TCP/TLS is not supported yet"),
        "{}",
        run.log
    );
}
