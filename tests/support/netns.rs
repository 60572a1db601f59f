//! Two network namespaces of our own — a publisher host and a server host — joined by a veth pair (for tests that
//! shape the link with `tc`) or by a wire of our own (`wire.rs`: loss, delay, jitter, rate). Needs root and
//! iproute2; both namespaces are deleted on drop.
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

#[path = "wire.rs"]
pub mod wire;

pub const PUBLISHER_ADDR: &str = "10.233.0.1";
pub const SERVER_ADDR: &str = "10.233.0.2";
pub const PUBLISHER_ADDR6: &str = "fd00:233::1";
pub const SERVER_ADDR6: &str = "fd00:233::2";

pub struct LinkedHosts {
    pub publisher: String,
    /// The server's namespace; empty when the server is this machine itself (see [`Self::wired_to_this_machine`]).
    pub server: String,
    pub publisher_addr: String,
    pub server_addr: String,
    wire: Option<wire::Wire>,
    /// The wire's device in this machine's own namespace, deleted on drop.
    host_device: Option<String>,
}

/// Runs `cmd` (`what`, for messages) to success; its standard output.
pub fn checked(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} (make deps): {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    checked(Command::new("ip").args(args), &format!("ip {args:?}"));
}

impl LinkedHosts {
    /// Two namespaces with their loopback up.
    fn namespaces(tag: &str) -> LinkedHosts {
        let id = std::process::id();
        let hosts = LinkedHosts {
            publisher: format!("rtcs-{tag}-pub-{id}"),
            server: format!("rtcs-{tag}-srv-{id}"),
            publisher_addr: PUBLISHER_ADDR.into(),
            server_addr: SERVER_ADDR.into(),
            wire: None,
            host_device: None,
        };
        for ns in [&hosts.publisher, &hosts.server] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        hosts
    }

