//! Video: depacketizes H.264, HEVC or AV1 with our media core; decodes H.264 with openh264 as it arrives
//! (libavcodec for B-frame streams, after the session), HEVC and AV1 with libavcodec after the session; finds the
//! demo clip's white flashes.
use super::jitter::JitterBuffer;
use super::measure::record_reports;
use super::Shared;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc_studio::media::av1::{self, obu, obu_type};
use rtc_studio::media::av1_rtp::Av1Depacketizer;
use rtc_studio::media::h264::to_annexb;
use rtc_studio::media::h264_rtp::{AccessUnit, H264Depacketizer};
use rtc_studio::media::hevc_rtp::{self, HevcDepacketizer};
use rtc_studio::media::video::VideoCodec;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// What the decode thread gets: an access unit (RTP timestamp, Annex-B, whether all its packets arrived), or word
/// that packets were given up on (the reference chain is broken until the next IDR).
enum ToDecoder {
    Unit(Unit),
    ChainBroken,
}

/// A keyframe is asked for (PLI) at most this often after losses the jitter buffer gave up on.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// The RTCP the receiver sends about the video stream: NACKs and keyframe requests.
struct Feedback {
    track: Arc<dyn TrackRemote>,
    ssrc: u32,
    last_pli: Option<Instant>,
}

impl Feedback {
    async fn nack(&self, seqs: &[u16]) {
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        };
        let _ = self.track.write_rtcp(vec![Box::new(nack)]).await;
    }

    /// Asks for a keyframe unless one was asked for within [`PLI_INTERVAL`]; whether it did.
    async fn pli(&mut self, now: Instant) -> bool {
        if self.last_pli.is_some_and(|t| now < t + PLI_INTERVAL) {
            return false;
        }
        self.last_pli = Some(now);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: self.ssrc,
        };
        let _ = self.track.write_rtcp(vec![Box::new(pli)]).await;
        true
    }
}

/// The codec's depacketizer.
enum Depacketizer {
    H264(H264Depacketizer),
    Hevc(HevcDepacketizer),
    Av1(Av1Depacketizer),
}

/// A unit as a decoder takes it: RTP timestamp, bytes (Annex-B; AV1: OBUs with their sizes), whether all its
/// packets arrived, and whether a decoder can start at it (a keyframe with its parameter sets or sequence header).
struct Unit {
    timestamp: u32,
    data: Vec<u8>,
    complete: bool,
    starts_decoding: bool,
}

impl Depacketizer {
    fn new(codec: VideoCodec) -> Depacketizer {
        match codec {
            VideoCodec::H264 => Depacketizer::H264(H264Depacketizer::new()),
            VideoCodec::Hevc => Depacketizer::Hevc(HevcDepacketizer::new()),
            VideoCodec::Av1 => Depacketizer::Av1(Av1Depacketizer::new()),
        }
    }

    fn push(&mut self, p: &rtc::rtp::Packet) -> Vec<Unit> {
        let h = &p.header;
        let nal_unit = |u: AccessUnit, kind: fn(&[u8]) -> Option<u8>, needed: &[&[u8]]| {
            let has = |types: &[u8]| {
                u.nals
                    .iter()
                    .any(|n| kind(n).is_some_and(|t| types.contains(&t)))
            };
            Unit {
                timestamp: u.timestamp,
                starts_decoding: u.complete && needed.iter().all(|types| has(types)),
                data: to_annexb(&u.nals),
                complete: u.complete,
            }
        };
        match self {
            // IDR, SPS, PPS: when the stream's very first packet is lost — the SPS and PPS ahead of the first
            // keyframe — its slices alone cannot be decoded.
            Depacketizer::H264(d) => (d
                .push(h.sequence_number, h.timestamp, h.marker, &p.payload)
                .0)
                .into_iter()
                .map(|u| nal_unit(u, rtc_studio::media::h264::nal_type, &[&[5], &[7], &[8]]))
                .collect(),
            // An IRAP picture with VPS, SPS and PPS.
            Depacketizer::Hevc(d) => (d
                .push(h.sequence_number, h.timestamp, h.marker, &p.payload)
                .0)
                .into_iter()
                .map(|u| {
                    nal_unit(
                        u,
                        hevc_rtp::nal_type,
                        &[&[16, 17, 18, 19, 20, 21], &[32], &[33], &[34]],
                    )
                })
                .collect(),
            // A temporal unit that starts a coded video sequence (N), with its sequence header.
            Depacketizer::Av1(d) => (d
                .push(h.sequence_number, h.timestamp, h.marker, &p.payload)
                .0)
                .into_iter()
                .map(|u| Unit {
                    timestamp: u.timestamp,
                    starts_decoding: u.complete
                        && u.starts_sequence
                        && (u.elements.iter()).any(|e| obu_type(e[0]) == obu::SEQUENCE_HEADER),
                    data: av1::temporal_unit(&u.elements),
                    complete: u.complete,
                })
                .collect(),
        }
    }
}

