//! Debian's Janus 1.1.2, started by a test from a configuration written here: the HTTP REST API and the Admin API
//! on 127.0.0.1 (free ports), the VideoRoom plugin only, ICE on one non-loopback address of this machine (Janus never
//! offers loopback candidates). Stopped (and its directory kept for reading) when dropped.
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PLUGINS: &str = "/usr/lib/x86_64-linux-gnu/janus/plugins";
const TRANSPORTS: &str = "/usr/lib/x86_64-linux-gnu/janus/transports";
const ADMIN_SECRET: &str = "rtc-studio-admin";
/// The room every Janus here has from its configuration (an H.264 + Opus VideoRoom that survives restarts).
pub const CONFIGURED_ROOM: u64 = 4242;

pub struct Janus {
    child: Child,
    pub dir: PathBuf,
    pub api: String,
    admin: String,
    /// The address Janus uses for ICE.
    pub ice_address: String,
    /// Janus's WebSocket API (`ws://127.0.0.1:<port>`), when started with it.
    pub websocket: Option<String>,
}

/// An IPv4 address of this machine that is not loopback; a dummy interface is made if there is none.
pub fn non_loopback_address() -> String {
    let list = || {
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show"])
            .output()
            .expect("ip (iproute2)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let ifname = words.nth(1)?;
                let addr = words.nth(1)?.split('/').next()?.to_string();
                (ifname != "lo" && !addr.starts_with("127.")).then_some(addr)
            })
            .next()
    };
    if let Some(a) = list() {
        return a;
    }
    // A machine with loopback only: give it a private address on a dummy interface (needs root, as CI has).
    for args in [
        &["link", "add", "rtcs-janus0", "type", "dummy"][..],
        &["addr", "add", "10.254.77.1/24", "dev", "rtcs-janus0"],
        &["link", "set", "rtcs-janus0", "up"],
    ] {
        let _ = Command::new("ip").args(args).status();
    }
    list().expect(
        "Janus needs a non-loopback IPv4 address and none could be made (ip link add … type dummy)",
    )
}

impl Janus {
    pub fn start(name: &str) -> Janus {
        Self::start_with(name, false)
    }

    /// With the WebSocket API too (on 127.0.0.1), for clients such as Meetecho's simple-whip-server.
    pub fn start_with(name: &str, websockets: bool) -> Janus {
        Self::launch(name, websockets, None)
    }

    /// With its REST API and ICE on `address` (e.g. this machine's end of a test wire), the Admin API on loopback.
    pub fn start_on(name: &str, address: &str) -> Janus {
        Self::launch(name, false, Some(address))
    }

