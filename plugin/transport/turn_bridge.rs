//! TURN over TCP and TLS for a WebRTC stack that speaks TURN over UDP only (webrtc-rs 0.21).
//!
//! A bridge listens on a loopback UDP port and stands in for one TURN server: webrtc-rs is given
//! `turn:127.0.0.1:<port>?transport=udp` with the real credentials. Each UDP peer (one per local ICE socket) gets
//! its own TCP (or TLS) connection to the real server; its datagrams go down the stream (ChannelData padded, RFC
//! 8656 §11.5) and the stream's messages come back as datagrams. STUN authentication covers the messages, not the
//! transport, so the TURN server sees an ordinary TURN-over-TCP/TLS client and relays over UDP as usual.
use super::Task;
use crate::session::Note;
use crate::signal::turn_stream::{self, Next};
use crate::signal::whip::IceServer;
use crate::signal::Failure;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Connecting to the TURN server (TCP and TLS handshakes) may take at most this long.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// Datagrams waiting for a connection that is still being made, per peer.
const QUEUED_DATAGRAMS: usize = 64;
/// Local ICE sockets a bridge serves (webrtc-rs uses one per local address).
const MAX_PEERS: usize = 8;
/// The largest stream message (a STUN or ChannelData header says at most 65535 bytes of body).
const MAX_MESSAGE: usize = 65_535 + 20;

/// Where the real server is and how to reach it.
#[derive(Clone, Debug)]
pub struct StreamTurnServer {
    pub host: String,
    pub port: u16,
    /// TLS (`turns:`), verified against the system's trust store for `host`.
    pub tls: bool,
}

/// A running bridge; dropping it closes its connections (the TURN server then frees the allocations).
pub struct TurnBridge {
    pub local: SocketAddr,
    pub server: StreamTurnServer,
    /// The last connection failure, for the streamer's log.
    pub failure: Arc<Mutex<Option<String>>>,
    _task: Task,
}

impl TurnBridge {
    pub async fn start(server: StreamTurnServer) -> std::io::Result<TurnBridge> {
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let local = udp.local_addr()?;
        let failure = Arc::new(Mutex::new(None));
        let task = Task::spawn(serve(udp, server.clone(), failure.clone()));
        Ok(TurnBridge {
            local,
            server,
            failure,
            _task: task,
        })
    }

    /// The URL webrtc-rs is given instead of the real server's.
    pub fn udp_url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }
}

async fn serve(udp: Arc<UdpSocket>, server: StreamTurnServer, failure: Arc<Mutex<Option<String>>>) {
    let mut peers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    // Dropped with this task (the bridge), which aborts every connection.
    let mut connections = JoinSet::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            return;
        };
        if !from.ip().is_loopback() {
            continue;
        }
        peers.retain(|_, tx| !tx.is_closed());
        if !peers.contains_key(&from) {
            if peers.len() >= MAX_PEERS {
                continue;
            }
            let (tx, rx) = mpsc::channel(QUEUED_DATAGRAMS);
            connections.spawn(connection(
                udp.clone(),
                from,
                rx,
                server.clone(),
                failure.clone(),
            ));
            peers.insert(from, tx);
        }
        // A full queue (the server not reachable yet) drops the datagram: STUN retransmits.
        let _ = peers[&from].try_send(buf[..n].to_vec());
        while connections.try_join_next().is_some() {}
    }
}

