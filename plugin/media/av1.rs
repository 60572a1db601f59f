//! AV1 bitstream framing: the open bitstream units (OBUs) of a temporal unit as encoders give them ("low overhead
//! bitstream format": every OBU with its size field), and back. What RTP carries of them (AOMedia's "RTP Payload
//! Format for AV1") is an OBU without its size field; temporal delimiters and tile lists are not sent.
use bytes::{BufMut, Bytes, BytesMut};

/// OBU types (AV1 spec 6.2.2).
pub mod obu {
    pub const SEQUENCE_HEADER: u8 = 1;
    pub const TEMPORAL_DELIMITER: u8 = 2;
    pub const FRAME_HEADER: u8 = 3;
    pub const TILE_GROUP: u8 = 4;
    pub const METADATA: u8 = 5;
    pub const FRAME: u8 = 6;
    pub const TILE_LIST: u8 = 8;
    pub const PADDING: u8 = 15;
}

const HAS_EXTENSION: u8 = 0x04;
const HAS_SIZE: u8 = 0x02;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObuError {
    /// The stream ends inside an OBU header, its size or its payload.
    Truncated,
    /// A size field longer than 8 bytes, or larger than any buffer.
    BadSize,
    /// The forbidden bit is set.
    Forbidden,
}

/// An OBU's type, from its first header byte.
pub fn obu_type(header: u8) -> u8 {
    (header >> 3) & 0x0f
}

/// Reads an unsigned LEB128 number (at most 8 bytes, as AV1 allows): the value and the bytes it took.
pub fn read_leb128(data: &[u8]) -> Result<(u64, usize), ObuError> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(8) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    match data.len() < 8 {
        true => Err(ObuError::Truncated),
        false => Err(ObuError::BadSize),
    }
}

/// Appends `value` as unsigned LEB128 (the shortest form).
pub fn write_leb128(mut value: u64, out: &mut BytesMut) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(low);
            return;
        }
        out.put_u8(low | 0x80);
    }
}

/// How many bytes `value` takes as LEB128.
pub fn leb128_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// The OBUs of a temporal unit in the low overhead bitstream format, each as an RTP "OBU element": its header
/// (size flag cleared, extension kept) and payload, without the size field. An OBU without a size field runs to
/// the end of the data.
pub fn obu_elements(tu: &Bytes) -> Result<Vec<Bytes>, ObuError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < tu.len() {
        let header = tu[at];
        if header & 0x80 != 0 {
            return Err(ObuError::Forbidden);
        }
        let header_len = 1 + usize::from(header & HAS_EXTENSION != 0);
        if at + header_len > tu.len() {
            return Err(ObuError::Truncated);
        }
        let (size, size_len) = match header & HAS_SIZE != 0 {
            true => read_leb128(&tu[at + header_len..])?,
            false => ((tu.len() - at - header_len) as u64, 0),
        };
        let payload_at = at + header_len + size_len;
        let size = usize::try_from(size).map_err(|_| ObuError::BadSize)?;
        let end = payload_at.checked_add(size).ok_or(ObuError::BadSize)?;
        if end > tu.len() {
            return Err(ObuError::Truncated);
        }
        let mut element = BytesMut::with_capacity(header_len + size);
        element.put_u8(header & !HAS_SIZE);
        element.put_slice(&tu[at + 1..at + header_len]);
        element.put_slice(&tu[payload_at..end]);
        out.push(element.freeze());
        at = end;
    }
    Ok(out)
}

/// OBU elements back into a temporal unit in the low overhead bitstream format, as decoders take it: a temporal
/// delimiter first, every OBU with its size field.
pub fn temporal_unit(elements: &[Bytes]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_slice(&[(obu::TEMPORAL_DELIMITER << 3) | HAS_SIZE, 0]);
    for e in elements.iter().filter(|e| !e.is_empty()) {
        let header_len = 1 + usize::from(e[0] & HAS_EXTENSION != 0);
        let header_len = header_len.min(e.len());
        out.put_u8(e[0] | HAS_SIZE);
        out.put_slice(&e[1..header_len]);
        write_leb128((e.len() - header_len) as u64, &mut out);
        out.put_slice(&e[header_len..]);
    }
    out.to_vec()
}

