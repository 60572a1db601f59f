//! Audio: decodes Opus with libopus and finds the demo clip's beeps.
use super::measure::record_reports;
use super::Shared;
use std::sync::Arc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

pub(super) async fn receive_audio(track: Arc<dyn TrackRemote>, stats: Shared) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(512);
    let decode_stats = stats.clone();
    std::thread::spawn(move || decode_audio(rx, decode_stats));
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                stats.lock().unwrap().rtp_packets += 1;
                if tx.send((p.header.timestamp, p.payload.to_vec())).is_err() {
                    return;
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => record_reports(&stats, &packets),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

fn decode_audio(rx: std::sync::mpsc::Receiver<(u32, Vec<u8>)>, stats: Shared) {
    let Ok(mut decoder) = opus::Decoder::new(48_000, opus::Channels::Stereo) else {
        stats.lock().unwrap().audio_decode_errors += 1;
        return;
    };
    let mut pcm = vec![0i16; 5760 * 2];
    // Samples of quiet since the last loud one: a beep starts after ≥ 200 ms of quiet.
    let mut quiet: u64 = u64::MAX / 2;
    while let Ok((ts, payload)) = rx.recv() {
        match decoder.decode(&payload, &mut pcm, false) {
            Ok(samples) => {
                let mut s = stats.lock().unwrap();
                s.audio_packets += 1;
                for i in 0..samples {
                    let level = pcm[2 * i].unsigned_abs().max(pcm[2 * i + 1].unsigned_abs());
                    if level > 1500 {
                        if quiet >= 9_600 {
                            s.beeps.push(ts.wrapping_add(i as u32));
                        }
                        quiet = 0;
                    } else {
                        quiet += 1;
                    }
                }
            }
            Err(_) => stats.lock().unwrap().audio_decode_errors += 1,
        }
    }
}
