//! A WebSocket client connection (ws:// over TCP, wss:// over TLS verified against the system's trust store) on
//! the plugin's runtime, with `crate::signal::websocket` doing the handshake and framing: text messages out, text
//! messages in, pings answered, the server's close or a broken stream reported once.
use super::Task;
use crate::signal::websocket::{self, HandshakeReply, Message, Reader};
use crate::signal::{Failure, StopCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use url::Url;

/// What the server sent: a text message, or why the connection ended (then nothing more comes).
pub type Incoming = Result<String, String>;

/// The sending side: text messages, framed and masked, written in order by the connection's writer.
#[derive(Clone)]
pub struct Sender {
    frames: UnboundedSender<Vec<u8>>,
}

impl Sender {
    /// Queues `text`; false once the connection is gone.
    pub fn send(&self, text: &str) -> bool {
        self.frames
            .send(websocket::text_frame(text, rand::random()))
            .is_ok()
    }

    /// Queues a close frame (the writer then stops).
    pub fn close(&self) {
        let _ = self.frames.send(websocket::close_frame(rand::random()));
    }
}

/// An open connection: send with `sender`, read from `incoming`; its reader and writer tasks end with it.
pub struct Connection {
    pub sender: Sender,
    pub incoming: UnboundedReceiver<Incoming>,
    _tasks: [Task; 2],
}

fn failed(url: &Url, why: impl std::fmt::Display) -> Failure {
    Failure::new(
        StopCode::ConnectFailed,
        format!(
            "Could not reach the WebSocket server at {}: {why}",
            redacted(url)
        ),
    )
}

/// The URL without query and user info (a query may carry a token).
fn redacted(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path()
}

/// Connects to `url` (ws:// or wss://) and completes the opening handshake within `limit`.
pub async fn connect(url: &Url, limit: Duration) -> Result<Connection, Failure> {
    tokio::time::timeout(limit, open(url))
        .await
        .unwrap_or_else(|_| {
            Err(failed(
                url,
                format!("no WebSocket connection within {} s", limit.as_secs()),
            ))
        })
}

async fn open(url: &Url) -> Result<Connection, Failure> {
    let host = url
        .host_str()
        .ok_or_else(|| failed(url, "no host"))?
        .to_string();
    let tls = url.scheme() == "wss";
    let port = url.port().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|e| failed(url, e))?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return handshake(url, tcp).await;
    }
    let config =
        super::http::tls_config().map_err(|e| failed(url, format!("TLS set-up failed: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| failed(url, "not a valid TLS server name"))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| failed(url, format!("TLS handshake failed: {e}")))?;
    handshake(url, stream).await
}

async fn handshake<S>(url: &Url, mut stream: S) -> Result<Connection, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let (request, accept) = websocket::handshake_request(&host, &path, rand::random());
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| failed(url, e))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let rest = loop {
        let n = stream.read(&mut chunk).await.map_err(|e| failed(url, e))?;
        if n == 0 {
            return Err(failed(
                url,
                "it closed the connection during the WebSocket handshake",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        match websocket::read_handshake_reply(&head, &accept) {
            HandshakeReply::NeedMore => continue,
            HandshakeReply::Upgraded { head_len } => break head.split_off(head_len),
            HandshakeReply::Refused { status, reason } => {
                let code = match status {
                    404 | 410 => StopCode::BadPath,
                    401 | 403 => StopCode::InvalidStream,
                    _ => StopCode::ConnectFailed,
                };
                return Err(Failure::new(
                    code,
                    format!(
                        "The WebSocket server at {} refused the connection: {reason}",
                        redacted(url)
                    ),
                ));
            }
        }
    };
    let (read_half, mut write_half) = tokio::io::split(stream);
    let (frames, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
    let (messages, incoming) = mpsc::unbounded_channel();
    let writer = Task::spawn(async move {
        while let Some(frame) = to_write.recv().await {
            let closing = frame.first() == Some(&0x88);
            if write_half.write_all(&frame).await.is_err() || closing {
                break;
            }
        }
        let _ = write_half.shutdown().await;
    });
    let reader = Task::spawn(read_messages(read_half, rest, frames.clone(), messages));
    Ok(Connection {
        sender: Sender { frames },
        incoming,
        _tasks: [reader, writer],
    })
}

/// Reads frames until the connection ends: text messages to `messages`, pings answered through `frames`; the
/// end (the server's close, a broken stream, EOF) as one last `Err`.
async fn read_messages<R: AsyncRead + Unpin>(
    mut read: R,
    already: Vec<u8>,
    frames: UnboundedSender<Vec<u8>>,
    messages: UnboundedSender<Incoming>,
) {
    let mut reader = Reader::default();
    reader.push(&already);
    let mut chunk = vec![0u8; 16 * 1024];
    let end = 'reading: loop {
        loop {
            match reader.next_message() {
                Ok(Some(Message::Text(t))) => {
                    if messages.send(Ok(t)).is_err() {
                        return;
                    }
                }
                Ok(Some(Message::Ping(p))) => {
                    let _ = frames.send(websocket::pong_frame(&p, rand::random()));
                }
                Ok(Some(Message::Close(code, reason))) => {
                    break 'reading format!(
                        "the server closed the WebSocket (code {code}{})",
                        match reason.is_empty() {
                            true => String::new(),
                            false => format!(": {reason}"),
                        }
                    );
                }
                Ok(Some(Message::Pong | Message::Binary(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    break 'reading format!("the server's WebSocket frames cannot be read ({e:?})")
                }
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) => break "the server closed the connection".to_string(),
            Ok(n) => reader.push(&chunk[..n]),
            Err(e) => break format!("the connection broke: {e}"),
        }
    };
    let _ = messages.send(Err(end));
}
