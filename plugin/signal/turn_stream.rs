//! TURN over a byte stream (TCP or TLS; RFC 8656 §11.5): STUN messages and ChannelData messages follow each other
//! with nothing between them, and over a stream a ChannelData message is padded to a multiple of 4 bytes. Pure
//! functions: where the next message of a stream ends, and what a datagram needs to travel on a stream.

/// What the start of a stream buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole message: its first `len` bytes are the message (as a datagram), `consumed` bytes (with padding)
    /// leave the buffer.
    Message { len: usize, consumed: usize },
    /// Not enough bytes yet.
    NeedMore,
    /// Neither STUN nor ChannelData: the stream cannot be followed any further.
    Invalid,
}

const STUN_HEADER: usize = 20;
const CHANNEL_HEADER: usize = 4;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];

/// Where the first message of `buf` ends.
pub fn next_message(buf: &[u8]) -> Next {
    if buf.len() < CHANNEL_HEADER {
        return Next::NeedMore;
    }
    let body = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match buf[0] >> 6 {
        // STUN: two zero bits, a length that excludes the 20-byte header and is a multiple of 4, the cookie.
        0b00 => {
            if body % 4 != 0 {
                return Next::Invalid;
            }
            if buf.len() < 8 {
                return Next::NeedMore;
            }
            if buf[4..8] != MAGIC_COOKIE {
                return Next::Invalid;
            }
            let len = STUN_HEADER + body;
            if buf.len() < len {
                Next::NeedMore
            } else {
                Next::Message { len, consumed: len }
            }
        }
        // ChannelData: channel numbers 0x4000–0x4FFF (RFC 8656 §12), padded up to 4 bytes on a stream.
        0b01 if buf[0] <= 0x4F => {
            let len = CHANNEL_HEADER + body;
            let consumed = len + stream_padding(len);
            if buf.len() < consumed {
                Next::NeedMore
            } else {
                Next::Message { len, consumed }
            }
        }
        _ => Next::Invalid,
    }
}

/// Zero bytes to put after a datagram of `len` bytes on a stream: ChannelData must end on a 4-byte boundary (STUN
/// messages always do).
pub fn stream_padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(body: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0x01, (body >> 8) as u8, body as u8];
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(0xAB, body));
        m
    }

    fn channel_data(payload: usize) -> Vec<u8> {
        let mut m = vec![0x40, 0x01, (payload >> 8) as u8, payload as u8];
        m.extend(std::iter::repeat_n(0xCD, payload));
        m
    }

    #[test]
    fn stun_and_channel_data_are_delimited_with_padding() {
        let s = stun(8);
        assert_eq!(
            next_message(&s),
            Next::Message {
                len: 28,
                consumed: 28
            }
        );
        assert_eq!(next_message(&s[..27]), Next::NeedMore);
        let mut c = channel_data(5);
        assert_eq!(next_message(&c), Next::NeedMore, "padding still to come");
        c.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            next_message(&c),
            Next::Message {
                len: 9,
                consumed: 12
            }
        );
        assert_eq!(next_message(&[0x40, 0x01]), Next::NeedMore);
        // Not TURN: an HTML page, a channel number above 0x4FFF, top bits 10 or 11, a STUN header with a bad
        // cookie or an odd length.
        assert_eq!(next_message(b"<html><body>"), Next::Invalid);
        assert_eq!(
            next_message(&[0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4]),
            Next::Invalid
        );
        assert_eq!(next_message(&[0x80, 0x00, 0x00, 0x04]), Next::Invalid);
        let mut bad = stun(4);
        bad[4] = 0;
        assert_eq!(next_message(&bad), Next::Invalid);
        assert_eq!(next_message(&[0x00, 0x01, 0x00, 0x03]), Next::Invalid);
        assert_eq!(stream_padding(9), 3);
        assert_eq!(stream_padding(12), 0);
    }

    #[test]
    fn any_chunking_of_a_stream_gives_back_the_same_messages() {
        use proptest::prelude::*;
        proptest!(|(sizes in proptest::collection::vec((any::<bool>(), 0usize..300), 1..20),
                    cuts in proptest::collection::vec(1usize..64, 1..50))| {
            let messages: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&(is_stun, n)| if is_stun { stun(n / 4 * 4) } else { channel_data(n) })
                .collect();
            let mut stream = Vec::new();
            for m in &messages {
                stream.extend_from_slice(m);
                stream.extend(std::iter::repeat_n(0, stream_padding(m.len())));
            }
            // Feed the stream in chunks, as reads would return it.
            let (mut buf, mut got, mut at, mut i) = (Vec::new(), Vec::new(), 0, 0);
            while at < stream.len() {
                let n = cuts[i % cuts.len()].min(stream.len() - at);
                buf.extend_from_slice(&stream[at..at + n]);
                at += n;
                i += 1;
                while let Next::Message { len, consumed } = next_message(&buf) {
                    got.push(buf[..len].to_vec());
                    buf.drain(..consumed);
                }
                prop_assert_ne!(next_message(&buf), Next::Invalid);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, messages);
        });
    }
}
