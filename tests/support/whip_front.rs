//! Meetecho's simple-whip-server, the WHIP front for Janus that Debian packages, run from the package's own files:
//! the Debian package conflicts with the machine's Node.js, so its contents are unpacked (`apt-get download`,
//! `dpkg -x`) into the build directory, its npm dependencies installed there, and it is started with a
//! configuration written here — bound to 127.0.0.1 (the packaged server listens on every interface, so the unpacked
//! copy is told the host at start). Stopped when dropped.
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WhipFront {
    child: Child,
    pub base: String,
    dir: PathBuf,
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server's files and npm dependencies, prepared once per build directory.
fn prepared() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("simple-whip-server");
    let app = root.join("app");
    if app.join("node_modules/express").is_dir() && app.join("server.js").is_file() {
        return app;
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&app).unwrap();
    run(
        Command::new("apt-get")
            .args(["download", "simple-whip-server"])
            .current_dir(&root),
        "apt-get download",
    );
    let deb = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("simple-whip-server .deb");
    run(
        Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(root.join("pkg")),
        "dpkg -x",
    );
    let src = root.join("pkg/usr/share/simple-whip-server/src");
    for f in ["server.js", "whip-janus.js"] {
        std::fs::copy(src.join(f), app.join(f)).unwrap();
    }
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"simple-whip-server-under-test","private":true}"#,
    )
    .unwrap();
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .args([
                "express@4",
                "cors",
                "colors@1.4.0",
                "debug",
                "async",
                "websocket",
                "body-parser",
            ])
            .current_dir(&app),
        "npm install (simple-whip-server's dependencies)",
    );
    app
}

impl WhipFront {
    pub fn start(janus_websocket: &str, name: &str) -> WhipFront {
        let app = prepared();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Our configuration next to a per-run copy of the entry point (server.js loads ./config.js).
        std::fs::write(
            dir.join("config.js"),
            format!(
                "module.exports = {{ janus: {{ address: '{janus_websocket}' }}, port: {port}, rest: '/whip', \
                 allowTrickle: true, strictETags: false, iceServers: [] }};\n"
            ),
        )
        .unwrap();
        // The packaged server listens on every interface; this copy listens on 127.0.0.1 only.
        let server = std::fs::read_to_string(app.join("server.js")).unwrap();
        let bound = server.replacen(
            "http.listen(config.port, function",
            "http.listen(config.port, '127.0.0.1', function",
            1,
        );
        assert_ne!(
            server, bound,
            "simple-whip-server's listen call changed: bind it to 127.0.0.1 another way"
        );
        std::fs::write(dir.join("server.js"), bound).unwrap();
        std::fs::copy(app.join("whip-janus.js"), dir.join("whip-janus.js")).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new("node")
            .arg("server.js")
            .current_dir(&dir)
            .env("NODE_PATH", app.join("node_modules"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node");
        let front = WhipFront {
            child,
            base: format!("http://127.0.0.1:{port}/whip"),
            dir,
        };
        let up = Instant::now() + Duration::from_secs(15);
        while Instant::now() < up {
            if front.log().contains("Janus OK") && front.log().contains("WHIP REST API OK") {
                return front;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("simple-whip-server did not come up:\n{}", front.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates a WHIP endpoint publishing into `room`; returns its URL.
    pub fn create_endpoint(&self, id: &str, room: u64, token: &str) -> String {
        let body = json!({"id": id, "room": room, "token": token, "label": "RTC Studio"});
        let out = Command::new("curl")
            .args([
                "-s",
                "-m",
                "5",
                "-w",
                "\n%{http_code}",
                "-H",
                "Content-Type: application/json",
                "-d",
            ])
            .arg(body.to_string())
            .arg(format!("{}/create", self.base))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.ends_with("\n200"),
            "create endpoint answered {text:?}\n{}",
            self.log()
        );
        format!("{}/endpoint/{id}", self.base)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for WhipFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
