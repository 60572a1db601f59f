//! Real x264 output (made by ffmpeg's libx264, the library OBS's obs_x264 wraps) through our access-unit prep,
//! RTP packetizer and depacketizer: every access unit must come back NAL for NAL.
use bytes::Bytes;
use rtc_studio::media::h264::{
    access_unit_nals, nal, nal_type, split_at_aud, to_annexb, ParameterSets,
};
use rtc_studio::media::h264_rtp::{H264Depacketizer, H264Packetizer, DEFAULT_MAX_PAYLOAD};
use std::path::PathBuf;
use std::process::Command;

/// Encodes `frames` of a test pattern with libx264 into a raw Annex-B stream with an AUD before each access unit.
fn x264_stream(
    name: &str,
    size: &str,
    x264_params: &str,
    tune: Option<&str>,
    frames: u32,
) -> Bytes {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.h264"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
    ])
    .args([
        "-frames:v",
        &frames.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
    ])
    .args(["-x264-params", &format!("aud=1:{x264_params}")]);
    if let Some(t) = tune {
        cmd.args(["-tune", t]);
    }
    let status = cmd
        .args(["-f", "h264"])
        .arg(&path)
        .status()
        .expect("ffmpeg (make deps)");
    assert!(status.success(), "ffmpeg failed");
    Bytes::from(std::fs::read(path).unwrap())
}

struct Stats {
    units: usize,
    fu_a: usize,
    stap_a: usize,
    max_slices: usize,
}

fn roundtrip(stream: &Bytes) -> Stats {
    let units = split_at_aud(stream);
    assert!(!units.is_empty());
    let mut params = ParameterSets::default();
    let packetizer = H264Packetizer::new(DEFAULT_MAX_PAYLOAD);
    let mut depacketizer = H264Depacketizer::new();
    let mut seq: u16 = 65_000;
    let mut stats = Stats {
        units: 0,
        fu_a: 0,
        stap_a: 0,
        max_slices: 0,
    };
    for (i, au) in units.iter().enumerate() {
        let nals = access_unit_nals(au, &mut params);
        assert!(
            nals.iter().all(|n| nal_type(n) != Some(nal::AUD)),
            "AUD must be dropped"
        );
        if nals.iter().any(|n| nal_type(n) == Some(nal::IDR)) {
            let types: Vec<_> = nals.iter().filter_map(|n| nal_type(n)).collect();
            let idr_at = types.iter().position(|&t| t == nal::IDR).unwrap();
            assert!(
                types[..idr_at].contains(&nal::SPS) && types[..idr_at].contains(&nal::PPS),
                "unit {i}"
            );
        }
        let slices = nals
            .iter()
            .filter(|n| matches!(nal_type(n), Some(nal::SLICE) | Some(nal::IDR)))
            .count();
        stats.max_slices = stats.max_slices.max(slices);

        let mut payloads = Vec::new();
        packetizer.packetize(&nals, &mut payloads);
        assert!(payloads
            .iter()
            .all(|p| p.payload.len() <= DEFAULT_MAX_PAYLOAD));
        assert_eq!(payloads.iter().filter(|p| p.marker).count(), 1);
        stats.fu_a += payloads
            .iter()
            .filter(|p| p.payload[0] & 0x1f == nal::FU_A)
            .count();
        stats.stap_a += payloads
            .iter()
            .filter(|p| p.payload[0] & 0x1f == nal::STAP_A)
            .count();

        let timestamp = (i as u32)
            .wrapping_mul(3000)
            .wrapping_add(u32::MAX - 10_000);
        let mut out = Vec::new();
        for p in &payloads {
            let (done, err) = depacketizer.push(seq, timestamp, p.marker, &p.payload);
            assert_eq!(err, None, "unit {i}");
            out.extend(done);
            seq = seq.wrapping_add(1);
        }
        assert_eq!(
            out.len(),
            1,
            "unit {i} did not come back as one access unit"
        );
        assert!(out[0].complete);
        assert_eq!(out[0].timestamp, timestamp);
        assert_eq!(out[0].nals, nals, "unit {i} changed on the way");
        assert_eq!(to_annexb(&out[0].nals), to_annexb(&nals));
        stats.units += 1;
    }
    stats
}

#[test]
fn x264_1080p_round_trips_with_fragmented_keyframes() {
    let stream = x264_stream("x264-1080p", "1920x1080", "keyint=10:bframes=0", None, 25);
    let s = roundtrip(&stream);
    assert_eq!(s.units, 25);
    assert!(
        s.fu_a > 50,
        "1080p keyframes must be fragmented, saw {} FU-A",
        s.fu_a
    );
    assert!(
        s.stap_a >= 3,
        "SPS+PPS(+SEI) of each keyframe go in a STAP-A, saw {}",
        s.stap_a
    );
}

#[test]
fn x264_zerolatency_two_slice_frames_round_trip() {
    let stream = x264_stream(
        "x264-slices",
        "1280x720",
        "keyint=15:slices=2",
        Some("zerolatency"),
        30,
    );
    let s = roundtrip(&stream);
    assert_eq!(s.units, 30);
    assert_eq!(s.max_slices, 2, "expected two slices per frame");
}

#[test]
fn x264_with_b_frames_round_trips() {
    let stream = x264_stream("x264-bframes", "640x360", "keyint=30:bframes=2", None, 40);
    assert_eq!(roundtrip(&stream).units, 40);
}