/// The OBU elements of one temporal unit as RTP sends them: temporal delimiters, tile lists and padding left out;
/// on a keyframe without a sequence header, the last one seen (in the encoder's header data or an earlier
/// keyframe) put first, so a receiver can start decoding there.
#[derive(Debug, Default)]
pub struct SequenceHeaders {
    last: Option<Bytes>,
}

impl SequenceHeaders {
    /// Learns the sequence header of the encoder's header data (OBUs; an `av1C` box's OBUs after its 4 bytes).
    pub fn learn(&mut self, data: &Bytes) {
        let obus = match data.first() {
            Some(b) if b & 0x80 != 0 && data.len() >= 4 => data.slice(4..),
            _ => data.clone(),
        };
        if let Ok(elements) = obu_elements(&obus) {
            self.remember(&elements);
        }
    }

    fn remember(&mut self, elements: &[Bytes]) {
        if let Some(s) = elements
            .iter()
            .find(|e| obu_type(e[0]) == obu::SEQUENCE_HEADER)
        {
            self.last = Some(s.clone());
        }
    }

    pub fn elements(&mut self, tu: &Bytes, keyframe: bool) -> Result<Vec<Bytes>, ObuError> {
        let mut elements = obu_elements(tu)?;
        elements.retain(|e| {
            !matches!(
                obu_type(e[0]),
                obu::TEMPORAL_DELIMITER | obu::TILE_LIST | obu::PADDING
            )
        });
        self.remember(&elements);
        let has_sequence_header = elements
            .iter()
            .any(|e| obu_type(e[0]) == obu::SEQUENCE_HEADER);
        if keyframe && !has_sequence_header {
            if let Some(s) = &self.last {
                elements.insert(0, s.clone());
            }
        }
        Ok(elements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tu_obu(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8((kind << 3) | HAS_SIZE);
        write_leb128(payload.len() as u64, &mut b);
        b.put_slice(payload);
        b.to_vec()
    }

    #[test]
    fn leb128_round_trips_and_rejects_what_av1_forbids() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            (1 << 56) - 1,
        ] {
            let mut b = BytesMut::new();
            write_leb128(v, &mut b);
            assert_eq!(b.len(), leb128_len(v), "{v}");
            assert_eq!(read_leb128(&b), Ok((v, b.len())));
        }
        assert_eq!(read_leb128(&[0x80, 0x80]), Err(ObuError::Truncated));
        assert_eq!(read_leb128(&[0xff; 9]), Err(ObuError::BadSize));
    }

    #[test]
    fn a_temporal_unit_loses_its_delimiter_and_size_fields_and_comes_back_whole() {
        let tu = Bytes::from(
            [
                tu_obu(obu::TEMPORAL_DELIMITER, &[]),
                tu_obu(obu::SEQUENCE_HEADER, &[1, 2, 3]),
                tu_obu(obu::FRAME, &vec![7; 300]),
            ]
            .concat(),
        );
        let mut headers = SequenceHeaders::default();
        let elements = headers.elements(&tu, true).unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(&elements[0][..], &[obu::SEQUENCE_HEADER << 3, 1, 2, 3]);
        assert_eq!(elements[1].len(), 301);
        assert_eq!(temporal_unit(&elements), tu.to_vec());
        // A later keyframe without its own sequence header gets the last one first; other frames do not.
        let frame = Bytes::from(tu_obu(obu::FRAME, &[9; 10]));
        assert_eq!(headers.elements(&frame, true).unwrap().len(), 2);
        assert_eq!(headers.elements(&frame, false).unwrap().len(), 1);
    }

    #[test]
    fn broken_temporal_units_are_errors() {
        assert_eq!(
            obu_elements(&Bytes::from_static(&[0x80])),
            Err(ObuError::Forbidden)
        );
        assert_eq!(
            obu_elements(&Bytes::from_static(&[0x32, 5, 1])),
            Err(ObuError::Truncated)
        );
        assert_eq!(
            obu_elements(&Bytes::from_static(&[0x36])),
            Err(ObuError::Truncated)
        );
        // Without a size field, an OBU runs to the end.
        assert_eq!(
            obu_elements(&Bytes::from_static(&[0x30, 1, 2])).unwrap(),
            vec![Bytes::from_static(&[0x30, 1, 2])]
        );
    }
}
