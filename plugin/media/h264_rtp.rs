//! H.264 over RTP, RFC 6184 packetization mode 1 (non-interleaved): single NAL unit packets, STAP-A aggregates of
//! small NAL units (SPS + PPS + SEI), FU-A fragments of NAL units larger than the payload budget. The marker bit
//! is set on the last packet of each access unit.
//!
//! We own this rather than use webrtc-rs's payloader so that access-unit boundaries (marker), parameter-set
//! insertion and the payload budget are decided here, tested, and independent of the transport.
use super::h264::{nal, nal_type};
use super::reassembly::{Reassembler, UnitParser};
use bytes::{BufMut, Bytes, BytesMut};

/// Default RTP payload budget: fits a 1500-byte MTU after IP/UDP/SRTP/RTP headers and extensions with margin.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// One RTP payload and whether it ends an access unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPayload {
    pub payload: Bytes,
    pub marker: bool,
}

/// What H.264's (RFC 6184) and HEVC's (RFC 7798) packetization differ in; [`packetize_nals`] is the rest.
pub(crate) trait NalFraming {
    /// The size of an aggregation packet's payload header (STAP-A: 1, AP: 2).
    const AGGREGATE_HEADER: usize;
    fn max_payload(&self) -> usize;
    /// Writes the payload header of an aggregation packet of `units` (two or more).
    fn aggregate_header(&self, units: &[&Bytes], b: &mut BytesMut);
    /// Appends the fragments of a unit larger than the payload budget.
    fn fragment(&self, n: &Bytes, out: &mut Vec<RtpPayload>);
}

/// One access unit's NAL units as RTP payloads: a unit alone, units that fit together in an aggregation packet (a
/// 16-bit size before each), a unit larger than the budget in fragments; the last payload marked.
pub(crate) fn packetize_nals<'a, F: NalFraming>(
    framing: &F,
    nals: impl Iterator<Item = &'a Bytes>,
    out: &mut Vec<RtpPayload>,
) {
    let first = out.len();
    let max = framing.max_payload();
    let mut pending: Vec<&Bytes> = Vec::new();
    let mut pending_size = F::AGGREGATE_HEADER;
    for n in nals {
        if n.len() > max {
            flush(framing, &mut pending, out);
            pending_size = F::AGGREGATE_HEADER;
            framing.fragment(n, out);
            continue;
        }
        if !pending.is_empty() && pending_size + 2 + n.len() > max {
            flush(framing, &mut pending, out);
            pending_size = F::AGGREGATE_HEADER;
        }
        pending_size += 2 + n.len();
        pending.push(n);
    }
    flush(framing, &mut pending, out);
    if out.len() > first {
        out.last_mut().expect("non-empty").marker = true;
    }
}

/// The units gathered so far as one payload: the unit alone, or an aggregation packet.
fn flush<F: NalFraming>(framing: &F, pending: &mut Vec<&Bytes>, out: &mut Vec<RtpPayload>) {
    let payload = match pending.len() {
        0 => return,
        1 => pending[0].clone(),
        _ => {
            let size = F::AGGREGATE_HEADER + pending.iter().map(|n| 2 + n.len()).sum::<usize>();
            let mut b = BytesMut::with_capacity(size);
            framing.aggregate_header(pending, &mut b);
            for n in pending.iter() {
                b.put_u16(n.len() as u16);
                b.put_slice(n);
            }
            b.freeze()
        }
    };
    pending.clear();
    out.push(RtpPayload {
        payload,
        marker: false,
    });
}

#[derive(Clone, Debug)]
pub struct H264Packetizer {
    max_payload: usize,
}

impl H264Packetizer {
    /// `max_payload` is clamped to at least 16 bytes.
    pub fn new(max_payload: usize) -> Self {
        H264Packetizer {
            max_payload: max_payload.max(16),
        }
    }

    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Appends the payloads for one access unit to `out`.
    pub fn packetize(&self, nals: &[Bytes], out: &mut Vec<RtpPayload>) {
        packetize_nals(self, nals.iter().filter(|n| !n.is_empty()), out);
    }
}

impl NalFraming for H264Packetizer {
    const AGGREGATE_HEADER: usize = 1;

    fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// STAP-A: F of any unit, the highest NRI.
    fn aggregate_header(&self, units: &[&Bytes], b: &mut BytesMut) {
        let f = units.iter().fold(0, |f, n| f | (n[0] & 0x80));
        let nri = units.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
        b.put_u8(f | nri | nal::STAP_A);
    }

