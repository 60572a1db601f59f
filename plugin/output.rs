//! `rtc_studio_output`: OBS's encoded H.264 + Opus in, a stream out. Callbacks here decide and hand off; the
//! stream worker (`crate::stream`) does everything that can wait.
use crate::encoder::VideoEncoder;
use crate::media::packet::EncodedPacket;
use crate::media::video::VideoCodec;
use crate::metrics::{self, OutputMetrics, State};
use crate::obs::data::Settings;
use crate::obs::log;
use crate::obs::output::{AudioEncoderInfo, OutputHandle, OutputType, StopCode, VideoEncoderInfo};
use crate::obs::properties::Properties;
use crate::publish::WhipSink;
use crate::recorder::PacketLog;
use crate::service::OUTPUT_ID;
use crate::settings::{self, OutputSettings, ServiceSettings, Signalling};
use crate::signal::ice;
use crate::signal::Failure;
use crate::simulcast::SimulcastEncoders;
use crate::stream::{Connector, ExtraTaps, PacketSink, PacketWatcher, Stream, StreamStats};
use crate::transport::driver::{LayerEncoder, PublishConfig, LAYER_RIDS};
use bytes::Bytes;
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Where to serve metrics when the output's settings do not say (OBS's window cannot set them).
pub const METRICS_ENV: &str = "RTC_STUDIO_METRICS";

pub struct RtcOutput {
    handle: OutputHandle,
    settings: Mutex<OutputSettings>,
    stream: Mutex<Option<Stream>>,
    /// The current stream's counters, and what the metrics endpoint shows of them.
    metrics: Arc<OutputMetrics>,
}

impl RtcOutput {
    fn stats(&self) -> Arc<StreamStats> {
        self.metrics.stats()
    }

    /// Serves this output's metrics where the settings ask (a problem is logged; the stream goes on).
    fn serve_metrics(&self, listen: &str) {
        let served = metrics::listen_address(listen).and_then(|addr| match addr {
            Some(addr) => metrics::serve(addr).map(|()| Some(addr)),
            None => Ok(None),
        });
        match served {
            Ok(Some(addr)) => {
                self.metrics.publish();
                log::info(&format!("metrics for Prometheus at http://{addr}/metrics"));
            }
            Ok(None) => {}
            Err(e) => log::warn(&format!("no metrics: {e}")),
        }
    }

    /// The output's settings at start: those the settings dialog saved with the service win over the output's
    /// own.
    fn read_settings(&self) {
        let (Some(own), Some(service)) = (self.handle.settings(), self.handle.service_settings())
        else {
            return;
        };
        let (own, service) = (own.as_settings(), service.as_settings());
        let layered = settings::Layered {
            over: &service,
            under: &own,
        };
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = OutputSettings::read(&layered);
    }

    /// Signalling, ICE and adaptation from the service settings (only our own service has them; others read as
    /// defaults). libobs does not give a service's settings its defaults (a saved profile holds only what the
    /// streamer changed), so ours are set on them first.
    fn service_settings(&self) -> Result<ServiceSettings, Failure> {
        let url = self.server_url();
        match self.handle.service_settings() {
            Some(data) => {
                settings::apply_defaults(settings::SERVICE, &data.as_settings());
                ServiceSettings::read(&url.over(&data.as_settings()))
            }
            None => ServiceSettings::read(&url.over(&settings::Defaults)),
        }
    }

    /// The service's server URL, and the settings written into its fragment.
    fn server_url(&self) -> settings::UrlSettings {
        let url = self.handle.service_endpoint().unwrap_or_default().url;
        settings::UrlSettings::parse(&url)
    }

    /// The smaller simulcast layers' encoders, made and initialised, when the service asks for layers (and packets
    /// come straight from the encoders, as layers need). Failing that, the full picture goes alone.
    fn simulcast_encoders(&self) -> Option<Arc<SimulcastEncoders>> {
        let video = self.handle.video_encoder()?;
        let (size, kbps) = (
            (video.width, video.height),
            VideoEncoder::configured_kbps(&self.handle),
        );
        let attached = self.handle.attached_video_encoders();
        if !attached.is_empty() {
            return match SimulcastEncoders::attached(attached, size, kbps) {
                Ok(layers) => Some(Arc::new(layers)),
                Err(e) => {
                    log::warn(&format!(
                        "OBS's simulcast layers cannot be sent ({e}): only the full picture goes"
                    ));
                    None
                }
            };
        }
        let wanted = self.service_settings().ok()?.simulcast;
        if wanted.layers < 2 {
            return None;
        }
        if video.codec != VideoCodec::H264.obs_name() {
            // Copies of an AV1 or HEVC encoder are untried here (and an SVT-AV1 encoder made but never fed hangs
            // OBS when it is destroyed, see `start`).
            log::warn("simulcast layers are made for H.264 streams: only the full picture goes");
            return None;
        }
        let s = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !s.direct || !s.packet_log.is_empty() {
            log::warn(
                "simulcast needs packets straight from the encoders: only the full picture goes",
            );
            return None;
        }
        match SimulcastEncoders::create(&self.handle, wanted, size, kbps) {
            Ok(layers) => Some(Arc::new(layers)),
            Err(e) => {
                log::warn(&format!(
                    "simulcast layers could not be made ({e}): only the full picture goes"
                ));
                None
            }
        }
    }

