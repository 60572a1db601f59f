//! Retransmissions on their own stream (RFC 4588), at the wire end of webrtc-rs's interceptor chain. The session
//! keeps the send history and answers NACKs by sending the original packet again; webrtc-rs accepts writes on a
//! track's own SSRC only, so the packet leaves the session unchanged and is recognised here — its sequence number
//! was already sent on that SSRC — and, when the answer took RTX for the stream, rewrapped: the RTX SSRC and
//! payload type, the RTX stream's own sequence number, and the original sequence number ahead of the payload.
//! Without RTX it goes as it is, a retransmission in the same stream. Either way it is marked as a
//! retransmission for the congestion controller below. A simulcast layer's packets name their layer (RID header
//! extension); on the RTX stream that becomes the repaired-RID extension (RFC 8852), or goes when the answer took
//! none, so no receiver takes the RTX stream for a layer of its own.
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::sdp::extmap::{SDES_REPAIR_RTP_STREAM_ID_URI, SDES_RTP_STREAM_ID_URI};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Where a stream's retransmissions go, and what it has sent.
struct Stream {
    rtx: Option<(u32, u8)>,
    /// The ids of the RID and repaired-RID header extensions, when negotiated.
    rid_ids: (Option<u8>, Option<u8>),
    /// The newest sequence number sent on the stream.
    newest: Option<u16>,
    rtx_seq: u16,
}

#[derive(Default)]
pub struct RtxWrap {
    streams: HashMap<u32, Stream>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    /// Retransmissions seen, and how many went on an RTX stream.
    pub resent: u64,
    pub on_rtx: u64,
}

impl RtxWrap {
    /// In the NACK responder's slot (which this replaces): above the pacer and the transport-wide numbering, so
    /// retransmissions are paced, numbered and counted like any packet.
    pub fn add_to(registry: rtc::interceptor::Registry) -> rtc::interceptor::Registry {
        registry.with(Slot::NackResponder, RtxWrap::default())
    }

