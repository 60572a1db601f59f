//! Debian's coturn 4.6.1 on 127.0.0.1 or on an address of a network namespace (a free port, loopback peers
//! allowed; UDP and TCP, and TLS with a certificate for `localhost` and its address from a CA of the test's own
//! when asked), with long-term credentials or with coturn's REST API shared secret. Stopped when dropped; its log
//! is kept for reading.
use super::netns::LinkedHosts;
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
    /// How it was started (namespace and arguments), to start it again.
    ns: Option<String>,
    args: Vec<std::ffi::OsString>,
    pub dir: PathBuf,
    pub port: u16,
    /// The address it listens and relays on.
    pub ip: String,
    /// With TLS: its port, and the PEM file of the CA that signed its certificate.
    pub tls: Option<(u16, PathBuf)>,
}

/// A CA of our own and a certificate it signed for `localhost`, 127.0.0.1 and `ip`: (CA PEM, certificate PEM, key
/// PEM).
fn localhost_certificate(ip: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "rtc-studio test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        ip.to_string(),
    ])
    .unwrap()
    .signed_by(&key, &ca)
    .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
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
        Turn::start_with(name, auth, false)
    }

    /// With `tls`, also TURN over TLS on a port of its own.
    pub fn start_with(name: &str, auth: TurnAuth, tls: bool) -> Turn {
        Turn::start_at(name, auth, tls, None, "127.0.0.1")
    }

    /// On `ip`, inside network namespace `ns` (None: this machine's).
    pub fn start_at(name: &str, auth: TurnAuth, tls: bool, ns: Option<&str>, ip: &str) -> Turn {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_udp_port();
        // Relay ports of their own per instance (tests may run side by side).
        let min = 50_000 + (port % 100) * 100;
        let mut cmd = Command::new("turnserver");
        cmd.args(["-n", "--realm=test.local"])
            .arg(format!("--listening-ip={ip}"))
            .arg(format!("--relay-ip={ip}"))
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={min}"))
            .arg(format!("--max-port={}", min + 99))
            .args([
                "--fingerprint",
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
        let tls = tls.then(|| {
            let (ca, cert, key) = localhost_certificate(ip);
            let tls_port = free_udp_port();
            for (file, pem) in [("ca.pem", &ca), ("cert.pem", &cert), ("key.pem", &key)] {
                std::fs::write(dir.join(file), pem).unwrap();
            }
            cmd.arg(format!("--tls-listening-port={tls_port}"))
                .arg(format!("--cert={}", dir.join("cert.pem").display()))
                .arg(format!("--pkey={}", dir.join("key.pem").display()));
            (tls_port, dir.join("ca.pem"))
        });
        if tls.is_none() {
            cmd.arg("--no-tls");
        }
        let ns = ns.map(str::to_string);
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
        let mut turn = Turn {
            child: Self::spawn(ns.as_deref(), &args),
            ns,
            args,
            dir,
            port,
            ip: ip.to_string(),
            tls,
        };
        turn.wait_up(0);
        turn
    }

    fn spawn(ns: Option<&str>, args: &[std::ffi::OsString]) -> Child {
        let mut cmd = match ns {
            Some(ns) => LinkedHosts::command(ns, "turnserver"),
            None => Command::new("turnserver"),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (make deps: coturn)")
    }

    /// How many times coturn's log says it opened its UDP listener.
    fn listeners_opened(&self) -> usize {
        let opened = format!("UDP listener opened on: {}", self.ip);
        self.log().matches(&opened).count()
    }

    /// Waits (at most 10 s) until coturn opened its UDP listener more than `before` times in its log.
    fn wait_up(&mut self, before: usize) {
        let up = Instant::now() + Duration::from_secs(10);
        while Instant::now() < up {
            if self.listeners_opened() > before {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("coturn did not come up:\n{}", self.log());
    }

    /// Kills coturn (SIGKILL: every allocation is gone) and waits until it is.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts coturn again as it was first started; returns once it listens.
    pub fn restart(&mut self) {
        let before = self.listeners_opened();
        self.child = Self::spawn(self.ns.as_deref(), &self.args);
        self.wait_up(before);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("turn:{}:{}?transport=udp", self.ip, self.port)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
