//! An SDP answer (and an SDP fragment) as a server could send them, against an offer: checking the answer, reading
//! its simulcast layers and candidates, and applying ICE fragments never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::signal::answer::check_answer;
use rtc_studio::signal::sdp_fragment::{apply_ice_fragment, parse_ice_fragment, sdp_candidates};
use rtc_studio::transport::peer::layers_taken;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=mid:0\r\na=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n\
    a=fmtp:103 apt=102\r\na=rid:f send\r\na=rid:h send\r\na=rid:q send\r\na=simulcast:send f;h;q\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // An answer, and after a NUL an SDP fragment (a PATCH answer during an ICE restart).
    let (answer, fragment) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = check_answer(OFFER, answer);
    let rids = ["f".to_string(), "h".to_string(), "q".to_string()];
    assert!(layers_taken(answer, &rids) < 8);
    let _ = sdp_candidates(answer);
    let _ = parse_ice_fragment(fragment);
    let _ = apply_ice_fragment(answer, fragment);
});
