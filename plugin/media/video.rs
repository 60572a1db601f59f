//! The video codec a stream carries — H.264, HEVC or AV1, as OBS's encoder says (`obs_encoder_get_codec`) — and
//! one layer's framing for it: an encoder packet in, RTP payloads out (parameter sets or the sequence header put
//! before keyframes that lack them), and what the offer says about it (`a=rtpmap` name, `a=fmtp`).
use super::av1::SequenceHeaders;
use super::av1_rtp::Av1Packetizer;
use super::h264::{access_unit_nals, annexb_units, ParameterSets};
use super::h264_rtp::{H264Packetizer, RtpPayload};
use super::hevc_rtp::{self, HevcPacketizer, HevcParameterSets};
use bytes::Bytes;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoCodec {
    #[default]
    H264,
    Hevc,
    Av1,
}

impl VideoCodec {
    /// Every codec we send, as OBS names them (`encoded_video_codecs`, a service's supported codecs).
    pub const ALL: [VideoCodec; 3] = [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1];

    /// The codec of an OBS encoder's codec name.
    pub fn from_obs(name: &str) -> Option<VideoCodec> {
        VideoCodec::ALL.into_iter().find(|c| c.obs_name() == name)
    }

    /// The codec of an SDP encoding name (`H264`, `H265`, `AV1`; any case).
    pub fn from_rtp_name(name: &str) -> Option<VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.rtp_name().eq_ignore_ascii_case(name))
    }

    pub fn obs_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
        }
    }

    /// What a streamer calls it.
    pub fn label(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Hevc => "HEVC",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// Its encoding name in SDP (`a=rtpmap:PT NAME/90000`).
    pub fn rtp_name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H264",
            VideoCodec::Hevc => "H265",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// Its media type (`video/NAME`).
    pub fn mime_type(self) -> String {
        format!("video/{}", self.rtp_name())
    }

    /// The offer's `a=fmtp` parameters for the encoder whose header data is `extra_data`.
    pub fn fmtp(self, extra_data: &Bytes) -> String {
        match self {
            VideoCodec::H264 => {
                let mut params = ParameterSets::default();
                params.learn(extra_data);
                let id = params.profile_level_id();
                format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={}",
                    id.as_deref().unwrap_or("42e01f")
                )
            }
            // RFC 7798 §7.1, from the SPS's profile_tier_level (Main, level 3.1 when there is none).
            VideoCodec::Hevc => {
                let (profile, tier, level) =
                    hevc_profile_tier_level(extra_data).unwrap_or((1, 0, 93));
                format!("level-id={level};profile-id={profile};tier-flag={tier};tx-mode=SRST")
            }
            // The AV1 payload format's defaults (Main profile, level 3.1, Main tier) need no parameters.
            VideoCodec::Av1 => String::new(),
        }
    }
}

/// `general_profile_idc`, `general_tier_flag` and `general_level_idc` of the first HEVC SPS in `annexb`.
fn hevc_profile_tier_level(annexb: &[u8]) -> Option<(u8, u8, u8)> {
    let sps = annexb_units(annexb).find(|u| hevc_rtp::nal_type(u) == Some(hevc_rtp::nal::SPS))?;
    // The SPS's bytes without emulation prevention (00 00 03 → 00 00), enough for profile_tier_level.
    let mut rbsp = Vec::with_capacity(16);
    let mut zeros = 0;
    for &b in sps.iter().skip(2) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
        if rbsp.len() == 13 {
            break;
        }
    }
    // Byte 0: vps id, max sub-layers, nesting; 1: profile space, tier, profile; 2–5 compatibility flags, 6–11
    // constraint flags; 12: level.
    (rbsp.len() == 13).then(|| (rbsp[1] & 0x1f, (rbsp[1] >> 5) & 1, rbsp[12]))
}

/// One video layer's framing: its codec's parameter sets (or sequence header) and packetizer.
#[derive(Debug)]
pub enum VideoFraming {
    H264(ParameterSets, H264Packetizer),
    Hevc(HevcParameterSets, HevcPacketizer),
    Av1(SequenceHeaders, Av1Packetizer),
}

