//! A TURN-over-TCP/TLS byte stream as a server could send it: following it message by message never panics, never
//! reads past the buffer and always moves forward.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::signal::turn_stream::{next_message, stream_padding, Next};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match next_message(rest) {
            Next::Message { len, consumed } => {
                assert!(len <= consumed && consumed <= rest.len() && consumed > 0);
                assert!(consumed == len || consumed == len + stream_padding(len));
                rest = &rest[consumed..];
            }
            Next::NeedMore | Next::Invalid => break,
        }
    }
});
