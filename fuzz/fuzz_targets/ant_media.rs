//! What an Ant Media server (or anything answering at its WebSocket URL) could send: the handshake answer, then
//! frames in any split, then each text message read as Ant Media signalling. Never panics; a message never exceeds
//! the limit; a broken stream stops being read.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::signal::ant_media::parse;
use rtc_studio::signal::websocket::{read_handshake_reply, HandshakeReply, Message, Reader, MAX_MESSAGE};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let frames = match read_handshake_reply(data, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
        HandshakeReply::Upgraded { head_len } => &data[head_len..],
        HandshakeReply::NeedMore | HandshakeReply::Refused { .. } => data,
    };
    let mut reader = Reader::default();
    for piece in frames.chunks(usize::from(split).max(1)) {
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(Message::Text(t))) => {
                    assert!(t.len() <= MAX_MESSAGE);
                    let _ = parse(&t, "cam1");
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
