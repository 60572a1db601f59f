//! `rtc_studio_output`: OBS's encoded H.264 + Opus in, a stream out. Callbacks here decide and hand off; the
//! stream worker (`crate::stream`) does everything that can wait.
use crate::media::h264_rtp::DEFAULT_MAX_PAYLOAD;
use crate::media::packet::EncodedPacket;
use crate::obs::data::Settings;
use crate::obs::log;
use crate::obs::module::text;
use crate::obs::output::{OutputHandle, OutputType, StopCode};
use crate::obs::properties::{Properties, TextKind};
use crate::publish::WhipSink;
use crate::recorder::PacketLog;
use crate::service::{
    SETTING_ICE_CREDENTIAL, SETTING_ICE_SERVERS, SETTING_ICE_USERNAME, SETTING_JANUS_DISPLAY,
    SETTING_JANUS_PIN, SETTING_JANUS_ROOM, SETTING_RELAY_ONLY, SETTING_SIGNALLING,
    SETTING_TURN_SECRET, SIGNALLING_JANUS,
};
use crate::signal::ice::{self, IceSettings};
use crate::signal::janus::{self, JanusRoom};
use crate::signal::whip::IceServer;
use crate::signal::Failure;
use crate::stream::{Connector, PacketSink, Stream, StreamStats};
use crate::transport::session::PublishConfig;
use bytes::Bytes;
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OUTPUT_ID: &CStr = c"rtc_studio_output";
/// Output setting: write a JSON line per packet to this file (diagnostics).
pub const SETTING_PACKET_LOG: &str = "packet_log";
/// Output setting: how many packets may wait between OBS and the network before frames are dropped.
pub const SETTING_QUEUE_PACKETS: &str = "queue_packets";
pub const DEFAULT_QUEUE_PACKETS: i64 = 256;
/// Output setting: seconds allowed for signalling + ICE + DTLS before the start fails.
pub const SETTING_CONNECT_TIMEOUT: &str = "connect_timeout_s";
pub const DEFAULT_CONNECT_TIMEOUT_S: i64 = 10;
/// Output setting: largest RTP payload in bytes.
pub const SETTING_MAX_PAYLOAD: &str = "max_rtp_payload";
/// Output setting: take packets straight from the encoders (bypassing libobs's interleaver, which holds audio back
/// for as long as the video encoder's delay). On by default.
pub const SETTING_DIRECT: &str = "direct_from_encoders";

#[derive(Clone, Debug, PartialEq, Eq)]
struct OutputSettings {
    packet_log: String,
    queue_packets: usize,
    connect_timeout: Duration,
    max_payload: usize,
    direct: bool,
}