    fn launch(name: &str, websockets: bool, address: Option<&str>) -> Janus {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let empty = dir.join("none");
        std::fs::create_dir_all(&empty).unwrap();
        let (port, admin_port) = (super::free_port(), super::free_port());
        let ice_address = address.map_or_else(non_loopback_address, str::to_string);
        let api_ip = address.unwrap_or("127.0.0.1");
        let others: Vec<String> = std::fs::read_dir(PLUGINS)
            .expect("janus (make deps)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".so") && n != "libjanus_videoroom.so")
            .collect();
        let transports: Vec<String> = std::fs::read_dir(TRANSPORTS)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.ends_with(".so")
                    && n != "libjanus_http.so"
                    && !(websockets && n == "libjanus_websockets.so")
            })
            .collect();
        let write = |file: &str, text: String| std::fs::write(dir.join(file), text).unwrap();
        write(
            "janus.jcfg",
            format!(
                "general: {{\n configs_folder = \"{cfg}\"\n plugins_folder = \"{PLUGINS}\"\n transports_folder = \"{TRANSPORTS}\"\n \
                 events_folder = \"{none}\"\n loggers_folder = \"{none}\"\n debug_level = {level}\n admin_secret = \"{ADMIN_SECRET}\"\n \
                 session_timeout = 60\n server_name = \"{server}\"\n}}\nmedia: {{\n rtp_port_range = \"20000-40000\"\n}}\nnat: {{\n nice_debug = {nice}\n ice_enforce_list = \"{ice_address}\"\n}}\n\
                 plugins: {{\n disable = \"{plugins}\"\n}}\ntransports: {{\n disable = \"{transports}\"\n}}\n",
                cfg = dir.display(),
                server = server_name(&dir),
                level = std::env::var("JANUS_DEBUG_LEVEL").unwrap_or_else(|_| "4".into()),
                nice = std::env::var("JANUS_DEBUG_LEVEL").is_ok(),
                none = empty.display(),
                plugins = others.join(","),
                transports = transports.join(","),
            ),
        );
        write(
            "janus.transport.http.jcfg",
            format!(
                "general: {{\n json = \"compact\"\n base_path = \"/janus\"\n http = true\n port = {port}\n ip = \"{api_ip}\"\n https = false\n}}\n\
                 admin: {{\n admin_base_path = \"/admin\"\n admin_http = true\n admin_port = {admin_port}\n admin_ip = \"127.0.0.1\"\n admin_https = false\n}}\n"
            ),
        );
        // One room from the configuration: it outlives a restart of Janus (rooms made through the API do not).
        write(
            "janus.plugin.videoroom.jcfg",
            format!("general: {{\n}}\nroom-{CONFIGURED_ROOM}: {{\n description = \"configured\"\n publishers = 2\n videocodec = \"h264\"\n audiocodec = \"opus\"\n}}\n"),
        );
        let ws_port = super::free_port();
        if websockets {
            write(
                "janus.transport.websockets.jcfg",
                format!("general: {{\n json = \"compact\"\n ws = true\n ws_port = {ws_port}\n ws_ip = \"127.0.0.1\"\n wss = false\n}}\nadmin: {{\n admin_ws = false\n}}\n"),
            );
        }
        let mut janus = Janus {
            child: Self::spawn(&dir),
            api: format!("http://{api_ip}:{port}/janus"),
            admin: format!("http://127.0.0.1:{admin_port}/admin"),
            dir,
            ice_address,
            websocket: websockets.then(|| format!("ws://127.0.0.1:{ws_port}")),
        };
        janus.wait_up();
        janus
    }

    /// Janus on the configuration in `dir`, its output appended to `janus.log`.
    fn spawn(dir: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("janus.log"))
            .unwrap();
        Command::new("janus")
            .arg("-F")
            .arg(dir)
            .arg("-o")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("janus (make deps)")
    }

    /// Waits (at most 15 s) until this Janus's REST API answers — this one's: its server name is checked, so a Janus
    /// that could not listen on its port is not mistaken for another answering there.
    fn wait_up(&mut self) {
        let up = Instant::now() + Duration::from_secs(15);
        let name = server_name(&self.dir);
        while Instant::now() < up {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Janus exited ({status}) while starting:\n{}", self.log());
            }
            if let Ok(v) = post(&self.api, &json!({"janus": "info", "transaction": "up"})) {
                if v["janus"] == "server_info" {
                    assert_eq!(
                        v["server-name"],
                        name.as_str(),
                        "another Janus answers at {}:\n{}",
                        self.api,
                        self.log()
                    );
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("Janus did not come up in 15 s:\n{}", self.log());
    }

    /// Kills Janus (SIGKILL: no goodbye to anyone) and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts Janus again on the same configuration and ports; returns once its REST API answers.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.dir);
        self.wait_up();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default()
    }

    /// Creates an H.264 + Opus VideoRoom (optionally with a PIN) through the REST API; returns its number.
    pub fn create_room(&self, pin: Option<&str>) -> u64 {
        self.create_room_with(pin, None)
    }

    /// A room with a PIN and a bitrate cap for its publishers (bit/s; Janus tells them by REMB).
    pub fn create_room_with(&self, pin: Option<&str>, bitrate: Option<u64>) -> u64 {
        self.create_room_for(pin, bitrate, "h264")
    }

    /// A room for video in `videocodec` (Janus's name: h264, av1, h265, …).
    pub fn create_room_for(
        &self,
        pin: Option<&str>,
        bitrate: Option<u64>,
        videocodec: &str,
    ) -> u64 {
        let room = 100_000 + u64::from(rand_u16());
        let session = self.call(&self.api, json!({"janus": "create"}))["data"]["id"]
            .as_u64()
            .unwrap();
        let s_url = format!("{}/{session}", self.api);
        let handle = self.call(
            &s_url,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )["data"]["id"]
            .as_u64()
            .unwrap();
        let mut body = json!({"request": "create", "room": room, "description": "rtc-studio test",
            "publishers": 2, "videocodec": videocodec, "audiocodec": "opus", "permanent": false});
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        if let Some(bitrate) = bitrate {
            body["bitrate"] = json!(bitrate);
        }
        let r = self.call(
            &format!("{s_url}/{handle}"),
            json!({"janus": "message", "body": body}),
        );
        assert_eq!(
            r["plugindata"]["data"]["videoroom"], "created",
            "room not created: {r}"
        );
        self.call(&s_url, json!({"janus": "destroy"}));
        room
    }

    fn call(&self, url: &str, mut body: Value) -> Value {
        body["transaction"] = json!(format!("t{}", rand_u16()));
        post(url, &body).unwrap_or_else(|e| panic!("Janus {url}: {e}"))
    }

    fn admin(&self, path: &str, request: &str) -> Value {
        let url = format!("{}{path}", self.admin);
        let v = self.call(
            &url,
            json!({"janus": request, "admin_secret": ADMIN_SECRET}),
        );
        assert_eq!(v["janus"], "success", "admin {request}: {v}");
        v
    }

    /// Janus's own statistics of every PeerConnection it has, from the Admin API (`handle_info`).
    pub fn handles(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for s in self.admin("", "list_sessions")["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let s = s.as_u64().unwrap();
            for h in self.admin(&format!("/{s}"), "list_handles")["handles"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let h = h.as_u64().unwrap();
                all.push(self.admin(&format!("/{s}/{h}"), "handle_info")["info"].clone());
            }
        }
        all
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (t ^ (std::process::id() << 7)) as u16
}

/// A blocking JSON POST with curl (the tests' only HTTP client that needs no runtime).
pub fn post(url: &str, body: &Value) -> Result<Value, String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "-H",
            "Content-Type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(url)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl exit {:?}", out.status.code()));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What Janus's Admin API says it received from its publishers (video) and asked of them.
