//! A server that speaks Ant Media Server Community Edition's WebSocket signalling (as its `WebSocketConstants` and
//! its JavaScript client define it) in front of our receiver: `publish` → `start`; the offer in
//! `takeConfiguration` → the answer without candidates, then each of them as `takeCandidate` (as Ant Media sends
//! them) and `publish_started`; the publisher's `takeCandidate`s added; `ping` → `pong`; `stop` ends the session.
//! Or one of the ways it refuses or breaks ([`Behaviour`]).
use super::receiver::{Receiver, ReceiverOptions};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// As Ant Media does when all is well.
    Publishes,
    /// An `error` with this definition in answer to `publish`.
    Refuses(&'static str),
    /// Nothing in answer to `publish`.
    Silent,
    /// The socket closed after `publish`.
    Hangs,
    /// Not JSON in answer to `publish`.
    Garbles,
    /// The WebSocket upgrade answered 404.
    NoApplication,
    /// Publishes, then ends the first stream (`publish_finished`) this long after its answer, as Ant Media does
    /// when it is told to stop a broadcast; later streams go on.
    FinishesFirstAfter(std::time::Duration),
}

/// What the server saw of its publishers.
#[derive(Default, Debug)]
pub struct Seen {
    pub commands: Vec<String>,
    pub stream_id: Option<String>,
    pub token: Option<String>,
    pub client_candidates: usize,
    pub pings: usize,
    pub stopped: bool,
    /// Streams the server ended itself.
    pub finished_by_server: usize,
}

