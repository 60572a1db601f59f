//! Arbitrary bytes as an OBS video packet: Annex-B parsing, access-unit prep and packetization must never panic,
//! and whatever comes out must depacketize back to the same NAL units.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtc_studio::media::h264::{access_unit_nals, annexb_units, ParameterSets};
use rtc_studio::media::h264_rtp::{H264Depacketizer, H264Packetizer};

fuzz_target!(|data: &[u8]| {
    let budget = 16 + data.first().copied().unwrap_or(0) as usize * 4;
    let au = Bytes::copy_from_slice(data);
    for unit in annexb_units(&au) {
        assert!(!unit.is_empty());
    }
    let mut params = ParameterSets::default();
    let nals = access_unit_nals(&au, &mut params);
    let _ = params.profile_level_id();
    let mut payloads = Vec::new();
    H264Packetizer::new(budget).packetize(&nals, &mut payloads);
    let mut d = H264Depacketizer::new();
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
});