/// One received video stream (a simulcast layer, or the only one): its jitter buffer, depacketizer, feedback and
/// decode thread, and where its measurements go.
struct Lane {
    stats: Shared,
    depacketizer: Depacketizer,
    jitter: JitterBuffer<rtc::rtp::Packet>,
    feedback: Feedback,
    tx: std::sync::mpsc::SyncSender<ToDecoder>,
    /// A keyframe has reached the decoder: until one has, nothing else is decodable and is not handed on (the
    /// stream's first packets may be lost, and no receiver can ask for packets before the first it saw).
    keyframe_seen: bool,
    /// A keyframe is to be asked for: the stream began without one.
    want_keyframe: bool,
}

impl Lane {
    fn new(track: Arc<dyn TrackRemote>, ssrc: u32, stats: Shared) -> Lane {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToDecoder>(256);
        let decode_stats = stats.clone();
        let codec = stats.lock().unwrap().video_codec;
        match codec {
            VideoCodec::H264 => std::thread::spawn(move || decode_video(rx, decode_stats)),
            _ => std::thread::spawn(move || keep_for_libavcodec(rx, decode_stats)),
        };
        Lane {
            stats,
            depacketizer: Depacketizer::new(codec),
            jitter: JitterBuffer::default(),
            feedback: Feedback {
                track,
                ssrc,
                last_pli: None,
            },
            tx,
            keyframe_seen: false,
            want_keyframe: false,
        }
    }

