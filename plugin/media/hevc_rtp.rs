//! HEVC over RTP, RFC 7798 without DONL (`sprop-max-don-diff` 0): single NAL unit packets, aggregation packets
//! (type 48) of small NAL units (VPS + SPS + PPS), fragmentation units (type 49) of NAL units larger than the
//! payload budget. The marker bit ends an access unit. NAL units are HEVC's, with their 2-byte header; parameter
//! sets are cached and put before IRAP pictures that lack them ([`HevcParameterSets`]).
use super::h264::annexb_units;
use super::h264_rtp::{packetize_nals, AccessUnit, NalAssembly, NalFraming, RtpPayload};
use super::reassembly::{Reassembler, UnitParser};
use bytes::{BufMut, Bytes, BytesMut};

/// HEVC NAL unit types (H.265 table 7-1) and RFC 7798's payload types.
pub mod nal {
    pub const IRAP_FIRST: u8 = 16;
    pub const IRAP_LAST: u8 = 23;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
    pub const FILLER: u8 = 38;
    pub const AP: u8 = 48;
    pub const FU: u8 = 49;
}

/// The type of a NAL unit (with its 2-byte header), or of a payload.
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    (unit.len() >= 2).then(|| (unit[0] >> 1) & 0x3f)
}

/// The NAL units of an HEVC access unit (Annex B) as RTP sends them: delimiters, filler and the unspecified types
/// (48–63, which RFC 7798 takes for its own payload types) dropped, and before an IRAP picture the last VPS/SPS/PPS
/// seen when the unit lacks them.
#[derive(Debug, Default)]
pub struct HevcParameterSets {
    sets: [Option<Bytes>; 3],
}

impl HevcParameterSets {
    fn remember(&mut self, unit: &Bytes) {
        if let Some(t @ nal::VPS..=nal::PPS) = nal_type(unit) {
            self.sets[usize::from(t - nal::VPS)] = Some(unit.clone());
        }
    }

    /// Learns the parameter sets of the encoder's header data (Annex B).
    pub fn learn(&mut self, header: &Bytes) {
        for unit in annexb_units(header) {
            self.remember(&header.slice_ref(unit));
        }
    }

    pub fn access_unit_nals(&mut self, au: &Bytes) -> Vec<Bytes> {
        let mut units: Vec<Bytes> = annexb_units(au)
            .filter(|u| {
                nal_type(u).is_some_and(|t| t < nal::AP && t != nal::AUD && t != nal::FILLER)
            })
            .map(|u| au.slice_ref(u))
            .collect();
        units.iter().for_each(|u| self.remember(u));
        let irap = units
            .iter()
            .any(|u| nal_type(u).is_some_and(|t| (nal::IRAP_FIRST..=nal::IRAP_LAST).contains(&t)));
        if irap {
            let missing: Vec<Bytes> = self
                .sets
                .iter()
                .flatten()
                .filter(|set| !units.iter().any(|u| nal_type(u) == nal_type(set)))
                .cloned()
                .collect();
            units.splice(0..0, missing);
        }
        units
    }
}

#[derive(Clone, Debug)]
pub struct HevcPacketizer {
    max_payload: usize,
}

impl HevcPacketizer {
    /// `max_payload` is clamped to at least 16 bytes.
    pub fn new(max_payload: usize) -> Self {
        HevcPacketizer {
            max_payload: max_payload.max(16),
        }
    }

    /// Appends the payloads for one access unit's NAL units (each with its 2-byte header; types 48–63 are not
    /// sent) to `out`.
    pub fn packetize(&self, nals: &[Bytes], out: &mut Vec<RtpPayload>) {
        let sent = nals
            .iter()
            .filter(|n| nal_type(n).is_some_and(|t| t < nal::AP));
        packetize_nals(self, sent, out);
    }
}

impl NalFraming for HevcPacketizer {
    const AGGREGATE_HEADER: usize = 2;

    fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// AP: F of any unit; LayerId and TID the lowest of the units'.
    fn aggregate_header(&self, units: &[&Bytes], b: &mut BytesMut) {
        let f = units.iter().fold(0, |f, n| f | (n[0] & 0x80));
        let layer = units.iter().map(|n| layer_id(n)).min().unwrap_or(0);
        let tid = units.iter().map(|n| n[1] & 0x07).min().unwrap_or(1);
        b.put_u8(f | (nal::AP << 1) | (layer >> 5));
        b.put_u8(((layer & 0x1f) << 3) | tid);
    }

