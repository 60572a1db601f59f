//! Running Debian's real `obs` frontend headless with a profile written here: our plugin from the build directory
//! (OBS_PLUGINS_PATH), the RTC Studio service pointing at a WHIP URL, Advanced output with x264, a looping media
//! source, obs-websocket off, and a Stop Streaming hotkey (Ctrl+F12) that the test presses with xdotool, so OBS
//! stops the stream through its own code path before it is asked to exit.
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct FrontendRun {
    /// OBS's own log file (the one it writes under ~/.config/obs-studio/logs).
    pub log: String,
    /// What the wrapper printed, ending with `obs exit N`.
    pub console: String,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// How one run of `obs` goes: the profile's streaming service, and what happens once OBS is up.
pub struct Scenario {
    /// `service.json` of the profile: `{"type": ..., "settings": {...}}`.
    pub service: serde_json::Value,
    /// Shell commands run beside OBS (under the same display) before it is asked to exit; `$OBS_PID` is OBS, and
    /// `hotkey <keys>` presses an OBS hotkey.
    pub script: String,
    /// Start streaming from the command line (`--startstreaming`) (the window stays up), or show the
    /// window and leave streaming to the script.
    pub start_streaming: bool,
    /// A name for the run's home directory.
    pub name: &'static str,
    /// Run OBS inside this network namespace (see `support::netns`).
    pub netns: Option<String>,
    /// Xvfb's screen (taller than 720 shows OBS's status bar).
    pub screen: &'static str,
}

impl Scenario {
    /// `obs --startstreaming` with `service`; after `seconds`, the Stop Streaming hotkey. OBS's window stays up:
    /// with `--minimize-to-tray` under Xvfb (no tray), Debian's OBS 29 sometimes crashed at exit inside Qt
    /// (QWidget::event on a posted event, after streaming had ended — backtrace kept by this support code).
    pub fn start_and_stop(
        name: &'static str,
        service: serde_json::Value,
        seconds: u32,
    ) -> Scenario {
        Scenario {
            service,
            script: format!("sleep {seconds}; hotkey ctrl+F12; sleep 2"),
            start_streaming: true,
            name,
            netns: None,
            screen: "1280x720x24",
        }
    }
}

/// The home directory of a run (OBS's config, logs, and files its script writes there).
pub fn home_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Where `obs` keeps the profile `P` of a run.
pub fn profile_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(name)
        .join(".config/obs-studio/basic/profiles/P")
}