    /// Hands released packets to the decoder; false once it is gone.
    fn depacketize(&mut self, packets: Vec<rtc::rtp::Packet>) -> bool {
        for p in packets {
            for u in self.depacketizer.push(&p) {
                if !self.keyframe_seen {
                    if !u.starts_decoding {
                        // As a browser does: nothing to decode before a keyframe; ask for one.
                        self.want_keyframe = true;
                        continue;
                    }
                    self.keyframe_seen = true;
                }
                if self.tx.send(ToDecoder::Unit(u)).is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn arrived(&mut self, p: rtc::rtp::Packet, now: Instant) -> bool {
        {
            let mut s = self.stats.lock().unwrap();
            s.rtp_packets += 1;
            s.video_arrivals.push((now, p.payload.len() + 12));
            if s.video_timestamps.last() != Some(&p.header.timestamp) {
                s.video_timestamps.push(p.header.timestamp);
            }
        }
        let released = self.jitter.push(p.header.sequence_number, p, now);
        self.depacketize(released)
    }

    async fn pli(&mut self, now: Instant) {
        if self.feedback.pli(now).await {
            self.stats.lock().unwrap().pli_sent(now);
        }
    }

    /// What time alone decides: NACKs, giving up (and then a keyframe request); false once the decoder is gone.
    async fn service(&mut self, now: Instant) -> bool {
        let due = self.jitter.poll(now);
        if !due.nack.is_empty() {
            self.feedback.nack(&due.nack).await;
        }
        if due.gave_up && self.tx.send(ToDecoder::ChainBroken).is_err() {
            return false;
        }
        if !self.depacketize(due.released) {
            return false;
        }
        if due.gave_up || std::mem::take(&mut self.want_keyframe) {
            self.pli(now).await;
        }
        let mut s = self.stats.lock().unwrap();
        s.jitter = self.jitter.stats;
        s.rtt_ms = self.jitter.rtt().as_secs_f64() * 1000.0;
        true
    }
}

/// Depacketizes on the track's task, after a jitter buffer per stream (which NACKs gaps and waits for their
/// repair); decodes on a thread per stream (openh264's decoder is not `Send`). Simulcast layers arrive on the one
/// track: each SSRC is a lane of its own, measured into `stats` for the full picture and into a layer's own
/// statistics for the others (by RID, see [`super::Stats::layer`]).
/// `pli_every`: after the first keyframe request (a second in), ask again this often.
pub(super) async fn receive_video(
    track: Arc<dyn TrackRemote>,
    stats: Shared,
    pli_every: Option<Duration>,
) {
    let mut lanes: Vec<(u32, Lane)> = Vec::new();
    // Like a browser after loss, ask once for a keyframe a second into the session (and then every `pli_every`).
    let mut next_pli = Some(tokio::time::Instant::now() + Duration::from_secs(1));
    loop {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let wake = (lanes.iter())
            .filter_map(|(_, l)| l.jitter.next_due())
            .min()
            .map_or(far, tokio::time::Instant::from_std);
        let wake = next_pli.map_or(wake, |t| wake.min(t));
        // None: a timer fired (NACK retry, give-up, a scheduled PLI).
        let event = tokio::select! {
            e = track.poll() => Some(e),
            () = tokio::time::sleep_until(wake) => None,
        };
        let now = Instant::now();
        match event {
            None => {}
            Some(Some(TrackRemoteEvent::OnRtpPacket(p))) => {
                let ssrc = p.header.ssrc;
                let at = match lanes.iter().position(|(s, _)| *s == ssrc) {
                    Some(at) => at,
                    None => {
                        let rid = track.rid(ssrc).await.unwrap_or_default();
                        let lane_stats = super::Stats::layer(&stats, &rid, ssrc);
                        lanes.push((ssrc, Lane::new(track.clone(), ssrc, lane_stats)));
                        lanes.len() - 1
                    }
                };
                if !lanes[at].1.arrived(p, now) {
                    return;
                }
            }
            Some(Some(TrackRemoteEvent::OnRtcpPacket(packets))) => record_reports(&stats, &packets),
            Some(Some(TrackRemoteEvent::OnEnded) | None) => break,
            Some(Some(_)) => {}
        }
        if next_pli.is_some_and(|t| tokio::time::Instant::now() >= t) {
            next_pli = pli_every.map(|every| tokio::time::Instant::now() + every);
            for (_, lane) in &mut lanes {
                lane.feedback.last_pli = None;
                lane.pli(now).await;
            }
        }
        for (_, lane) in &mut lanes {
            if !lane.service(now).await {
                return;
            }
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

/// What libavcodec made of a whole session.
pub(super) struct Decoded {
    pub frames: u64,
    pub errors: u64,
    /// RTP timestamps of flash onsets.
    pub flashes: Vec<u32>,
    /// The first and last frame's RTP timestamps.
    pub first: u32,
    pub last: u32,
    pub size: Option<(u32, u32)>,
}

/// Decodes a whole session with ffmpeg's libavcodec — B-frame H.264 streams (which openh264 cannot decode), HEVC,
/// AV1 — and redoes the video measurements from its frames.
pub(super) fn decode_with_ffmpeg(codec: VideoCodec, units: &[(u32, Vec<u8>)]) -> Option<Decoded> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!(
        "rtc-studio-receiver-{}-{}",
        std::process::id(),
        codec.obs_name()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let input = dir.join("session");
    let mut f = std::fs::File::create(&input).ok()?;
    for (_, au) in units {
        f.write_all(au).ok()?;
    }
    drop(f);
    // AV1 as its low overhead bitstream format (temporal units, each after a temporal delimiter).
    let format = match codec {
        VideoCodec::H264 => "h264",
        VideoCodec::Hevc => "hevc",
        VideoCodec::Av1 => "obu",
    };
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-f", format, "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(&input)
        .output()
        .ok();
    let size = probe.and_then(|p| {
        let text = String::from_utf8_lossy(&p.stdout).trim().to_string();
        let (w, h) = text.split_once(',')?;
        Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
    });
    // Small grey frames are enough to measure brightness.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", format, "-i"])
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
    (n > 0).then(|| Decoded {
        frames: n as u64,
        errors,
        flashes,
        first: first.wrapping_add(stamps[0]),
        last: first.wrapping_add(stamps[n - 1]),
        size,
    })
}

/// HEVC and AV1: the units are kept, with what can be known as they arrive (keyframes, incomplete units, when the
/// first decodable one came); libavcodec decodes the session at its end ([`decode_with_ffmpeg`]).
fn keep_for_libavcodec(rx: std::sync::mpsc::Receiver<ToDecoder>, stats: Shared) {
    while let Ok(message) = rx.recv() {
        let ToDecoder::Unit(u) = message else {
            continue;
        };
        let mut s = stats.lock().unwrap();
        if u.starts_decoding {
            s.keyframes += 1;
            if let Some(asked) = s.pli_at.take() {
                s.keyframe_waits_ms
                    .push(asked.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if !u.complete {
            s.incomplete_units += 1;
        }
        if s.first_frame_at.is_none() {
            s.first_frame_at = Some(Instant::now());
            s.first_frame_wall = Some(std::time::SystemTime::now());
        }
        s.units.push((u.timestamp, u.data));
    }
}

/// Decoded-frame timing for WebRTC's freeze measure: a pause longer than max(3 frames, 1 frame + 150 ms).
#[derive(Default)]
struct FreezeMeter {
    last: Option<(Instant, u32)>,
    /// Mean frame duration (from RTP timestamps), seconds.
    frame_s: f64,
}

impl FreezeMeter {
    /// A frame (RTP timestamp `ts`) was decoded now; returns the pause before it if it was a freeze.
    fn decoded(&mut self, ts: u32, now: Instant) -> Option<Duration> {
        let last = self.last.replace((now, ts));
        let (at, last_ts) = last?;
        let step = f64::from(ts.wrapping_sub(last_ts)) / 90_000.0;
        if step > 0.0 && step < 1.0 {
            self.frame_s = if self.frame_s == 0.0 {
                step
            } else {
                self.frame_s * 0.9 + step * 0.1
            };
        }
        let pause = now.duration_since(at);
        let limit = (3.0 * self.frame_s).max(self.frame_s + 0.150);
        (self.frame_s > 0.0 && pause.as_secs_f64() > limit).then_some(pause)
    }
}

fn decode_video(rx: std::sync::mpsc::Receiver<ToDecoder>, stats: Shared) {
    use openh264::formats::YUVSource;
    let Ok(mut decoder) = openh264::decoder::Decoder::new() else {
        stats.lock().unwrap().decode_errors += 1;
        return;
    };
    let mut was_flash = false;
    let mut intact = false;
    let mut freezes = FreezeMeter::default();
    while let Ok(message) = rx.recv() {
        let (ts, annexb, complete) = match message {
            ToDecoder::Unit(u) => (u.timestamp, u.data, u.complete),
            ToDecoder::ChainBroken => {
                intact = false;
                continue;
            }
        };
        let idr = rtc_studio::media::h264::annexb_units(&annexb).any(|u| {
            rtc_studio::media::h264::nal_type(u) == Some(rtc_studio::media::h264::nal::IDR)
        });
        intact = complete && (intact || idr);
        {
            let mut s = stats.lock().unwrap();
            if idr {
                s.keyframes += 1;
                if let Some(asked) = s.pli_at.take() {
                    s.keyframe_waits_ms
                        .push(asked.elapsed().as_secs_f64() * 1000.0);
                }
            }
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
                let now = Instant::now();
                let mut s = stats.lock().unwrap();
                s.video_frames_decoded += 1;
                s.frames_intact += u64::from(intact);
                if intact {
                    s.intact_timestamps.push(ts);
                }
                if let Some(pause) = freezes.decoded(ts, now) {
                    s.freezes += 1;
                    s.freeze_ms += pause.as_secs_f64() * 1000.0;
                }
                s.width = w as u32;
                s.height = h as u32;
                if s.first_frame_at.is_none() {
                    s.first_frame_at = Some(now);
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