impl OutputSettings {
    fn read(settings: &Settings) -> Self {
        let q = settings.int(SETTING_QUEUE_PACKETS);
        OutputSettings {
            packet_log: settings.string(SETTING_PACKET_LOG).trim().to_string(),
            queue_packets: if q > 0 {
                q.min(65_536) as usize
            } else {
                DEFAULT_QUEUE_PACKETS as usize
            },
            connect_timeout: Duration::from_secs(match settings.int(SETTING_CONNECT_TIMEOUT) {
                t @ 1..=120 => t as u64,
                _ => DEFAULT_CONNECT_TIMEOUT_S as u64,
            }),
            max_payload: match settings.int(SETTING_MAX_PAYLOAD) {
                p @ 300..=1400 => p as usize,
                _ => DEFAULT_MAX_PAYLOAD,
            },
            direct: settings.bool(SETTING_DIRECT),
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

    /// The Janus room to publish into, when the service selects Janus signalling (only our own service can).
    fn janus_room(&self) -> Result<Option<JanusRoom>, Failure> {
        let Some(data) = self.handle.service_settings() else {
            return Ok(None);
        };
        let s = data.as_settings();
        if s.string(SETTING_SIGNALLING) != SIGNALLING_JANUS {
            return Ok(None);
        }
        let display = s.string(SETTING_JANUS_DISPLAY).trim().to_string();
        Ok(Some(JanusRoom {
            room: janus::parse_room(&s.string(SETTING_JANUS_ROOM))?,
            pin: s.string(SETTING_JANUS_PIN),
            display: if display.is_empty() {
                "OBS".into()
            } else {
                display
            },
        }))
    }

    /// The STUN/TURN servers from the service settings (only our own service has them) and the relay-only policy.
    fn ice(&self) -> Result<(Vec<IceServer>, bool), Failure> {
        let Some(data) = self.handle.service_settings() else {
            return Ok((Vec::new(), false));
        };
        let s = data.as_settings();
        let typed = IceSettings {
            urls: s.string(SETTING_ICE_SERVERS),
            username: s.string(SETTING_ICE_USERNAME),
            credential: s.string(SETTING_ICE_CREDENTIAL),
            turn_secret: s.string(SETTING_TURN_SECRET),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let servers = ice::ice_servers(&typed, now)?;
        let relay_only = s.bool(SETTING_RELAY_ONLY);
        let has_turn = servers.iter().flat_map(|s| &s.urls).any(|u| {
            let u = u.to_ascii_lowercase();
            u.starts_with("turn:") || u.starts_with("turns:")
        });
        if relay_only && !has_turn {
            return Err(Failure::new(
                StopCode::BadPath,
                "\"Relay only\" needs a TURN server (turn:host:port, turn:host:port?transport=tcp or \
                 turns:host:port) under Settings → Stream",
            ));
        }
        if !servers.is_empty() {
            log::info(&format!(
                "ICE servers from the settings: {servers:?}{}",
                if relay_only { ", relay only" } else { "" }
            ));
        }
        Ok((servers, relay_only))
    }

    /// Chooses where packets go for this start; errors are shown to the streamer.
    fn connector(&self) -> Result<Connector, Failure> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (url, token) = self.handle.service_url_and_key().unwrap_or_default();
        let video = self.handle.video_encoder();
        let audio = self.handle.audio_encoder();
        if let Some(v) = &video {
            if v.codec != "h264" {
                return Err(Failure::new(
                    StopCode::Unsupported,
                    format!(
                        "RTC Studio sends H.264 video; the selected video encoder produces {}",
                        v.codec
                    ),
                ));
            }
        }
        if let Some(a) = &audio {
            if a.codec != "opus" {
                return Err(Failure::new(
                    StopCode::Unsupported,
                    format!(
                        "RTC Studio sends Opus audio; the selected audio encoder produces {}",
                        a.codec
                    ),
                ));
            }
        }
        if !settings.packet_log.is_empty() {
            if !url.is_empty() {
                log::warn("packet log set: recording packets instead of publishing to the server");
            }
            let path = settings.packet_log.clone();
            log::info(&format!("recording packets to {path}"));
            return Ok(Box::new(move |_stop| {
                PacketLog::create(&path, video.as_ref(), audio.as_ref())
                    .map(|l| Box::new(l) as Box<dyn PacketSink>)
            }));
        }
        if url.is_empty() {
            return Err(Failure::new(
                StopCode::BadPath,
                "No server URL is set. Enter your WHIP endpoint under Settings → Stream → Server.",
            ));
        }
        crate::signal::whip::validate_endpoint(&url)?;
        if let Some(v) = &video {
            let mut params = crate::media::h264::ParameterSets::default();
            params.learn(&Bytes::from(v.extra_data.clone()));
            if params
                .profile_level_id()
                .is_some_and(|p| p.starts_with("64"))
            {
                log::warn(
                    "the video encoder produces H.264 High profile: browsers that watch through an SFU may refuse it \
                     (Debian's Chromium decodes only Baseline and Main over WebRTC); choose profile main or baseline in \
                     the encoder settings for the widest reach",
                );
            }
        }
        let janus = self.janus_room()?;
        let (ice_servers, relay_only) = self.ice()?;
        let config = PublishConfig {
            endpoint: url,
            bearer_token: token,
            janus,
            ice_servers,
            relay_only,
            connect_timeout: settings.connect_timeout,
            max_payload: settings.max_payload,
            video_extra_data: Bytes::from(video.map(|v| v.extra_data).unwrap_or_default()),
            audio_extra_data: Bytes::from(audio.map(|a| a.extra_data).unwrap_or_default()),
        };
        Ok(Box::new(move |stop| {
            WhipSink::connect(config, stop).map(|s| Box::new(s) as Box<dyn PacketSink>)
        }))
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
        settings.set_default_int(SETTING_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT_S);
        settings.set_default_int(SETTING_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD as i64);
        settings.set_default_bool(SETTING_DIRECT, true);
    }

    fn properties() -> Properties {
        let mut p = Properties::new();
        p.int(
            SETTING_QUEUE_PACKETS,
            &text(c"RtcStudio.QueuePackets"),
            16,
            65_536,
            16,
        );
        p.int(
            SETTING_CONNECT_TIMEOUT,
            &text(c"RtcStudio.ConnectTimeout"),
            1,
            120,
            1,
        );
        p.int(
            SETTING_MAX_PAYLOAD,
            &text(c"RtcStudio.MaxPayload"),
            300,
            1400,
            10,
        );
        p.bool(SETTING_DIRECT, &text(c"RtcStudio.DirectFromEncoders"))
            .tooltip(&text(c"RtcStudio.DirectFromEncoders.Tooltip"));
        p.text(
            SETTING_PACKET_LOG,
            &text(c"RtcStudio.PacketLog"),
            TextKind::Plain,
        )
        .tooltip(&text(c"RtcStudio.PacketLog.Tooltip"));
        p
    }

    fn start(&self) -> bool {
        // A stream left from before (OBS restarts the output to reconnect) winds down on its own.
        if let Some(old) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            old.abandon();
        }
        // Encoders first: their codec configuration (SPS/PPS, OpusHead) exists only once initialised.
        if !self.handle.prepare_capture() {
            self.handle
                .set_last_error("OBS could not initialise the encoders for RTC Studio");
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
        let stats = Arc::new(StreamStats {
            connect_time_ms: (-1).into(),
            ..Default::default()
        });
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats.clone();
        let (queue, direct) = {
            let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
            (s.queue_packets, s.direct)
        };
        let started = Stream::start(self.handle.clone(), connector, queue, stats, direct);
        *self.stream.lock().unwrap_or_else(|e| e.into_inner()) = Some(started);
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
        if let Some(s) = self
            .stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            s.offer(packet);
        }
    }

    fn total_bytes(&self) -> u64 {
        self.stats().bytes_sent.load(Ordering::Relaxed)
    }

    fn dropped_frames(&self) -> i32 {
        self.stats().dropped_frames.load(Ordering::Relaxed)
    }

    /// OBS's congestion square: the fuller of the send queue and the loss the server reports.
    fn congestion(&self) -> f32 {
        let queue = self
            .stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0.0, |s| s.queue.fill());
        queue.max(self.stats().network_congestion())
    }

    fn connect_time_ms(&self) -> i32 {
        self.stats().connect_time_ms.load(Ordering::Relaxed)
    }

    fn internal_error(&self, entry: &str) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.abandon();
        }
        self.handle.set_last_error(&format!(
            "RTC Studio internal error in {entry}; the stream was stopped"
        ));
        self.handle.signal_stop(StopCode::Error);
    }

    fn destroy(self) {
        if let Some(s) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            s.abandon();
        }
    }
}
