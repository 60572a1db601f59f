//! `rtc_studio_output`: OBS's encoded H.264 + Opus in, a stream out. Callbacks here decide and hand off; the
//! stream worker (`crate::stream`) does everything that can wait.
use crate::media::packet::EncodedPacket;
use crate::obs::data::Settings;
use crate::obs::log;
use crate::obs::module::text;
use crate::obs::output::{OutputHandle, OutputType, StopCode};
use crate::obs::properties::{Properties, TextKind};
use crate::recorder::PacketLog;
use crate::stream::{Connector, PacketSink, Stream, StreamError, StreamStats};
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub const OUTPUT_ID: &CStr = c"rtc_studio_output";
/// Output setting: write a JSON line per packet to this file (diagnostics).
pub const SETTING_PACKET_LOG: &str = "packet_log";
/// Output setting: how many packets may wait between OBS and the network before frames are dropped.
pub const SETTING_QUEUE_PACKETS: &str = "queue_packets";
pub const DEFAULT_QUEUE_PACKETS: i64 = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
struct OutputSettings {
    packet_log: String,
    queue_packets: usize,
}

impl OutputSettings {
    fn read(settings: &Settings) -> Self {
        let q = settings.int(SETTING_QUEUE_PACKETS);
        OutputSettings {
            packet_log: settings.string(SETTING_PACKET_LOG).trim().to_string(),
            queue_packets: if q > 0 { q.min(65_536) as usize } else { DEFAULT_QUEUE_PACKETS as usize },
        }
    }
}

pub struct RtcOutput {
    handle: OutputHandle,
    settings: Mutex<OutputSettings>,
    stream: Mutex<Option<Stream>>,
    stats: Mutex<Arc<StreamStats>>,
}

impl RtcOutput {
    fn stats(&self) -> Arc<StreamStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Chooses where packets go for this start; errors are shown to the streamer.
    fn connector(&self) -> Result<Connector, StreamError> {
        let settings = self.settings.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (url, _token) = self.handle.service_url_and_key().unwrap_or_default();
        let video = self.handle.video_encoder();
        let audio = self.handle.audio_encoder();
        if let Some(v) = &video {
            if v.codec != "h264" {
                return Err(StreamError::new(
                    StopCode::Unsupported,
                    format!("RTC Studio sends H.264 video; the selected video encoder produces {}", v.codec),
                ));
            }
        }
        if let Some(a) = &audio {
            if a.codec != "opus" {
                return Err(StreamError::new(
                    StopCode::Unsupported,
                    format!("RTC Studio sends Opus audio; the selected audio encoder produces {}", a.codec),
                ));
            }
        }
        if !settings.packet_log.is_empty() {
            if !url.is_empty() {
                log::warn("packet log set: recording packets instead of publishing to the server");
            }
            let path = settings.packet_log.clone();
            log::info(&format!("recording packets to {path}"));
            return Ok(Box::new(move || {
                PacketLog::create(&path, video.as_ref(), audio.as_ref()).map(|l| Box::new(l) as Box<dyn PacketSink>)
            }));
        }
        if url.is_empty() {
            return Err(StreamError::new(
                StopCode::BadPath,
                "No server URL is set. Enter your WHIP endpoint under Settings → Stream → Server.",
            ));
        }
        Err(StreamError::new(
            StopCode::Unsupported,
            "This build of RTC Studio cannot publish over WHIP yet: the WebRTC transport is not built in.",
        ))
    }
}

impl OutputType for RtcOutput {
    const ID: &'static CStr = OUTPUT_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.Output";
    const VIDEO_CODECS: &'static CStr = c"h264";
    const AUDIO_CODECS: &'static CStr = c"opus";
    const PROTOCOLS: &'static CStr = c"WHIP";

    fn create(settings: &Settings, output: OutputHandle) -> Self {
        RtcOutput {
            handle: output,
            settings: Mutex::new(OutputSettings::read(settings)),
            stream: Mutex::new(None),
            stats: Mutex::new(Arc::new(StreamStats::default())),
        }
    }

    fn update(&self, settings: &Settings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = OutputSettings::read(settings);
    }

    fn defaults(settings: &Settings) {
        settings.set_default_string(SETTING_PACKET_LOG, "");
        settings.set_default_int(SETTING_QUEUE_PACKETS, DEFAULT_QUEUE_PACKETS);
    }

    fn properties() -> Properties {
        let mut p = Properties::new();
        p.int(SETTING_QUEUE_PACKETS, &text(c"RtcStudio.QueuePackets"), 16, 65_536, 16);
        p.text(SETTING_PACKET_LOG, &text(c"RtcStudio.PacketLog"), TextKind::Plain)
            .tooltip(&text(c"RtcStudio.PacketLog.Tooltip"));
        p
    }

    fn start(&self) -> bool {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = stream.take() {
            old.stop();
        }
        // Encoders first: their codec configuration (SPS/PPS, OpusHead) exists only once initialised.
        if !self.handle.prepare_capture() {
            self.handle.set_last_error("OBS could not initialise the encoders for RTC Studio");
            return false;
        }
        let connector = match self.connector() {
            Ok(c) => c,
            Err(err) => {
                log::error(&format!("cannot start: {}", err.message));
                self.handle.set_last_error(&err.message);
                return false;
            }
        };
        let stats = Arc::new(StreamStats { connect_time_ms: (-1).into(), ..Default::default() });
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats.clone();
        let queue = self.settings.lock().unwrap_or_else(|e| e.into_inner()).queue_packets;
        *stream = Some(Stream::start(self.handle.clone(), connector, queue, stats));
        true
    }

    fn stop(&self, _ts: u64) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.stop();
        } else {
            // Not streaming: OBS still expects the stop to complete.
            self.handle.end_data_capture();
        }
    }

    fn packet(&self, packet: EncodedPacket) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            s.queue.push(packet);
        }
    }

    fn total_bytes(&self) -> u64 {
        self.stats().bytes_sent.load(Ordering::Relaxed)
    }

    fn dropped_frames(&self) -> i32 {
        self.stats().dropped_frames.load(Ordering::Relaxed)
    }

    fn congestion(&self) -> f32 {
        self.stream.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0.0, |s| s.queue.fill())
    }

    fn connect_time_ms(&self) -> i32 {
        self.stats().connect_time_ms.load(Ordering::Relaxed)
    }

    fn internal_error(&self, entry: &str) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.stop();
        }
        self.handle.set_last_error(&format!("RTC Studio internal error in {entry}; the stream was stopped"));
        self.handle.signal_stop(StopCode::Error);
    }

    fn destroy(self) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.stop();
        }
    }
}