pub fn janus_publisher_video(janus: &Janus) -> Value {
    for h in janus.handles() {
        let Some(media) = h["webrtc"]["media"].as_object() else {
            continue;
        };
        for m in media.values() {
            if m["type"] == "video" && m["stats"]["in"]["packets"].as_u64().unwrap_or(0) > 0 {
                return m["stats"]["in"].clone();
            }
        }
    }
    Value::Null
}

/// OBS publishing into a Janus room while headless Chromium watches.
pub struct Watch {
    /// The demo clip's size, and the publisher's extra arguments (bitrate, tune, …).
    pub size: &'static str,
    pub args: Vec<String>,
    /// How long the viewer watches, and how long after the publisher reaches Janus it joins.
    pub seconds: u32,
    pub join_after: Duration,
    /// The room's bitrate cap for publishers (Janus sends it as REMB), bit/s.
    pub room_bitrate: Option<u64>,
    /// Simulcast substreams the viewer asks Janus for in turn after watching (e.g. `[2, 1, 0]`), each for a few
    /// seconds.
    pub substreams: Vec<u8>,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            size: "640x360",
            args: Vec::new(),
            seconds: 14,
            join_after: Duration::ZERO,
            room_bitrate: None,
            substreams: Vec::new(),
        }
    }
}

/// OBS publishes into a room of `janus` from the hosts' publisher side while headless Chromium watches; the
/// viewer's `getStats` (video) and the plugin's run.
pub fn watch_through_janus(
    hosts: &super::netns::LinkedHosts,
    janus: &Janus,
    w: &Watch,
) -> (Value, super::obs_run::Run) {
    let (result, run) = watch_page_through_janus(hosts, janus, w);
    (result["video"].clone(), run)
}

/// [`watch_through_janus`] with all the viewer page reported (substreams, snapshots), and what Janus received from
/// the publisher (`janus_in`).
pub fn watch_page_through_janus(
    hosts: &super::netns::LinkedHosts,
    janus: &Janus,
    w: &Watch,
) -> (Value, super::obs_run::Run) {
    // Each substream: up to 4 s for the switch, 2 s of frames, the snapshots.
    let switching = 8 * w.substreams.len() as u64;
    let room = janus.create_room_with(None, w.room_bitrate);
    let clip = super::obs_run::flash_beep_clip(w.size);
    let (api, room_arg, ns) = (janus.api.clone(), room.to_string(), hosts.publisher.clone());
    let publish_for = (w.seconds as u64 + 8 + w.join_after.as_secs() + switching).to_string();
    let (width, height) = w.size.split_once('x').unwrap_or(("640", "360"));
    let mut args: Vec<String> = [
        "--media",
        clip.to_str().unwrap(),
        "--duration",
        &publish_for,
        "--width",
        width,
        "--height",
        height,
        "--url",
        &api,
        "--janus-room",
        &room_arg,
        // Debian's Chromium decodes H.264 Baseline and Main over WebRTC, not High.
        "--profile",
        "main",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(w.args.iter().cloned());
    let publisher = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        super::obs_run::headless_in(Some(&ns), &args, None)
    });
    wait_for_publisher_video(janus);
    std::thread::sleep(w.join_after);
    let page =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer/janus-viewer.html");
    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile-janus-watch");
    let substreams: Vec<String> = w.substreams.iter().map(u8::to_string).collect();
    let query = format!(
        "api={}&room={room}&seconds={}&substreams={}",
        janus.api,
        w.seconds,
        substreams.join(",")
    );
    let limit = Duration::from_secs(u64::from(w.seconds) + 26 + switching);
    let result = super::browser::run_page(&page, &query, limit, &profile);
    let janus_in = janus_publisher_video(janus);
    let run = publisher.join().unwrap();
    let mut result =
        result.unwrap_or_else(|e| panic!("{e}\npublisher: {}\n{}", run.summary, janus.log()));
    println!("Janus in {janus_in}\nviewer video {}", result["video"]);
    super::obs_run::print_network_lines(&run);
    assert_eq!(run.summary["connected"], true, "{}", run.log);
    assert!(
        result.get("error").is_none(),
        "the page failed: {}",
        result["error"]
    );
    result["janus_in"] = janus_in;
    (result, run)
}

/// Waits (at most 60 s: the publisher may wait its turn behind another test's libobs run, see
/// `obs_run::OBS`) until Janus has video from a publisher.
pub fn wait_for_publisher_video(janus: &Janus) {
    let sending = (0..240).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        janus_publisher_video(janus)["packets"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    assert!(
        sending,
        "the publisher never reached Janus:\n{}",
        janus.log()
    );
}

/// The name a test's Janus gives itself (`server_name`), from its directory: told apart from any other Janus.
fn server_name(dir: &std::path::Path) -> String {
    format!(
        "rtc-studio-test-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("janus")
    )
}
