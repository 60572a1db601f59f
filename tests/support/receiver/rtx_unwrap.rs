//! Retransmissions of simulcast layers, as an SFU takes them. A layer is known by its RID header extension, not by
//! an SSRC the offer declared, and its RTX stream by the repaired-RID extension (RFC 8852) naming the layer it
//! repairs; webrtc-rs 0.21 binds the layers but drops such RTX packets (its "repair rtp stream id" TODO). So at the
//! wire end of the read chain this learns each layer's SSRC from its packets' RID, and turns a packet on an RTX
//! payload type whose repaired RID names a known layer back into the packet it repairs (RFC 4588 §4: the layer's
//! SSRC and payload type, the original sequence number from the first two payload bytes) — it then reaches the
//! layer's track as any late packet does, for our jitter buffer to fill its gap. RTX without a repaired RID (one
//! layer, its RTX stream declared by `a=ssrc-group:FID`) is left to webrtc-rs, which handles that itself.
use rtc::interceptor::{Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc_studio::transport::rtx::rid_extension_ids;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub struct RtxUnwrap {
    /// The RTX payload type and the one it repairs (`apt`).
    rtx: (u8, u8),
    /// The RID and repaired-RID header extension ids, once a layer's stream told them.
    ids: Option<(u8, u8)>,
    /// Each layer's SSRC by its RID.
    layers: HashMap<Vec<u8>, u32>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtxUnwrap {
    /// Wire-most on the read walk, so every other interceptor (transport-wide feedback, receiver reports) and the
    /// track see the repaired packet.
    pub fn add_to(registry: Registry, rtx_payload_type: u8, repairs: u8) -> Registry {
        registry.with(
            Slot::from(500),
            RtxUnwrap {
                rtx: (rtx_payload_type, repairs),
                ids: None,
                layers: HashMap::new(),
                read: VecDeque::new(),
                write: VecDeque::new(),
            },
        )
    }

    fn unwrap(&mut self, p: &mut rtc::rtp::Packet) {
        let Some((rid_id, repaired_id)) = self.ids else {
            return;
        };
        if p.header.payload_type != self.rtx.0 {
            if let Some(rid) = p.header.get_extension(rid_id) {
                self.layers.insert(rid.to_vec(), p.header.ssrc);
            }
            return;
        }
        let Some(ssrc) = (p.header.get_extension(repaired_id))
            .and_then(|rid| self.layers.get(rid.as_ref()).copied())
        else {
            return;
        };
        if p.payload.len() < 2 {
            return;
        }
        let _ = p.header.del_extension(repaired_id);
        p.header.ssrc = ssrc;
        p.header.payload_type = self.rtx.1;
        p.header.sequence_number = u16::from_be_bytes([p.payload[0], p.payload[1]]);
        p.payload = p.payload.slice(2..);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxUnwrap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(p) = &mut msg.message.packet {
            self.unwrap(p);
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for RtxUnwrap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    /// A layer's stream is bound before its first packet reaches the chain: its extension ids come with it.
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(rid), Some(repaired)) = rid_extension_ids(info) {
            self.ids = Some((rid, repaired));
        }
    }
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