    /// Chooses where packets go for this start; errors are shown to the streamer. `encoder` is asked for keyframes
    /// when the server wants one, and for bitrates that fit the network.
    fn connector(&self, encoder: Arc<VideoEncoder>) -> Result<Connector, Failure> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut endpoint = self.handle.service_endpoint().unwrap_or_default();
        endpoint.url = settings::UrlSettings::parse(&endpoint.url).url;
        let video = self.handle.video_encoder();
        let audio = self.handle.audio_encoder();
        let video_codec = check_codecs(video.as_ref(), audio.as_ref())?;
        if !settings.packet_log.is_empty() {
            if !endpoint.url.is_empty() {
                log::warn("packet log set: recording packets instead of publishing to the server");
            }
            let path = settings.packet_log.clone();
            log::info(&format!("recording packets to {path}"));
            return Ok(Box::new(move |_stop| {
                PacketLog::create(&path, video.as_ref(), audio.as_ref())
                    .map(|l| Box::new(l) as Box<dyn PacketSink>)
            }));
        }
        if endpoint.url.is_empty() {
            return Err(Failure::new(
                StopCode::BadPath,
                "No server URL is set. Enter your WHIP endpoint under Settings → Stream → Server.",
            ));
        }
        let service = self.service_settings()?;
        let ant_media = matches!(service.signalling, Signalling::AntMedia(_));
        settings::check_server_url(&endpoint.url, ant_media)?;
        let video_extra_data = Bytes::from(video.map(|v| v.extra_data).unwrap_or_default());
        if video_codec == VideoCodec::H264 {
            warn_of_high_profile(&video_extra_data);
        }
        log::info(&format!(
            "video codec: {} (the encoder's)",
            video_codec.label()
        ));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ice_servers = ice::ice_servers(&service.ice, now)?;
        if !ice_servers.is_empty() {
            let relay = if service.ice.relay_only {
                ", relay only"
            } else {
                ""
            };
            log::info(&format!(
                "ICE servers from the settings: {ice_servers:?}{relay}"
            ));
        }
        let rate = encoder.rate_config(service.adaptation);
        let config = PublishConfig {
            endpoint: endpoint.url,
            bearer_token: endpoint.bearer_token,
            ant_media: match &service.signalling {
                Signalling::AntMedia(stream_id) => Some(stream_id.clone()),
                _ => None,
            },
            janus: match service.signalling {
                Signalling::Janus(room) => Some(room),
                _ => None,
            },
            ice_servers,
            relay_only: service.ice.relay_only,
            connect_timeout: settings.connect_timeout,
            max_payload: settings.max_payload,
            video_codec,
            video: std::iter::once(LayerEncoder {
                extra_data: video_extra_data,
                kbps: rate.video_kbps,
            })
            .chain(encoder.layer_encoders())
            .collect(),
            audio_extra_data: Bytes::from(audio.map(|a| a.extra_data).unwrap_or_default()),
            capture: crate::publish::capture_clock_now(),
            rate,
        };
        Ok(Box::new(move |stop| {
            // A new session of the same stream (publishing again) starts from the configured bitrate.
            encoder.restore_configured();
            WhipSink::connect(config.clone(), encoder.clone(), stop)
                .map(|s| Box::new(s) as Box<dyn PacketSink>)
        }))
    }
}

/// H.264, HEVC or AV1 video and Opus audio are what we send; which video codec the encoder makes.
fn check_codecs(
    video: Option<&VideoEncoderInfo>,
    audio: Option<&AudioEncoderInfo>,
) -> Result<VideoCodec, Failure> {
    let wrong = |what: &str, kind: &str, codec: &str| {
        Failure::new(
            StopCode::Unsupported,
            format!("RTC Studio sends {what} {kind}; the selected {kind} encoder produces {codec}"),
        )
    };
    if let Some(a) = audio.filter(|a| a.codec != "opus") {
        return Err(wrong("Opus", "audio", &a.codec));
    }
    match video {
        None => Ok(VideoCodec::H264),
        Some(v) => VideoCodec::from_obs(&v.codec)
            .ok_or_else(|| wrong("H.264, HEVC or AV1", "video", &v.codec)),
    }
}

