//! Cost of turning one OBS H.264 packet into RTP payloads (access-unit prep + RFC 6184 packetization), for 1080p
//! keyframes and P-frames from real x264 output. Prints ns per access unit and the ratio to a baseline measured in
//! the same run: copying the access unit once (what the FFI shell already does for every packet).
//!
//! Run: `cargo bench --bench packetize` (or `make bench`).
use bytes::Bytes;
use rtc_studio::media::h264::{
    access_unit_nals, annexb_units, nal, nal_type, split_at_aud, ParameterSets,
};
use rtc_studio::media::h264_rtp::{H264Packetizer, DEFAULT_MAX_PAYLOAD};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

fn x264_1080p() -> Bytes {
    let path = std::env::temp_dir().join("rtc-studio-bench-1080p.h264");
    if !path.exists() {
        let ok = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1920x1080:rate=30",
                "-frames:v",
                "60",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-b:v",
                "6M",
                "-x264-params",
                "aud=1:keyint=30:bframes=0",
            ])
            .args(["-f", "h264"])
            .arg(&path)
            .status()
            .expect("ffmpeg")
            .success();
        assert!(ok, "ffmpeg failed");
    }
    Bytes::from(std::fs::read(path).unwrap())
}

/// Mean ns per call of `f` over `units`, repeated for about `budget`.
fn measure(units: &[Bytes], budget: Duration, mut f: impl FnMut(&Bytes)) -> f64 {
    let (mut calls, start) = (0u64, Instant::now());
    while start.elapsed() < budget {
        for u in units {
            f(u);
        }
        calls += units.len() as u64;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn main() {
    let units = split_at_aud(&x264_1080p());
    let is_key = |u: &Bytes| annexb_units(u).any(|n| nal_type(n) == Some(nal::IDR));
    let keyframes: Vec<Bytes> = units.iter().filter(|u| is_key(u)).cloned().collect();
    let pframes: Vec<Bytes> = units.iter().filter(|u| !is_key(u)).cloned().collect();
    let packetizer = H264Packetizer::new(DEFAULT_MAX_PAYLOAD);
    let budget = Duration::from_millis(700);
    println!("1080p30 x264 veryfast 6 Mbit/s, payload budget {DEFAULT_MAX_PAYLOAD} bytes");
    println!(
        "{:<10} {:>7} {:>11} {:>14} {:>13} {:>7}",
        "frame", "bytes", "payloads", "copy ns/AU", "ours ns/AU", "ratio"
    );
    for (name, set) in [("keyframe", &keyframes), ("P-frame", &pframes)] {
        let bytes = set.iter().map(|u| u.len()).sum::<usize>() / set.len();
        let mut params = ParameterSets::default();
        let mut out = Vec::new();
        let payloads = {
            packetizer.packetize(&access_unit_nals(&set[0], &mut params), &mut out);
            out.len()
        };
        let copy = measure(set, budget, |u| {
            black_box(Bytes::copy_from_slice(black_box(u)));
        });
        let ours = measure(set, budget, |u| {
            out.clear();
            packetizer.packetize(&access_unit_nals(black_box(u), &mut params), &mut out);
            black_box(&out);
        });
        println!(
            "{name:<10} {bytes:>7} {payloads:>11} {copy:>14.0} {ours:>13.0} {:>7.2}",
            ours / copy
        );
    }
}
