//! Simulcast layers from OBS 29–32: for each layer below the full picture, an encoder of the same type and settings
//! as the stream's (so the same keyframe interval and tuning), at half the width and height of the layer above
//! (libobs scales), at its share of the bitrate ([`SimulcastSettings`]). They are made and initialised at Start — so
//! the session knows their SPS/PPS — begun with the stream, fed straight from the encoders like the stream's own,
//! asked for keyframes like it, and released when the stream ends or the server refuses their layer.
//!
//! OBS 32.1+'s frontend makes simulcast encoders of its own for WHIP services when the streamer sets "Total Layers"
//! (Settings → Stream), and attaches them to the streaming output: those are sent instead
//! ([`SimulcastEncoders::attached`]), at the sizes and bitrates OBS chose.
use crate::keyframes::KeyframeRequester;
use crate::media::packet::EncodedPacket;
use crate::obs::encoder::OwnedEncoder;
use crate::obs::log;
use crate::obs::output::OutputHandle;
use crate::obs::tap::{Deliver, LayerTap};
use crate::session::MAX_LAYERS;
use crate::settings::SimulcastSettings;
use crate::stream::ExtraTaps;
use crate::transport::driver::LayerEncoder;
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// The smallest picture a layer is made at.
const MIN_SIDE: u32 = 16;

struct Layer {
    /// Dropped (ended) before the encoder is released.
    tap: Mutex<Option<LayerTap>>,
    keyframes: KeyframeRequester,
    encoder: Arc<OwnedEncoder>,
    size: (u32, u32),
    kbps: u32,
}

impl Layer {
    /// Layer `index` from `encoder`, its tap made (and the encoder initialised through it when `initialise`).
    fn new(
        encoder: OwnedEncoder,
        index: usize,
        size: (u32, u32),
        kbps: u32,
        initialise: bool,
    ) -> Result<Layer, String> {
        let encoder = Arc::new(encoder);
        let tap = LayerTap::prepare(&encoder, index as u8, initialise)?;
        Ok(Layer {
            tap: Mutex::new(Some(tap)),
            keyframes: KeyframeRequester::new(encoder.clone()),
            encoder,
            size,
            kbps,
        })
    }
}

/// The encoders of the layers below the full picture (layer 1 is `layers[0]`).
pub struct SimulcastEncoders {
    layers: Vec<Layer>,
}

/// `side` halved `times`, even (4:2:0), at least [`MIN_SIDE`].
fn scaled(side: u32, times: usize) -> u32 {
    ((side >> times) & !1).max(MIN_SIDE)
}

impl SimulcastEncoders {
    /// The encoders for `settings.layers - 1` smaller layers of `output`'s video (of `size`, at `kbps`).
    pub fn create(
        output: &OutputHandle,
        settings: SimulcastSettings,
        size: (u32, u32),
        kbps: u32,
    ) -> Result<SimulcastEncoders, String> {
        let rates = settings.bitrates(kbps);
        let mut layers = Vec::new();
        for (i, &kbps) in rates.iter().enumerate().skip(1) {
            let size = (scaled(size.0, i), scaled(size.1, i));
            let name = format!("rtc-studio-simulcast-{i}");
            let encoder = OwnedEncoder::scaled_copy(output, &name, size, kbps)?;
            layers.push(Layer::new(encoder, i, size, kbps, true)?);
        }
        Ok(SimulcastEncoders::described(layers, size, kbps, ""))
    }

    /// The simulcast encoders OBS attached to the output (`encoders`, initialised with the output's), largest first
    /// and at most [`MAX_LAYERS`] with the stream's own (of `size`, at `kbps`).
    pub fn attached(
        encoders: Vec<OwnedEncoder>,
        size: (u32, u32),
        kbps: u32,
    ) -> Result<SimulcastEncoders, String> {
        let mut encoders: Vec<(OwnedEncoder, (u32, u32))> = encoders
            .into_iter()
            .map(|e| {
                let size = e.size();
                (e, size)
            })
            .collect();
        encoders.sort_by_key(|(_, (w, h))| std::cmp::Reverse(u64::from(*w) * u64::from(*h)));
        if encoders.len() + 1 > MAX_LAYERS {
            log::warn(&format!(
                "OBS made {} simulcast layers; RTC Studio sends {MAX_LAYERS} (the smallest go unsent)",
                encoders.len() + 1
            ));
            encoders.truncate(MAX_LAYERS - 1);
        }
        let mut layers = Vec::new();
        for (i, (encoder, size)) in encoders.into_iter().enumerate() {
            let kbps = encoder
                .settings()
                .and_then(|s| u32::try_from(s.as_settings().int("bitrate")).ok())
                .unwrap_or(0);
            layers.push(Layer::new(encoder, i + 1, size, kbps, false)?);
        }
        Ok(SimulcastEncoders::described(
            layers,
            size,
            kbps,
            " (made by OBS: Settings → Stream → Total Layers)",
        ))
    }

    /// Says in the log which layers there are.
    fn described(
        layers: Vec<Layer>,
        size: (u32, u32),
        kbps: u32,
        origin: &str,
    ) -> SimulcastEncoders {
        let described: Vec<String> =
            std::iter::once(format!("{}x{} at {kbps} kbit/s", size.0, size.1))
                .chain(
                    layers
                        .iter()
                        .map(|l| format!("{}x{} at {} kbit/s", l.size.0, l.size.1, l.kbps)),
                )
                .collect();
        log::info(&format!(
            "simulcast layers: {}{origin}",
            described.join(", ")
        ));
        SimulcastEncoders { layers }
    }

    /// The layers' sizes (below the full picture).
    pub fn sizes(&self) -> Vec<(u32, u32)> {
        self.layers.iter().map(|l| l.size).collect()
    }

    /// What the session needs to know of each smaller layer's encoder (layer 1 first).
    pub fn layer_encoders(&self) -> Vec<LayerEncoder> {
        self.layers
            .iter()
            .map(|l| LayerEncoder {
                extra_data: Bytes::from(l.encoder.extra_data()),
                kbps: l.kbps,
            })
            .collect()
    }

    fn layer(&self, layer: usize) -> Option<&Layer> {
        self.layers.get(layer.checked_sub(1)?)
    }

    /// Asks the encoder of layer `layer` (≥ 1) for a keyframe.
    pub fn request_keyframe(&self, layer: usize) {
        if let Some(l) = self.layer(layer) {
            l.keyframes.request_keyframe();
        }
    }

    /// Layer `layer` is not sent: its tap ends, and with it the encoder's work.
    pub fn release(&self, layer: usize) {
        if let Some(l) = self.layer(layer) {
            if l.tap
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
            {
                log::info(&format!("simulcast layer {layer}: encoder stopped"));
            }
        }
    }

    /// A packet of a smaller layer passed (on its encoder's thread).
    pub fn packet_passed(&self, p: &EncodedPacket) {
        if let Some(l) = self.layer(usize::from(p.layer)) {
            l.keyframes.packet_passed(p);
        }
    }
}

impl ExtraTaps for SimulcastEncoders {
    fn begin(&self, deliver: Deliver) -> Result<(), String> {
        for l in &self.layers {
            if let Some(tap) = l.tap.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                tap.begin(deliver.clone())?;
            }
        }
        Ok(())
    }

    fn end(&self) {
        for l in &self.layers {
            drop(l.tap.lock().unwrap_or_else(|e| e.into_inner()).take());
        }
    }
}
