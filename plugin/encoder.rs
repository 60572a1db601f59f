//! OBS's video encoder as the session asks of it: keyframes ([`crate::keyframes`]) and bitrate changes. A bitrate
//! change goes through `obs_encoder_update` with the new `bitrate`, which libobs applies on the encoder's thread at
//! the next frame — for encoders that declare `OBS_ENCODER_CAP_DYN_BITRATE` (x264, NVENC, QSV, AMF and Apple's
//! do; NVENC reconfigures with an IDR on every update, so each change costs a keyframe there). OBS's own RTMP
//! output changes bitrates the same way. When the stream ends, the configured bitrate goes back.
use crate::keyframes::KeyframeRequester;
use crate::media::packet::EncodedPacket;
use crate::obs::data::Data;
use crate::obs::log;
use crate::obs::output::OutputHandle;
use crate::session::RateConfig;
use crate::settings::Adaptation;
use crate::simulcast::SimulcastEncoders;
use crate::transport::driver::{EncoderControl, LayerEncoder};
use std::sync::{Arc, Mutex};

pub struct VideoEncoder {
    output: OutputHandle,
    keyframes: KeyframeRequester,
    id: String,
    /// The bitrate the streamer configured, kbit/s (0: the encoder has none — constant quality).
    configured: u32,
    takes_changes: bool,
    /// The bitrate set last.
    current: Mutex<u32>,
    /// The encoders of the smaller simulcast layers, if any.
    simulcast: Option<Arc<SimulcastEncoders>>,
}

impl VideoEncoder {
    pub fn new(output: OutputHandle, simulcast: Option<Arc<SimulcastEncoders>>) -> VideoEncoder {
        let (id, configured) = match output.video_encoder_settings() {
            Some((id, settings)) => (id, configured_kbps_of(&settings)),
            None => (String::new(), 0),
        };
        VideoEncoder {
            keyframes: KeyframeRequester::new(Arc::new(output.clone())),
            takes_changes: output.video_encoder_takes_bitrate_changes(),
            output,
            id,
            configured,
            current: Mutex::new(configured),
            simulcast,
        }
    }

    /// The bitrate the streamer configured for `output`'s video encoder, kbit/s (0: none — constant quality).
    pub fn configured_kbps(output: &OutputHandle) -> u32 {
        output
            .video_encoder_settings()
            .map_or(0, |(_, settings)| configured_kbps_of(&settings))
    }

    /// What the session needs to know of the smaller simulcast layers' encoders (none without simulcast).
    pub fn layer_encoders(&self) -> Vec<LayerEncoder> {
        self.simulcast
            .as_ref()
            .map_or_else(Vec::new, |s| s.layer_encoders())
    }

    /// The session's rate configuration for this encoder, the audio encoder and the streamer's `adaptation`;
    /// says in the log what adaptation will do.
    pub fn rate_config(&self, adaptation: Adaptation) -> RateConfig {
        let audio_kbps = self.output.audio_encoder_bitrate().unwrap_or(160);
        let rate = RateConfig {
            adaptive: adaptation.enabled,
            video_kbps: self.configured,
            min_video_kbps: adaptation.min_kbps,
            encoder_follows: self.takes_changes,
            audio_kbps,
        };
        let id = if self.id.is_empty() {
            "unknown"
        } else {
            &self.id
        };
        if !rate.adaptive {
            log::info("bitrate adaptation is off: the video bitrate stays as configured");
        } else if self.configured == 0 {
            log::info(&format!(
                "the video encoder ({id}) has no bitrate to adapt (constant quality): when the network carries \
                 less, video is dropped up to the next keyframe"
            ));
        } else if !self.takes_changes {
            log::warn(&format!(
                "the video encoder ({id}) does not take bitrate changes while encoding: when the network carries \
                 less than {} kbit/s, video is dropped up to the next keyframe",
                self.configured
            ));
        } else {
            log::info(&format!(
                "bitrate adaptation: the video bitrate follows the network between {} and {} kbit/s ({id})",
                adaptation.min_kbps.min(self.configured),
                self.configured
            ));
        }
        rate
    }

    /// Every packet OBS hands over, on the encoder's thread.
    pub fn packet_passed(&self, p: &EncodedPacket) {
        match &self.simulcast {
            Some(s) if p.layer > 0 => s.packet_passed(p),
            _ => self.keyframes.packet_passed(p),
        }
    }

    fn set_bitrate(&self, kbps: u32) {
        let mut d = Data::new();
        d.set_int("bitrate", i64::from(kbps));
        self.output.update_video_encoder(&d);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = kbps;
    }
}

/// The bitrate in an encoder's `settings`, kbit/s (0 for a constant-quality encoder, whose settings hold a bitrate
/// it does not use).
fn configured_kbps_of(settings: &Data) -> u32 {
    let s = settings.as_settings();
    let cq = ["CQP", "CRF", "ICQ", "CQVBR", "LOSSLESS"]
        .contains(&s.string("rate_control").to_ascii_uppercase().as_str());
    match cq {
        true => 0,
        false => u32::try_from(s.int("bitrate")).unwrap_or(0),
    }
}

impl EncoderControl for VideoEncoder {
    fn request_keyframe(&self, layer: usize) {
        match &self.simulcast {
            Some(s) if layer > 0 => s.request_keyframe(layer),
            _ => self.keyframes.request_keyframe(),
        }
    }

    fn release_layer(&self, layer: usize) {
        if let Some(s) = &self.simulcast {
            s.release(layer);
        }
    }

    fn set_video_bitrate(&self, kbps: u32) {
        if self.takes_changes && self.configured > 0 {
            self.set_bitrate(kbps);
        }
    }
}

impl VideoEncoder {
    /// Sets the configured bitrate back if adaptation changed it: when the stream ends, and before a new session
    /// of the same stream (publishing again), which starts from the configured bitrate.
    pub fn restore_configured(&self) {
        let current = *self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current != self.configured {
            log::info(&format!(
                "video bitrate back to the configured {} kbit/s",
                self.configured
            ));
            self.set_bitrate(self.configured);
        }
    }
}

impl Drop for VideoEncoder {
    fn drop(&mut self) {
        self.restore_configured();
    }
}