    /// Fragmentation units: the payload header keeps the unit's F, LayerId and TID; the FU header its type.
    fn fragment(&self, n: &Bytes, out: &mut Vec<RtpPayload>) {
        let kind = (n[0] >> 1) & 0x3f;
        let header = [(n[0] & 0x81) | (nal::FU << 1), n[1]];
        let body = &n[2..];
        let room = self.max_payload - 3;
        let count = body.len().div_ceil(room);
        for (i, part) in body.chunks(room).enumerate() {
            let mut fu = kind;
            if i == 0 {
                fu |= 0x80;
            }
            if i == count - 1 {
                fu |= 0x40;
            }
            let mut b = BytesMut::with_capacity(3 + part.len());
            b.put_slice(&header);
            b.put_u8(fu);
            b.put_slice(part);
            out.push(RtpPayload {
                payload: b.freeze(),
                marker: false,
            });
        }
    }
}

fn layer_id(n: &[u8]) -> u8 {
    ((n[0] & 0x01) << 5) | (n[1] >> 3)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HevcDepacketizeError {
    /// No payload, or one shorter than its 2-byte header.
    Empty,
    TruncatedAp,
    TruncatedFu,
    /// A fragment without its start (the start was lost).
    FuWithoutStart,
    /// PACI (50) and reserved types.
    Unsupported(u8),
}

/// Reassembles HEVC access units from RTP packets given in sequence order.
pub type HevcDepacketizer = Reassembler<HevcUnits>;

/// RFC 7798's side of [`HevcDepacketizer`]: NAL units of single, aggregation and fragmentation payloads.
#[derive(Debug, Default)]
pub struct HevcUnits(NalAssembly);

impl UnitParser for HevcUnits {
    type Unit = AccessUnit;
    type Error = HevcDepacketizeError;

    fn lost(&mut self) {
        self.0.lost();
    }

    fn take(&mut self, timestamp: u32, damaged: bool) -> Option<AccessUnit> {
        self.0.take(timestamp, damaged)
    }

    fn parse(&mut self, payload: &[u8]) -> Result<(), HevcDepacketizeError> {
        let kind = nal_type(payload).ok_or(HevcDepacketizeError::Empty)?;
        match kind {
            0..=47 => {
                self.0.fu = None;
                self.0.nals.push(Bytes::copy_from_slice(payload));
                Ok(())
            }
            nal::AP => {
                let mut rest = &payload[2..];
                while !rest.is_empty() {
                    if rest.len() < 2 {
                        return Err(HevcDepacketizeError::TruncatedAp);
                    }
                    let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    if size < 2 || rest.len() < 2 + size {
                        return Err(HevcDepacketizeError::TruncatedAp);
                    }
                    self.0.nals.push(Bytes::copy_from_slice(&rest[2..2 + size]));
                    rest = &rest[2 + size..];
                }
                Ok(())
            }
            nal::FU => {
                if payload.len() < 4 {
                    return Err(HevcDepacketizeError::TruncatedFu);
                }
                let fu = payload[2];
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start {
                    let mut b = BytesMut::with_capacity(payload.len() * 4);
                    b.put_u8((payload[0] & 0x81) | ((fu & 0x3f) << 1));
                    b.put_u8(payload[1]);
                    self.0.fu = Some(b);
                }
                let Some(unit) = self.0.fu.as_mut() else {
                    return Err(HevcDepacketizeError::FuWithoutStart);
                };
                unit.put_slice(&payload[3..]);
                if end {
                    let unit = self.0.fu.take().expect("present").freeze();
                    self.0.nals.push(unit);
                }
                Ok(())
            }
            other => Err(HevcDepacketizeError::Unsupported(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::reassembly::testing::{round_trip, survives};
    use proptest::prelude::*;

    fn unit(kind: u8, body: &[u8]) -> Bytes {
        Bytes::from([vec![kind << 1, 1], body.to_vec()].concat())
    }

    #[test]
    fn parameter_sets_ride_in_one_aggregation_packet_and_a_large_slice_is_fragmented() {
        let nals = vec![
            unit(nal::VPS, &[1; 20]),
            unit(nal::SPS, &[2; 40]),
            unit(nal::PPS, &[3; 8]),
            unit(19, &[4; 3000]),
        ];
        let mut out = Vec::new();
        HevcPacketizer::new(1200).packetize(&nals, &mut out);
        let types: Vec<u8> = out.iter().map(|p| nal_type(&p.payload).unwrap()).collect();
        assert_eq!(types, vec![nal::AP, nal::FU, nal::FU, nal::FU]);
        let fu_headers: Vec<u8> = out[1..].iter().map(|p| p.payload[2]).collect();
        assert_eq!(fu_headers, vec![0x80 | 19, 19, 0x40 | 19]);
        assert!(out.iter().all(|p| p.payload.len() <= 1200));
        assert_eq!(out.iter().filter(|p| p.marker).count(), 1);
    }

    #[test]
    fn an_irap_picture_without_parameter_sets_gets_the_last_ones_first() {
        let annexb = |units: &[Bytes]| {
            Bytes::from(
                units
                    .iter()
                    .flat_map(|u| [&[0, 0, 0, 1][..], &u[..]].concat())
                    .collect::<Vec<u8>>(),
            )
        };
        let (vps, sps, pps) = (
            unit(nal::VPS, &[1]),
            unit(nal::SPS, &[2]),
            unit(nal::PPS, &[3]),
        );
        let mut sets = HevcParameterSets::default();
        sets.learn(&annexb(&[vps.clone(), sps.clone(), pps.clone()]));
        let idr = unit(19, &[9; 10]);
        let aud = unit(nal::AUD, &[0x50]);
        assert_eq!(
            sets.access_unit_nals(&annexb(&[aud.clone(), idr.clone()])),
            vec![vps, sps, pps, idr]
        );
        let trail = unit(1, &[7; 10]);
        assert_eq!(
            sets.access_unit_nals(&annexb(&[aud, trail.clone()])),
            vec![trail]
        );
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut d = HevcDepacketizer::new();
        assert_eq!(
            d.push(0, 1, false, &[]).1,
            Some(HevcDepacketizeError::Empty)
        );
        assert_eq!(
            d.push(1, 1, false, &[nal::AP << 1, 1, 0]).1,
            Some(HevcDepacketizeError::TruncatedAp)
        );
        assert_eq!(
            d.push(2, 1, false, &[nal::AP << 1, 1, 0, 9, 1]).1,
            Some(HevcDepacketizeError::TruncatedAp)
        );
        assert_eq!(
            d.push(3, 1, false, &[nal::FU << 1, 1, 0x80]).1,
            Some(HevcDepacketizeError::TruncatedFu)
        );
        assert_eq!(
            d.push(4, 1, false, &[nal::FU << 1, 1, 19, 5]).1,
            Some(HevcDepacketizeError::FuWithoutStart)
        );
        assert_eq!(
            d.push(5, 1, true, &[50 << 1, 1, 0]).1,
            Some(HevcDepacketizeError::Unsupported(50))
        );
    }

    fn nal_strategy() -> impl Strategy<Value = Bytes> {
        (
            0u8..48,
            0u8..64,
            1u8..8,
            proptest::collection::vec(any::<u8>(), 1..4000),
        )
            .prop_map(|(t, layer, tid, body)| {
                Bytes::from(
                    [
                        vec![(t << 1) | (layer >> 5), ((layer & 0x1f) << 3) | tid],
                        body,
                    ]
                    .concat(),
                )
            })
    }

    proptest! {
        #[test]
        fn packetize_then_depacketize_is_identity(
            nals in proptest::collection::vec(nal_strategy(), 1..12),
            budget in 16usize..1500,
        ) {
            let mut out = Vec::new();
            HevcPacketizer::new(budget).packetize(&nals, &mut out);
            let units = round_trip::<HevcUnits>(&out, budget).map_err(TestCaseError::fail)?;
            prop_assert_eq!(units.len(), 1);
            prop_assert_eq!(&units[0].nals, &nals);
            prop_assert!(units[0].complete);
        }

        #[test]
        fn depacketizer_survives_any_bytes(packets in proptest::collection::vec(
            (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)
        ) {
            prop_assert!(survives::<HevcUnits>(packets, |u| u.nals.iter().all(|n| n.len() >= 2)));
        }
    }
}
