//! The server's RTCP as the session's feedback: an interceptor that taps inbound RTCP out of webrtc-rs's chain
//! (transport-wide feedback and REMB straight to the session, NACK/PLI/FIR/receiver reports to the stream they
//! name), and the translation of each RTCP packet into [`Feedback`].

use crate::session::{Feedback, TransportAck};
use rtc::interceptor::{
    Attribute, Interceptor, Packet as InterceptedPacket, Slot, StreamInfo, TaggedPacket,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;
use webrtc::peer_connection::Registry;

/// Where transport-wide feedback goes, straight from the interceptor chain.
pub type TransportFeedbackSink = Box<dyn Fn(Feedback) + Send + Sync>;

/// An interceptor that hands the inbound RTCP packets matching `wanted` to the application (webrtc-rs keeps all
/// inbound RTCP inside the interceptor chain unless one marks it), and transport-wide feedback (transport-cc,
/// REMB) to `transport` directly: webrtc-rs routes an RTCP packet to the track its first report names, and such
/// feedback names no track of ours reliably (Janus: the SSRC of its own, GStreamer: none). Everything passes
/// through unchanged.
pub struct RtcpTap {
    wanted: fn(&dyn rtc::rtcp::Packet) -> bool,
    transport: Option<TransportFeedbackSink>,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RtcpTap {
    pub fn new(
        wanted: fn(&dyn rtc::rtcp::Packet) -> bool,
        transport: Option<TransportFeedbackSink>,
    ) -> Self {
        RtcpTap {
            wanted,
            transport,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }

    /// Registers the tap last in the chain, so every other interceptor has seen the packets first.
    pub fn add_to(registry: Registry, wanted: fn(&dyn rtc::rtcp::Packet) -> bool) -> Registry {
        registry.with(Slot::from(14_000), RtcpTap::new(wanted, None))
    }
}

/// Transport-wide feedback in an RTCP packet, if it is some.
fn transport_feedback(p: &dyn rtc::rtcp::Packet) -> Option<Feedback> {
    let any = p.as_any();
    if let Some(twcc) = any.downcast_ref::<TransportLayerCc>() {
        // A status vector chunk may run past the packet count (its last symbols are padding); webrtc-rs 0.21's
        // conversion reports those as lost packets too.
        let acks = rtc::interceptor::convert_twcc(twcc)
            .into_iter()
            .take(usize::from(twcc.packet_status_count))
            .map(|a| TransportAck {
                seq: a.sequence_number,
                arrival: a.arrival.filter(|_| a.arrived),
            })
            .collect();
        return Some(Feedback::TransportCc(acks));
    }
    any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
        .map(|remb| Feedback::Remb(remb.bitrate as u64))
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let InterceptedPacket::Rtcp(packets) = &msg.message.packet {
            if let Some(sink) = &self.transport {
                packets
                    .iter()
                    .filter_map(|p| transport_feedback(p.as_ref()))
                    .for_each(sink);
            }
            if packets.iter().any(|p| (self.wanted)(p.as_ref())) {
                msg.message.add(Attribute::DeliverToApplication);
            }
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

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The server's feedback the session reads: keyframe requests (PLI, FIR), receiver reports and NACKs.
pub fn is_feedback(p: &dyn rtc::rtcp::Packet) -> bool {
    let any = p.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<ReceiverReport>()
        || any.is::<TransportLayerNack>()
}

/// What an RTCP packet says about our streams `ssrcs` (a track's: one per simulcast layer), for the session.
pub(super) fn feedback_about(p: &dyn rtc::rtcp::Packet, ssrcs: &[u32]) -> Vec<Feedback> {
    let ours = |ssrc: &u32| ssrcs.contains(ssrc);
    let any = p.as_any();
    if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
        return ours(&pli.media_ssrc)
            .then_some(Feedback::KeyframeRequest {
                ssrc: pli.media_ssrc,
                full: false,
            })
            .into_iter()
            .collect();
    }
    if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
        let mut named: Vec<u32> = fir.fir.iter().map(|e| e.ssrc).filter(ours).collect();
        if named.is_empty() && ours(&fir.media_ssrc) {
            named.push(fir.media_ssrc);
        }
        named.dedup();
        return named
            .into_iter()
            .map(|ssrc| Feedback::KeyframeRequest { ssrc, full: true })
            .collect();
    }
    if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        return rr
            .reports
            .iter()
            .filter(|b| ours(&b.ssrc))
            .map(|b| Feedback::ReceiverReport {
                ssrc: b.ssrc,
                fraction_lost: b.fraction_lost,
                lsr: b.last_sender_report,
                dlsr: b.delay,
                jitter: b.jitter,
            })
            .collect();
    }
    if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
        if ours(&nack.media_ssrc) {
            let seqs = nack
                .nacks
                .iter()
                .flat_map(|pair| pair.packet_list())
                .collect();
            return vec![Feedback::Nack {
                ssrc: nack.media_ssrc,
                seqs,
            }];
        }
    }
    Vec::new()
}