    /// `packet` as it leaves: unchanged when new, rewrapped for RTX when a retransmission and the stream has RTX.
    /// Returns whether it is a retransmission.
    fn wrap(&mut self, packet: &mut rtc::rtp::Packet) -> bool {
        let Some(stream) = self.streams.get_mut(&packet.header.ssrc) else {
            return false;
        };
        let seq = packet.header.sequence_number;
        let is_new = stream
            .newest
            .is_none_or(|n| seq.wrapping_sub(n) != 0 && seq.wrapping_sub(n) < 0x8000);
        if is_new {
            stream.newest = Some(seq);
            return false;
        }
        self.resent += 1;
        if let Some((ssrc, payload_type)) = stream.rtx {
            let mut payload = Vec::with_capacity(packet.payload.len() + 2);
            payload.extend_from_slice(&seq.to_be_bytes());
            payload.extend_from_slice(&packet.payload);
            packet.header.ssrc = ssrc;
            packet.header.payload_type = payload_type;
            packet.header.sequence_number = stream.rtx_seq;
            if let (Some(rid), repaired) = stream.rid_ids {
                if let Some(value) = packet.header.get_extension(rid) {
                    let _ = packet.header.del_extension(rid);
                    if let Some(repaired) = repaired {
                        let _ = packet.header.set_extension(repaired, value);
                    }
                }
            }
            stream.rtx_seq = stream.rtx_seq.wrapping_add(1);
            packet.payload = payload.into();
            self.on_rtx += 1;
        }
        true
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxWrap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &mut msg.message.packet {
            if self.wrap(packet) {
                msg.message.add(Attribute::Retransmission);
            }
        }
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

/// The ids a stream negotiated for the RID and repaired-RID header extensions (RFC 8852).
pub fn rid_extension_ids(info: &StreamInfo) -> (Option<u8>, Option<u8>) {
    let id_of = |uri: &str| {
        (info.rtp_header_extensions.iter())
            .find(|e| e.uri == uri)
            .and_then(|e| u8::try_from(e.id).ok())
    };
    (
        id_of(SDES_RTP_STREAM_ID_URI),
        id_of(SDES_REPAIR_RTP_STREAM_ID_URI),
    )
}

impl Interceptor for RtxWrap {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        let rtx = info.ssrc_rtx.zip(info.payload_type_rtx);
        self.streams.insert(
            info.ssrc,
            Stream {
                rtx,
                rid_ids: rid_extension_ids(info),
                newest: None,
                rtx_seq: rand::random(),
            },
        );
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                ssrc,
                payload_type: 102,
                sequence_number: seq,
                timestamp: 9000,
                marker: true,
                ..Default::default()
            },
            payload: bytes::Bytes::from_static(&[0x65, 1, 2]),
        }
    }

    fn stream(rtx: Option<(u32, u8)>) -> Stream {
        Stream {
            rtx,
            rid_ids: (None, None),
            newest: None,
            rtx_seq: 500,
        }
    }

    #[test]
    fn a_sequence_number_sent_before_is_rewrapped_for_rtx() {
        let mut w = RtxWrap::default();
        w.streams.insert(1, stream(Some((77, 103))));
        for seq in [65_534, 65_535, 0, 1] {
            let mut p = packet(1, seq);
            assert!(!w.wrap(&mut p), "new: {seq}");
            assert_eq!(p, packet(1, seq), "new packets leave unchanged");
        }
        let mut again = packet(1, 65_535);
        assert!(w.wrap(&mut again));
        assert_eq!(
            (
                again.header.ssrc,
                again.header.payload_type,
                again.header.sequence_number
            ),
            (77, 103, 500)
        );
        assert_eq!(
            &again.payload[..],
            &[0xff, 0xff, 0x65, 1, 2],
            "original sequence number first"
        );
        assert_eq!((again.header.timestamp, again.header.marker), (9000, true));
        let mut next = packet(1, 0);
        w.wrap(&mut next);
        assert_eq!(next.header.sequence_number, 501, "the RTX stream counts on");
        // An unknown SSRC passes; a stream without RTX resends in place.
        let mut other = packet(9, 3);
        assert!(!w.wrap(&mut other));
        w.streams.insert(2, stream(None));
        w.wrap(&mut packet(2, 10));
        let mut same = packet(2, 10);
        assert!(w.wrap(&mut same));
        assert_eq!(same, packet(2, 10));
        assert_eq!((w.resent, w.on_rtx), (3, 2));
    }

    #[test]
    fn a_layer_retransmitted_on_rtx_names_the_layer_it_repairs() {
        let rid = bytes::Bytes::from_static(b"h");
        let sent = |w: &mut RtxWrap| {
            let mut p = packet(1, 7);
            p.header.set_extension(4, rid.clone()).unwrap();
            p.header
                .set_extension(1, bytes::Bytes::from_static(b"0"))
                .unwrap();
            w.wrap(&mut p);
            let mut again = p.clone();
            assert!(w.wrap(&mut again));
            again
        };
        let mut w = RtxWrap::default();
        w.streams.insert(
            1,
            Stream {
                rid_ids: (Some(4), Some(5)),
                ..stream(Some((77, 103)))
            },
        );
        let again = sent(&mut w);
        assert_eq!(
            again.header.get_extension(4),
            None,
            "no RID on the RTX stream"
        );
        assert_eq!(
            again.header.get_extension(5),
            Some(rid.clone()),
            "its repaired RID"
        );
        assert_eq!(
            again.header.get_extension(1).as_deref(),
            Some(&b"0"[..]),
            "the MID stays"
        );
        // Without a repaired-RID extension the RID just goes.
        let mut w = RtxWrap::default();
        w.streams.insert(
            1,
            Stream {
                rid_ids: (Some(4), None),
                ..stream(Some((77, 103)))
            },
        );
        let again = sent(&mut w);
        assert_eq!(
            (again.header.get_extension(4), again.header.get_extension(5)),
            (None, None)
        );
    }
}
