//! Simulcast: which video layers the bandwidth has room for. The smallest layer always goes; each larger one goes
//! while the estimate, less audio and the smaller layers at their configured bitrates, leaves room for it — the
//! full picture at its floor when its encoder follows the estimate (it then takes whatever is left), any other
//! layer at its configured bitrate. A layer that has not fitted for [`PAUSE_AFTER`] — at once when video waits in
//! the pacer longer than [`PAUSE_AT_DELAY`] — is paused (its frames dropped before they are numbered, so no
//! receiver sees loss), and every larger one with it. A layer at its configured bitrate counts as fitting while the
//! room is [`PAUSE_BELOW`] of that bitrate, below what one overuse leaves: the delay-based estimate then drops to
//! 0.85 × what arrived, and with the full picture paused what arrives is no more than the layers still sent — a
//! layer needing all of its bitrate was paused by every overuse (a half-size layer on a 1.5 Mbit/s uplink twice in
//! 15 s); a second decrease in a row pauses it. A paused layer is resumed — at a keyframe asked of its encoder —
//! once it has been paused at least [`RESUME_AFTER`] and has fitted with [`RESUME_HEADROOM`] to spare for
//! [`RESUME_STEADY`]:
//! a layer is never sent starved for long, a passing dip of the estimate (a keyframe's burst) pauses nothing, and a
//! link at the edge does not make layers flap — a layer paused again within [`FLAP_WINDOW`] of resuming waits twice
//! as long before the next resume (up to [`MAX_RESUME_AFTER`]), so an estimate that overshoots the link now and
//! then (as a delay-based one does) does not switch viewers up and down every few seconds.
use super::bwe::aimd::DECREASE_FACTOR;
use super::io::MAX_LAYERS;
use super::rate::{video_room_bps, video_wire_bps};
use super::{Note, Session};
use std::time::{Duration, Instant};

pub const PAUSE_AFTER: Duration = Duration::from_secs(1);
pub const PAUSE_AT_DELAY: Duration = Duration::from_millis(250);
pub const PAUSE_BELOW: f64 = DECREASE_FACTOR * DECREASE_FACTOR;
pub const RESUME_HEADROOM: f64 = 1.25;
pub const RESUME_AFTER: Duration = Duration::from_secs(3);
pub const RESUME_STEADY: Duration = Duration::from_secs(1);
pub const FLAP_WINDOW: Duration = Duration::from_secs(10);
pub const MAX_RESUME_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct LayerAllocation {
    /// When each layer was last paused.
    paused_at: [Option<Instant>; MAX_LAYERS],
    /// Since when an active layer has not fitted, or a paused one has fitted with headroom.
    changing_since: [Option<Instant>; MAX_LAYERS],
    /// Layers the answer did not take, bit `i` for layer `i`: never sent.
    refused: u8,
    /// How often each layer was paused.
    pauses: [u32; MAX_LAYERS],
    /// When each layer was last resumed, and how long it waits when paused (RESUME_AFTER, doubled by flaps).
    resumed_at: [Option<Instant>; MAX_LAYERS],
    resume_after: [Option<Duration>; MAX_LAYERS],
}

impl Session {
    /// The layers the answer took (bit `i` for layer `i`); the others are paused for good and their encoders
    /// released.
    pub(super) fn layers_taken(&mut self, taken: u8) {
        let n = self.sender.layers();
        if n > 1 {
            let rids: Vec<&str> = self.config.video.iter().map(|l| l.rid.as_str()).collect();
            self.note(Note::info(format!(
                "simulcast: {n} video layers offered (rids {}), {} taken",
                rids.join(", "),
                taken.count_ones().min(n as u32)
            )));
        }
        for layer in 0..n {
            if taken & (1 << layer) != 0 {
                continue;
            }
            self.layers.refused |= 1 << layer;
            self.sender.set_layer_active(layer, false);
            self.note(Note::warn(format!(
                "the server did not take simulcast layer {layer} (rid {}): it is not sent",
                self.config.video[layer].rid
            )));
            self.act(super::Action::ReleaseLayer(layer));
        }
    }

    /// What each simulcast layer sent over the stream, for the log at the end (None without simulcast).
    pub fn layer_summary(&self) -> Option<String> {
        let stats = self.sender.layer_stats();
        if stats.len() < 2 {
            return None;
        }
        let seconds = self
            .now
            .duration_since(self.started)
            .as_secs_f64()
            .max(0.001);
        let layers: Vec<String> = (stats.iter().zip(&self.config.video).enumerate())
            .map(|(i, (st, layer))| {
                let kbps = f64::from(st.octets) * 8.0 / seconds / 1000.0;
                let pauses = match self.layers.pauses[i] {
                    0 => String::new(),
                    n => format!(", paused {n} time(s)"),
                };
                format!(
                    "{} {} frames, {kbps:.0} kbit/s, {} packet(s) sent again{pauses}",
                    layer.rid, st.frames, st.resent
                )
            })
            .collect();
        Some(format!("simulcast layers sent: {}", layers.join("; ")))
    }

