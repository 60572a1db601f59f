//! A WebSocket client's side of RFC 6455, sans-IO: the opening handshake (the request to send, the server's
//! answer checked) and the framing of messages (text out, masked as a client must; text, ping, pong and close in,
//! fragments joined). Ant Media Server's native signalling runs over it. No sockets here: bytes in, bytes and
//! messages out.
use base64::Engine;

/// The GUID RFC 6455 §1.3 appends to the key before hashing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest message we take (a signalling message: an SDP answer and some JSON); a longer one is an error.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// The opening handshake's request for `path` (with its query) on `host` (with the port when not the scheme's),
/// with the 16 random bytes of `key` as Sec-WebSocket-Key. Returns the request and the accept value the server's
/// 101 must carry.
pub fn handshake_request(host: &str, path: &str, key: [u8; 16]) -> (String, String) {
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: RTC Studio\r\n\r\n"
    );
    (request, accept_for(&key))
}

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
pub fn accept_for(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{ACCEPT_GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// What the server's answer to the handshake says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeReply {
    /// Not all of the answer's head has arrived.
    NeedMore,
    /// 101 with the right accept value: frames follow after `head_len` bytes.
    Upgraded { head_len: usize },
    /// Anything else: the status (0 if none could be read) and why, for the streamer.
    Refused { status: u16, reason: String },
}

/// Reads the server's answer to the handshake from the start of `buf`; `accept` as [`handshake_request`] gave it.
pub fn read_handshake_reply(buf: &[u8], accept: &str) -> HandshakeReply {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 16 * 1024 {
            HandshakeReply::Refused {
                status: 0,
                reason: "its answer has no end of headers in 16 KiB".into(),
            }
        } else {
            HandshakeReply::NeedMore
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = (status_line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if !status_line.starts_with("HTTP/1.1 ") || status != 101 {
        let said = status_line.splitn(3, ' ').nth(2).unwrap_or("").trim();
        return HandshakeReply::Refused {
            status,
            reason: match status {
                0 => "its answer is not HTTP".into(),
                _ => format!("it answered HTTP {status} {said} instead of switching to WebSocket"),
            },
        };
    }
    let header = |name: &str| {
        lines
            .clone()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let upgrade = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade || header("sec-websocket-accept").as_deref() != Some(accept) {
        return HandshakeReply::Refused {
            status,
            reason: "its 101 answer is not a valid WebSocket upgrade (Upgrade or Sec-WebSocket-Accept wrong)"
                .into(),
        };
    }
    HandshakeReply::Upgraded { head_len: end + 4 }
}

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A frame: FIN, opcode `op`, masked with `mask` as a client must (§5.3), or unmasked (a server's, for tests).
pub fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | op);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(masked | n as u8),
        n @ 126..=0xFFFF => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A text message as one masked frame.
pub fn text_frame(text: &str, mask: [u8; 4]) -> Vec<u8> {
    frame(true, opcode::TEXT, text.as_bytes(), Some(mask))
}

/// The answer to a ping: a pong with its payload.
pub fn pong_frame(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    frame(true, opcode::PONG, payload, Some(mask))
}

/// A close frame with status 1000 (normal closure).
pub fn close_frame(mask: [u8; 4]) -> Vec<u8> {
    frame(true, opcode::CLOSE, &1000u16.to_be_bytes(), Some(mask))
}

/// A message from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    /// A binary message (signalling has none; taken and ignored by the caller).
    Binary(Vec<u8>),
    /// Ping with its payload: answer with [`pong_frame`].
    Ping(Vec<u8>),
    Pong,
    /// The server closes: its status code (1005 if none) and reason.
    Close(u16, String),
}

/// Why the server's frames cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A server must not mask its frames (§5.1).
    Masked,
    /// Reserved bits or an unknown opcode.
    Reserved,
    /// A control frame fragmented or longer than 125 bytes.
    BadControl,
    /// A continuation without a message to continue, or a new message before the last ended.
    BadContinuation,
    /// A message longer than [`MAX_MESSAGE`].
    TooLong,
    /// A text message that is not UTF-8.
    NotUtf8,
}

/// Reads messages from the server's bytes: [`Reader::push`] what arrived, then [`Reader::next_message`] until None.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
    /// A fragmented message being put together: its opcode and payload so far.
    partial: Option<(u8, Vec<u8>)>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, None when more bytes are needed, or why the stream cannot be read any further.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            let Some((fin, op, payload, used)) = self.frame()? else {
                return Ok(None);
            };
            self.buf.drain(..used);
            match op {
                opcode::PING => return Ok(Some(Message::Ping(payload))),
                opcode::PONG => return Ok(Some(Message::Pong)),
                opcode::CLOSE => {
                    let code = match payload[..] {
                        [a, b, ..] => u16::from_be_bytes([a, b]),
                        _ => 1005,
                    };
                    let reason =
                        String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).into_owned();
                    return Ok(Some(Message::Close(code, reason)));
                }
                opcode::CONTINUATION => {
                    let (_, so_far) = self.partial.as_mut().ok_or(FrameError::BadContinuation)?;
                    if so_far.len() + payload.len() > MAX_MESSAGE {
                        return Err(FrameError::TooLong);
                    }
                    so_far.extend_from_slice(&payload);
                }
                _ if self.partial.is_some() => return Err(FrameError::BadContinuation),
                _ => self.partial = Some((op, payload)),
            }
            if fin {
                let (op, payload) = self.partial.take().expect("a message in progress");
                return match op {
                    opcode::TEXT => String::from_utf8(payload)
                        .map(|t| Some(Message::Text(t)))
                        .map_err(|_| FrameError::NotUtf8),
                    _ => Ok(Some(Message::Binary(payload))),
                };
            }
        }
    }

    /// The first whole frame in the buffer: FIN, opcode, payload and the bytes it took.
    #[allow(clippy::type_complexity)]
    fn frame(&self) -> Result<Option<(bool, u8, Vec<u8>, usize)>, FrameError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, op) = (b[0] & 0x80 != 0, b[0] & 0x0F);
        if b[0] & 0x70 != 0 || !matches!(op, 0x0..=0x2 | 0x8..=0xA) {
            return Err(FrameError::Reserved);
        }
        if b[1] & 0x80 != 0 {
            return Err(FrameError::Masked);
        }
        let (len, header) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
                10,
            ),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        let control = op >= opcode::CLOSE;
        if control && (!fin || len > 125) {
            return Err(FrameError::BadControl);
        }
        if len > MAX_MESSAGE as u64 {
            return Err(FrameError::TooLong);
        }
        let end = header + len as usize;
        if b.len() < end {
            return Ok(None);
        }
        Ok(Some((fin, op, b[header..end].to_vec(), end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's (unmasked) frame.
    fn server_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        frame(fin, op, payload, None)
    }

    #[test]
    fn the_accept_value_is_rfc_6455s_example() {
        // RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" → accept "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let (request, accept) = handshake_request(
            "ams.example:5443",
            "/LiveApp/websocket",
            *b"the sample nonce",
        );
        assert!(
            request.starts_with("GET /LiveApp/websocket HTTP/1.1\r\nHost: ams.example:5443\r\n")
        );
        assert!(request.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_101_with_the_right_accept_upgrades_and_anything_else_is_refused() {
        let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n\x01\x02{{}}"
        );
        let head_len = ok.find("\r\n\r\n").unwrap() + 4;
        assert_eq!(
            read_handshake_reply(ok.as_bytes(), accept),
            HandshakeReply::Upgraded { head_len }
        );
        assert_eq!(
            read_handshake_reply(&ok.as_bytes()[..30], accept),
            HandshakeReply::NeedMore
        );
        assert_eq!(
            read_handshake_reply(ok.replace(accept, "wrong=").as_bytes(), accept),
            HandshakeReply::Refused {
                status: 101,
                reason: "its 101 answer is not a valid WebSocket upgrade (Upgrade or Sec-WebSocket-Accept wrong)"
                    .into()
            }
        );
        let not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            read_handshake_reply(not_found, accept),
            HandshakeReply::Refused {
                status: 404,
                reason: "it answered HTTP 404 Not Found instead of switching to WebSocket".into()
            }
        );
        assert!(matches!(
            read_handshake_reply(b"SSH-2.0-OpenSSH\r\n\r\n", accept),
            HandshakeReply::Refused { status: 0, .. }
        ));
        assert!(matches!(
            read_handshake_reply(&[b'x'; 20_000], accept),
            HandshakeReply::Refused { status: 0, .. }
        ));
    }

    #[test]
    fn client_frames_are_masked_with_the_right_lengths() {
        let mask = [1, 2, 3, 4];
        let f = text_frame("hi", mask);
        assert_eq!(f, [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        let long = "x".repeat(300);
        let f = text_frame(&long, mask);
        assert_eq!(&f[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(f.len(), 4 + 4 + 300);
        let f = text_frame(&"y".repeat(70_000), mask);
        assert_eq!(&f[..2], &[0x81, 0x80 | 127]);
        assert_eq!(u64::from_be_bytes(f[2..10].try_into().unwrap()), 70_000);
        assert_eq!(close_frame(mask)[..2], [0x88, 0x82]);
        assert_eq!(pong_frame(b"p", mask)[..2], [0x8A, 0x81]);
    }

    #[test]
    fn messages_are_read_across_any_split_and_fragments_are_joined() {
        let mut bytes = server_frame(true, opcode::TEXT, b"{\"command\":\"start\"}");
        bytes.extend(server_frame(false, opcode::TEXT, b"{\"a\":"));
        // A ping may come between the fragments of a message.
        bytes.extend(server_frame(true, opcode::PING, b"k"));
        bytes.extend(server_frame(true, opcode::CONTINUATION, b"1}"));
        bytes.extend(server_frame(
            true,
            opcode::TEXT,
            "z".repeat(70_000).as_bytes(),
        ));
        bytes.extend(server_frame(true, opcode::CLOSE, b"\x03\xe8bye"));
        let want = vec![
            Message::Text("{\"command\":\"start\"}".into()),
            Message::Ping(b"k".to_vec()),
            Message::Text("{\"a\":1}".into()),
            Message::Text("z".repeat(70_000)),
            Message::Close(1000, "bye".into()),
        ];
        for chunk in [1, 3, 7, 1000, bytes.len()] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                r.push(piece);
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, want, "in pieces of {chunk}");
        }
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        let cases: [(Vec<u8>, FrameError); 6] = [
            (vec![0x81, 0x81, 0, 0, 0, 0, b'a'], FrameError::Masked),
            (vec![0xC1, 0x00], FrameError::Reserved),
            (vec![0x83, 0x00], FrameError::Reserved),
            (
                server_frame(false, opcode::PING, b""),
                FrameError::BadControl,
            ),
            (
                server_frame(true, opcode::CONTINUATION, b"x"),
                FrameError::BadContinuation,
            ),
            (vec![0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0], FrameError::TooLong),
        ];
        for (bytes, error) in cases {
            let mut r = Reader::default();
            r.push(&bytes);
            assert_eq!(r.next_message(), Err(error), "{bytes:?}");
        }
        let mut r = Reader::default();
        r.push(&server_frame(true, opcode::TEXT, &[0xff, 0xfe]));
        assert_eq!(r.next_message(), Err(FrameError::NotUtf8));
        let mut r = Reader::default();
        let mut two = server_frame(false, opcode::TEXT, b"a");
        two.extend(server_frame(true, opcode::TEXT, b"b"));
        r.push(&two);
        assert_eq!(r.next_message(), Err(FrameError::BadContinuation));
    }
}