pub struct AntMediaServer {
    pub url: String,
    pub receiver: Arc<Receiver>,
    pub seen: Arc<Mutex<Seen>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for AntMediaServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl AntMediaServer {
    /// Listens on loopback (inside a tokio runtime); its application is `LiveApp`.
    pub async fn start(behaviour: Behaviour) -> AntMediaServer {
        let receiver = Arc::new(Receiver::start(ReceiverOptions::default()).await.unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/LiveApp/websocket", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let (r, s) = (receiver.clone(), seen.clone());
        let accept = tokio::spawn(async move {
            let mut first = true;
            while let Ok((conn, _)) = listener.accept().await {
                // Only the first connection's stream is ended by FinishesFirstAfter.
                let b = match (&behaviour, first) {
                    (Behaviour::FinishesFirstAfter(_), false) => Behaviour::Publishes,
                    (b, _) => b.clone(),
                };
                first = false;
                tokio::spawn(serve(conn, b, r.clone(), s.clone()));
            }
        });
        AntMediaServer {
            url,
            receiver,
            seen,
            accept,
        }
    }
}

/// A server's frame (unmasked) of text.
fn text_frame(text: &str) -> Vec<u8> {
    use rtc_studio::signal::websocket::{frame, opcode};
    frame(true, opcode::TEXT, text.as_bytes(), None)
}

/// The first whole client (masked) frame of `buf`: opcode, unmasked payload, bytes used.
fn client_frame(buf: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (mut at, len) = match buf[1] & 0x7F {
        126 => (
            4,
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        ),
        127 => (10, u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)),
        n => (2, u64::from(n)),
    };
    let mask: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    at += 4;
    let end = at + len as usize;
    let payload = buf.get(at..end)?;
    let payload = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    Some((buf[0] & 0x0F, payload, end))
}

async fn serve(
    mut conn: TcpStream,
    behaviour: Behaviour,
    receiver: Arc<Receiver>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // The upgrade request.
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    if behaviour == Behaviour::NoApplication {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let key = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-key"))
        })
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let accept = rtc_studio::signal::websocket::accept_for(&key);
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if conn.write_all(reply.as_bytes()).await.is_err() {
        return;
    }
    let mut pc: Option<Arc<dyn webrtc::peer_connection::PeerConnection>> = None;
    // When the stream is to be ended by the server (FinishesFirstAfter), once answered.
    let mut finish_at: Option<tokio::time::Instant> = None;
    let mut answered_stream = String::new();
    loop {
        while let Some((op, payload, used)) = client_frame(&buf) {
            buf.drain(..used);
            if op == 0x8 {
                return;
            }
            if op != 0x1 {
                continue;
            }
            let Ok(m) = serde_json::from_slice::<Value>(&payload) else {
                continue;
            };
            let command = m["command"].as_str().unwrap_or("").to_string();
            let stream_id = m["streamId"].as_str().unwrap_or("").to_string();
            seen.lock().unwrap().commands.push(command.clone());
            let mut out: Vec<String> = Vec::new();
            match command.as_str() {
                "ping" => {
                    seen.lock().unwrap().pings += 1;
                    out.push(json!({"command": "pong"}).to_string());
                }
                "publish" => {
                    {
                        let mut s = seen.lock().unwrap();
                        s.stream_id = Some(stream_id.clone());
                        s.token = m["token"].as_str().map(str::to_string);
                    }
                    match &behaviour {
                        Behaviour::Refuses(d) => out.push(
                            json!({"command": "error", "definition": d, "streamId": stream_id})
                                .to_string(),
                        ),
                        Behaviour::Silent => {}
                        Behaviour::Hangs => return,
                        Behaviour::Garbles => out.push("<html>maintenance</html>".into()),
                        _ => {
                            out.push(json!({"command": "start", "streamId": stream_id}).to_string())
                        }
                    }
                }
                "takeConfiguration" if m["type"] == "offer" => {
                    let offer = m["sdp"].as_str().unwrap_or("").to_string();
                    match receiver.answer_session(offer).await {
                        Ok((new_pc, sdp)) => {
                            pc = Some(new_pc);
                            answered_stream = stream_id.clone();
                            if let Behaviour::FinishesFirstAfter(after) = behaviour {
                                finish_at = Some(tokio::time::Instant::now() + after);
                            }
                            let (answer, candidates) = without_candidates(&sdp);
                            out.push(
                                json!({"command": "takeConfiguration", "streamId": stream_id, "type": "answer", "sdp": answer})
                                    .to_string(),
                            );
                            for (label, mid, c) in candidates {
                                out.push(
                                    json!({"command": "takeCandidate", "streamId": stream_id, "label": label, "id": mid, "candidate": c})
                                        .to_string(),
                                );
                            }
                            out.push(
                                json!({"command": "notification", "definition": "publish_started", "streamId": stream_id})
                                    .to_string(),
                            );
                        }
                        Err(_) => out.push(
                            json!({"command": "error", "definition": "notSetRemoteDescription", "streamId": stream_id})
                                .to_string(),
                        ),
                    }
                }
                "takeCandidate" => {
                    seen.lock().unwrap().client_candidates += 1;
                    if let Some(pc) = &pc {
                        let init = webrtc::peer_connection::RTCIceCandidateInit {
                            candidate: m["candidate"].as_str().unwrap_or("").to_string(),
                            sdp_mid: m["id"].as_str().map(str::to_string),
                            sdp_mline_index: m["label"].as_u64().map(|l| l as u16),
                            ..Default::default()
                        };
                        let _ = pc.add_ice_candidate(init).await;
                    }
                }
                "stop" => {
                    seen.lock().unwrap().stopped = true;
                    receiver.session_ended();
                    out.push(
                        json!({"command": "notification", "definition": "publish_finished", "streamId": stream_id})
                            .to_string(),
                    );
                }
                _ => {}
            }
            for text in out {
                if conn.write_all(&text_frame(&text)).await.is_err() {
                    return;
                }
            }
        }
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        tokio::select! {
            read = conn.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            () = tokio::time::sleep_until(finish_at.unwrap_or(far)) => {
                finish_at = None;
                let end = json!({"command": "notification", "definition": "publish_finished",
                    "streamId": answered_stream});
                seen.lock().unwrap().finished_by_server += 1;
                if let Some(pc) = pc.take() {
                    let _ = pc.close().await;
                }
                if conn.write_all(&text_frame(&end.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// An SDP without its `a=candidate` lines, and those candidates with their m-line index and mid.
fn without_candidates(sdp: &str) -> (String, Vec<(usize, String, String)>) {
    let mut kept = String::new();
    let mut found = Vec::new();
    // The current media section: its index, its mid once read, its candidates read before the mid.
    let (mut mline, mut mid, mut early) = (0usize, None::<String>, Vec::new());
    let mut sections = 0;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            (mline, mid, sections) = (sections, None, sections + 1);
        }
        if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_string());
            for c in std::mem::take(&mut early) {
                found.push((mline, m.trim().to_string(), c));
            }
        }
        match line.strip_prefix("a=") {
            Some(c) if c.starts_with("candidate:") => match &mid {
                Some(m) => found.push((mline, m.clone(), c.to_string())),
                None => early.push(c.to_string()),
            },
            Some("end-of-candidates") => {}
            _ => kept += &format!("{line}\r\n"),
        }
    }
    (kept, found)
}
