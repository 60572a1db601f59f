//! RTP timestamps from OBS packet timestamps, exactly.
//!
//! Every RTP timestamp is computed afresh from the packet's `pts` and the encoder timebase with integer arithmetic
//! (`round((pts·num/den − origin) · rate)`), never by adding rounded deltas, so a stream has no drift however long
//! it runs (OBS's own WHIP output accumulates rounded `dts_usec` deltas instead).
//!
//! Audio and video are placed on one timeline by the capture clock: the session's origin is the capture instant of
//! its first packet, and each stream starts at the capture instant of its own first packet, then advances by exact
//! pts differences. (OBS's pts of audio and video coincide at the start of a stream, but after a reconnect libobs
//! re-bases each to its own first packet; capture times stay true.) The NTP↔RTP pairs in RTCP sender reports map
//! that timeline to the wall clock, so a receiver lines audio and video up (lip sync). Each stream starts at a
//! random RTP offset (RFC 3550 §5.1) and wraps at 2³².
//!
//! Decode timestamps are watched for discontinuities (an encoder restart sends pts back to 0; a stall jumps ahead):
//! the stream is re-anchored so that its RTP time continues one frame after the last packet, and the caller gets a
//! [`Discontinuity`] to log once.

use super::packet::MediaKind;

/// An exact number of seconds: `num / den`, `den > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seconds {
    num: i128,
    den: i128,
}

impl Seconds {
    fn of(ticks: i64, tb_num: i32, tb_den: i32) -> Option<Seconds> {
        if tb_num <= 0 || tb_den <= 0 {
            return None;
        }
        Some(Seconds {
            num: ticks as i128 * tb_num as i128,
            den: tb_den as i128,
        })
    }

    /// `round((self − origin) · rate)` in whole clock ticks, half away from zero; None on overflow.
    fn ticks_since(self, origin: Seconds, rate: u32) -> Option<i64> {
        let num = self
            .num
            .checked_mul(origin.den)?
            .checked_sub(origin.num.checked_mul(self.den)?)?;
        let num = num.checked_mul(rate as i128)?;
        let den = self.den.checked_mul(origin.den)?;
        let half = den / 2;
        let rounded = if num >= 0 {
            (num + half) / den
        } else {
            -((-num + half) / den)
        };
        i64::try_from(rounded).ok()
    }
}

/// Why a stream was re-anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscontinuityKind {
    /// Decode time went backwards (e.g. the encoder restarted).
    Backwards,
    /// Decode time jumped further ahead than [`MAX_FORWARD_GAP_MS`].
    Forward,
    /// Timestamps too large to compute with (garbage from the encoder).
    Overflow,
    /// A timebase of zero or less.
    BadTimebase,
}

/// A re-anchoring the caller should log (once per event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discontinuity {
    pub kind: DiscontinuityKind,
    /// How far decode time moved, in milliseconds (negative = backwards), when computable.
    pub jump_ms: Option<i64>,
}

/// Decode time may advance at most this much between two packets of one stream before it counts as a jump.
pub const MAX_FORWARD_GAP_MS: i64 = 3_000;

/// The RTP clock of one stream (video at 90 kHz, Opus at 48 kHz).
#[derive(Clone, Debug)]
pub struct RtpClock {
    rate: u32,
    initial: u32,
    /// Presentation time of this stream's first packet, and its ticks on the session timeline.
    origin: Option<Seconds>,
    base: i64,
    /// Ticks added since re-anchoring.
    adjust: i64,
    /// Unwrapped ticks (before `initial`) of the last packet's dts, and the last dts step.
    last_dts: Option<i64>,
    last_step: i64,
}

/// The RTP timestamp of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub rtp: u32,
    /// Unwrapped ticks since the session origin (monotonic apart from B-frame reordering).
    pub ticks: i64,
    pub discontinuity: Option<Discontinuity>,
}

