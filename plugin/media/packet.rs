//! One encoded packet as OBS produced it, copied out of OBS's buffer.
use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }
    }
}

#[derive(Clone, Debug)]
pub struct EncodedPacket {
    pub kind: MediaKind,
    /// The encoder's bytes: Annex-B for H.264, one Opus packet for Opus.
    pub data: Bytes,
    /// Presentation and decode timestamps in units of `timebase_num / timebase_den` seconds.
    pub pts: i64,
    pub dts: i64,
    pub timebase_num: i32,
    pub timebase_den: i32,
    pub keyframe: bool,
    /// Decode time in microseconds (OBS's own conversion of `dts`).
    pub dts_usec: i64,
    /// System clock (µs, monotonic, OBS's `os_gettime_ns`) when the frame was captured.
    pub sys_dts_usec: i64,
    pub track: usize,
    /// The video layer (simulcast): 0 for the full picture, then each smaller one; 0 for audio.
    pub layer: u8,
    /// System clock (µs, same clock) when OBS handed the packet to the plugin.
    pub handoff_usec: i64,
}
