//! Whatever Janus's REST API (or something posing as it) answers: parsing it, and reading a VideoRoom result from
//! an event, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::signal::janus::{parse, videoroom_result, Reply};

fuzz_target!(|data: &[u8]| {
    if let Ok(Reply::Event { data, .. }) = parse(data) {
        let _ = videoroom_result(&data);
    }
});