impl RtpClock {
    pub fn new(rate: u32, initial: u32) -> RtpClock {
        assert!(rate > 0);
        RtpClock {
            rate,
            initial,
            origin: None,
            base: 0,
            adjust: 0,
            last_dts: None,
            last_step: rate as i64 / 50,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    fn wrap(&self, ticks: i64) -> u32 {
        self.initial.wrapping_add(ticks as u32)
    }

    /// The step used when a stream is re-anchored: the last dts step, bounded to a sane frame duration.
    fn continue_step(&self) -> i64 {
        self.last_step.clamp(1, self.rate as i64 / 5)
    }

    /// `start_usec`: where this packet's presentation falls on the session timeline (µs since the session's
    /// origin, from the capture clock); used only for the stream's first packet.
    fn stamp(&mut self, start_usec: i64, pts: i64, dts: i64, tb_num: i32, tb_den: i32) -> Stamped {
        if self.origin.is_none() {
            self.origin = Seconds::of(pts, tb_num, tb_den);
            let base = (start_usec as i128 * self.rate as i128 + 500_000).div_euclid(1_000_000);
            self.base = i64::try_from(base).unwrap_or(0);
        }
        let origin = self.origin.unwrap_or(Seconds { num: 0, den: 1 });
        let base = self.base;
        let raw = |t: i64| {
            Seconds::of(t, tb_num, tb_den)
                .and_then(|s| s.ticks_since(origin, self.rate))
                .map(|t| t + base)
        };
        let (raw_pts, raw_dts) = (raw(pts), raw(dts));
        let mut discontinuity = None;
        let (pts_ticks, dts_ticks) = match (raw_pts, raw_dts) {
            (Some(p), Some(d)) => {
                let d_adj = d + self.adjust;
                if let Some(last) = self.last_dts {
                    let step = d_adj - last;
                    let forward_limit = MAX_FORWARD_GAP_MS * self.rate as i64 / 1000;
                    let kind = if step < 0 {
                        Some(DiscontinuityKind::Backwards)
                    } else if step > forward_limit {
                        Some(DiscontinuityKind::Forward)
                    } else {
                        None
                    };
                    if let Some(kind) = kind {
                        discontinuity = Some(Discontinuity {
                            kind,
                            jump_ms: Some(step * 1000 / self.rate as i64),
                        });
                        self.adjust = last + self.continue_step() - d;
                    }
                }
                (p + self.adjust, d + self.adjust)
            }
            _ => {
                let kind = if tb_num <= 0 || tb_den <= 0 {
                    DiscontinuityKind::BadTimebase
                } else {
                    DiscontinuityKind::Overflow
                };
                discontinuity = Some(Discontinuity {
                    kind,
                    jump_ms: None,
                });
                let next = self.last_dts.map_or(0, |l| l + self.continue_step());
                (next, next)
            }
        };
        if let Some(last) = self.last_dts {
            if dts_ticks > last {
                self.last_step = dts_ticks - last;
            }
        }
        self.last_dts = Some(dts_ticks);
        Stamped {
            rtp: self.wrap(pts_ticks),
            ticks: pts_ticks,
            discontinuity,
        }
    }

    /// The RTP timestamp that corresponds to `ticks` since the origin (for sender reports).
    pub fn rtp_at(&self, ticks: i64) -> u32 {
        self.wrap(ticks)
    }
}

/// The timing of one session: one capture-clock origin for audio and video and a clock for each.
#[derive(Clone, Debug)]
pub struct SessionClock {
    /// Wall-clock time (µs since the Unix epoch) of the session's origin: the first packet's capture.
    wall_origin_usec: Option<i64>,
    /// One clock per video layer (the full picture first; simulcast adds smaller ones), all on one timeline.
    pub video: Vec<RtpClock>,
    pub audio: RtpClock,
}

pub const VIDEO_RATE: u32 = 90_000;
pub const OPUS_RATE: u32 = 48_000;

impl SessionClock {
    /// `video_initial` and `audio_initial` are the random RTP offsets of each stream.
    pub fn new(video_initial: u32, audio_initial: u32) -> SessionClock {
        SessionClock::layered(&[video_initial], audio_initial)
    }

    /// A clock with a video stream per entry of `video_initials` (simulcast layers, each with its own offset).
    pub fn layered(video_initials: &[u32], audio_initial: u32) -> SessionClock {
        SessionClock {
            wall_origin_usec: None,
            video: video_initials
                .iter()
                .map(|&initial| RtpClock::new(VIDEO_RATE, initial))
                .collect(),
            audio: RtpClock::new(OPUS_RATE, audio_initial),
        }
    }

    /// The clock of `kind` (video: of `layer`; a layer that does not exist is the first's).
    fn clock_mut(&mut self, kind: MediaKind, layer: usize) -> &mut RtpClock {
        match kind {
            MediaKind::Video => {
                let layer = layer.min(self.video.len() - 1);
                &mut self.video[layer]
            }
            MediaKind::Audio => &mut self.audio,
        }
    }

    /// Stamps one packet. `wall_usec` is OBS's `sys_dts_usec` for the packet, on the wall clock (µs since the Unix
    /// epoch). The first packet of the session sets the origin; the first packet of each stream places that
    /// stream on the timeline.
    ///
    /// libobs anchors `sys_dts_usec` so that an encoder's *first* dts maps to the capture of its first frame, i.e.
    /// it is shifted by the encoder's reorder delay. For a keyframe — and libobs starts every output's video with
    /// one — it therefore equals the frame's presentation capture time, with or without B-frames; so no `pts − dts`
    /// correction is applied (one made the B-frame stream's video two frames late in our receiver).
    pub fn stamp(
        &mut self,
        kind: MediaKind,
        pts: i64,
        dts: i64,
        tb_num: i32,
        tb_den: i32,
        wall_usec: i64,
    ) -> Stamped {
        self.stamp_layer(kind, 0, [pts, dts], (tb_num, tb_den), wall_usec)
    }

    /// [`Self::stamp`] for one video layer (`layer` is ignored for audio).
    pub fn stamp_layer(
        &mut self,
        kind: MediaKind,
        layer: usize,
        [pts, dts]: [i64; 2],
        (tb_num, tb_den): (i32, i32),
        wall_usec: i64,
    ) -> Stamped {
        let origin = *self.wall_origin_usec.get_or_insert(wall_usec);
        let start_usec = wall_usec.saturating_sub(origin);
        self.clock_mut(kind, layer)
            .stamp(start_usec, pts, dts, tb_num, tb_den)
    }

    /// The (NTP, RTP) pair for an RTCP sender report of `track` sent at wall-clock `now_usec` (µs since the Unix
    /// epoch). None before the first packet.
    pub fn sender_report(&self, kind: MediaKind, now_usec: i64) -> Option<(u64, u32)> {
        self.layer_report(kind, 0, now_usec)
    }

    /// [`Self::sender_report`] for one video layer.
    pub fn layer_report(&self, kind: MediaKind, layer: usize, now_usec: i64) -> Option<(u64, u32)> {
        let wall_origin = self.wall_origin_usec?;
        let clock = match kind {
            MediaKind::Video => self.video.get(layer)?,
            MediaKind::Audio => &self.audio,
        };
        let elapsed = (now_usec - wall_origin) as i128;
        let ticks = (elapsed * clock.rate as i128).div_euclid(1_000_000) as i64 + clock.adjust;
        Some((ntp_from_unix_usec(now_usec), clock.rtp_at(ticks)))
    }
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp (32.32 fixed point seconds since 1900) for a Unix time in µs.
pub fn ntp_from_unix_usec(usec: i64) -> u64 {
    let usec = usec.max(0) as u64;
    let secs = usec / 1_000_000 + NTP_UNIX_OFFSET_SECS;
    let frac = ((usec % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// The inverse of [`ntp_from_unix_usec`] (to the µs).
pub fn unix_usec_from_ntp(ntp: u64) -> i64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000 + (1 << 31)) >> 32;
    (secs * 1_000_000 + frac) as i64
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
