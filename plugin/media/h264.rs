//! H.264 Annex-B byte streams: finding NAL units and naming their types.

/// NAL unit types we act on (ITU-T H.264 table 7-1).
pub mod nal {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const FILLER: u8 = 12;
    pub const STAP_A: u8 = 24;
    pub const FU_A: u8 = 28;
}

/// The type of a NAL unit (low five bits of its first byte); `None` for an empty unit.
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1f)
}

/// Iterates the NAL units of an Annex-B byte stream (3- or 4-byte start codes), without their start codes.
///
/// Bytes before the first start code are ignored; trailing zero bytes of a unit (the leading zero of the next
/// 4-byte start code, or `trailing_zero_8bits`) are trimmed. Empty units are skipped.
pub fn annexb_units(stream: &[u8]) -> AnnexBUnits<'_> {
    AnnexBUnits {
        rest: skip_to_first(stream),
    }
}

pub struct AnnexBUnits<'a> {
    rest: &'a [u8],
}

/// Position just after the next start code (00 00 01) at or after `from`, and the start code's first byte.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip fast: a start code needs data[i+2] == 1 and data[i+1] == 0.
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

fn skip_to_first(stream: &[u8]) -> &[u8] {
    match find_start_code(stream, 0) {
        Some((_, after)) => &stream[after..],
        None => &[],
    }
}

impl<'a> Iterator for AnnexBUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (unit, rest) = match find_start_code(self.rest, 0) {
                Some((start, after)) => (&self.rest[..start], &self.rest[after..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let end = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if end > 0 {
                return Some(&unit[..end]);
            }
        }
    }
}

/// Splits an Annex-B stream into access units at its access unit delimiters (AUD, type 9), as an encoder asked
/// for `aud=1` writes them. Each part starts at its AUD's start code (3 or 4 bytes); bytes before the first AUD
/// are dropped. For tests and benchmarks that replay encoder output one frame at a time, as OBS hands it over.
pub fn split_at_aud(stream: &bytes::Bytes) -> Vec<bytes::Bytes> {
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some((start, after)) = find_start_code(stream, from) {
        if stream.get(after).is_some_and(|b| b & 0x1f == nal::AUD) {
            // A 4-byte start code is a zero byte before the 3-byte one.
            let begin = if start > 0 && stream[start - 1] == 0 {
                start - 1
            } else {
                start
            };
            starts.push(begin);
        }
        from = after;
    }
    starts.push(stream.len());
    starts
        .windows(2)
        .map(|w| stream.slice(w[0]..w[1]))
        .collect()
}

/// The NAL types of an Annex-B access unit, in order (for logs and diagnostics).
pub fn annexb_nal_types(stream: &[u8]) -> Vec<u8> {
    annexb_units(stream).filter_map(nal_type).collect()
}

/// Whether `stream` starts with an Annex-B start code (3 or 4 bytes).
pub fn is_annexb(stream: &[u8]) -> bool {
    stream.starts_with(&[0, 0, 1]) || stream.starts_with(&[0, 0, 0, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 6,
        ];
        let units: Vec<&[u8]> = annexb_units(&s).collect();
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5, 6][..]]
        );
        assert_eq!(annexb_nal_types(&s), vec![nal::SPS, nal::PPS, nal::IDR]);
    }

    #[test]
    fn ignores_leading_garbage_and_empty_units() {
        let s = [9, 9, 0, 0, 1, 0, 0, 1, 0x41, 7, 0, 0];
        let units: Vec<&[u8]> = annexb_units(&s).collect();
        assert_eq!(units, vec![&[0x41, 7][..]]);
    }

    #[test]
    fn no_start_code_means_no_units() {
        assert_eq!(annexb_units(&[0x65, 1, 2, 3]).count(), 0);
        assert_eq!(annexb_units(&[]).count(), 0);
        assert!(!is_annexb(&[0x65]));
        assert!(is_annexb(&[0, 0, 1, 0x65]));
    }

    #[test]
    fn splits_at_access_unit_delimiters_with_either_start_code() {
        let s = bytes::Bytes::from_static(&[
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 1, // AU 1 (4-byte start codes)
            0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 2, // AU 2 (3-byte)
        ]);
        let aus = split_at_aud(&s);
        assert_eq!(aus.len(), 2);
        assert_eq!(&aus[0][..], &s[..12]);
        assert_eq!(&aus[1][..], &s[12..]);
        assert_eq!(annexb_nal_types(&aus[1]), vec![nal::AUD, nal::SLICE]);
    }

    #[test]
    fn keeps_emulation_prevention_bytes() {
        // 00 00 03 inside a unit is not a start code.
        let s = [0, 0, 1, 0x65, 0, 0, 3, 1, 8];
        assert_eq!(
            annexb_units(&s).collect::<Vec<_>>(),
            vec![&[0x65, 0, 0, 3, 1, 8][..]]
        );
    }
}

