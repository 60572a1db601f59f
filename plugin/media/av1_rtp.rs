//! AV1 over RTP (AOMedia's "RTP Payload Format for AV1"): each payload starts with the aggregation header
//! `Z Y W W N - - -` — Z: its first OBU element continues the previous payload's last; Y: its last element
//! continues in the next payload; W: how many elements it holds (0: each has a LEB128 length before it, as we
//! send); N: the first payload of a coded video sequence (a keyframe with its sequence header). OBU elements are
//! OBUs without their size field ([`super::av1`]). The marker bit ends a temporal unit.
use super::av1::{leb128_len, obu, obu_type, read_leb128, write_leb128};
use super::h264_rtp::RtpPayload;
use super::reassembly::{Reassembler, UnitParser};
use bytes::{BufMut, Bytes, BytesMut};

const Z: u8 = 0x80;
const Y: u8 = 0x40;
const W_SHIFT: u8 = 4;
const N: u8 = 0x08;

#[derive(Clone, Debug)]
pub struct Av1Packetizer {
    max_payload: usize,
}

impl Av1Packetizer {
    /// `max_payload` is clamped to at least 8 bytes.
    pub fn new(max_payload: usize) -> Self {
        Av1Packetizer {
            max_payload: max_payload.max(8),
        }
    }

    /// Appends the payloads of one temporal unit's OBU elements to `out`; the first is marked N when the unit
    /// starts with a sequence header (a keyframe as [`super::av1::SequenceHeaders`] gives it).
    pub fn packetize(&self, elements: &[Bytes], out: &mut Vec<RtpPayload>) {
        let first = out.len();
        let mut packet = BytesMut::with_capacity(self.max_payload);
        packet.put_u8(0);
        for element in elements.iter().filter(|e| !e.is_empty()) {
            let mut rest = &element[..];
            while !rest.is_empty() {
                let room = self.max_payload - packet.len();
                if leb128_len(rest.len() as u64) + rest.len() <= room {
                    write_leb128(rest.len() as u64, &mut packet);
                    packet.put_slice(rest);
                    break;
                }
                // The largest piece whose length field and bytes fit; none if not even one byte does.
                let mut piece = room.saturating_sub(leb128_len(room as u64));
                while piece > 0 && leb128_len(piece as u64) + piece > room {
                    piece -= 1;
                }
                if piece == 0 {
                    // Not even one byte fits after what the payload holds (an empty one has room for 7).
                    self.flush(&mut packet, false, out);
                    continue;
                }
                write_leb128(piece as u64, &mut packet);
                packet.put_slice(&rest[..piece]);
                rest = &rest[piece..];
                self.flush(&mut packet, true, out);
            }
        }
        if packet.len() > 1 {
            self.flush(&mut packet, false, out);
        }
        if out.len() > first {
            let starts_sequence = elements
                .first()
                .is_some_and(|e| obu_type(e[0]) == obu::SEQUENCE_HEADER);
            if starts_sequence {
                let mut p = BytesMut::from(&out[first].payload[..]);
                p[0] |= N;
                out[first].payload = p.freeze();
            }
            out.last_mut().expect("non-empty").marker = true;
        }
    }

    /// Ends the payload being built (`continues`: its last element goes on in the next one) and starts the next.
    fn flush(&self, packet: &mut BytesMut, continues: bool, out: &mut Vec<RtpPayload>) {
        let continued = out
            .last()
            .is_some_and(|p| p.payload[0] & Y != 0 && !p.marker);
        let mut done = std::mem::replace(packet, BytesMut::with_capacity(self.max_payload));
        done[0] = if continued { Z } else { 0 } | if continues { Y } else { 0 };
        out.push(RtpPayload {
            payload: done.freeze(),
            marker: false,
        });
        packet.put_u8(0);
    }
}

/// One temporal unit put back together from RTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporalUnit {
    pub timestamp: u32,
    /// OBU elements (no size fields; see [`super::av1::temporal_unit`] for a decoder's form).
    pub elements: Vec<Bytes>,
    /// False when packets were lost or malformed inside it.
    pub complete: bool,
    /// The first payload said N: a new coded video sequence starts here.
    pub starts_sequence: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Av1DepacketizeError {
    Empty,
    /// An element's length runs past the payload, or is missing.
    Truncated,
    /// Z set, and the element it continues was lost.
    ContinuationWithoutStart,
    /// An element of no bytes.
    EmptyElement,
}

