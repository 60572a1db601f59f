//! Pre-encoded media through the plugin's stream engine — the bounded hand-off queue and worker loop that
//! `encoded_packet` feeds in OBS, the WebRTC session behind it — handed over at the pace encoders would: the
//! replay benchmark's publisher, and the tests of codecs OBS has no encoder for here (HEVC from FFmpeg's x265).
use bytes::Bytes;
use rtc_studio::media::packet::{EncodedPacket, MediaKind};
use rtc_studio::media::video::VideoCodec;
use rtc_studio::publish::{SinkReport, WhipSink};
use rtc_studio::session::RateConfig;
use rtc_studio::signal::janus::JanusRoom;
use rtc_studio::stream::{PacketQueue, PacketSink, StreamStats};
use rtc_studio::transport::driver::{FixedEncoder, LayerEncoder, PublishConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a replay did.
pub struct Replayed {
    /// Start → connected.
    pub connect: Duration,
    pub video_frames: u64,
    pub audio_packets: u64,
    /// Video units whose last RTP packet left when the replay ended, and video frames the session dropped.
    pub video_sent: u64,
    pub video_dropped: i32,
    pub report: SinkReport,
    /// Why the stream ended early, if it did.
    pub failure: Option<String>,
    /// CPU time of the stream thread while it streamed: the engine's own work (the session, its runtime and the
    /// WebRTC stack run there), without connecting and without the thread that reads the media.
    pub stream_thread_cpu: Duration,
    /// How often the stream thread went to sleep and was woken while it streamed (its voluntary context
    /// switches).
    pub stream_thread_wake_ups: u64,
    sink: WhipSink,
}

/// CPU time the calling thread (`libc::CLOCK_THREAD_CPUTIME_ID`) or process (`libc::CLOCK_PROCESS_CPUTIME_ID`) has
/// used, to the nanosecond (/proc counts in 10 ms ticks).
pub fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; both CPU-time clocks exist on Linux.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn thread_cpu_time() -> Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The calling thread's voluntary context switches so far: how often it slept and was woken.
fn thread_wake_ups() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    super::procfs::status_field(&status, "voluntary_ctxt_switches:")
}

impl Replayed {
    /// Ends the session (the WHIP DELETE); what was measured before stays apart from the teardown. Returns the
    /// video units sent in all (those still paced out when the replay ended leave while it closes).
    pub fn close(mut self) -> u64 {
        self.sink.close();
        self.sink
            .sent_in_all()
            .map_or(self.video_sent, |(_, video, _)| video)
    }
}

/// Connects with `config`, then hands over `video` (units at 30 fps, each with whether it is a keyframe) and
/// `audio` (Opus packets of 20 ms) at real-time pace for at most `seconds`; [`Replayed::close`] ends the
/// session. Err: the connect failed.
pub fn replay(
    config: PublishConfig,
    video: impl Iterator<Item = (Bytes, bool)>,
    audio: impl Iterator<Item = Bytes>,
    seconds: f64,
) -> Result<Replayed, String> {
    let go = Instant::now();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let sink =
        WhipSink::connect(config, Arc::new(FixedEncoder), stop.clone()).map_err(|e| e.message)?;
    let connect = go.elapsed();
    let h = hand_over(sink, video, audio, seconds);
    let report = h.sink.report();
    Ok(Replayed {
        sink: h.sink,
        video_sent: h.video_sent,
        video_dropped: h.video_dropped,
        connect,
        video_frames: h.video_frames,
        audio_packets: h.audio_packets,
        report,
        failure: h.failure.map(|f| f.message),
        stream_thread_cpu: h.stream_thread_cpu,
        stream_thread_wake_ups: h.stream_thread_wake_ups,
    })
}

