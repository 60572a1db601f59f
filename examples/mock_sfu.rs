//! Our WHIP receiver as a program: listens on loopback, takes one published stream, decodes it (openh264, libopus)
//! and prints one JSON line of measurements when the publisher sends its DELETE (or when time runs out).
#[path = "../tests/support/receiver/mod.rs"]
mod receiver;

use receiver::{Receiver, ReceiverOptions};
use std::time::Duration;

const HELP: &str = "\
mock_sfu — a WHIP receiver that decodes what it receives and measures it

USAGE:
    mock_sfu [--http ADDR] [--udp ADDR] [--token TOKEN] [--timeout SECS] [--trickle | --refuse-patch]
             [--answer-link LINK]... [--pli-every SECS] [--no-twcc] [--crash-after SECS]

OPTIONS:
    --http ADDR      HTTP listen address (default 127.0.0.1:0, a free port); the WHIP URL is printed
    --udp ADDR       address for ICE host candidates (default 127.0.0.1:0)
    --token TOKEN    require `Authorization: Bearer TOKEN` (default: none)
    --timeout SECS   give up waiting for the publisher's DELETE after this long (default 60)
    --crash-after SECS  print the measurements so far after this long and exit at once, as a crashed server
                     (no DTLS close, nothing answered any more; exit code 3)
    --trickle        take trickle ICE and ICE restarts by PATCH (RFC 9725 §4.3, §4.4), announced by Accept-Patch
    --refuse-patch   announce trickle ICE on OPTIONS but answer every PATCH 405
    --answer-link LINK  a `Link` header value (ICE server, RFC 9725 §4.6) to send with the 201; repeatable
    --pli-every SECS ask for a keyframe (PLI) this often after the first request a second in (default: once)
    --no-twcc        send no transport-wide congestion control feedback (only receiver reports)

OUTPUT:
    `whip-url http://…/whip` once listening, then one JSON line: video_frames_decoded, decode_errors, width,
    height, fps, audio_packets, audio_decode_errors, first_frame_ms (WHIP POST → first decoded frame),
    av_offset_ms (flash/beep offset through RTCP sender reports; positive = audio late), delete_received,
    frames_intact (whole reference chain since the last IDR), freezes and freeze_ms, packets_nacked,
    retransmissions_received, packets_lost (given up; this and decode_errors as of the DELETE),
    given_up_after_delete (gaps open at the stream's end), plis_sent, keyframes, keyframe_waits_ms (PLI → next
    keyframe received), rtt_ms, timeline (per second: kbps received, frames decoded intact by media time,
    expected_per_second), …
";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut options = ReceiverOptions::default();
    let mut timeout = 60.0;
    let mut crash_after: Option<f64> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                return;
            }
            "--trickle" => {
                options.trickle = true;
                continue;
            }
            "--refuse-patch" => {
                options.refuse_patch = true;
                continue;
            }
            "--no-twcc" => {
                options.twcc = false;
                continue;
            }
            _ => {}
        }
        let Some(value) = it.next() else {
            eprintln!("mock_sfu: {flag} needs a value");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--http" => options.http = value.clone(),
            "--udp" => options.udp = value.clone(),
            "--token" => options.token = Some(value.clone()),
            "--answer-link" => options.answer_links.push(value.clone()),
            "--timeout" => timeout = value.parse().unwrap_or(60.0),
            "--crash-after" => crash_after = value.parse().ok(),
            "--pli-every" => {
                options.pli_every = value.parse().ok().map(Duration::from_secs_f64);
            }
            other => {
                eprintln!("mock_sfu: unknown option {other} (see --help)");
                std::process::exit(2);
            }
        }
    }
    let receiver = match Receiver::start(options).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mock_sfu: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("whip-url {}", receiver.whip_url());
    if let Some(secs) = crash_after {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        // Gone as a crashed server is: no goodbye to the publisher (no DTLS close, no answer to anything).
        println!("{}", receiver.report());
        std::process::exit(3);
    }
    let got_delete = receiver
        .wait_for_delete(Duration::from_secs_f64(timeout))
        .await;
    // Let the last decoded frames land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("{}", receiver.report());
    receiver.stop().await;
    std::process::exit(if got_delete { 0 } else { 1 });
}
