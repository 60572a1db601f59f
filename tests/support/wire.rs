//! A network link of our own between two namespaces: a TUN device in each, and two threads that carry the IP
//! packets across — losing, delaying, jittering, reordering and rate-limiting them as told. This kernel has no
//! netem; this is ours, usable by every peer (our receiver, Janus, GStreamer, Chromium), and reproducible: losses
//! and jitter come from a seeded generator, so the same packet sequence meets the same fate.
//!
//! Needs root (`/dev/net/tun`, `setns`). Every thread stops when the wire is dropped.
use std::collections::BinaryHeap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the wire does to packets in one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Share of packets dropped at random, 0..1.
    pub loss: f64,
    /// Drop only RTP/RTCP (UDP payloads whose first byte is 128–191, RFC 7983): the media, not ICE, DTLS or HTTP.
    pub media_only: bool,
    /// One-way delay, and up to this much more at random per packet.
    pub delay: Duration,
    pub jitter: Duration,
    /// Whether jitter may reorder packets (else a packet never overtakes the one before it).
    pub reorder: bool,
    /// Bottleneck rate in bit/s (None: unlimited) and its queue: packets that would wait longer are dropped.
    pub rate_bps: Option<u64>,
    pub queue: Duration,
    /// Everything is dropped (a cut link).
    pub cut: bool,
}

impl LinkConfig {
    /// A bottleneck of `mbps` with a 100 ms queue, 10 ms each way.
    pub fn bottleneck(mbps: f64) -> LinkConfig {
        LinkConfig {
            rate_bps: Some((mbps * 1e6) as u64),
            queue: Duration::from_millis(100),
            ..LinkConfig::clear()
        }
    }

    /// `loss` (0..1) of the media dropped at random (ICE, DTLS and RTCP pass), 10 ms each way.
    pub fn lossy(loss: f64) -> LinkConfig {
        LinkConfig {
            loss,
            media_only: true,
            ..LinkConfig::clear()
        }
    }

    /// No limit, 10 ms each way.
    pub fn clear() -> LinkConfig {
        LinkConfig {
            delay: Duration::from_millis(10),
            ..Default::default()
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            media_only: false,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: false,
            rate_bps: None,
            queue: Duration::from_millis(50),
            cut: false,
        }
    }
}

/// What one direction did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// Dropped because the bottleneck queue was full.
    pub overflowed: u64,
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    overflowed: AtomicU64,
}

/// The two directions: 0 = first namespace → second ("up", publisher → server), 1 = back.
pub struct Wire {
    configs: Arc<[Mutex<LinkConfig>; 2]>,
    counters: Arc<[Counters; 2]>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

pub const UP: usize = 0;
pub const DOWN: usize = 1;

/// The name every wire's TUN device has in its namespace.
pub const DEVICE: &str = "rtcs-wire";

fn check(r: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// Opens TUN device `device` of namespace `ns` (this machine's own when empty), made beforehand with `ip tuntap
/// add`. The fd stays tied to that device after the thread leaves the namespace; the work is done on a thread of
/// its own so the caller's namespace never changes.
fn open_tun(ns: &str, device: &str) -> std::io::Result<OwnedFd> {
    let (ns, device) = (ns.to_string(), device.to_string());
    std::thread::spawn(move || -> std::io::Result<OwnedFd> {
        // SAFETY: plain syscalls on fds we own; ifreq is zeroed and filled within its bounds.
        unsafe {
            if !ns.is_empty() {
                let netns = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
                check(libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET), "setns")?;
            }
            let fd = check(
                libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK),
                "open /dev/net/tun",
            )?;
            let fd = OwnedFd::from_raw_fd(fd);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (i, b) in device.bytes().take(15).enumerate() {
                ifr.ifr_name[i] = b as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
            check(
                libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &ifr as *const libc::ifreq),
                "TUNSETIFF",
            )?;
            Ok(fd)
        }
    })
    .join()
    .expect("TUN opener thread")
}

/// A small seeded generator (xorshift64*): the same seed gives the same losses and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether an IPv4 packet is RTP or RTCP (UDP, first payload byte 128–191).
fn is_media(p: &[u8]) -> bool {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 17 {
        return false;
    }
    let header = usize::from(p[0] & 0x0f) * 4;
    p.get(header + 8).is_some_and(|b| (128..=191).contains(b))
}

/// A packet on its way, in delivery order (then arrival order).
#[derive(PartialEq, Eq)]
struct InFlight {
    at: Instant,
    n: u64,
    data: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.n).cmp(&(self.at, self.n))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One direction's state: the bottleneck and the packets in flight.
struct Direction {
    rng: Rng,
    link_free_at: Instant,
    last_delivery: Instant,
    in_flight: BinaryHeap<InFlight>,
    n: u64,
}

