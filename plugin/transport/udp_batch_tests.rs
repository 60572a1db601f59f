use super::*;
use proptest::prelude::*;
use std::net::UdpSocket;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn plain(to: SocketAddr, contents: &[u8]) -> Transmit<'_> {
    Transmit {
        destination: to,
        ecn: None,
        contents,
        segment_size: None,
        src_ip: None,
    }
}

/// `(destination, segment size, datagrams)` of every send, in order; the batch is empty afterwards.
fn drain(b: &mut Batch) -> Vec<(SocketAddr, Option<usize>, Vec<Vec<u8>>)> {
    let mut sends = Vec::new();
    while let Some(s) = b.front() {
        let datagrams = match s.segment_size {
            Some(n) => s.contents.chunks(n).map(<[u8]>::to_vec).collect(),
            None => vec![s.contents.to_vec()],
        };
        assert_eq!(datagrams.len(), s.segments);
        sends.push((s.to, s.segment_size, datagrams));
        b.pop_front();
    }
    sends
}

fn datagram(size: usize, tag: u8) -> Vec<u8> {
    vec![tag; size]
}

#[test]
fn a_frames_packets_to_one_address_go_in_one_send_with_the_short_last_one() {
    let mut b = Batch::new(64);
    for i in 0..8 {
        assert!(b.push(&plain(addr(1), &datagram(1200, i))));
    }
    assert!(b.push(&plain(addr(1), &datagram(300, 8))));
    let sends = drain(&mut b);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].1, Some(1200));
    assert_eq!(sends[0].2.len(), 9);
    assert_eq!(sends[0].2[8], datagram(300, 8));
    assert!(b.is_empty());
}

#[test]
fn runs_end_at_a_shorter_or_larger_datagram_a_new_address_and_the_segment_limit() {
    let mut b = Batch::new(3);
    let pushes: [(u16, usize); 10] = [
        (1, 1000),
        (1, 1000),
        (1, 600), // shorter: the run's last
        (1, 1000),
        (1, 1200), // larger: a run of its own
        (2, 1200), // another address
        (2, 1200),
        (2, 1200), // three: the limit
        (2, 1200),
        (1, 1200),
    ];
    for (i, (port, size)) in pushes.iter().enumerate() {
        assert!(b.push(&plain(addr(*port), &datagram(*size, i as u8))));
    }
    let sends = drain(&mut b);
    let shape: Vec<(u16, Option<usize>, usize)> = sends
        .iter()
        .map(|(to, seg, d)| (to.port(), *seg, d.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (1, Some(1000), 3),
            (1, None, 1),
            (1, None, 1),
            (2, Some(1200), 3),
            (2, None, 1),
            (1, None, 1)
        ]
    );
}

#[test]
fn a_run_stays_under_the_bytes_one_send_may_carry() {
    let mut b = Batch::new(64);
    for i in 0..60 {
        b.push(&plain(addr(1), &datagram(1400, i)));
    }
    let sends = drain(&mut b);
    assert!(sends.len() > 1);
    for (_, seg, d) in &sends {
        assert!(seg.unwrap_or(0) * d.len() <= MAX_RUN_BYTES);
    }
}

#[test]
fn a_full_batch_takes_nothing_more_but_an_empty_one_takes_anything() {
    let mut b = Batch::new(64);
    assert!(b.push(&plain(addr(1), &datagram(MAX_PENDING_BYTES + 1, 0))));
    assert!(!b.push(&plain(addr(1), &datagram(1, 1))));
    b.pop_front();
    let mut n = 0;
    while b.push(&plain(addr(1), &datagram(1200, 0))) {
        n += 1;
    }
    assert_eq!(n, MAX_PENDING_BYTES / 1200);
}

#[test]
fn a_refused_run_is_sent_datagram_by_datagram_and_later_runs_are_single() {
    let mut b = Batch::new(64);
    for i in 0..4 {
        b.push(&plain(addr(1), &datagram(1000, i)));
    }
    b.push(&plain(addr(1), &datagram(10, 4)));
    b.split_front();
    for i in 5..7 {
        b.push(&plain(addr(1), &datagram(1000, i)));
    }
    let sends = drain(&mut b);
    assert_eq!(sends.len(), 7);
    for (i, (_, seg, d)) in sends.iter().enumerate() {
        assert_eq!(*seg, None);
        assert_eq!(d[0][0], i as u8);
    }
}

#[test]
fn ecn_marks_and_source_addresses_are_kept_per_run() {
    let mut b = Batch::new(64);
    let ect = EcnCodepoint::from_bits(2);
    let mut marked = plain(addr(1), &[1; 100]);
    marked.ecn = ect;
    b.push(&plain(addr(1), &[0; 100]));
    b.push(&marked);
    b.push(&marked);
    let first = b.front().unwrap();
    assert_eq!((first.ecn, first.segments), (None, 1));
    b.pop_front();
    let second = b.front().unwrap();
    assert_eq!((second.ecn, second.segments), (ect, 2));
}

