//! Asking OBS's video encoder for a keyframe when the server asks us (PLI/FIR). libobs 29–32 has no call for it
//! (OBS's own attempt, `obs_encoder_request_keyframe`, was never merged), so each encoder is asked the way its
//! source shows works, through `obs_encoder_update` (applied by libobs on the encode thread at the next frame):
//!
//! - **x264** (`obs_x264`) with tune `zerolatency`: a scene cut. OBS re-applies the custom x264 options on every
//!   update, and `x264_encoder_reconfig` takes a new scene-cut threshold (when scene cuts were on from the start —
//!   x264's default); with the threshold far above its range every frame looks like a scene cut, and the first one
//!   far enough from the last keyframe (x264's `keyint-min`) becomes an IDR. As that keyframe passes to the output
//!   — before x264 encodes the next frame — the threshold goes back (named: OBS only sets the parameters the
//!   options name, so leaving it out would keep ours), and at the next frame the user's options string exactly as
//!   it was. A stream that ends in between leaves the threshold named at its value in the string. Measured on OBS 29.0.2: the keyframe is
//!   on the wire ~60 ms (two frames) after the request. With any other tune x264 decides frame types on its
//!   lookahead thread, which keeps the parameters it started with: nothing happened within 4 s, so it is not asked.
//! - **NVENC** (`jim_nvenc` in 29–32, `obs_nvenc_h264_*` in 30+): any update of a CBR/VBR encoder reconfigures it
//!   with `forceIDR` (OBS's source, every version); not run here — no NVIDIA hardware.
//! - **anything else**: no way; the next keyframe comes with the keyframe interval. Said once in the log.
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::obs::data::Data;
use crate::obs::encoder::OwnedEncoder;
use crate::obs::log;
use crate::obs::output::OutputHandle;
use std::sync::Arc;
use std::sync::Mutex;

/// The x264 option that makes the next frames scene cuts; far above x264's 0–100 (a threshold of 100 still lets
/// a still picture through).
const SCENECUT_ALWAYS: &str = "scenecut=10000";
/// x264's own scene-cut threshold (`x264_param_default`).
const SCENECUT_DEFAULT: &str = "scenecut=40";

/// Where an x264 keyframe request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asking {
    Idle,
    /// x264 makes scene cuts; the next keyframe answers.
    Asked,
    /// The threshold is back; the options string goes back at the next frame.
    Restoring,
}

#[derive(Debug, PartialEq, Eq)]
enum Strategy {
    /// The user's own x264 options, to append to and to restore, and their scene-cut threshold.
    X264SceneCut { options: String, threshold: String },
    /// Updating the encoder with its own settings forces an IDR.
    UpdateForcesIdr,
    /// Why this encoder cannot be asked.
    Unsupported(&'static str),
}

impl Strategy {
    fn for_encoder(id: &str, settings: &Data) -> Strategy {
        let s = settings.as_settings();
        match id {
            "obs_x264" => {
                let options = s.string("x264opts");
                let has = |wanted: &[&str]| {
                    options
                        .split_whitespace()
                        .any(|o| wanted.contains(&o.to_ascii_lowercase().as_str()))
                };
                let zerolatency = s.string("tune") == "zerolatency"
                    || has(&["tune=zerolatency", "sync-lookahead=0"]);
                if !zerolatency {
                    Strategy::Unsupported(
                        "x264 decides frame types on its lookahead thread, which takes no changes while encoding; \
                         x264 with tune zerolatency can be asked",
                    )
                } else if has(&["scenecut=0", "no-scenecut"]) {
                    Strategy::Unsupported("x264's scene cuts are off (scenecut=0) and cannot be turned on while encoding")
                } else {
                    let threshold = options
                        .split_whitespace()
                        .rfind(|o| o.to_ascii_lowercase().starts_with("scenecut="))
                        .unwrap_or(SCENECUT_DEFAULT)
                        .to_string();
                    Strategy::X264SceneCut { options, threshold }
                }
            }
            "jim_nvenc" | "obs_nvenc_h264_cuda" | "obs_nvenc_h264_tex" | "obs_nvenc_h264_soft" => {
                Strategy::UpdateForcesIdr
            }
            _ => Strategy::Unsupported("libobs has no call for it and this encoder takes no other"),
        }
    }
}

/// The encoder a requester asks: the stream's own (through the output) or a simulcast layer's.
pub trait EncoderSettings: Send + Sync {
    /// Its id and a copy of its settings.
    fn settings(&self) -> Option<(String, Data)>;
    /// Merges `settings` into its own, applied at its next frame.
    fn update(&self, settings: &Data);
}

impl EncoderSettings for OutputHandle {
    fn settings(&self) -> Option<(String, Data)> {
        self.video_encoder_settings()
    }
    fn update(&self, settings: &Data) {
        self.update_video_encoder(settings)
    }
}

impl EncoderSettings for OwnedEncoder {
    fn settings(&self) -> Option<(String, Data)> {
        Some((self.id().to_string(), OwnedEncoder::settings(self)?))
    }
    fn update(&self, settings: &Data) {
        OwnedEncoder::update(self, settings)
    }
}

/// Asks a video encoder for keyframes.
pub struct KeyframeRequester {
    output: Arc<dyn EncoderSettings>,
    encoder_id: String,
    strategy: Strategy,
    asking: Mutex<Asking>,
    /// The log has said this encoder cannot be asked.
    said_unsupported: Mutex<bool>,
}

impl KeyframeRequester {
    pub fn new(output: Arc<dyn EncoderSettings>) -> KeyframeRequester {
        let (encoder_id, strategy) = match output.settings() {
            Some((id, settings)) => {
                let strategy = Strategy::for_encoder(&id, &settings);
                (id, strategy)
            }
            None => (
                String::new(),
                Strategy::Unsupported("there is no video encoder"),
            ),
        };
        KeyframeRequester {
            output,
            encoder_id,
            strategy,
            asking: Mutex::new(Asking::Idle),
            said_unsupported: Mutex::new(false),
        }
    }