    /// FU-A fragments of nearly equal size (no tiny last fragment).
    fn fragment(&self, n: &Bytes, out: &mut Vec<RtpPayload>) {
        let header = n[0];
        let body = &n[1..];
        let room = self.max_payload - 2;
        let chunk = body.len().div_ceil(body.len().div_ceil(room));
        let count = body.len().div_ceil(chunk);
        let indicator = (header & 0xe0) | nal::FU_A;
        for (i, part) in body.chunks(chunk).enumerate() {
            let mut fu_header = header & 0x1f;
            if i == 0 {
                fu_header |= 0x80;
            }
            if i == count - 1 {
                fu_header |= 0x40;
            }
            let mut b = BytesMut::with_capacity(2 + part.len());
            b.put_u8(indicator);
            b.put_u8(fu_header);
            b.put_slice(part);
            out.push(RtpPayload {
                payload: b.freeze(),
                marker: false,
            });
        }
    }
}

/// One access unit reassembled from RTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    pub timestamp: u32,
    pub nals: Vec<Bytes>,
    /// False when packets were lost or malformed inside it (a decoder should wait for the next IDR).
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DepacketizeError {
    Empty,
    TruncatedStapA,
    TruncatedFuA,
    /// A FU-A continuation without its start (start lost).
    FuWithoutStart,
    Unsupported(u8),
}

/// Reassembles access units from RTP packets given in sequence order.
pub type H264Depacketizer = Reassembler<H264Units>;

/// The NAL units of the access unit being put together, and a fragmented one in progress: what H.264's and HEVC's
/// payload formats share.
#[derive(Debug, Default)]
pub struct NalAssembly {
    pub(crate) nals: Vec<Bytes>,
    pub(crate) fu: Option<BytesMut>,
}

impl NalAssembly {
    pub(crate) fn lost(&mut self) {
        self.fu = None;
    }

    pub(crate) fn take(&mut self, timestamp: u32, damaged: bool) -> Option<AccessUnit> {
        let nals = std::mem::take(&mut self.nals);
        let complete = !damaged && self.fu.take().is_none();
        (!nals.is_empty()).then_some(AccessUnit {
            timestamp,
            nals,
            complete,
        })
    }
}

/// RFC 6184's side of [`H264Depacketizer`]: NAL units of single, STAP-A and FU-A payloads.
#[derive(Debug, Default)]
pub struct H264Units(NalAssembly);

impl UnitParser for H264Units {
    type Unit = AccessUnit;
    type Error = DepacketizeError;

    fn lost(&mut self) {
        self.0.lost();
    }

    fn take(&mut self, timestamp: u32, damaged: bool) -> Option<AccessUnit> {
        self.0.take(timestamp, damaged)
    }

    fn parse(&mut self, payload: &[u8]) -> Result<(), DepacketizeError> {
        let Some(&first) = payload.first() else {
            return Err(DepacketizeError::Empty);
        };
        match first & 0x1f {
            1..=23 => {
                self.0.fu = None;
                self.0.nals.push(Bytes::copy_from_slice(payload));
                Ok(())
            }
            nal::STAP_A => {
                let mut rest = &payload[1..];
                while !rest.is_empty() {
                    if rest.len() < 2 {
                        return Err(DepacketizeError::TruncatedStapA);
                    }
                    let size = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                    if size == 0 || rest.len() < 2 + size {
                        return Err(DepacketizeError::TruncatedStapA);
                    }
                    self.0.nals.push(Bytes::copy_from_slice(&rest[2..2 + size]));
                    rest = &rest[2 + size..];
                }
                Ok(())
            }
            nal::FU_A => {
                if payload.len() < 3 {
                    return Err(DepacketizeError::TruncatedFuA);
                }
                let (indicator, header) = (payload[0], payload[1]);
                let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
                if start {
                    let mut b = BytesMut::with_capacity(payload.len() * 4);
                    b.put_u8((indicator & 0xe0) | (header & 0x1f));
                    self.0.fu = Some(b);
                }
                let Some(fu) = self.0.fu.as_mut() else {
                    return Err(DepacketizeError::FuWithoutStart);
                };
                fu.put_slice(&payload[2..]);
                if end {
                    let unit = self.0.fu.take().expect("present").freeze();
                    self.0.nals.push(unit);
                }
                Ok(())
            }
            other => Err(DepacketizeError::Unsupported(other)),
        }
    }
}

