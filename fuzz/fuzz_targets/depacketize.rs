//! Arbitrary RTP payload sequences into the depacketizer (what a hostile or broken peer could send our receiver).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::media::h264_rtp::H264Depacketizer;

fuzz_target!(|data: &[u8]| {
    let mut d = H264Depacketizer::new();
    // Each record: seq (2 bytes), marker+len (1 byte: high bit marker, low 7 bits length), payload.
    let mut rest = data;
    let mut ts = 0u32;
    while rest.len() >= 3 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let marker = rest[2] & 0x80 != 0;
        let len = (rest[2] & 0x7f) as usize;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (units, _err) = d.push(seq, ts, marker, &rest[..take]);
        for u in units {
            assert!(u.nals.iter().all(|n| !n.is_empty()));
        }
        rest = &rest[take..];
        if marker {
            ts = ts.wrapping_add(3000);
        }
    }
});