    fn set_x264_options(&self, options: &str) {
        let mut d = Data::new();
        d.set_string("x264opts", options);
        self.output.update(&d);
    }

    /// A video packet passed to the output (`keyframe` or not): the next step of restoring x264.
    fn step(&self, keyframe: bool) {
        let Strategy::X264SceneCut { options, threshold } = &self.strategy else {
            return;
        };
        let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
        match *asking {
            Asking::Asked if keyframe => {
                self.set_x264_options(&format!("{options} {threshold}"));
                *asking = Asking::Restoring;
            }
            Asking::Restoring => {
                self.set_x264_options(options);
                *asking = Asking::Idle;
            }
            _ => {}
        }
    }
}

impl KeyframeRequester {
    /// Asks for a keyframe as soon as the encoder can make one.
    pub fn request_keyframe(&self) {
        match &self.strategy {
            Strategy::X264SceneCut { options, .. } => {
                let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
                self.set_x264_options(&format!("{options} {SCENECUT_ALWAYS}"));
                *asking = Asking::Asked;
            }
            Strategy::UpdateForcesIdr => {
                if let Some((_, settings)) = self.output.settings() {
                    self.output.update(&settings);
                }
            }
            Strategy::Unsupported(why) => {
                let mut said = self
                    .said_unsupported
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if !*said {
                    *said = true;
                    log::warn(&format!(
                        "the server asked for a keyframe, and the video encoder ({}) cannot be asked for one ({why}): \
                         the next comes with its keyframe interval",
                        if self.encoder_id.is_empty() { "unknown" } else { &self.encoder_id }
                    ));
                }
            }
        }
    }
}

impl KeyframeRequester {
    /// Every packet OBS hands over, on the encoder's thread: libobs passes a frame's packet to the outputs before
    /// it encodes the next frame, so restoring here, at the keyframe asked for, leaves x264 one forced IDR.
    pub fn packet_passed(&self, p: &EncodedPacket) {
        if p.kind == MediaKind::Video {
            self.step(p.keyframe);
        }
    }
}

impl Drop for KeyframeRequester {
    fn drop(&mut self) {
        // x264 must not keep making scene cuts after the stream: the threshold goes back, named.
        let asking = *self.asking.lock().unwrap_or_else(|e| e.into_inner());
        if let (Asking::Asked, Strategy::X264SceneCut { options, threshold }) =
            (asking, &self.strategy)
        {
            self.set_x264_options(&format!("{options} {threshold}"));
        }
    }
}