/// Browsers watching through an SFU may not decode High profile.
fn warn_of_high_profile(video_extra_data: &Bytes) {
    let mut params = crate::media::h264::ParameterSets::default();
    params.learn(video_extra_data);
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

impl OutputType for RtcOutput {
    const ID: &'static CStr = OUTPUT_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.Output";
    const VIDEO_CODECS: &'static CStr = crate::obs::output::VIDEO_CODECS;
    const AUDIO_CODECS: &'static CStr = c"opus";
    const PROTOCOLS: &'static CStr = c"WHIP";

    fn create(settings: &Settings, output: OutputHandle) -> Self {
        RtcOutput {
            settings: Mutex::new(OutputSettings::read(settings)),
            stream: Mutex::new(None),
            metrics: OutputMetrics::new(&output.name()),
            handle: output,
        }
    }

    fn update(&self, settings: &Settings) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = OutputSettings::read(settings);
    }

    fn defaults(settings: &Settings) {
        settings::apply_defaults(settings::OUTPUT, settings)
    }

    fn properties() -> Properties {
        settings::properties(settings::OUTPUT)
    }

    fn start(&self) -> bool {
        // A stream left from before (OBS restarts the output to reconnect) winds down on its own.
        if let Some(old) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            old.abandon();
        }
        self.read_settings();
        // Encoders first: their codec configuration (SPS/PPS, OpusHead) exists only once initialised. AV1's
        // offer needs none, and its encoders wait until connected: an SVT-AV1 encoder initialised and destroyed
        // without a frame (a stream that never connected) hangs OBS there (seen with OBS 29.0.2 and SVT-AV1 1.4:
        // its flush waits forever for a frame).
        let initialize = (self.handle.video_encoder()).is_none_or(|v| v.codec != "av1");
        if !self.handle.prepare_capture(initialize) {
            self.handle
                .set_last_error("OBS could not initialise the encoders for RTC Studio");
            return false;
        }
        let simulcast = self.simulcast_encoders();
        let encoder = Arc::new(VideoEncoder::new(self.handle.clone(), simulcast.clone()));
        let connector = match self.connector(encoder.clone()) {
            Ok(c) => c,
            Err(err) => {
                log::error(&format!("cannot start: {}", err.message));
                self.handle.set_last_error(&err.message);
                return false;
            }
        };
        let (queue, direct, listen) = {
            let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
            (s.queue_packets, s.direct, s.metrics_listen.clone())
        };
        if self.handle.reconnecting() {
            self.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let full = self
            .handle
            .video_encoder()
            .map_or((0, 0), |v| (v.width, v.height));
        let layer_sizes: Vec<(u32, u32)> = std::iter::once(full)
            .chain(simulcast.iter().flat_map(|s| s.sizes()))
            .collect();
        let stats = Arc::new(StreamStats {
            connect_time_ms: (-1).into(),
            state: (State::Connecting as u8).into(),
            layer_rids: (LAYER_RIDS.iter().take(layer_sizes.len()))
                .map(|r| r.to_string())
                .collect(),
            layer_sizes,
            ..Default::default()
        });
        self.metrics.set_stats(stats.clone());
        // Unset in the settings (Tools → RTC Studio settings… → Advanced), the environment can switch metrics on.
        let listen = match listen.is_empty() {
            true => std::env::var(METRICS_ENV).unwrap_or_default(),
            false => listen,
        };
        self.serve_metrics(&listen);
        let watcher: PacketWatcher = Arc::new(move |p| encoder.packet_passed(p));
        let started = Stream::start(
            self.handle.clone(),
            connector,
            queue,
            stats,
            direct,
            Some(watcher),
            // Without taps, the layers OBS attached come through its interleaver, numbered (ours need taps).
            simulcast
                .filter(|_| direct)
                .map(|s| s as Arc<dyn ExtraTaps>),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_registers_every_video_codec_it_sends() {
        let names: Vec<&str> = VideoCodec::ALL.iter().map(|c| c.obs_name()).collect();
        assert_eq!(
            crate::obs::output::VIDEO_CODECS.to_str(),
            Ok(names.join(";").as_str())
        );
    }

    fn video(codec: &str) -> VideoEncoderInfo {
        VideoEncoderInfo {
            codec: codec.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_video_codec_comes_from_the_encoder_and_others_are_named() {
        assert_eq!(
            check_codecs(Some(&video("av1")), None).ok(),
            Some(VideoCodec::Av1)
        );
        assert_eq!(
            check_codecs(Some(&video("hevc")), None).ok(),
            Some(VideoCodec::Hevc)
        );
        let f = check_codecs(Some(&video("vp9")), None).unwrap_err();
        assert_eq!(f.code, StopCode::Unsupported);
        assert_eq!(
            f.message,
            "RTC Studio sends H.264, HEVC or AV1 video; the selected video encoder produces vp9"
        );
    }
}
