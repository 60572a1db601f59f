//! Opus over RTP (RFC 7587): one Opus packet per RTP packet, a 48 kHz clock whatever the coded rate, marker unset.
//! This module reads what the transport and SDP need from the packets and the encoder's OpusHead.

/// What the encoder's extra data (an `OpusHead`, RFC 7845 §5.1) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_sample_rate: u32,
}

impl OpusHead {
    pub fn parse(data: &[u8]) -> Option<OpusHead> {
        if data.len() < 19 || &data[..8] != b"OpusHead" || data[8] & 0xf0 != 0 || data[9] == 0 {
            return None;
        }
        Some(OpusHead {
            channels: data[9],
            pre_skip: u16::from_le_bytes([data[10], data[11]]),
            input_sample_rate: u32::from_le_bytes([data[12], data[13], data[14], data[15]]),
        })
    }
}

/// Samples (at 48 kHz) of one Opus frame for a TOC configuration number (RFC 6716 §3.1).
fn frame_samples(config: u8) -> u32 {
    match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize], // SILK: 10, 20, 40, 60 ms
        12..=15 => [480, 960][(config % 2) as usize],            // Hybrid: 10, 20 ms
        _ => [120, 240, 480, 960][(config % 4) as usize],        // CELT: 2.5, 5, 10, 20 ms
    }
}

/// The duration of an Opus packet in 48 kHz samples, from its TOC byte and frame count; None for a malformed
/// packet or one longer than the 120 ms Opus allows.
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as u32,
    };
    if frames == 0 {
        return None;
    }
    let samples = frames * frame_samples(toc >> 3);
    (samples <= 5760).then_some(samples)
}

/// Whether the packet is coded as stereo (the TOC's `s` bit).
pub fn packet_is_stereo(packet: &[u8]) -> bool {
    packet.first().is_some_and(|toc| toc & 0x4 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_head_from_obs_ffmpeg_opus() {
        // The 19-byte OpusHead libobs's ffmpeg_opus gives: version 1, 2 channels, pre-skip 312, 48 kHz.
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        assert_eq!(head.len(), 19);
        assert_eq!(
            OpusHead::parse(&head),
            Some(OpusHead {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48_000
            })
        );
        assert_eq!(OpusHead::parse(&head[..18]), None);
        assert_eq!(OpusHead::parse(b"OpusTags..........."), None);
    }

    #[test]
    fn durations_from_toc() {
        assert_eq!(packet_samples(&[0xfc, 1, 2]), Some(960)); // CELT FB 20 ms, code 0
        assert_eq!(packet_samples(&[0x08]), Some(960)); // SILK NB 20 ms (config 1)
        assert_eq!(packet_samples(&[0x10]), Some(1920)); // SILK NB 40 ms (config 2)
        assert_eq!(packet_samples(&[0xfd, 1, 1]), Some(1920)); // two 20 ms frames
        assert_eq!(packet_samples(&[0xff, 0x03]), Some(2880)); // code 3, three 20 ms frames
        assert_eq!(packet_samples(&[0xff, 0x07]), None); // 140 ms > 120 ms
        assert_eq!(packet_samples(&[0xff, 0x00]), None);
        assert_eq!(packet_samples(&[]), None);
        assert!(packet_is_stereo(&[0xfc]));
        assert!(!packet_is_stereo(&[0xf8]));
    }
}
