//! Video: depacketizes H.264 with our media core, decodes it with openh264 (libavcodec for B-frame streams), and
//! finds the demo clip's white flashes.
use super::measure::record_reports;
use super::Shared;
use rtc_studio::media::h264::to_annexb;
use rtc_studio::media::h264_rtp::H264Depacketizer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Depacketizes on the track's task; decodes on a thread of its own (openh264's decoder is not `Send`).
pub(super) async fn receive_video(track: Arc<dyn TrackRemote>, stats: Shared) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>, bool)>(256);
    let decode_stats = stats.clone();
    std::thread::spawn(move || decode_video(rx, decode_stats));
    let mut depacketizer = H264Depacketizer::new();
    // Like a browser after loss, ask once for a keyframe a second into the session.
    let pli_track = track.clone();
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        let _ = pli_track.write_rtcp(vec![Box::new(pli)]).await;
    });
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                stats.lock().unwrap().rtp_packets += 1;
                let (units, _err) = depacketizer.push(
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.header.marker,
                    &p.payload,
                );
                for u in units {
                    if tx
                        .send((u.timestamp, to_annexb(&u.nals), u.complete))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => record_reports(&stats, &packets),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Reads one unsigned Exp-Golomb number (ue(v)) at bit `pos`.
fn read_ue(data: &[u8], pos: &mut usize) -> Option<u32> {
    let bit = |p: usize| data.get(p / 8).map(|b| (b >> (7 - p % 8)) & 1);
    let mut zeros = 0;
    while bit(*pos)? == 0 {
        zeros += 1;
        *pos += 1;
        if zeros > 31 {
            return None;
        }
    }
    *pos += 1;
    let mut value = 0u32;
    for _ in 0..zeros {
        value = (value << 1) | bit(*pos)? as u32;
        *pos += 1;
    }
    Some((1 << zeros) - 1 + value)
}

/// Whether an access unit has a B slice (slice_type 1 or 6 in the first slice header).
fn has_b_slice(annexb: &[u8]) -> bool {
    rtc_studio::media::h264::annexb_units(annexb).any(|unit| {
        matches!(unit[0] & 0x1f, 1 | 5) && {
            let mut pos = 8; // after the NAL header byte
            read_ue(unit, &mut pos).is_some()
                && matches!(read_ue(unit, &mut pos), Some(1) | Some(6))
        }
    })
}

/// Decodes a whole session with ffmpeg's libavcodec (for B-frame streams, which openh264 cannot decode) and
/// redoes the video measurements from its frames: (frames, errors, flash timestamps, first timestamp, last).
pub(super) fn decode_with_ffmpeg(
    units: &[(u32, Vec<u8>)],
    width: u32,
    height: u32,
) -> Option<(u64, u64, Vec<u32>, u32, u32)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("rtc-studio-receiver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let input = dir.join("session.h264");
    let mut f = std::fs::File::create(&input).ok()?;
    for (_, au) in units {
        f.write_all(au).ok()?;
    }
    drop(f);
    // Small grey frames are enough to measure brightness.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&input)
        .args([
            "-vf",
            "scale=64:36",
            "-pix_fmt",
            "gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("rror"))
        .count() as u64;
    let frames: Vec<&[u8]> = out.stdout.chunks_exact(64 * 36).collect();
    // Frames come out in presentation order, which is ascending RTP timestamp (unwrapped from the first unit).
    let first = units.first()?.0;
    let mut stamps: Vec<u32> = units.iter().map(|(ts, _)| ts.wrapping_sub(first)).collect();
    stamps.sort_unstable();
    let _ = (width, height);
    let mut flashes = Vec::new();
    let mut was_flash = false;
    for (frame, rel) in frames.iter().zip(&stamps) {
        let mean = frame.iter().map(|&v| v as u64).sum::<u64>() / frame.len() as u64;
        let flash = mean > 200;
        if flash && !was_flash {
            flashes.push(first.wrapping_add(*rel));
        }
        was_flash = flash;
    }
    let n = frames.len().min(stamps.len());
    (n > 0).then(|| {
        (
            n as u64,
            errors,
            flashes,
            first.wrapping_add(stamps[0]),
            first.wrapping_add(stamps[n - 1]),
        )
    })
}

fn decode_video(rx: std::sync::mpsc::Receiver<(u32, Vec<u8>, bool)>, stats: Shared) {
    use openh264::formats::YUVSource;
    let Ok(mut decoder) = openh264::decoder::Decoder::new() else {
        stats.lock().unwrap().decode_errors += 1;
        return;
    };
    let mut was_flash = false;
    while let Ok((ts, annexb, complete)) = rx.recv() {
        {
            let mut s = stats.lock().unwrap();
            if !complete {
                s.incomplete_units += 1;
            }
            if has_b_slice(&annexb) {
                s.b_slices += 1;
            }
            s.units.push((ts, annexb.clone()));
        }
        match decoder.decode(&annexb) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                let (stride, _, _) = yuv.strides();
                let y = yuv.y();
                // Mean luma over a sparse grid.
                let (mut sum, mut n) = (0u64, 0u64);
                for row in (0..h).step_by(8) {
                    for col in (0..w).step_by(8) {
                        sum += y[row * stride + col] as u64;
                        n += 1;
                    }
                }
                let flash = n > 0 && sum / n > 200;
                let mut s = stats.lock().unwrap();
                s.video_frames_decoded += 1;
                s.width = w as u32;
                s.height = h as u32;
                if s.first_frame_at.is_none() {
                    s.first_frame_at = Some(Instant::now());
                    s.first_frame_wall = Some(std::time::SystemTime::now());
                    s.first_frame_ts = Some(ts);
                }
                s.last_frame_ts = Some(ts);
                if flash && !was_flash {
                    s.flashes.push(ts);
                }
                was_flash = flash;
            }
            Ok(None) => {}
            Err(_) => stats.lock().unwrap().decode_errors += 1,
        }
    }
}
