//! Debian's coturn 4.6.1 on 127.0.0.1 (a free port, loopback peers allowed), with long-term credentials or with
//! coturn's REST API shared secret. Stopped when dropped; its log is kept for reading.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub enum TurnAuth {
    LongTerm {
        user: &'static str,
        password: &'static str,
    },
    SharedSecret(&'static str),
}

pub struct Turn {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Turn {
    pub fn start(name: &str, auth: TurnAuth) -> Turn {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_udp_port();
        // Relay ports of their own per instance (tests may run side by side).
        let min = 50_000 + (port % 100) * 100;
        let mut cmd = Command::new("turnserver");
        cmd.args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--realm=test.local",
        ])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--min-port={min}"))
        .arg(format!("--max-port={}", min + 99))
        .args([
            "--fingerprint",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--simple-log",
        ])
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--log-file={}", dir.join("turn.log").display()))
        .arg("--verbose");
        match auth {
            TurnAuth::LongTerm { user, password } => {
                cmd.arg("--lt-cred-mech")
                    .arg(format!("--user={user}:{password}"));
            }
            TurnAuth::SharedSecret(secret) => {
                cmd.arg("--use-auth-secret")
                    .arg(format!("--static-auth-secret={secret}"));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (make deps: coturn)");
        let turn = Turn { child, dir, port };
        let up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < up {
            if turn.log().contains("UDP listener opened on: 127.0.0.1") {
                return turn;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("coturn did not come up:\n{}", turn.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