proptest! {
    /// Whatever is pushed comes out in the same order, byte for byte, each send to one address and GSO-shaped
    /// (equal segments, the last not longer).
    #[test]
    fn sends_carry_every_datagram_in_order(
        pushes in proptest::collection::vec((1u16..3, 1usize..1500, proptest::option::of(1usize..400)), 1..80),
        limit in 1usize..70,
    ) {
        let mut b = Batch::new(limit);
        let mut expected = Vec::new();
        for (i, (port, size, seg)) in pushes.iter().enumerate() {
            let data = datagram(*size, i as u8);
            let mut t = plain(addr(*port), &data);
            t.segment_size = *seg;
            prop_assert!(b.push(&t));
            match seg {
                Some(s) if *s < data.len() => {
                    expected.extend(data.chunks(*s).map(|c| (*port, c.to_vec())))
                }
                _ => expected.push((*port, data.clone())),
            }
        }
        let mut got = Vec::new();
        for (to, seg, datagrams) in drain(&mut b) {
            prop_assert!(datagrams.len() <= limit.min(MAX_SEGMENTS));
            if let Some(s) = seg {
                let (last, rest) = datagrams.split_last().unwrap();
                prop_assert!(rest.iter().all(|d| d.len() == s) && last.len() <= s);
            }
            got.extend(datagrams.into_iter().map(|d| (to.port(), d)));
        }
        prop_assert_eq!(got, expected);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// On real sockets

fn receiver() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn received(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 65536];
    (0..n)
        .map(|_| {
            let len = s.recv(&mut buf).expect("a datagram within 5 s");
            buf[..len].to_vec()
        })
        .collect()
}

fn batched() -> Arc<BatchedSocket> {
    let std = UdpSocket::bind("127.0.0.1:0").unwrap();
    let inner = TOKIO.wrap_udp_socket(std).unwrap();
    BatchedSocket::new(inner).expect("UDP GSO on this kernel (Linux 4.18 or later)")
}

async fn send(s: &BatchedSocket, to: SocketAddr, data: &[u8]) {
    std::future::poll_fn(|cx| s.poll_send(cx, &plain(to, data)))
        .await
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_burst_leaves_after_the_turn_in_one_send_per_run_and_arrives_whole_and_in_order() {
    let (a, b) = (receiver(), receiver());
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut sent_a: Vec<Vec<u8>> = (0..10).map(|i| datagram(1200, i)).collect();
    sent_a.push(datagram(300, 10));
    let sent_b: Vec<Vec<u8>> = (0..3).map(|i| datagram(500, 20 + i)).collect();
    let s = runtime().block_on(async {
        let s = batched();
        for d in &sent_a {
            send(&s, to_a, d).await;
        }
        for d in &sent_b {
            send(&s, to_b, d).await;
        }
        // Nothing has left yet: the flush runs once this task waits.
        a.set_nonblocking(true).unwrap();
        assert_eq!(
            a.recv(&mut [0; 2000]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.set_nonblocking(false).unwrap();
        while s.counts().datagrams.load(Ordering::Relaxed) < 14 {
            tokio::task::yield_now().await;
        }
        s
    });
    assert_eq!(received(&a, 11), sent_a);
    assert_eq!(received(&b, 3), sent_b);
    assert_eq!(s.counts().sends.load(Ordering::Relaxed), 2);
    assert_eq!(s.counts().failed.load(Ordering::Relaxed), 0);
}

#[test]
fn a_sender_with_more_than_the_batch_holds_waits_for_the_flush_and_then_goes_on() {
    let to = receiver().local_addr().unwrap();
    let n = 2 * MAX_PENDING_BYTES / 1200;
    runtime().block_on(async {
        let s = batched();
        let mut waited = 0;
        for i in 0..n {
            let data = datagram(1200, i as u8);
            let mut first = true;
            std::future::poll_fn(|cx| {
                let r = s.poll_send(cx, &plain(to, &data));
                if r.is_pending() && first {
                    waited += 1;
                }
                first = false;
                r
            })
            .await
            .unwrap();
        }
        assert!(waited > 0, "the batch never filled");
        while s.counts().datagrams.load(Ordering::Relaxed) < n as u64 {
            tokio::task::yield_now().await;
        }
        assert_eq!(s.counts().failed.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn what_waits_when_the_socket_is_dropped_still_leaves() {
    let a = receiver();
    let to = a.local_addr().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let s = batched();
        for i in 0..3 {
            send(&s, to, &datagram(100, i)).await;
        }
        drop(s);
        // The flush gets its turn.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(
        received(&a, 3),
        (0..3).map(|i| datagram(100, i)).collect::<Vec<_>>()
    );
}

/// A socket that says it can send GSO runs but refuses them (as a device without segmentation offload does).
#[derive(Debug, Default)]
struct RefusesRuns {
    sent: Mutex<Vec<Vec<u8>>>,
}

impl AsyncUdpSocket for RefusesRuns {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(addr(9))
    }

    fn poll_send(&self, _: &mut Context<'_>, t: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if t.segment_size.is_some() {
            return Poll::Ready(Err(io::Error::from_raw_os_error(5)));
        }
        self.sent.lock().unwrap().push(t.contents.to_vec());
        Poll::Ready(Ok(t.contents.len()))
    }

    fn poll_recv(
        &self,
        _: &mut Context<'_>,
        _: &mut [io::IoSliceMut<'_>],
        _: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }

    fn max_gso_segments(&self) -> usize {
        64
    }
}

#[test]
fn where_runs_are_refused_every_datagram_still_leaves_alone() {
    let inner = Arc::new(RefusesRuns::default());
    let sent: Vec<Vec<u8>> = (0..12).map(|i| datagram(1000, i)).collect();
    let s = runtime().block_on(async {
        let s = BatchedSocket::new(inner.clone()).unwrap();
        for burst in sent.chunks(6) {
            for d in burst {
                send(&s, addr(1), d).await;
            }
            tokio::task::yield_now().await;
        }
        while s.counts().datagrams.load(Ordering::Relaxed) < 12 {
            tokio::task::yield_now().await;
        }
        s
    });
    assert_eq!(*inner.sent.lock().unwrap(), sent);
    assert_eq!(s.counts().sends.load(Ordering::Relaxed), 12);
    assert_eq!(s.counts().failed.load(Ordering::Relaxed), 0);
}