    /// Addresses `dev` in each namespace and routes everything through it.
    fn address(&self, publisher_dev: &str, server_dev: &str) {
        for (ns, dev, addr) in [
            (&self.publisher, publisher_dev, PUBLISHER_ADDR),
            (&self.server, server_dev, SERVER_ADDR),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "route", "add", "default", "dev", dev]);
        }
    }

    /// Gives the publisher one more interface (up, with `addr`/24) that leads nowhere the server is, as a studio
    /// machine with several networks has: one end of a veth pair whose other end stays in the same namespace (this
    /// kernel has no dummy devices).
    pub fn add_publisher_interface(&self, name: &str, addr: &str) {
        let ns = self.publisher.as_str();
        let peer = format!("{name}-end");
        ip(&[
            "-n", ns, "link", "add", name, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", name]);
        for dev in [name, peer.as_str()] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// Takes the publisher's default route away: it reaches the server's subnet only (as in studios that route
    /// nothing else), and cannot multicast.
    pub fn without_default_route(&self) {
        ip(&["-n", &self.publisher, "route", "del", "default"]);
    }

    /// The hosts joined by our own wire; its losses and jitter follow `seed`. Clear until told otherwise.
    pub fn create_wired(tag: &str, seed: u64) -> LinkedHosts {
        let mut hosts = LinkedHosts::namespaces(tag);
        for ns in [&hosts.publisher, &hosts.server] {
            add_wire_device(ns);
        }
        hosts.address(wire::DEVICE, wire::DEVICE);
        hosts.wire = Some(
            wire::Wire::start_between(
                (&hosts.publisher, wire::DEVICE),
                (&hosts.server, wire::DEVICE),
                seed,
            )
            .expect("the wire (needs root)"),
        );
        hosts
    }

    /// A publisher host joined by our wire to this machine itself — where servers the test drives directly (Janus,
    /// Chromium) run — at an address of its own on a subnet no other test uses (from the process id). Only this
    /// machine's route to that subnet changes; its device is deleted on drop.
    pub fn wired_to_this_machine(tag: &str, seed: u64) -> LinkedHosts {
        let id = std::process::id();
        let subnet = format!("10.234.{}", id % 250);
        let publisher = format!("rtcs-{tag}-pub-{id}");
        let device = format!("rtcs-w{}", id % 100_000);
        ip(&["netns", "add", &publisher]);
        ip(&["-n", &publisher, "link", "set", "lo", "up"]);
        add_wire_device(&publisher);
        ip(&["tuntap", "add", "dev", &device, "mode", "tun"]);
        let mut hosts = LinkedHosts {
            publisher,
            server: String::new(),
            publisher_addr: format!("{subnet}.1"),
            server_addr: format!("{subnet}.2"),
            wire: None,
            host_device: Some(device.clone()),
        };
        ip(&[
            "-n",
            &hosts.publisher,
            "addr",
            "add",
            &format!("{}/24", hosts.publisher_addr),
            "dev",
            wire::DEVICE,
        ]);
        ip(&["-n", &hosts.publisher, "link", "set", wire::DEVICE, "up"]);
        ip(&[
            "-n",
            &hosts.publisher,
            "route",
            "add",
            "default",
            "dev",
            wire::DEVICE,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.server_addr),
            "dev",
            &device,
        ]);
        ip(&["link", "set", &device, "up"]);
        hosts.wire = Some(
            wire::Wire::start_between((&hosts.publisher, wire::DEVICE), ("", &device), seed)
                .expect("the wire (needs root)"),
        );
        hosts
    }

    /// The wire between the hosts (made by [`Self::create_wired`]).
    pub fn wire(&self) -> &wire::Wire {
        self.wired().expect("hosts made with create_wired")
    }

    /// Our wire between the hosts, when they have one.
    pub fn wired(&self) -> Option<&wire::Wire> {
        self.wire.as_ref()
    }

    pub fn create(tag: &str) -> LinkedHosts {
        let hosts = LinkedHosts::create_veth_pair(tag);
        hosts.address("veth-pub", "veth-srv");
        hosts
    }

    /// Two namespaces joined by a veth pair (`veth-pub`, `veth-srv`), not addressed yet.
    fn create_veth_pair(tag: &str) -> LinkedHosts {
        let hosts = LinkedHosts::namespaces(tag);
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
        hosts
    }

    /// The hosts joined by a veth pair that carries IPv6 only: each end has a ULA address (usable at once: no
    /// duplicate address detection) and the default route; neither has an IPv4 address but loopback's.
    pub fn create_ipv6_only(tag: &str) -> LinkedHosts {
        let mut hosts = LinkedHosts::create_veth_pair(tag);
        hosts.publisher_addr = PUBLISHER_ADDR6.into();
        hosts.server_addr = SERVER_ADDR6.into();
        for (ns, dev, addr) in [
            (&hosts.publisher, "veth-pub", PUBLISHER_ADDR6),
            (&hosts.server, "veth-srv", SERVER_ADDR6),
        ] {
            ip(&[
                "-n",
                ns,
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "-6", "route", "add", "default", "dev", dev]);
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
        // The wire's threads stop before their devices go.
        self.wire.take();
        if let Some(device) = self.host_device.take() {
            let _ = Command::new("ip").args(["link", "del", &device]).status();
        }
        for ns in [&self.publisher, &self.server]
            .into_iter()
            .filter(|ns| !ns.is_empty())
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The TUN device our wire drives, in namespace `ns`.
fn add_wire_device(ns: &str) {
    ip(&[
        "-n",
        ns,
        "tuntap",
        "add",
        "dev",
        wire::DEVICE,
        "mode",
        "tun",
    ]);
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
        RemoteReceiver::spawn(LinkedHosts::command(ns, mock_sfu), args)
    }

    /// In this machine's own namespace, with `mock_sfu`'s `args`.
    pub fn start_here(mock_sfu: &std::path::Path, args: &[&str]) -> RemoteReceiver {
        RemoteReceiver::spawn(Command::new(mock_sfu), args)
    }

    /// Gone at once, as a crashed server is: SIGKILL, no DELETE answered, no goodbye to the publisher.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn(mut command: Command, args: &[&str]) -> RemoteReceiver {
        let mut child = command
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