/// What [`hand_over`] did, and the sink back.
pub struct HandedOver<S> {
    pub sink: S,
    pub failure: Option<rtc_studio::signal::Failure>,
    pub video_frames: u64,
    pub audio_packets: u64,
    /// Video units the sink counted as sent, and video frames it dropped.
    pub video_sent: u64,
    pub video_dropped: i32,
    /// CPU time of the thread that ran the sink, and how often it went to sleep and was woken (see [`Replayed`]).
    pub stream_thread_cpu: Duration,
    pub stream_thread_wake_ups: u64,
}

/// Hands `video` (units at 30 fps, each with whether it is a keyframe) and `audio` (Opus packets of 20 ms) to
/// `sink` at real-time pace for at most `seconds`, through the bounded queue and on a worker thread of its own,
/// as the output does in OBS.
pub fn hand_over<S: PacketSink + 'static>(
    mut sink: S,
    video: impl Iterator<Item = (Bytes, bool)>,
    audio: impl Iterator<Item = Bytes>,
    seconds: f64,
) -> HandedOver<S> {
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let stats = Arc::new(StreamStats::default());
    let (queue, mut rx) = PacketQueue::new(256, stats.clone());
    let worker_stats = stats.clone();
    let worker = std::thread::spawn(move || {
        let (cpu0, woken0) = (thread_cpu_time(), thread_wake_ups());
        let failure = sink.run(&mut rx, &worker_stats, &stop);
        let woken = thread_wake_ups() - woken0;
        (sink, failure, thread_cpu_time() - cpu0, woken)
    });
    let start = Instant::now();
    let (mut vi, mut ai) = (0u64, 0u64);
    let (mut video, mut audio) = (video.peekable(), audio.peekable());
    loop {
        let vt = Duration::from_secs_f64(vi as f64 / 30.0);
        let at = Duration::from_secs_f64(ai as f64 * 0.02);
        let (next_is_video, t) = match (video.peek().is_some(), audio.peek().is_some()) {
            (true, true) => (vt <= at, vt.min(at)),
            (true, false) => (true, vt),
            (false, true) => (false, at),
            (false, false) => break,
        };
        if t.as_secs_f64() >= seconds {
            break;
        }
        if let Some(wait) = (start + t).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now = rtc_studio::obs::clock_usec();
        let (kind, data, pts, tb, keyframe) = if next_is_video {
            let (unit, key) = video.next().unwrap();
            vi += 1;
            (MediaKind::Video, unit, vi as i64 - 1, 30, key)
        } else {
            ai += 1;
            let packet = audio.next().unwrap();
            (
                MediaKind::Audio,
                packet,
                (ai as i64 - 1) * 960,
                48_000,
                false,
            )
        };
        queue.push(EncodedPacket {
            kind,
            data,
            pts,
            dts: pts,
            timebase_num: 1,
            timebase_den: tb,
            keyframe,
            dts_usec: t.as_micros() as i64,
            sys_dts_usec: now,
            track: 0,
            layer: 0,
            handoff_usec: now,
        });
    }
    queue.close();
    let (sink, failure, stream_thread_cpu, stream_thread_wake_ups) = worker.join().unwrap();
    use std::sync::atomic::Ordering::Relaxed;
    HandedOver {
        sink,
        failure,
        video_frames: vi,
        audio_packets: ai,
        video_sent: stats.video_packets.load(Relaxed),
        video_dropped: stats.dropped_frames.load(Relaxed),
        stream_thread_cpu,
        stream_thread_wake_ups,
    }
}

/// H.264 access units (Annex-B), each with whether it is a keyframe (holds an IDR slice).
pub fn keyframes_marked(units: impl Iterator<Item = Bytes>) -> impl Iterator<Item = (Bytes, bool)> {
    use rtc_studio::media::h264::{annexb_units, nal, nal_type};
    units.map(|u| {
        let key = annexb_units(&u).any(|n| nal_type(n) == Some(nal::IDR));
        (u, key)
    })
}