impl Direction {
    /// Decides a packet's fate at `now`: dropped (counted), or queued for delivery.
    fn admit(&mut self, data: Vec<u8>, now: Instant, cfg: &LinkConfig, c: &Counters) {
        c.packets.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let lossy = !cfg.media_only || is_media(&data);
        if cfg.cut || (lossy && cfg.loss > 0.0 && self.rng.next() < cfg.loss) {
            c.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut departs = now;
        if let Some(rate) = cfg.rate_bps.filter(|r| *r > 0) {
            let start = self.link_free_at.max(now);
            if start.duration_since(now) > cfg.queue {
                c.overflowed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            departs = start + Duration::from_nanos(data.len() as u64 * 8 * 1_000_000_000 / rate);
            self.link_free_at = departs;
        }
        let jitter = cfg.jitter.mul_f64(self.rng.next());
        let mut at = departs + cfg.delay + jitter;
        if !cfg.reorder {
            at = at.max(self.last_delivery);
        }
        self.last_delivery = self.last_delivery.max(at);
        self.n += 1;
        self.in_flight.push(InFlight {
            at,
            n: self.n,
            data,
        });
    }
}

/// Carries packets from `from` to `to` until `stop`.
fn carry(
    from: OwnedFd,
    to: OwnedFd,
    config: Arc<[Mutex<LinkConfig>; 2]>,
    counters: Arc<[Counters; 2]>,
    dir: usize,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let now = Instant::now();
    let mut d = Direction {
        rng: Rng(seed | 1),
        link_free_at: now,
        last_delivery: now,
        in_flight: BinaryHeap::new(),
        n: 0,
    };
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while d.in_flight.peek().is_some_and(|p| p.at <= now) {
            let p = d.in_flight.pop().expect("peeked");
            // SAFETY: writing a buffer we own to our TUN fd.
            unsafe { libc::write(to.as_raw_fd(), p.data.as_ptr().cast(), p.data.len()) };
        }
        let wait_ms = d.in_flight.peek().map_or(20, |p| {
            p.at.saturating_duration_since(now).as_millis().clamp(0, 20) as i32
        });
        let mut pfd = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on our own fd.
        if unsafe { libc::poll(&mut pfd, 1, wait_ms) } <= 0 {
            continue;
        }
        loop {
            // SAFETY: reading into our buffer from our non-blocking TUN fd.
            let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let cfg = config[dir].lock().unwrap().clone();
            d.admit(
                buf[..n as usize].to_vec(),
                Instant::now(),
                &cfg,
                &counters[dir],
            );
        }
    }
}

impl Wire {
    /// Joins TUN devices `a` and `b` (namespace, device name; each addressed and up) and starts carrying.
    pub fn start_between(a: (&str, &str), b: (&str, &str), seed: u64) -> std::io::Result<Wire> {
        let (a_read, b_read) = (open_tun(a.0, a.1)?, open_tun(b.0, b.1)?);
        let (a_write, b_write) = (a_read.try_clone()?, b_read.try_clone()?);
        let configs: Arc<[Mutex<LinkConfig>; 2]> = Arc::new(Default::default());
        let counters: Arc<[Counters; 2]> = Arc::new(Default::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (dir, from, to) in [(UP, a_read, b_write), (DOWN, b_read, a_write)] {
            let (cfg, cnt, stop) = (configs.clone(), counters.clone(), stop.clone());
            let seed = seed.wrapping_add(dir as u64 * 0x9e37_79b9_7f4a_7c15);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("wire-{dir}"))
                    .spawn(move || carry(from, to, cfg, cnt, dir, stop, seed))?,
            );
        }
        Ok(Wire {
            configs,
            counters,
            stop,
            threads,
        })
    }

    /// What direction `dir` ([`UP`] or [`DOWN`]) does from now on.
    pub fn set(&self, dir: usize, config: LinkConfig) {
        *self.configs[dir].lock().unwrap() = config;
    }

    pub fn stats(&self, dir: usize) -> LinkStats {
        let c = &self.counters[dir];
        LinkStats {
            packets: c.packets.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            overflowed: c.overflowed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    // (Benchmarks include this file too, compiled as tests but without a test harness: nothing here is used.)
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn losses_follow_the_seed_and_the_rate_queues_then_drops() {
        let c = Counters::default();
        let t0 = Instant::now();
        let mk = || Direction {
            rng: Rng(7),
            link_free_at: t0,
            last_delivery: t0,
            in_flight: BinaryHeap::new(),
            n: 0,
        };
        let lossy = LinkConfig {
            loss: 0.1,
            ..Default::default()
        };
        let (mut a, mut b) = (mk(), mk());
        for _ in 0..1000 {
            a.admit(vec![0; 100], t0, &lossy, &c);
            b.admit(vec![0; 100], t0, &lossy, &c);
        }
        assert_eq!(a.in_flight.len(), b.in_flight.len(), "same seed, same fate");
        assert!(
            (850..950).contains(&a.in_flight.len()),
            "{}",
            a.in_flight.len()
        );
        // 1 Mbit/s with a 10 ms queue: 1250 bytes fit; 1000-byte packets take 8 ms each.
        let slow = LinkConfig {
            rate_bps: Some(1_000_000),
            queue: Duration::from_millis(10),
            ..Default::default()
        };
        let mut s = mk();
        for _ in 0..4 {
            s.admit(vec![0; 1000], t0, &slow, &c);
        }
        assert_eq!(s.in_flight.len(), 2, "the third would wait 16 ms");
        let last = s.in_flight.iter().map(|p| p.at).max().unwrap();
        assert_eq!(last.duration_since(t0), Duration::from_millis(16));
    }
}
