//! Measurements over what arrived: audio/video offset of the demo clip's content through the sender reports'
//! NTP↔RTP mappings, as a browser lines them up.
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