/// The latest SPS and PPS seen (from the encoder's extra data and from keyframes).
#[derive(Clone, Debug, Default)]
pub struct ParameterSets {
    sps: Option<bytes::Bytes>,
    pps: Option<bytes::Bytes>,
}

impl ParameterSets {
    /// Remembers any SPS/PPS in an Annex-B buffer (zero-copy slices of `stream`).
    pub fn learn(&mut self, stream: &bytes::Bytes) {
        for unit in annexb_units(stream) {
            match nal_type(unit) {
                Some(nal::SPS) => self.sps = Some(stream.slice_ref(unit)),
                Some(nal::PPS) => self.pps = Some(stream.slice_ref(unit)),
                _ => {}
            }
        }
    }

    pub fn sps(&self) -> Option<&bytes::Bytes> {
        self.sps.as_ref()
    }

    pub fn pps(&self) -> Option<&bytes::Bytes> {
        self.pps.as_ref()
    }

    /// `profile-level-id` for SDP (RFC 6184 §8.1): profile_idc, constraint flags, level_idc from the SPS.
    pub fn profile_level_id(&self) -> Option<String> {
        let sps = self.sps.as_ref()?;
        (sps.len() >= 4).then(|| format!("{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]))
    }
}

/// The NAL units of one OBS access unit as they should go on the wire: access unit delimiters, filler data and
/// unspecified types (0, 24–31) dropped, and the latest SPS and PPS put in front of an IDR that does not carry them itself.
pub fn access_unit_nals(au: &bytes::Bytes, params: &mut ParameterSets) -> Vec<bytes::Bytes> {
    let (mut has_sps, mut has_pps) = (false, false);
    let mut out = Vec::with_capacity(8);
    for unit in annexb_units(au) {
        match nal_type(unit) {
            Some(nal::AUD) | Some(nal::FILLER) => continue,
            // Types 0 and 24–31 are unspecified in H.264 and mean STAP/MTAP/FU framing in RTP: never send them.
            Some(0) | Some(24..) => continue,
            Some(nal::SPS) => {
                has_sps = true;
                params.sps = Some(au.slice_ref(unit));
            }
            Some(nal::PPS) => {
                has_pps = true;
                params.pps = Some(au.slice_ref(unit));
            }
            Some(nal::IDR) if !(has_sps && has_pps) => {
                if let (Some(sps), Some(pps)) = (&params.sps, &params.pps) {
                    out.push(sps.clone());
                    out.push(pps.clone());
                }
                has_sps = true;
                has_pps = true;
            }
            _ => {}
        }
        out.push(au.slice_ref(unit));
    }
    out
}

/// Whether the NAL units contain an IDR slice.
pub fn has_idr(nals: &[bytes::Bytes]) -> bool {
    nals.iter().any(|n| nal_type(n) == Some(nal::IDR))
}

/// Joins NAL units into an Annex-B buffer with 4-byte start codes.
pub fn to_annexb(nals: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum());
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}
