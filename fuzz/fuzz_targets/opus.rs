//! Opus bytes as an encoder (or a corrupt file) could hand them over: reading the OpusHead and a packet's TOC
//! (samples, stereo) never panics, and a packet's duration is one Opus allows (at most 120 ms at 48 kHz).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::media::opus::{packet_is_stereo, packet_samples, OpusHead};

fuzz_target!(|data: &[u8]| {
    let _ = OpusHead::parse(data);
    if let Some(samples) = packet_samples(data) {
        assert!(samples <= 5760, "{samples}");
    }
    let _ = packet_is_stereo(data);
});
