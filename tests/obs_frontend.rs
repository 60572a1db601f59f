//! Debian's real OBS 29.0.2 frontend under Xvfb, streaming through our plugin to our receiver:
//! - a profile with OBS's "WHIP" service (`whip_custom`, which Debian's OBS lacks and the plugin provides) streams
//!   with `obs --startstreaming`; the Stop Streaming hotkey ends the stream (WHIP DELETE); OBS exits cleanly;
//! - a streamer who typed the WHIP URL and token into "Custom..." picks Tools → RTC Studio in OBS's window: the
//!   profile's service becomes RTC Studio with that URL and token, and Start Streaming streams through it;
//! - Tools → RTC Studio settings… opens OBS's properties dialog on the plugin's settings: driven by the keyboard,
//!   Cancel changes nothing, OK saves a relay-only TURN set-up that Start Streaming then uses through coturn;
//! - OBS's status bar square, read from screenshots, is green on a clear link and red on a shaped, lossy one.
mod support;

use std::time::Duration;
use support::netns::{LinkedHosts, RemoteReceiver};
use support::obs_frontend::{home_dir, profile_dir, run_obs, FrontendRun, Scenario};
use support::obs_run::{binaries, flash_beep_clip, packets_sent, OBS};
use support::receiver::{assert_av_in_sync, test_runtime, Receiver, ReceiverOptions};
use support::turn::{Turn, TurnAuth};

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
    assert_clean_run(
        &run,
        [
            "[rtc-studio] version",
            "OBS has no WHIP service of its own: Settings → Stream → WHIP now streams with RTC Studio",
            "Starting stream due to command line parameter",
            "[rtc-studio] streaming (connected in",
            "Stopping stream due to hotkey",
            "[rtc-studio] WHIP session ended (DELETE answered 200)",
            "[rtc-studio] unloaded: every stream thread has ended",
            "Number of memory leaks: 0",
        ],
    );
    // OBS 29's frontend chose an Opus encoder for our output by itself.
    assert!(
        log.contains("libopus encoder"),
        "no Opus encoder in OBS's log"
    );

    assert_received_everything(&run, &r);
    rt.block_on(receiver.stop());
}

#[test]
fn the_obs_frontend_streams_into_ant_media_from_a_profile() {
    // A profile whose service is RTC Studio's with Ant Media signalling, the application's page as server, a
    // stream ID and a stream token; `obs --startstreaming`, the Stop Streaming hotkey, a clean exit.
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries(); // refuses a stale plugin
    let clip = flash_beep_clip("640x360");
    let rt = test_runtime();
    let server = rt.block_on(support::ant_media::AntMediaServer::start(
        support::ant_media::Behaviour::Publishes,
    ));
    let service = serde_json::json!({"type": "rtc_studio_service",
        "settings": {"server": server.url.replace("/websocket", ""), "bearer_token": TOKEN,
                     "signalling": "antmedia", "ant_media_stream_id": "studio-a"}});
    let run = run_obs(
        &Scenario::start_and_stop("obs-frontend-ant-media", service, 7),
        &clip,
    );
    let r = rt.block_on(server.receiver.settled_report(Duration::from_secs(3)));
    println!("receiver {r}");
    assert_clean_run(
        &run,
        [
            "Starting stream due to command line parameter",
            "(Ant Media WebSocket signalling)",
            "[rtc-studio] streaming (connected in",
            "Stopping stream due to hotkey",
            "[rtc-studio] Ant Media session ended (stop sent)",
            "Number of memory leaks: 0",
        ],
    );
    {
        let seen = server.seen.lock().unwrap();
        assert_eq!(seen.stream_id.as_deref(), Some("studio-a"), "{seen:?}");
        assert_eq!(seen.token.as_deref(), Some(TOKEN), "{seen:?}");
        assert!(seen.stopped, "{seen:?}");
    }
    assert_received_everything(&run, &r);
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
    assert_av_in_sync(r, 1, "lip sync");
    assert!(r["delete_received"] == true, "{r}");
}

