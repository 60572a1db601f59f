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

/// Streams `media` to `whip_url` through the real frontend for `seconds`, then presses Stop Streaming and exits.
pub fn stream_with_obs(whip_url: &str, media: &Path, seconds: u32) -> FrontendRun {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("obs-frontend-home");
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
         OBSBasic.StopStreaming={\"bindings\":[{\"control\":true,\"key\":\"OBS_KEY_F12\"}]}\n",
    );
    write(
        &profile.join("streamEncoder.json"),
        r#"{"rate_control":"CBR","bitrate":1500,"keyint_sec":1,"preset":"veryfast","x264opts":"bframes=0"}"#,
    );
    write(
        &profile.join("service.json"),
        &serde_json::json!({"type": "rtc_studio_service", "settings": {"server": whip_url}})
            .to_string(),
    );
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

    let script = format!(
        "obs --startstreaming --minimize-to-tray --profile P --collection C --multi & \
         sleep {seconds}; xdotool key ctrl+F12; sleep 2; kill -INT $!; wait $!; echo \"obs exit $?\""
    );
    let out = Command::new("timeout")
        .args([
            "120",
            "xvfb-run",
            "-a",
            "-s",
            "-screen 0 1280x720x24",
            "sh",
            "-c",
            &script,
        ])
        .env("HOME", &home)
        .env("OBS_PLUGINS_PATH", &bin)
        .env("OBS_PLUGINS_DATA_PATH", &data)
        .output()
        .expect("xvfb-run (make deps)");
    let console =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_dir(cfg.join("logs"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .unwrap_or_default();
    FrontendRun { log, console }
}