    /// Video on the wire (bit/s) that the active layers below the full picture take at their configured bitrates.
    pub(super) fn lower_layers_bps(&self) -> f64 {
        (1..self.sender.layers())
            .filter(|&l| self.sender.layer_active(l))
            .map(|l| video_wire_bps(self.config.video[l].kbps))
            .sum()
    }

    /// When a layer waiting to be paused or resumed is next due to be looked at (None: none is waiting).
    pub(super) fn layers_due(&self) -> Option<Instant> {
        (0..self.sender.layers())
            .filter_map(|layer| {
                let since = self.layers.changing_since[layer]?;
                Some(self.layer_due_at(layer, self.sender.layer_active(layer), since))
            })
            .min()
    }

    /// When `layer` (`active` or not), which has not stood as it should since `since`, may change: an active one
    /// PAUSE_AFTER on; a paused one once it has fitted for RESUME_STEADY and been paused its wait.
    fn layer_due_at(&self, layer: usize, active: bool, since: Instant) -> Instant {
        match active {
            true => since + PAUSE_AFTER,
            false => {
                let wait = self.layers.resume_after[layer].unwrap_or(RESUME_AFTER);
                let paused = self.layers.paused_at[layer].map_or(since, |t| t + wait);
                (since + RESUME_STEADY).max(paused)
            }
        }
    }

    /// Whether `layer` (`active` or not), which does not stand as it should, may change now (an active one at once
    /// when video waits in the pacer over PAUSE_AT_DELAY); starts the wait.
    fn layer_change_due(&mut self, layer: usize, active: bool) -> bool {
        let since = *self.layers.changing_since[layer].get_or_insert(self.now);
        self.now >= self.layer_due_at(layer, active, since)
            || (active && self.sender.video_delay() > PAUSE_AT_DELAY)
    }

    /// Pauses the layers the estimate has no room for and resumes those it has room for again.
    pub(super) fn allocate_layers(&mut self) {
        let n = self.sender.layers();
        if n < 2 || !self.config.rate.adaptive {
            return;
        }
        // Encoder output the estimate leaves room for, bit/s.
        let mut room = video_room_bps(self.bwe.estimate(), &self.config.rate);
        let mut fits_so_far = true;
        for layer in (0..n).rev() {
            if self.layers.refused & (1 << layer) != 0 {
                continue;
            }
            let kbps = f64::from(self.config.video[layer].kbps);
            // The full picture when its encoder follows the estimate: needs its floor, and all of it.
            let at_floor = layer == 0 && self.adaptation.follows();
            let need = match layer {
                l if l == n - 1 => 0.0,
                _ if at_floor => {
                    f64::from(
                        self.config
                            .rate
                            .min_video_kbps
                            .min(self.config.rate.video_kbps),
                    ) * 1000.0
                }
                _ => kbps * 1000.0,
            };
            let active = self.sender.layer_active(layer);
            let fits = fits_so_far
                && match active {
                    true if at_floor => room >= need,
                    true => room >= need * PAUSE_BELOW,
                    false => room >= need * RESUME_HEADROOM,
                };
            if fits {
                room -= kbps * 1000.0;
            }
            let settled = fits == active;
            if settled {
                self.layers.changing_since[layer] = None;
            }
            let due = !settled && self.layer_change_due(layer, active);
            // Larger layers go only while every smaller one does: they resume one after the other.
            fits_so_far = fits && (active || due);
            if !due {
                continue;
            }
            self.layers.changing_since[layer] = None;
            self.sender.set_layer_active(layer, fits);
            let rid = &self.config.video[layer].rid;
            let estimate = self.bwe.estimate() / 1000.0;
            if fits {
                self.note(Note::info(format!(
                    "simulcast layer {layer} (rid {rid}) resumed: the estimate ({estimate:.0} kbit/s) has room for it again"
                )));
                self.layers.resumed_at[layer] = Some(self.now);
                self.keyframe_requested(layer);
            } else {
                let now = self.now;
                let l = &mut self.layers;
                let flapped = l.resumed_at[layer].is_some_and(|t| now < t + FLAP_WINDOW);
                let wait = l.resume_after[layer].unwrap_or(RESUME_AFTER);
                l.resume_after[layer] = Some(match flapped {
                    true => (wait * 2).min(MAX_RESUME_AFTER),
                    false => RESUME_AFTER,
                });
                l.paused_at[layer] = Some(now);
                l.pauses[layer] += 1;
                self.note(Note::info(format!(
                    "simulcast layer {layer} (rid {rid}) paused: the estimate ({estimate:.0} kbit/s) has no room for it"
                )));
            }
        }
    }
}