/// The Opus packets of an Ogg file (RFC 7845), after OpusHead and OpusTags; returns (OpusHead, packets).
pub fn ogg_opus(path: &Path) -> (Bytes, Vec<Bytes>) {
    let data = std::fs::read(path).unwrap();
    let (mut packets, mut current, mut i) = (Vec::new(), Vec::new(), 0);
    while i + 27 <= data.len() && &data[i..i + 4] == b"OggS" {
        let segments = data[i + 26] as usize;
        let table = &data[i + 27..i + 27 + segments];
        let mut at = i + 27 + segments;
        for &len in table {
            current.extend_from_slice(&data[at..at + len as usize]);
            at += len as usize;
            if len < 255 {
                packets.push(Bytes::from(std::mem::take(&mut current)));
            }
        }
        i = at;
    }
    assert!(
        packets.len() > 2 && packets[0].starts_with(b"OpusHead"),
        "not an Ogg Opus file"
    );
    let head = packets.remove(0);
    packets.remove(0); // OpusTags
    (head, packets)
}

/// `clip` (the flash/beep demo clip) re-encoded once, next to it as `name`: its video at 30 fps with `video`
/// (FFmpeg's encoder options and output format) and its audio as Ogg Opus (96 kbit/s, 20 ms packets). Returns
/// (video file, Ogg file).
fn encoded(clip: &Path, name: &str, video: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (out, ogg) = (
        clip.with_extension(name),
        clip.with_extension(format!("{name}.ogg")),
    );
    if !out.exists() || !ogg.exists() {
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(clip)
            .args(["-r", "30", "-an"])
            .args(video)
            .arg(&out)
            .args([
                "-vn",
                "-c:a",
                "libopus",
                "-b:a",
                "96k",
                "-frame_duration",
                "20",
            ])
            .arg(&ogg)
            .status()
            .expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not make {}", out.display());
    }
    (out, ogg)
}

/// `clip` as HEVC from FFmpeg's x265 — no B-frames, four slices per picture (an IRAP picture's slices larger than
/// a packet, so fragmented), an access unit delimiter and the parameter sets before each IRAP picture, a keyframe
/// every second — and its audio as Ogg Opus.
pub fn x265_clip(clip: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    encoded(
        clip,
        "hevc",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-b:v",
            "1500k",
            "-x265-params",
            "bframes=0:slices=4:keyint=30:aud=1:repeat-headers=1:log-level=error",
            "-f",
            "hevc",
        ],
    )
}

/// The access units of an HEVC Annex-B stream written with delimiters (`aud=1`), each with whether it holds an
/// IRAP picture.
pub fn hevc_access_units(stream: &Bytes) -> Vec<(Bytes, bool)> {
    use rtc_studio::media::hevc_rtp::{nal, nal_type};
    let mut units: Vec<(usize, usize, bool)> = Vec::new();
    for unit in rtc_studio::media::h264::annexb_units(stream) {
        let at = unit.as_ptr() as usize - stream.as_ptr() as usize;
        let kind = nal_type(unit).unwrap_or(0);
        match units.last_mut() {
            Some(last) if kind != nal::AUD => {
                last.1 = at + unit.len();
                last.2 |= (nal::IRAP_FIRST..=nal::IRAP_LAST).contains(&kind);
            }
            _ => units.push((at.saturating_sub(4), at + unit.len(), false)),
        }
    }
    (units.into_iter())
        .map(|(from, to, irap)| (stream.slice(from..to), irap))
        .collect()
}

/// Pre-encoded video units (each with whether it is a keyframe), the encoder's header data, and Opus.
pub struct Media {
    pub codec: VideoCodec,
    pub units: Vec<(Bytes, bool)>,
    pub header: Bytes,
    pub opus_head: Bytes,
    pub audio: Vec<Bytes>,
}

