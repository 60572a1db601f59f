//! Two network namespaces of our own joined by a veth pair — a publisher host and a server host — for tests that
//! shape the link between them with `tc`. Needs root and iproute2; both namespaces are deleted on drop.
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

pub const PUBLISHER_ADDR: &str = "10.233.0.1";
pub const SERVER_ADDR: &str = "10.233.0.2";

pub struct LinkedHosts {
    pub publisher: String,
    pub server: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2: make deps)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl LinkedHosts {
    pub fn create(tag: &str) -> LinkedHosts {
        let id = std::process::id();
        let hosts = LinkedHosts {
            publisher: format!("rtcs-{tag}-pub-{id}"),
            server: format!("rtcs-{tag}-srv-{id}"),
        };
        for ns in [&hosts.publisher, &hosts.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            "veth-pub",
            "netns",
            &hosts.publisher,
            "type",
            "veth",
            "peer",
            "name",
            "veth-srv",
            "netns",
            &hosts.server,
        ]);
        for (ns, dev, addr) in [
            (&hosts.publisher, "veth-pub", PUBLISHER_ADDR),
            (&hosts.server, "veth-srv", SERVER_ADDR),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            // webrtc-rs joins the mDNS multicast group, which needs a route.
            ip(&["-n", ns, "route", "add", "default", "dev", dev]);
        }
        hosts
    }

    /// Limits what the publisher sends to the server to `rate` (tc tbf, e.g. "400kbit"); the excess is dropped
    /// after 50 ms of queueing. The server's replies (RTCP, HTTP) pass unshaped.
    pub fn shape_publisher_egress(&self, rate: &str) {
        let ok = qdisc(
            &self.publisher,
            &[
                "replace", "dev", "veth-pub", "root", "tbf", "rate", rate, "burst", "16kb",
                "latency", "50ms",
            ],
        );
        assert!(ok, "tc could not shape the link");
    }

    /// Drops everything on the link both ways, as a dead uplink would: tc's `blackhole` qdisc on both ends, or
    /// (on kernels without it) a `pfifo` that holds nothing. (netem is not on every kernel.)
    pub fn cut_link(&self) {
        for (ns, dev) in self.link_ends() {
            let cut = qdisc(ns, &["replace", "dev", dev, "root", "blackhole"])
                || qdisc(ns, &["replace", "dev", dev, "root", "pfifo", "limit", "0"]);
            assert!(cut, "tc could not cut the link in {ns}");
        }
    }

    /// Removes whatever shaping or cut the link had.
    pub fn restore_link(&self) {
        for (ns, dev) in self.link_ends() {
            qdisc(ns, &["del", "dev", dev, "root"]);
        }
    }

    fn link_ends(&self) -> [(&str, &str); 2] {
        [(&self.publisher, "veth-pub"), (&self.server, "veth-srv")]
    }

    /// `program` run inside namespace `ns`.
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

/// `tc qdisc ARGS` inside namespace `ns`; whether it succeeded.
fn qdisc(ns: &str, args: &[&str]) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "tc", "qdisc"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for LinkedHosts {
    fn drop(&mut self) {
        for ns in [&self.publisher, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Our receiver (`mock_sfu`) inside a network namespace; `report` waits for its JSON line.
pub struct RemoteReceiver {
    child: Child,
    pub url: String,
}

impl RemoteReceiver {
    /// On the server host, HTTP and ICE on its veth address.
    pub fn start(hosts: &LinkedHosts, mock_sfu: &std::path::Path) -> RemoteReceiver {
        RemoteReceiver::start_with(hosts, mock_sfu, &[])
    }

    /// The same with more of `mock_sfu`'s options (`--trickle`, …).
    pub fn start_with(
        hosts: &LinkedHosts,
        mock_sfu: &std::path::Path,
        extra: &[&str],
    ) -> RemoteReceiver {
        let addr = format!("{SERVER_ADDR}:0");
        let mut args = vec!["--http", &addr, "--udp", &addr, "--timeout", "40"];
        args.extend_from_slice(extra);
        RemoteReceiver::start_in(&hosts.server, mock_sfu, &args)
    }

    /// In namespace `ns` with `mock_sfu`'s `args`.
    pub fn start_in(ns: &str, mock_sfu: &std::path::Path, args: &[&str]) -> RemoteReceiver {
        let mut child = LinkedHosts::command(ns, mock_sfu)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("mock_sfu");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("whip-url ")
            .unwrap_or_else(|| panic!("mock_sfu did not start: {line:?}"))
            .to_string();
        RemoteReceiver { child, url }
    }

    pub fn report(mut self) -> serde_json::Value {
        let mut rest = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut rest);
        let _ = self.child.wait();
        rest.lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}
