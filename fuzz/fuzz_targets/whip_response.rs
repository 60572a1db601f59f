//! A WHIP server's answer to the offer — status, headers (Link ones included) and body — as anything the network
//! could deliver: interpreting it never panics, and a session it accepts has an SDP answer and a resource URL.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_studio::signal::whip::{interpret_offer_response, parse_link_ice_servers};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 600;
    let text = String::from_utf8_lossy(&data[2..]);
    // Header lines up to an empty line, then the body.
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let headers: Vec<(String, String)> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("link") {
            let _ = parse_link_ice_servers(v);
        }
    }
    let url = url::Url::parse("https://whip.example/whip/endpoint").unwrap();
    if let Ok(session) = interpret_offer_response(&url, "H.264 + Opus", status, &headers, body.as_bytes()) {
        assert!(matches!(status, 200 | 201));
        let _ = session;
    }
});