impl Media {
    /// `clip` (the flash/beep clip) as x265 HEVC ([`x265_clip`]); the header data is the first access unit's
    /// VPS, SPS and PPS, as an OBS HEVC encoder gives them.
    pub fn x265(clip: &Path) -> Media {
        use rtc_studio::media::hevc_rtp::{nal, nal_type};
        let (hevc, ogg) = x265_clip(clip);
        let stream = Bytes::from(std::fs::read(&hevc).unwrap());
        let units = hevc_access_units(&stream);
        let first = &units[0].0;
        let sets: Vec<Bytes> = rtc_studio::media::h264::annexb_units(first)
            .filter(|u| nal_type(u).is_some_and(|t| (nal::VPS..=nal::PPS).contains(&t)))
            .map(|u| first.slice_ref(u))
            .collect();
        assert_eq!(sets.len(), 3, "no VPS/SPS/PPS in the first access unit");
        let (opus_head, audio) = ogg_opus(&ogg);
        Media {
            codec: VideoCodec::Hevc,
            units,
            header: Bytes::from(rtc_studio::media::h264::to_annexb(&sets)),
            opus_head,
            audio,
        }
    }

    /// `clip` as x264 H.264 (Annex B with delimiters, no B-frames, a keyframe every second, Main profile) and
    /// its audio as Ogg Opus; the header data is the first access unit's SPS and PPS.
    pub fn x264(clip: &Path) -> Media {
        use rtc_studio::media::h264::{annexb_units, nal, nal_type, split_at_aud, to_annexb};
        let (h264, ogg) = encoded(
            clip,
            "x264.h264",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "main",
                "-bf",
                "0",
                "-g",
                "30",
                "-b:v",
                "1500k",
                "-x264-params",
                "aud=1",
                "-f",
                "h264",
            ],
        );
        let stream = Bytes::from(std::fs::read(&h264).unwrap());
        let units: Vec<(Bytes, bool)> =
            keyframes_marked(split_at_aud(&stream).into_iter().filter(|u| !u.is_empty())).collect();
        let first = &units[0].0;
        let sets: Vec<Bytes> = annexb_units(first)
            .filter(|n| matches!(nal_type(n), Some(nal::SPS) | Some(nal::PPS)))
            .map(|n| first.slice_ref(n))
            .collect();
        let (opus_head, audio) = ogg_opus(&ogg);
        Media {
            codec: VideoCodec::H264,
            units,
            header: Bytes::from(to_annexb(&sets)),
            opus_head,
            audio,
        }
    }

    /// How to publish it to `endpoint` (a WHIP URL, or with `janus` Janus's API root) at `kbps`; the bitrate does
    /// not follow the network (pre-encoded), video is dropped up to a keyframe when the path carries less.
    pub fn config(&self, endpoint: String, janus: Option<JanusRoom>, kbps: u32) -> PublishConfig {
        PublishConfig {
            endpoint,
            bearer_token: Default::default(),
            janus,
            ant_media: None,
            ice_servers: Vec::new(),
            relay_only: false,
            connect_timeout: Duration::from_secs(10),
            max_payload: rtc_studio::media::h264_rtp::DEFAULT_MAX_PAYLOAD,
            video_codec: self.codec,
            video: vec![LayerEncoder {
                extra_data: self.header.clone(),
                kbps,
            }],
            audio_extra_data: self.opus_head.clone(),
            capture: rtc_studio::publish::capture_clock_now(),
            rate: RateConfig {
                adaptive: false,
                video_kbps: kbps,
                min_video_kbps: 300,
                encoder_follows: false,
                audio_kbps: 96,
            },
        }
    }

    /// Keyframes among the units.
    pub fn keyframes(&self) -> usize {
        self.units.iter().filter(|(_, key)| *key).count()
    }

    /// [`replay`] of all of it with `config`.
    pub fn replay(self, config: PublishConfig) -> Result<Replayed, String> {
        replay(config, self.units.into_iter(), self.audio.into_iter(), 60.0)
    }
}
