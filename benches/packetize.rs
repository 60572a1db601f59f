//! Cost of turning one OBS H.264 packet into RTP payloads (access-unit prep + RFC 6184 packetization), for 1080p
//! keyframes and P-frames from real x264 output, and the same for AV1 (OBU parsing + AOMedia's RTP payload format)
//! from real SVT-AV1 output, and HEVC (RFC 7798) from real x265 output. Prints ns per access / temporal unit and the ratio to a baseline measured in the same
//! run: copying the unit once (what the FFI shell already does for every packet).
//!
//! Run: `cargo bench --bench packetize` (or `make bench`).
use bytes::Bytes;
use rtc_studio::media::av1::{obu, obu_type, read_leb128, SequenceHeaders};
use rtc_studio::media::av1_rtp::Av1Packetizer;
use rtc_studio::media::h264::{
    access_unit_nals, annexb_units, nal, nal_type, split_at_aud, ParameterSets,
};
use rtc_studio::media::h264_rtp::{H264Packetizer, DEFAULT_MAX_PAYLOAD};
use rtc_studio::media::hevc_rtp::{self, HevcPacketizer, HevcParameterSets};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

/// 60 frames of 1080p test pattern from FFmpeg's `encoder` into `format`, kept in the temp directory as `name`.
fn encoded(name: &str, encoder: &[&str], format: &str) -> Bytes {
    let path = std::env::temp_dir().join(name);
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
            ])
            .args(["-frames:v", "60"])
            .args(encoder)
            .args(["-f", format])
            .arg(&path)
            .status()
            .expect("ffmpeg")
            .success();
        assert!(ok, "ffmpeg failed");
    }
    Bytes::from(std::fs::read(path).unwrap())
}

/// An AV1 OBU stream cut into temporal units (each starts with a temporal delimiter).
fn temporal_units(stream: &Bytes) -> Vec<Bytes> {
    let (mut units, mut start, mut at) = (Vec::new(), 0, 0);
    while at < stream.len() {
        let header = stream[at];
        let header_len = 1 + usize::from(header & 0x04 != 0);
        let (size, len) = read_leb128(&stream[at + header_len..]).expect("sizes in an OBU stream");
        if obu_type(header) == obu::TEMPORAL_DELIMITER && at > start {
            units.push(stream.slice(start..at));
            start = at;
        }
        at += header_len + len + size as usize;
    }
    units.push(stream.slice(start..));
    units
}

fn x264_1080p() -> Bytes {
    encoded(
        "rtc-studio-bench-1080p.h264",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "6M",
            "-x264-params",
            "aud=1:keyint=30:bframes=0",
        ],
        "h264",
    )
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
    let av1 = encoded(
        "rtc-studio-bench-1080p.obu",
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "10",
            "-b:v",
            "3M",
            "-g",
            "30",
        ],
        "obu",
    );
    let units = temporal_units(&av1);
    let is_key = |u: &Bytes| {
        SequenceHeaders::default()
            .elements(u, false)
            .is_ok_and(|e| e.iter().any(|o| obu_type(o[0]) == obu::SEQUENCE_HEADER))
    };
    let keyframes: Vec<Bytes> = units.iter().filter(|u| is_key(u)).cloned().collect();
    let others: Vec<Bytes> = units.iter().filter(|u| !is_key(u)).cloned().collect();
    let packetizer = Av1Packetizer::new(DEFAULT_MAX_PAYLOAD);
    println!("1080p30 SVT-AV1 preset 10, 3 Mbit/s, payload budget {DEFAULT_MAX_PAYLOAD} bytes");
    println!(
        "{:<10} {:>7} {:>11} {:>14} {:>13} {:>7}",
        "frame", "bytes", "payloads", "copy ns/TU", "ours ns/TU", "ratio"
    );
    for (name, set, key) in [("keyframe", &keyframes, true), ("inter", &others, false)] {
        let bytes = set.iter().map(|u| u.len()).sum::<usize>() / set.len();
        let mut headers = SequenceHeaders::default();
        let mut out = Vec::new();
        packetizer.packetize(&headers.elements(&set[0], key).unwrap(), &mut out);
        let payloads = out.len();
        let copy = measure(set, budget, |u| {
            black_box(Bytes::copy_from_slice(black_box(u)));
        });
        let ours = measure(set, budget, |u| {
            out.clear();
            packetizer.packetize(&headers.elements(black_box(u), key).unwrap(), &mut out);
            black_box(&out);
        });
        println!(
            "{name:<10} {bytes:>7} {payloads:>11} {copy:>14.0} {ours:>13.0} {:>7.2}",
            ours / copy
        );
    }
    // x265 with access unit delimiters: cut before each (4-byte start code, NAL type 35).
    let hevc = encoded(
        "rtc-studio-bench-1080p.hevc",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-b:v",
            "4M",
            "-x265-params",
            "aud=1:keyint=30:bframes=0:log-level=error",
        ],
        "hevc",
    );
    let mut cuts: Vec<usize> = hevc
        .windows(6)
        .enumerate()
        .filter(|(_, w)| {
            w[..4] == [0, 0, 0, 1] && hevc_rtp::nal_type(&w[4..]) == Some(hevc_rtp::nal::AUD)
        })
        .map(|(i, _)| i)
        .collect();
    cuts.push(hevc.len());
    let units: Vec<Bytes> = cuts.windows(2).map(|c| hevc.slice(c[0]..c[1])).collect();
    let is_key = |u: &Bytes| {
        annexb_units(u).any(|n| {
            hevc_rtp::nal_type(n).is_some_and(|t| {
                (hevc_rtp::nal::IRAP_FIRST..=hevc_rtp::nal::IRAP_LAST).contains(&t)
            })
        })
    };
    let keyframes: Vec<Bytes> = units.iter().filter(|u| is_key(u)).cloned().collect();
    let others: Vec<Bytes> = units.iter().filter(|u| !is_key(u)).cloned().collect();
    let packetizer = HevcPacketizer::new(DEFAULT_MAX_PAYLOAD);
    println!("1080p30 x265 ultrafast 4 Mbit/s, payload budget {DEFAULT_MAX_PAYLOAD} bytes");
    println!(
        "{:<10} {:>7} {:>11} {:>14} {:>13} {:>7}",
        "frame", "bytes", "payloads", "copy ns/AU", "ours ns/AU", "ratio"
    );
    for (name, set) in [("keyframe", &keyframes), ("P-frame", &others)] {
        let bytes = set.iter().map(|u| u.len()).sum::<usize>() / set.len();
        let mut sets = HevcParameterSets::default();
        let mut out = Vec::new();
        packetizer.packetize(&sets.access_unit_nals(&set[0]), &mut out);
        let payloads = out.len();
        let copy = measure(set, budget, |u| {
            black_box(Bytes::copy_from_slice(black_box(u)));
        });
        let ours = measure(set, budget, |u| {
            out.clear();
            packetizer.packetize(&sets.access_unit_nals(black_box(u)), &mut out);
            black_box(&out);
        });
        println!(
            "{name:<10} {bytes:>7} {payloads:>11} {copy:>14.0} {ours:>13.0} {:>7.2}",
            ours / copy
        );
    }
}