/// OBS's log has every `expected` line, and OBS exited cleanly.
fn assert_clean_run<'a>(run: &FrontendRun, expected: impl IntoIterator<Item = &'a str>) {
    let log = &run.log;
    for expected in expected {
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
}

/// Runs the scenario, in which OBS's window makes RTC Studio the streaming service for `receiver` (with [`TOKEN`])
/// and streams: OBS's log has `expected` and a whole stream, OBS exits cleanly, and the profile's saved service
/// is RTC Studio's with the receiver's URL and the token. Returns the run, the receiver's report and the saved
/// `service.json`.
fn streamed_from_the_window(
    scenario: &Scenario,
    clip: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    receiver: &Receiver,
    expected: &[&str],
) -> (FrontendRun, serde_json::Value, serde_json::Value) {
    let run = run_obs(scenario, clip);
    let r = rt.block_on(receiver.settled_report(Duration::from_secs(3)));
    println!("receiver {r}");
    let always = [
        "added Tools menu entries to stream with RTC Studio and to open its settings",
        "[rtc-studio] streaming (connected in",
        "[rtc-studio] WHIP session ended (DELETE answered 200)",
        "Number of memory leaks: 0",
    ];
    assert_clean_run(&run, always.iter().chain(expected).copied());
    // OBS saved the service to the profile, as Settings → Apply would.
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(profile_dir(scenario.name).join("service.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["type"], "rtc_studio_service", "{saved}");
    assert_eq!(saved["settings"]["server"], receiver.whip_url(), "{saved}");
    assert_eq!(saved["settings"]["bearer_token"], TOKEN, "{saved}");
    assert_received_everything(&run, &r);
    (run, r, saved)
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
                  xdotool key alt+t; sleep 1; xdotool key r; sleep 1; hotkey ctrl+F11; sleep 7; \
                  hotkey ctrl+F12; sleep 2";
    let scenario = Scenario {
        service,
        script: script.into(),
        start_streaming: false,
        name: "obs-frontend-menu",
        netns: None,
        screen: "1280x720x24",
    };
    streamed_from_the_window(
        &scenario,
        &clip,
        &rt,
        &receiver,
        &[
            "Tools → RTC Studio: streaming service is now RTC Studio (was rtmp_custom; server http://127.0.0.1:",
            "bearer token kept)",
            "Stopping stream due to hotkey",
        ],
    );
    rt.block_on(receiver.stop());
}

const SCREEN: (usize, usize) = (1280, 1024);

/// The top-left corner of a 20x20 block of exactly `rgb` in a raw RGB24 screenshot (OBS's status square).
fn find_square(shot: &[u8], rgb: [u8; 3]) -> Option<(usize, usize)> {
    find_square_where(shot, |px| px == rgb)
}

/// The top-left corner of a 20×20 square whose every pixel is `like`.
fn find_square_where(shot: &[u8], like: impl Fn([u8; 3]) -> bool) -> Option<(usize, usize)> {
    let (w, h) = SCREEN;
    let at = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [shot[i], shot[i + 1], shot[i + 2]]
    };
    // Below OBS's preview (whose scene has coloured bars): the status bar is at the window's bottom.
    (500..h - 20)
        .flat_map(|y| (0..w - 20).map(move |x| (x, y)))
        .find(|&(x, y)| {
            like(at(x, y)) && (0..20).all(|dy| (0..20).all(|dx| like(at(x + dx, y + dy))))
        })
}

/// Screenshots taken while streaming: `shots` raw frames, one a second, and a PNG of the last.
fn screenshots_script(shots: u32) -> String {
    let grab = format!(
        "ffmpeg -loglevel error -y -f x11grab -video_size {}x{} -i $DISPLAY -frames:v 1",
        SCREEN.0, SCREEN.1
    );
    format!(
        "sleep 5; for i in $(seq {shots}); do {grab} -f rawvideo -pix_fmt rgb24 shot$i.rgb; sleep 1; done; \
         {grab} status.png; hotkey ctrl+F12; sleep 2"
    )
}

#[test]
fn the_status_bar_square_turns_red_when_the_link_loses_packets() {
    // OBS's own status bar (Debian's OBS 29.0.2 frontend) while streaming through RTC Studio, OBS on one host of
    // ours and the receiver on another (network namespaces joined by veth): green on the clear link, red once the
    // link is shaped to 400 kbit/s (x264 sends 1.5 Mbit/s). The square is OBS's drawing of get_congestion.
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    let mock_sfu = binaries().1.with_file_name("mock_sfu");
    let clip = flash_beep_clip("640x360");
    let hosts = LinkedHosts::create("statusbar");
    let mut square = None;
    for (name, shaped) in [
        ("obs-statusbar-clear", false),
        ("obs-statusbar-shaped", true),
    ] {
        if shaped {
            hosts.shape_publisher_egress("400kbit");
        }
        let receiver = RemoteReceiver::start(&hosts, &mock_sfu);
        let service =
            serde_json::json!({"type": "rtc_studio_service", "settings": {"server": receiver.url}});
        let mut scenario = Scenario::start_and_stop(name, service, 0);
        scenario.script = screenshots_script(3);
        scenario.netns = Some(hosts.publisher.clone());
        scenario.screen = "1280x1024x24";
        let run = run_obs(&scenario, &clip);
        let report = receiver.report();
        assert!(
            run.log.contains("[rtc-studio] streaming (connected in")
                && run.log.contains("Stopping stream due to hotkey")
                && run.log.contains("[rtc-studio] stream ended:"),
            "OBS did not stream and stop:\n{}\n{}",
            run.log,
            run.console
        );
        // A clean exit is the other tests' business. Debian's OBS 29 now and then crashes inside Qt once its
        // shutdown has begun ("All scene data cleared", a posted QWidget event; seen about once in ten runs, with
        // the status bar on screen too); say so with the backtrace run_obs printed, without failing this test.
        if !run.console.contains("obs exit 0") {
            println!(
                "note: OBS did not exit cleanly after the stream ended:\n{}",
                run.console
            );
        }
        let shots: Vec<Vec<u8>> = (1..=3)
            .map(|i| {
                std::fs::read(home_dir(name).join(format!("shot{i}.rgb"))).expect("screenshot")
            })
            .collect();
        if !shaped {
            // Every second: a green square, never a red one.
            for shot in &shots {
                assert!(
                    find_square(shot, [255, 0, 0]).is_none(),
                    "red square on a clear link"
                );
            }
            // Green: OBS mixes in red by the congestion (0..1); a trace of it (a keyframe draining a little over
            // 100 ms on a busy machine: 1/255 of red, seen in CI) is still a clear link's green.
            square = find_square_where(&shots[2], |[r, g, b]| g == 255 && r < 26 && b == 0);
            assert!(
                square.is_some(),
                "no green status square; receiver {report}"
            );
        } else {
            // Same place: red, or OBS's yellow-to-red mix for congestion between 0 and 1, mostly red.
            let (x, y) = square.unwrap();
            let (w, _) = SCREEN;
            let colours: Vec<[u8; 3]> = shots
                .iter()
                .map(|s| {
                    let i = ((y + 10) * w + x + 10) * 3;
                    [s[i], s[i + 1], s[i + 2]]
                })
                .collect();
            assert!(
                colours.iter().any(|c| c[0] >= 128 && c[1] < c[0]),
                "the status square stayed {colours:?} through a lossy link; receiver {report}"
            );
            println!("status square through the shaped link: {colours:?}");
        }
    }
}

/// The TURN password the settings dialog test types (never to appear in OBS's log).
const TURN_PASSWORD: &str = "dialog-turn-pass-7301";

/// The settings dialog (Tools → RTC Studio settings…) driven by the keyboard as a streamer would: it opens on the
/// profile's RTC Studio service (with a stale URL and a mistyped TURN server, which it names); Cancel after typing
/// leaves the profile as it was; then the server, token, a TURN server with its credentials and "Relay only" are
/// typed in, OK saves them to the profile, and Start Streaming goes through coturn, relay-only, to our receiver;
/// opened while streaming, it shows the settings greyed out.
#[test]
fn the_settings_dialog_saves_turn_relay_only_and_the_stream_goes_through_coturn() {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries();
    let clip = flash_beep_clip("640x360");
    let turn = Turn::start(
        "dialog-turn",
        TurnAuth::LongTerm {
            user: "obs",
            password: TURN_PASSWORD,
        },
    );
    let (rt, receiver) = receiver_requiring_token();
    let service = serde_json::json!({"type": "rtc_studio_service",
        "settings": {"server": "http://127.0.0.1:9/whip", "ice_servers": "turn.example.com:3478"}});
    let grab = "ffmpeg -loglevel error -y -f x11grab -video_size 1280x1024 -i $DISPLAY -frames:v 1";
    // Without a window manager, each new window is given the keyboard explicitly. The dialog opens with OK
    // focused: Tab reaches Cancel, then Signalling, then Server; the STUN/TURN box is a multi-line field (Ctrl+Tab
    // leaves it); Return is OK. Escape with changes typed asks OBS's question "Settings Changed" (Save focused,
    // Tab to Discard).
    let open = "xdotool search --sync --onlyvisible --name '^OBS ' windowfocus --sync; sleep 1; \
                xdotool key alt+t; sleep 1; xdotool key e; \
                xdotool search --sync --onlyvisible --name 'RTC Studio settings' windowfocus --sync; sleep 1";
    // Typed at 120 ms a key: at 40 ms, a key was lost now and then on the busy 2-core machine (a TURN URL arrived as
    // "turn127.0.0.1:…", a WHIP URL as "…/wh"; 2 runs in 8 of this test binary, 2026-12-05).
    let typing = |keys: &str| format!("xdotool {keys}; sleep 0.3");
    // Text, each character typed with Shift (a URL's ':' and '?') alone with a second's pause before and after it:
    // in 2 runs of 10 (2026-12-05) a TURN URL arrived as "…:%$$##?…" (Shift held over the port after the colon) or
    // "…:45444transport…" (the '?' lost), and the stream failed on it.
    let typed = |text: &str| {
        let mut parts = vec![String::new()];
        for c in text.chars() {
            if c.is_ascii_uppercase() || "~!@#$%^&*()_+{}|:\"<>?".contains(c) {
                parts.extend([c.to_string(), String::new()]);
            } else {
                parts.last_mut().unwrap().push(c);
            }
        }
        let parts = parts.iter().filter(|p| !p.is_empty());
        parts
            .map(|p| format!("xdotool type --delay 120 '{p}'; sleep 1"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let script = [
        open.to_string(),
        format!("{grab} dialog-opened.png"),
        // Cancel: a change typed, then Escape, and Discard in OBS's question ("Settings Changed", Save focused):
        // the dialog hands back the settings it opened with.
        typing("key Tab Tab Tab"),
        typed("http://discarded.example.com/whip"),
        typing("key Escape"),
        "xdotool search --sync --onlyvisible --name 'Settings Changed' windowfocus --sync; sleep 0.5".to_string(),
        typing("key Tab space"),
        // Closed before it is opened again (else the search below could find the closing one).
        "for i in $(seq 100); do xdotool search --onlyvisible --name 'RTC Studio settings' >/dev/null || break; \
         sleep 0.1; done; sleep 0.5"
            .to_string(),
        // OK: everything a relay-only TURN stream needs. OBS's multi-line STUN/TURN box takes Tab as a character,
        // so the way in is backwards from OK: Defaults, then the Advanced box (metrics, packet log, straight from
        // the encoders, largest payload, connect timeout, send queue), the bandwidth box (share, layers, minimum,
        // adapt), and Relay only — 13 Shift+Tabs (one more stop than there are widgets); then the TURN secret's
        // Show, the secret, the password's Show, the password and the username above it, the STUN/TURN box, and up
        // to the token and the server.
        open.to_string(),
        typing("key shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab \
                shift+Tab shift+Tab shift+Tab shift+Tab"),
        typing("key space"),
        typing("key shift+Tab shift+Tab shift+Tab shift+Tab"),
        typed(TURN_PASSWORD),
        typing("key shift+Tab"),
        typed("obs"),
        typing("key shift+Tab"),
        typing("key ctrl+a"),
        typed(&turn.url()),
        // The Ant Media stream ID, the display name, PIN's Show, PIN, room, the token's Show, the token.
        typing("key shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab shift+Tab"),
        typed(TOKEN),
        typing("key shift+Tab ctrl+a"),
        typed(&receiver.whip_url()),
        format!("{grab} dialog-filled.png"),
        typing("key Return"),
        // While streaming, the dialog shows the settings greyed out (Escape closes it: nothing was changed).
        "sleep 1; hotkey ctrl+F11; sleep 3".to_string(),
        open.to_string(),
        format!("{grab} dialog-streaming.png"),
        typing("key Escape"),
        "sleep 5; hotkey ctrl+F12; sleep 2".to_string(),
    ]
    .join("; ");
    let scenario = Scenario {
        service: service.clone(),
        script,
        start_streaming: false,
        name: "obs-frontend-dialog",
        netns: None,
        screen: "1280x1024x24",
    };
    let saved_line = format!(
        "RTC Studio settings saved as the streaming service: signalling whip, server {}, bearer token set, \
         1 STUN/TURN server(s), TURN password set, TURN secret none, relay only true",
        receiver.whip_url()
    );
    let (run, r, saved) = streamed_from_the_window(
        &scenario,
        &clip,
        &rt,
        &receiver,
        &[
            "RTC Studio settings: dialog opened",
            "RTC Studio settings: nothing changed, nothing saved",
            &saved_line,
            "RTC Studio settings: streaming now, shown read-only",
            "relay only",
        ],
    );
    let log = &run.log;
    assert!(
        !log.contains("discarded.example.com"),
        "a discarded change was saved:\n{log}"
    );
    assert_eq!(log.matches("RTC Studio settings saved").count(), 1, "{log}");
    assert!(
        !log.contains(TURN_PASSWORD),
        "the TURN password leaked into OBS's log"
    );
    let s = &saved["settings"];
    assert_eq!(s["ice_servers"], turn.url(), "{saved}");
    assert_eq!(s["ice_username"], "obs", "{saved}");
    assert_eq!(s["ice_credential"], TURN_PASSWORD, "{saved}");
    assert_eq!(s["ice_relay_only"], true, "{saved}");
    // The stream went through coturn only: the one candidate offered was its relay address.
    assert_eq!(
        r["offer_candidate_types"],
        serde_json::json!(["relay"]),
        "{r}"
    );
    let turn_log = turn.log();
    assert!(
        turn_log.contains("<obs>: incoming packet ALLOCATE processed, success"),
        "coturn relayed nothing:\n{turn_log}"
    );
    rt.block_on(receiver.stop());
}

/// A settings dialog left open (showing a problem) when OBS quits: OBS closes it without asking anything, exits
/// cleanly and frees everything (the dialog's private source included). The problem shown is no setting of the
/// source: were it one, OBS would see changed settings and ask "Settings Changed" at exit, unanswered here.
#[test]
fn obs_quits_cleanly_with_the_settings_dialog_open() {
    let _one_at_a_time = OBS.lock().unwrap_or_else(|e| e.into_inner());
    support::obs_run::binaries();
    let clip = flash_beep_clip("640x360");
    let service = serde_json::json!({"type": "rtc_studio_service",
        "settings": {"server": "http://127.0.0.1:9/whip", "ice_servers": "turn.example.com:3478"}});
    let script = "xdotool search --sync --onlyvisible --name '^OBS ' windowfocus --sync; sleep 1; \
                  xdotool key alt+t; sleep 1; xdotool key e; \
                  xdotool search --sync --onlyvisible --name 'RTC Studio settings' windowfocus --sync; sleep 1";
    let scenario = Scenario {
        service,
        script: script.into(),
        start_streaming: false,
        name: "obs-frontend-dialog-at-exit",
        netns: None,
        screen: "1280x1024x24",
    };
    let run = run_obs(&scenario, &clip);
    assert_clean_run(
        &run,
        [
            "RTC Studio settings: dialog opened",
            "[rtc-studio] unloaded: every stream thread has ended",
            "Number of memory leaks: 0",
        ],
    );
}