/// Runs the real frontend with the scenario's profile, a looping `media` scene, and hotkeys for Start Streaming
/// (Ctrl+F11) and Stop Streaming (Ctrl+F12); then asks OBS to exit (File → Exit) and waits for it.
pub fn run_obs(scenario: &Scenario, media: &Path) -> FrontendRun {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(scenario.name);
    let _ = std::fs::remove_dir_all(&home);
    let cfg = home.join(".config/obs-studio");
    let build = super::obs_run::build_dir();
    // The plugin as OBS finds it: <bin dir>/rtc-studio.so and <data dir>/rtc-studio/.
    let (bin, data) = (home.join("plugins/bin"), home.join("plugins/data"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::os::unix::fs::symlink(build.join("librtc_studio.so"), bin.join("rtc-studio.so")).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
        data.join("rtc-studio"),
    )
    .unwrap();

    write(
        &cfg.join("global.ini"),
        "[General]\nFirstRun=true\nLastVersion=486539266\n\n[Basic]\nProfile=P\nProfileDir=P\nSceneCollection=C\n\
         SceneCollectionFile=C\n\n[OBSWebSocket]\nServerEnabled=false\nFirstLoad=false\n\n[BasicWindow]\n\
         ConfirmOnExit=false\nWarnBeforeStartingStream=false\nWarnBeforeStoppingStream=false\n",
    );
    let profile = cfg.join("basic/profiles/P");
    write(
        &profile.join("basic.ini"),
        "[General]\nName=P\n\n[Output]\nMode=Advanced\n\n[AdvOut]\nEncoder=obs_x264\nTrackIndex=1\n\n[Video]\n\
         BaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\nFPSType=0\nFPSCommon=30\n\n[Audio]\nSampleRate=48000\n\
         ChannelSetup=Stereo\n\n[Hotkeys]\n\
         OBSBasic.StartStreaming={\"bindings\":[{\"control\":true,\"key\":\"OBS_KEY_F11\"}]}\n\
         OBSBasic.StopStreaming={\"bindings\":[{\"control\":true,\"key\":\"OBS_KEY_F12\"}]}\n",
    );
    write(
        &profile.join("streamEncoder.json"),
        r#"{"rate_control":"CBR","bitrate":1500,"keyint_sec":1,"preset":"veryfast","x264opts":"bframes=0"}"#,
    );
    write(&profile.join("service.json"), &scenario.service.to_string());
    let scenes = serde_json::json!({
        "current_scene": "Scene", "current_program_scene": "Scene", "name": "C",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {"id": "scene", "versioned_id": "scene", "name": "Scene",
             "settings": {"id_counter": 1, "items": [{"name": "Media", "id": 1, "visible": true}]}},
            {"id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Media",
             "settings": {"local_file": media, "is_local_file": true, "looping": true}}
        ]
    });
    write(&cfg.join("basic/scenes/C.json"), &scenes.to_string());

    let start = if scenario.start_streaming {
        "--startstreaming"
    } else {
        ""
    };
    // A crash leaves a core file in OBS's working directory (the run's home); its backtrace goes into the console,
    // as do the threads of an OBS that has not exited 30 s after it was asked to (then killed).
    // OBS is asked to exit through its File menu (File → Exit), in its event loop. OBS 29's SIGINT handler closes
    // the main window inside the signal handler: when the signal landed while the main thread was writing to the X
    // server, closing waited for the display's lock, which the graphics thread held while it waited for the X
    // connection's lock the interrupted write held — OBS hung at exit now and then (seen in the Ant Media test; no
    // plugin thread involved). Three tries (Escape first closes a menu a lost key left open); SIGINT remains the fallback.
    // `hotkey` holds a key combination for 200 ms: OBS on X11 polls the keyboard's state every 25 ms, and a press
    // as short as `xdotool key` makes was missed now and then (Start Streaming never happened, 1 run in 12).
    // `setxkbmap us` gives the X server a keyboard layout: without one, xdotool's typing is known to come out with
    // wrong characters now and then (xdotool's issues #414, #97), here a URL's shifted ones.
    let script = format!(
        "hotkey() {{ xdotool keydown \"$1\"; sleep 0.2; xdotool keyup \"$1\"; }}; \
         setxkbmap us; ulimit -c unlimited; obs {start} --profile P --collection C --multi & OBS_PID=$!; {}; \
         for attempt in 1 2 3; do kill -0 $OBS_PID 2>/dev/null || break; \
           xdotool search --onlyvisible --name '^OBS ' windowfocus --sync; sleep 0.5; \
           xdotool key Escape; xdotool key alt+f; sleep 0.5; xdotool key x; \
           for i in $(seq 40); do kill -0 $OBS_PID 2>/dev/null || break; sleep 0.1; done; done; \
         if kill -0 $OBS_PID 2>/dev/null; then echo \"OBS did not exit from its menu; SIGINT\"; kill -INT $OBS_PID; fi; \
         for i in $(seq 300); do kill -0 $OBS_PID 2>/dev/null || break; sleep 0.1; done; \
         if kill -0 $OBS_PID 2>/dev/null; then echo \"OBS did not exit within 30 s; its threads:\"; \
           gdb -p $OBS_PID -batch -ex 'thread apply all bt 25' 2>/dev/null; kill -9 $OBS_PID; fi; \
         wait $OBS_PID; echo \"obs exit $?\"",
        scenario.script
    );
    let mut cmd = match &scenario.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "timeout"]);
            c
        }
        None => Command::new("timeout"),
    };
    let screen = format!("-screen 0 {}", scenario.screen);
    let out = cmd
        .args(["120", "xvfb-run", "-a", "-s", &screen, "sh", "-c", &script])
        .current_dir(&home)
        .env("HOME", &home)
        .env("OBS_PLUGINS_PATH", &bin)
        .env("OBS_PLUGINS_DATA_PATH", &data)
        .output()
        .expect("xvfb-run (make deps)");
    let mut console =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if let Some(core) = std::fs::read_dir(&home)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
    {
        let bt = Command::new("gdb")
            .args(["-batch", "-ex", "thread apply all bt 20", "/usr/bin/obs"])
            .arg(&core)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("(no gdb: {e})"));
        console += &format!("\nOBS crashed; backtrace from {}:\n{bt}", core.display());
    }
    let log = std::fs::read_dir(cfg.join("logs"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .unwrap_or_default();
    FrontendRun { log, console }
}