impl VideoFraming {
    /// For an encoder of `codec` whose header data is `extra_data`, payloads of at most `max_payload` bytes.
    pub fn new(codec: VideoCodec, extra_data: &Bytes, max_payload: usize) -> VideoFraming {
        match codec {
            VideoCodec::H264 => {
                let mut params = ParameterSets::default();
                params.learn(extra_data);
                VideoFraming::H264(params, H264Packetizer::new(max_payload))
            }
            VideoCodec::Hevc => {
                let mut params = HevcParameterSets::default();
                params.learn(extra_data);
                VideoFraming::Hevc(params, HevcPacketizer::new(max_payload))
            }
            VideoCodec::Av1 => {
                let mut headers = SequenceHeaders::default();
                headers.learn(extra_data);
                VideoFraming::Av1(headers, Av1Packetizer::new(max_payload))
            }
        }
    }

    /// Appends one encoder packet's RTP payloads to `out` (the last one marked); false when the packet could
    /// not be read (an AV1 packet whose OBUs run past its end), and nothing was added.
    pub fn packetize(&mut self, data: &Bytes, keyframe: bool, out: &mut Vec<RtpPayload>) -> bool {
        match self {
            VideoFraming::H264(params, p) => p.packetize(&access_unit_nals(data, params), out),
            VideoFraming::Hevc(params, p) => p.packetize(&params.access_unit_nals(data), out),
            VideoFraming::Av1(headers, p) => match headers.elements(data, keyframe) {
                Ok(elements) => p.packetize(&elements, out),
                Err(_) => return false,
            },
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obs_names_map_to_codecs_and_back() {
        for c in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_obs(c.obs_name()), Some(c));
        }
        assert_eq!(VideoCodec::from_obs("vp9"), None);
        assert_eq!(VideoCodec::from_rtp_name("h265"), Some(VideoCodec::Hevc));
        assert_eq!(VideoCodec::from_rtp_name("VP8"), None);
        assert_eq!(VideoCodec::Hevc.mime_type(), "video/H265");
        assert_eq!(VideoCodec::Av1.rtp_name(), "AV1");
    }

    #[test]
    fn h264_fmtp_names_the_encoders_profile() {
        let sps_pps = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0xaa, 0, 0, 0, 1, 0x68, 0xce,
        ]);
        assert_eq!(
            VideoCodec::H264.fmtp(&sps_pps),
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d401f"
        );
        assert!(VideoCodec::H264
            .fmtp(&Bytes::new())
            .ends_with("profile-level-id=42e01f"));
    }

    #[test]
    fn hevc_fmtp_reads_profile_tier_and_level_past_emulation_prevention() {
        // An SPS from x265 (Main, Main tier, level 4 = 120): its constraint flags hold 00 00 03 00.
        let sps = [
            0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0, 0, 3, 0, 0x90, 0, 0, 3, 0, 0, 3, 0, 0x78,
            0xa0,
        ];
        assert_eq!(
            VideoCodec::Hevc.fmtp(&Bytes::copy_from_slice(&sps)),
            "level-id=120;profile-id=1;tier-flag=0;tx-mode=SRST"
        );
        assert_eq!(
            VideoCodec::Hevc.fmtp(&Bytes::new()),
            "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
        );
    }

    #[test]
    fn each_codec_frames_a_keyframe_into_marked_payloads() {
        let h264 = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4, 0, 0, 0, 1, 0x65, 9, 9,
        ]);
        let hevc = Bytes::from_static(&[0, 0, 0, 1, 0x40, 1, 7, 0, 0, 0, 1, 0x26, 1, 9, 9]);
        // Temporal delimiter, sequence header (2 bytes), frame (3 bytes).
        let av1 = Bytes::from_static(&[0x12, 0, 0x0a, 2, 1, 2, 0x32, 3, 7, 7, 7]);
        for (codec, data) in [
            (VideoCodec::H264, h264),
            (VideoCodec::Hevc, hevc),
            (VideoCodec::Av1, av1),
        ] {
            let mut framing = VideoFraming::new(codec, &Bytes::new(), 1200);
            let mut out = Vec::new();
            assert!(framing.packetize(&data, true, &mut out), "{codec:?}");
            assert_eq!(out.len(), 1, "{codec:?}");
            assert!(out[0].marker, "{codec:?}");
        }
        let mut av1 = VideoFraming::new(VideoCodec::Av1, &Bytes::new(), 1200);
        let mut out = Vec::new();
        assert!(!av1.packetize(&Bytes::from_static(&[0x32, 50, 1]), true, &mut out));
        assert!(out.is_empty());
    }
}
