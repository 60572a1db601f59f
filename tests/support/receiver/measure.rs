//! Measurements over what arrived: audio/video offset of the demo clip's content through the sender reports'
//! NTP↔RTP mappings, as a browser lines them up; the per-second timeline of bitrate and intact frames.
use super::Stats;
use rtc::rtcp::sender_report::SenderReport;
use rtc_studio::media::clock::unix_usec_from_ntp;

pub(super) fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The wall-clock time (µs) of RTP timestamp `ts` on `ssrc`, through the sender report nearest in RTP time.
pub(super) fn wall_usec(s: &Stats, ssrc: u32, ts: u32, rate: f64) -> Option<f64> {
    let reports = s.reports.get(&ssrc)?;
    let (ntp, rtp) = reports
        .iter()
        .min_by_key(|(_, rtp)| (ts.wrapping_sub(*rtp) as i32).unsigned_abs())?;
    let delta = ts.wrapping_sub(*rtp) as i32 as f64;
    Some(unix_usec_from_ntp(*ntp) as f64 + delta * 1e6 / rate)
}

/// Mean (beep − flash) in ms over flashes that have a beep within 500 ms, and how many such pairs there were.
pub(super) fn av_offset(s: &Stats) -> (Option<f64>, usize) {
    let (Some(v), Some(a)) = (s.video_ssrc, s.audio_ssrc) else {
        return (None, 0);
    };
    let beeps: Vec<f64> = s
        .beeps
        .iter()
        .filter_map(|&ts| wall_usec(s, a, ts, 48_000.0))
        .collect();
    let mut offsets = Vec::new();
    for &f in &s.flashes {
        let Some(fw) = wall_usec(s, v, f, 90_000.0) else {
            continue;
        };
        if let Some(b) = beeps
            .iter()
            .min_by(|x, y| (*x - fw).abs().total_cmp(&(*y - fw).abs()))
        {
            if (b - fw).abs() < 500_000.0 {
                offsets.push((b - fw) / 1000.0);
            }
        }
    }
    if offsets.is_empty() {
        (None, 0)
    } else {
        (
            Some(offsets.iter().sum::<f64>() / offsets.len() as f64),
            offsets.len(),
        )
    }
}

pub(super) fn record_reports(stats: &super::Shared, packets: &[Box<dyn rtc::rtcp::Packet>]) {
    let mut s = stats.lock().unwrap();
    for p in packets {
        if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
            s.reports
                .entry(sr.ssrc)
                .or_default()
                .push((sr.ntp_time, sr.rtp_time));
        }
    }
}

/// Per second: the video bitrate that arrived (kbit/s, by arrival time from the first video packet), and of the
/// frames the encoder made in that second of media time (by RTP timestamp from the first seen; the frame interval
/// is the gap between timestamps at the 10th percentile: a browser stamps frames by capture time, and frames a
/// sender drops make longer gaps), how many were decoded intact. Frames the sender dropped whole count
/// as made and not intact.
pub(super) fn timeline(s: &Stats) -> serde_json::Value {
    let (Some(&(start, _)), Some(&ts0)) = (s.video_arrivals.first(), s.video_timestamps.first())
    else {
        return serde_json::json!({"kbps": [], "intact": [], "expected_per_second": 0});
    };
    let mut kbps: Vec<f64> = Vec::new();
    for (at, bytes) in &s.video_arrivals {
        let i = at.duration_since(start).as_secs() as usize;
        if kbps.len() <= i {
            kbps.resize(i + 1, 0.0);
        }
        kbps[i] += *bytes as f64 * 8.0 / 1000.0;
    }
    let mut gaps: Vec<u32> = s
        .video_timestamps
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .filter(|d| *d > 0 && *d < 90_000)
        .collect();
    gaps.sort_unstable();
    let interval = gaps.get(gaps.len() / 10).copied().unwrap_or(3000);
    let mut intact: Vec<u64> = Vec::new();
    for ts in &s.intact_timestamps {
        let i = (ts.wrapping_sub(ts0) / 90_000) as usize;
        if i < 100_000 {
            if intact.len() <= i {
                intact.resize(i + 1, 0);
            }
            intact[i] += 1;
        }
    }
    serde_json::json!({
        "kbps": kbps.iter().map(|k| round1(*k)).collect::<Vec<_>>(),
        "intact": intact,
        "expected_per_second": round1(90_000.0 / f64::from(interval)),
    })
}
