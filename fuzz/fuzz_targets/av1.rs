//! Arbitrary bytes as an OBS AV1 packet (a temporal unit) and as RTP payloads: OBU parsing, packetization and
//! depacketization must never panic; whatever OBUs parse must packetize and depacketize back unchanged, and the
//! decoder's form must parse to the same OBUs again.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtc_studio::media::av1::{obu_elements, temporal_unit, SequenceHeaders};
use rtc_studio::media::av1_rtp::{Av1Depacketizer, Av1Packetizer};

fuzz_target!(|data: &[u8]| {
    let budget = 8 + data.first().copied().unwrap_or(0) as usize * 4;
    let tu = Bytes::copy_from_slice(data);
    let keyframe = data.len() % 2 == 0;
    if let Ok(elements) = SequenceHeaders::default().elements(&tu, keyframe) {
        let elements: Vec<Bytes> = elements.into_iter().filter(|e| !e.is_empty()).collect();
        let mut payloads = Vec::new();
        Av1Packetizer::new(budget).packetize(&elements, &mut payloads);
        let mut d = Av1Depacketizer::new();
        let mut units = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            assert!(p.payload.len() <= budget.max(8));
            let (done, err) = d.push(i as u16, 0, p.marker, &p.payload);
            assert!(err.is_none(), "{err:?}");
            units.extend(done);
        }
        if elements.is_empty() {
            assert!(units.is_empty());
        } else {
            assert_eq!(units.len(), 1);
            assert_eq!(units[0].elements, elements);
            let again = obu_elements(&Bytes::from(temporal_unit(&elements))).expect("our own form parses");
            assert_eq!(&again[1..], &elements[..]);
        }
    }
    // The same bytes as a run of RTP payloads: seq (2), marker+length (1), payload.
    let mut d = Av1Depacketizer::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let marker = rest[2] & 0x80 != 0;
        let take = ((rest[2] & 0x7f) as usize).min(rest.len() - 3);
        for unit in d.push(seq, 0, marker, &rest[3..3 + take]).0 {
            assert!(unit.elements.iter().all(|e| !e.is_empty()));
        }
        rest = &rest[3 + take..];
    }
});