/// Reassembles temporal units from RTP packets given in sequence order.
pub type Av1Depacketizer = Reassembler<Av1Units>;

/// The AV1 payload format's side of [`Av1Depacketizer`]: OBU elements, fragments joined.
#[derive(Debug, Default)]
pub struct Av1Units {
    elements: Vec<Bytes>,
    fragment: Option<BytesMut>,
    /// Inside a unit (its first payload has been read), and whether that payload said N.
    started: bool,
    starts_sequence: bool,
    /// A fragment was cut off by an element that does not continue it.
    damaged: bool,
}

impl UnitParser for Av1Units {
    type Unit = TemporalUnit;
    type Error = Av1DepacketizeError;

    fn lost(&mut self) {
        self.fragment = None;
    }

    fn take(&mut self, timestamp: u32, damaged: bool) -> Option<TemporalUnit> {
        let elements = std::mem::take(&mut self.elements);
        let complete = !damaged && !self.damaged && self.fragment.take().is_none();
        let starts_sequence = self.starts_sequence;
        (self.started, self.starts_sequence, self.damaged) = (false, false, false);
        (!elements.is_empty()).then_some(TemporalUnit {
            timestamp,
            elements,
            complete,
            starts_sequence,
        })
    }

    fn parse(&mut self, payload: &[u8]) -> Result<(), Av1DepacketizeError> {
        let (&header, mut rest) = payload.split_first().ok_or(Av1DepacketizeError::Empty)?;
        if !std::mem::replace(&mut self.started, true) {
            self.starts_sequence = header & N != 0;
        }
        let count = usize::from((header >> W_SHIFT) & 0x03);
        let mut pieces = Vec::new();
        while !rest.is_empty() {
            let last_without_length = count != 0 && pieces.len() + 1 == count;
            let size = match last_without_length {
                true => rest.len(),
                false => {
                    let (size, len) =
                        read_leb128(rest).map_err(|_| Av1DepacketizeError::Truncated)?;
                    rest = &rest[len..];
                    usize::try_from(size).map_err(|_| Av1DepacketizeError::Truncated)?
                }
            };
            if size > rest.len() {
                return Err(Av1DepacketizeError::Truncated);
            }
            if size == 0 {
                return Err(Av1DepacketizeError::EmptyElement);
            }
            pieces.push(&rest[..size]);
            rest = &rest[size..];
        }
        if pieces.is_empty() {
            return Err(Av1DepacketizeError::Empty);
        }
        let last = pieces.len() - 1;
        let mut missing_start = false;
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut element = match (i == 0 && header & Z != 0, self.fragment.take()) {
                (true, Some(mut started)) => {
                    started.put_slice(piece);
                    started
                }
                (true, None) => {
                    missing_start = true;
                    continue;
                }
                (false, dropped) => {
                    if dropped.is_some() {
                        self.damaged = true;
                    }
                    BytesMut::from(piece)
                }
            };
            if i == last && header & Y != 0 {
                self.fragment = Some(std::mem::take(&mut element));
            } else {
                self.elements.push(element.freeze());
            }
        }
        match missing_start {
            true => Err(Av1DepacketizeError::ContinuationWithoutStart),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::reassembly::testing::{round_trip, survives};
    use proptest::prelude::*;

    fn element(kind: u8, extension: bool, body: &[u8]) -> Bytes {
        let mut b = vec![(kind << 3) | if extension { 0x04 } else { 0 }];
        if extension {
            b.push(0x08);
        }
        b.extend_from_slice(body);
        Bytes::from(b)
    }

    #[test]
    fn small_obus_share_a_payload_and_a_keyframe_is_marked_n() {
        let elements = vec![
            element(obu::SEQUENCE_HEADER, false, &[1; 10]),
            element(obu::FRAME, false, &[2; 100]),
        ];
        let mut out = Vec::new();
        Av1Packetizer::new(1200).packetize(&elements, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload[0], N, "W=0, no Z/Y, N");
        assert!(out[0].marker);
        assert_eq!(&out[0].payload[1..3], &[11, obu::SEQUENCE_HEADER << 3]);
    }

    #[test]
    fn a_large_obu_is_fragmented_with_y_then_z() {
        let elements = vec![element(obu::FRAME, false, &[5; 3000])];
        let mut out = Vec::new();
        Av1Packetizer::new(1200).packetize(&elements, &mut out);
        assert_eq!(out.len(), 3);
        let headers: Vec<u8> = out.iter().map(|p| p.payload[0]).collect();
        assert_eq!(headers, vec![Y, Z | Y, Z]);
        assert!(out.iter().all(|p| p.payload.len() <= 1200));
        assert_eq!(out.iter().filter(|p| p.marker).count(), 1);
    }

    #[test]
    fn a_lost_fragment_damages_its_unit_and_the_next_unit_is_whole() {
        let elements = vec![element(obu::FRAME, false, &[5; 3000])];
        let mut out = Vec::new();
        Av1Packetizer::new(1200).packetize(&elements, &mut out);
        let mut d = Av1Depacketizer::new();
        assert!(d.push(1, 10, false, &out[0].payload).0.is_empty());
        // seq 2 lost
        let (units, err) = d.push(3, 10, true, &out[2].payload);
        assert_eq!(err, Some(Av1DepacketizeError::ContinuationWithoutStart));
        assert!(units.is_empty() || !units[0].complete);
        let mut whole = Vec::new();
        for (i, p) in out.iter().enumerate() {
            whole.extend(d.push(4 + i as u16, 20, p.marker, &p.payload).0);
        }
        assert_eq!(whole.len(), 1);
        assert!(whole[0].complete);
        assert_eq!(whole[0].elements, elements);
    }

    #[test]
    fn elements_counted_by_w_need_no_length_on_the_last() {
        // W=2: the first element has a length, the second runs to the end.
        let payload = [2 << W_SHIFT, 2, 0x30, 1, 0x30, 2, 3];
        let mut d = Av1Depacketizer::new();
        let (units, err) = d.push(0, 1, true, &payload);
        assert_eq!(err, None);
        assert_eq!(
            units[0].elements,
            vec![
                Bytes::from_static(&[0x30, 1]),
                Bytes::from_static(&[0x30, 2, 3])
            ]
        );
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let mut d = Av1Depacketizer::new();
        assert_eq!(d.push(0, 1, false, &[]).1, Some(Av1DepacketizeError::Empty));
        assert_eq!(
            d.push(1, 1, false, &[0]).1,
            Some(Av1DepacketizeError::Empty)
        );
        assert_eq!(
            d.push(2, 1, false, &[0, 5, 1]).1,
            Some(Av1DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(3, 1, false, &[0, 0x80]).1,
            Some(Av1DepacketizeError::Truncated)
        );
        assert_eq!(
            d.push(4, 1, false, &[0, 0]).1,
            Some(Av1DepacketizeError::EmptyElement)
        );
    }

    fn element_strategy() -> impl Strategy<Value = Bytes> {
        (
            prop_oneof![
                Just(obu::SEQUENCE_HEADER),
                Just(obu::FRAME_HEADER),
                Just(obu::TILE_GROUP),
                Just(obu::METADATA),
                Just(obu::FRAME)
            ],
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..5000),
        )
            .prop_map(|(kind, ext, body)| element(kind, ext, &body))
    }

    proptest! {
        #[test]
        fn packetize_then_depacketize_is_identity(
            elements in proptest::collection::vec(element_strategy(), 1..10),
            budget in 8usize..1500,
        ) {
            let mut out = Vec::new();
            Av1Packetizer::new(budget).packetize(&elements, &mut out);
            prop_assert!(out.iter().all(|p| p.payload.len() > 1), "no payload without an element");
            let units = round_trip::<Av1Units>(&out, budget).map_err(TestCaseError::fail)?;
            prop_assert_eq!(units.len(), 1);
            prop_assert_eq!(&units[0].elements, &elements);
            prop_assert!(units[0].complete);
            prop_assert_eq!(
                units[0].starts_sequence,
                obu_type(elements[0][0]) == obu::SEQUENCE_HEADER
            );
        }

        #[test]
        fn depacketizer_survives_any_bytes(packets in proptest::collection::vec(
            (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)
        ) {
            prop_assert!(survives::<Av1Units>(packets, |u| u.elements.iter().all(|e| !e.is_empty())));
        }
    }
}
