//! Arbitrary bytes as an OBS HEVC packet (Annex B) and as RTP payloads: NAL parsing, parameter-set insertion,
//! packetization and depacketization must never panic, and NAL units must come back unchanged.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtc_studio::media::hevc_rtp::{HevcDepacketizer, HevcPacketizer, HevcParameterSets};

fuzz_target!(|data: &[u8]| {
    let budget = 16 + data.first().copied().unwrap_or(0) as usize * 4;
    let au = Bytes::copy_from_slice(data);
    let mut sets = HevcParameterSets::default();
    sets.learn(&au);
    let nals: Vec<Bytes> = sets.access_unit_nals(&au).into_iter().filter(|n| n.len() >= 2).collect();
    let mut payloads = Vec::new();
    HevcPacketizer::new(budget).packetize(&nals, &mut payloads);
    let mut d = HevcDepacketizer::new();
    let mut units = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        assert!(p.payload.len() <= budget);
        let (done, err) = d.push(i as u16, 0, p.marker, &p.payload);
        assert!(err.is_none(), "{err:?}");
        units.extend(done);
    }
    if nals.is_empty() {
        assert!(units.is_empty());
    } else {
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].nals, nals);
    }
    // The same bytes as a run of RTP payloads: seq (2), marker+length (1), payload.
    let mut d = HevcDepacketizer::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let seq = u16::from_be_bytes([rest[0], rest[1]]);
        let marker = rest[2] & 0x80 != 0;
        let take = ((rest[2] & 0x7f) as usize).min(rest.len() - 3);
        for unit in d.push(seq, 0, marker, &rest[3..3 + take]).0 {
            assert!(unit.nals.iter().all(|n| n.len() >= 2));
        }
        rest = &rest[3 + take..];
    }
});