/// The NAL type carried by a payload (the first NAL of a STAP-A, the fragmented NAL of a FU-A).
pub fn payload_nal_type(payload: &[u8]) -> Option<u8> {
    match nal_type(payload)? {
        nal::STAP_A => payload.get(3).map(|b| b & 0x1f),
        nal::FU_A => payload.get(1).map(|b| b & 0x1f),
        t => Some(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::{access_unit_nals, ParameterSets};
    use crate::media::reassembly::testing::{round_trip, survives};
    use proptest::prelude::*;

    fn roundtrip(nals: &[Bytes], budget: usize) -> (Vec<RtpPayload>, AccessUnit) {
        let mut out = Vec::new();
        H264Packetizer::new(budget).packetize(nals, &mut out);
        let mut d = H264Depacketizer::new();
        let mut units = Vec::new();
        for (i, p) in out.iter().enumerate() {
            let (done, err) = d.push(i as u16, 1234, p.marker, &p.payload);
            assert_eq!(err, None);
            units.extend(done);
        }
        assert_eq!(units.len(), 1);
        (out, units.pop().unwrap())
    }

    #[test]
    fn sps_pps_go_in_one_stap_a_and_the_idr_in_fu_a() {
        let sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac]);
        let pps = Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80]);
        let idr = Bytes::from(
            std::iter::once(0x65)
                .chain((0..3000).map(|i| i as u8))
                .collect::<Vec<u8>>(),
        );
        let (out, au) = roundtrip(&[sps.clone(), pps.clone(), idr.clone()], 1200);
        assert_eq!(out[0].payload[0] & 0x1f, nal::STAP_A);
        assert_eq!(
            out[0].payload[0] & 0x60,
            0x60,
            "NRI is the highest of the aggregated units"
        );
        assert_eq!(out.len(), 1 + 3, "3000-byte IDR in 3 fragments");
        assert!(out[1..]
            .iter()
            .all(|p| p.payload[0] & 0x1f == nal::FU_A && p.payload.len() <= 1200));
        assert_eq!(out[1].payload[1] & 0xc0, 0x80, "start bit");
        assert_eq!(out[3].payload[1] & 0xc0, 0x40, "end bit");
        assert_eq!(out.iter().filter(|p| p.marker).count(), 1);
        assert!(out.last().unwrap().marker);
        assert_eq!(au.nals, vec![sps, pps, idr]);
        assert!(au.complete);
    }

    #[test]
    fn exact_budget_boundaries() {
        // A NAL of exactly the budget goes alone; one byte more is fragmented.
        let fits = Bytes::from(vec![0x41; 1200]);
        let (out, _) = roundtrip(std::slice::from_ref(&fits), 1200);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, fits);
        let over = Bytes::from(vec![0x41; 1201]);
        let (out, au) = roundtrip(std::slice::from_ref(&over), 1200);
        assert_eq!(out.len(), 2);
        assert_eq!(au.nals, vec![over]);
        // Two NALs whose STAP-A would be budget + 1 are sent separately.
        let a = Bytes::from(vec![0x06; 598]);
        let b = Bytes::from(vec![0x06; 598]); // 1 + 2+598 + 2+598 = 1201
        let (out, _) = roundtrip(&[a.clone(), b.clone()], 1200);
        assert_eq!(out.len(), 2);
        let b = Bytes::from(vec![0x06; 597]); // exactly 1200
        let (out, au) = roundtrip(&[a.clone(), b.clone()], 1200);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload.len(), 1200);
        assert_eq!(au.nals, vec![a, b]);
    }

    #[test]
    fn idr_without_parameter_sets_gets_the_cached_ones() {
        let mut ps = ParameterSets::default();
        ps.learn(&Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4,
        ]));
        assert_eq!(ps.profile_level_id().as_deref(), Some("010203"));
        let au = Bytes::from_static(&[
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x06, 5, 0, 0, 1, 0x65, 9, 9,
        ]);
        let nals = access_unit_nals(&au, &mut ps);
        let types: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
        assert_eq!(
            types,
            vec![6, 7, 8, 5],
            "AUD dropped, SPS/PPS before the IDR"
        );
        // A P-frame gets nothing added; filler is dropped.
        let p = Bytes::from_static(&[0, 0, 1, 0x41, 1, 0, 0, 1, 0x0c, 0xff, 0xff]);
        let types: Vec<u8> = access_unit_nals(&p, &mut ps)
            .iter()
            .map(|n| n[0] & 0x1f)
            .collect();
        assert_eq!(types, vec![1]);
    }

    #[test]
    fn unspecified_nal_types_are_not_sent() {
        // Found by the `annexb` fuzz target: type 0 (or 24–31) would be read as STAP/FU framing by a receiver.
        let au = Bytes::from_static(&[1, 0, 0, 0, 0, 1, 0, 4, 0, 0, 1, 0x7c, 1, 0, 0, 1, 0x41, 5]);
        let nals = access_unit_nals(&au, &mut ParameterSets::default());
        assert_eq!(nals, vec![Bytes::from_static(&[0x41, 5])]);
    }

    #[test]
    fn keyframe_with_its_own_parameter_sets_is_left_alone_and_updates_the_cache() {
        let mut ps = ParameterSets::default();
        ps.learn(&Bytes::from_static(&[
            0, 0, 1, 0x67, 1, 1, 1, 0, 0, 1, 0x68, 1,
        ]));
        let au = Bytes::from_static(&[0, 0, 1, 0x67, 2, 2, 2, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 7]);
        let nals = access_unit_nals(&au, &mut ps);
        assert_eq!(nals.len(), 3);
        assert_eq!(ps.profile_level_id().as_deref(), Some("020202"));
    }

    #[test]
    fn lost_fragment_marks_the_unit_incomplete_and_the_next_one_recovers() {
        let big = Bytes::from(vec![0x65; 5000]);
        let mut out = Vec::new();
        let p = H264Packetizer::new(1200);
        p.packetize(std::slice::from_ref(&big), &mut out);
        let mut d = H264Depacketizer::new();
        let mut got = Vec::new();
        for (i, pl) in out.iter().enumerate() {
            if i == 2 {
                continue; // lost
            }
            got.extend(d.push(i as u16, 1, pl.marker, &pl.payload).0);
        }
        assert_eq!(
            got.len(),
            0,
            "the broken NAL is dropped, so no unit is produced"
        );
        let mut next = Vec::new();
        p.packetize(&[Bytes::from_static(&[0x41, 1, 2])], &mut next);
        let (units, err) = d.push(out.len() as u16, 2, true, &next[0].payload);
        assert_eq!(err, None);
        assert_eq!(units.len(), 1);
        assert!(units[0].complete);
    }

    #[test]
    fn missing_marker_flushes_on_timestamp_change() {
        let mut d = H264Depacketizer::new();
        assert!(d.push(1, 100, false, &[0x41, 1]).0.is_empty());
        let (units, _) = d.push(2, 200, true, &[0x41, 2]);
        assert_eq!(units.len(), 2);
        assert!(!units[0].complete);
        assert!(units[1].complete);
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut d = H264Depacketizer::new();
        assert_eq!(d.push(0, 1, false, &[]).1, Some(DepacketizeError::Empty));
        assert_eq!(
            d.push(1, 1, false, &[0x78, 0x00]).1,
            Some(DepacketizeError::TruncatedStapA)
        );
        assert_eq!(
            d.push(2, 1, false, &[0x78, 0x00, 0x05, 1]).1,
            Some(DepacketizeError::TruncatedStapA)
        );
        assert_eq!(
            d.push(3, 1, false, &[0x7c, 0x05]).1,
            Some(DepacketizeError::TruncatedFuA)
        );
        assert_eq!(
            d.push(4, 1, false, &[0x7c, 0x05, 1]).1,
            Some(DepacketizeError::FuWithoutStart)
        );
        assert_eq!(
            d.push(5, 1, true, &[0x79, 0, 1]).1,
            Some(DepacketizeError::Unsupported(25))
        );
    }

    fn nal_strategy() -> impl Strategy<Value = Bytes> {
        (
            1u8..24,
            0u8..4,
            proptest::collection::vec(any::<u8>(), 0..4000),
        )
            .prop_map(|(t, nri, body)| Bytes::from([vec![(nri << 5) | t], body].concat()))
    }

    proptest! {
        #[test]
        fn packetize_then_depacketize_is_identity(
            nals in proptest::collection::vec(nal_strategy(), 1..12),
            budget in 20usize..1500,
        ) {
            let mut out = Vec::new();
            H264Packetizer::new(budget).packetize(&nals, &mut out);
            let units = round_trip::<H264Units>(&out, budget).map_err(TestCaseError::fail)?;
            prop_assert_eq!(units.len(), 1);
            prop_assert_eq!(&units[0].nals, &nals);
            prop_assert!(units[0].complete);
        }

        #[test]
        fn depacketizer_survives_any_bytes(packets in proptest::collection::vec(
            (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)
        ) {
            prop_assert!(survives::<H264Units>(packets, |u| u.nals.iter().all(|n| !n.is_empty())));
        }
    }
}