async fn connection(
    udp: Arc<UdpSocket>,
    peer: SocketAddr,
    rx: mpsc::Receiver<Vec<u8>>,
    server: StreamTurnServer,
    failure: Arc<Mutex<Option<String>>>,
) {
    let what = format!(
        "TURN over {} to {}:{}",
        if server.tls { "TLS" } else { "TCP" },
        server.host,
        server.port
    );
    let tcp = match tokio::time::timeout(
        CONNECT_LIMIT,
        TcpStream::connect((server.host.as_str(), server.port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return note(&failure, format!("{what}: {e}")),
        Err(_) => return note(&failure, format!("{what}: no connection within 5 s")),
    };
    let _ = tcp.set_nodelay(true);
    if !server.tls {
        return relay(tcp, udp, peer, rx).await;
    }
    let tls = match crate::transport::http::tls_config() {
        Ok(c) => tokio_rustls::TlsConnector::from(Arc::new(c)),
        Err(e) => return note(&failure, format!("{what}: TLS set-up failed: {e}")),
    };
    let Ok(name) = rustls::pki_types::ServerName::try_from(server.host.clone()) else {
        return note(&failure, format!("{what}: not a valid TLS server name"));
    };
    match tokio::time::timeout(CONNECT_LIMIT, tls.connect(name, tcp)).await {
        Ok(Ok(stream)) => relay(stream, udp, peer, rx).await,
        Ok(Err(e)) => note(&failure, format!("{what}: TLS handshake failed: {e}")),
        Err(_) => note(&failure, format!("{what}: no TLS handshake within 5 s")),
    }
}

fn note(failure: &Mutex<Option<String>>, text: String) {
    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
}

/// Datagrams from `peer` down the stream; messages from the stream back to `peer`. Ends when either side does.
async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    udp: Arc<UdpSocket>,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let down = async {
        while let Some(mut datagram) = rx.recv().await {
            datagram.resize(
                datagram.len() + turn_stream::stream_padding(datagram.len()),
                0,
            );
            if writer.write_all(&datagram).await.is_err() {
                return;
            }
        }
    };
    let up = async {
        let mut buf: Vec<u8> = Vec::with_capacity(2 * MAX_MESSAGE);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            loop {
                match turn_stream::next_message(&buf) {
                    Next::Message { len, consumed } => {
                        let _ = udp.send_to(&buf[..len], peer).await;
                        buf.drain(..consumed);
                    }
                    Next::NeedMore => break,
                    Next::Invalid => return,
                }
            }
        }
    };
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}

/// The bridges of one session, by the URL they stand in for: made once, kept as long as the session.
#[derive(Default)]
pub struct TurnBridges {
    bridges: Vec<(String, TurnBridge)>,
}

impl TurnBridges {
    /// `servers` with a loopback bridge in place of every TURN-over-TCP/TLS URL, which our WebRTC stack would
    /// skip (it relays over UDP only). Bridges made for the first time are noted.
    pub async fn bridged(
        &mut self,
        mut servers: Vec<IceServer>,
        notes: &mut Vec<Note>,
    ) -> Vec<IceServer> {
        for server in &mut servers {
            for url in &mut server.urls {
                let Some(t) = crate::signal::ice::stream_turn_url(url) else {
                    continue;
                };
                if let Some((_, b)) = self.bridges.iter().find(|(u, _)| u == url) {
                    *url = b.udp_url();
                    continue;
                }
                let kind = if t.tls { "TLS" } else { "TCP" };
                let target = StreamTurnServer {
                    host: t.host,
                    port: t.port,
                    tls: t.tls,
                };
                match TurnBridge::start(target).await {
                    Ok(bridge) => {
                        notes.push(Note::info(format!(
                            "TURN over {kind} to {}:{} (bridged for WebRTC at {})",
                            bridge.server.host, bridge.server.port, bridge.local
                        )));
                        let original = std::mem::replace(url, bridge.udp_url());
                        self.bridges.push((original, bridge));
                    }
                    Err(e) => notes.push(Note::warn(format!("TURN over {kind} unavailable: {e}"))),
                }
            }
        }
        servers
    }

    /// `f` with what the bridges met on their way, if anything (a refused connection, a bad certificate).
    pub fn explain(&self, f: Failure) -> Failure {
        let met: Vec<String> = self
            .bridges
            .iter()
            .filter_map(|(_, b)| b.failure.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        if met.is_empty() {
            f
        } else {
            Failure::new(f.code, format!("{} ({})", f.message, met.join("; ")))
        }
    }
}
