//! One publishing session as a sans-IO state machine: it decides, a driver (`crate::transport::driver`) carries
//! out. The driver feeds it [`Input`]s — replies from the server, events of the WebRTC stack, media packets,
//! feedback, a stop — each with the instant it happened, and drains [`Session::poll`] for [`Output`]s until it
//! gets [`Output::Timeout`]: the instant to call back with [`Session::handle_timeout`]. The session never reads a
//! clock, opens a socket or draws a random number, so its policies are tested with fake time.
//!
//! Phases: pre-flight (ICE servers the endpoint announces) → offer (a peer connection, the offer once candidates
//! are gathered, or at once when the server takes trickle ICE) → answer → connecting (trickled candidates) →
//! streaming (media, sender reports; recovery by ICE restart while the connection is down) → closing (the
//! server's session ended and the peer connection closed, within a deadline) → closed.
pub mod bwe;
mod connect;
mod history;
mod io;
pub mod keyframes;
mod layers;
pub mod pacer;
pub mod rate;
mod recovery;
pub mod sender;
#[cfg(test)]
mod tests;

use crate::media::packet::EncodedPacket;
use crate::signal::{Failure, StopCode};
use bwe::Bwe;
use connect::Negotiation;
use rate::Adaptation;
use recovery::Recovery;
use sender::{MediaSender, Outgoing, MAX_VIDEO_DELAY};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use connect::ConnectTimings;
pub use io::*;
pub use sender::{Latency, LayerStats, RtpPacket, SenderReport};

/// How long teardown (WHIP DELETE or Janus leave, and the DTLS close) may take.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(2);
/// The peer connection closes once the server's session has ended, or this long after teardown began: a server
/// that sees the DTLS close first may end the session by itself and answer the DELETE with 404
/// (simple-whip-server in front of Janus does).
pub const PEER_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// With nothing else due, the driver still calls back this often.
const IDLE_TICK: Duration = Duration::from_secs(60);

/// Loss the server reports that counts as full congestion (OBS's red square): 10 %.
const FULL_CONGESTION_LOSS: f32 = 0.10;
/// What is normal on a clear path and no congestion (OBS's square stays green): an estimate up to a fifth under the
/// configured bitrate (a delay detector's passing overuse), video waiting up to 100 ms (a keyframe draining).
const NORMAL_SHORTFALL: f64 = 0.2;
const NORMAL_VIDEO_DELAY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Preflight,
    Offering,
    Answering,
    Applying,
    Connecting,
    Streaming,
    Closing,
    Closed,
}

#[derive(Debug, Default)]
struct Closing {
    deadline: Option<Instant>,
    server_pending: bool,
    peer_pending: bool,
    /// When the peer connection is to be closed, while that is still to come.
    close_peer_at: Option<Instant>,
    /// The stream was on when teardown began: until the peer closes, repairs the server asks for (the stream's
    /// last packets) still go, and what was queued leaves.
    sending: bool,
    server: Option<Result<String, String>>,
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    now: Instant,
    started: Instant,
    phase: Phase,
    /// The peer connection's latest state.
    peer_state: PeerState,
    negotiation: Negotiation,
    recovery: Recovery,
    sender: MediaSender,
    bwe: Bwe,
    adaptation: Adaptation,
    feedback: FeedbackStats,
    keyframes: keyframes::KeyframeRequests,
    layers: layers::LayerAllocation,
    closing: Closing,
    out: VecDeque<Output>,
}

impl Session {
    /// A session starting at `now`: its first action is the pre-flight.
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        let lower_kbps = config.video.iter().skip(1).map(|l| l.kbps).sum();
        let bwe = rate::estimator(&config.rate, lower_kbps);
        let mut sender = MediaSender::new(
            config.video_codec,
            &config.video,
            config.audio,
            config.capture,
            config.max_payload,
            bwe.estimate(),
        );
        sender.drop_when_behind = config.rate.adaptive;
        let mut s = Session {
            bwe,
            adaptation: Adaptation::new(config.rate),
            negotiation: Negotiation::new(now + config.connect_timeout),
            recovery: Recovery::default(),
            config,
            now,
            started: now,
            phase: Phase::Preflight,
            peer_state: PeerState::Connecting,
            sender,
            feedback: FeedbackStats::default(),
            keyframes: keyframes::KeyframeRequests::default(),
            layers: layers::LayerAllocation::default(),
            closing: Closing::default(),
            out: VecDeque::new(),
        };
        s.preflight();
        s
    }

    /// Takes one input that happened at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.now = self.now.max(now);
        match input {
            Input::Media(p) => self.media(&p),
            Input::Feedback(f) => {
                self.feedback_arrived();
                self.feedback(f)
            }
            Input::Stop => self.stop(),
            Input::ServerSessionEnded(r) => self.server_session_ended(r),
            Input::PeerClosed => self.peer_closed(),
            // Replies that arrive once the session is ending change nothing.
            _ if matches!(self.phase, Phase::Closing | Phase::Closed) => {}
            Input::Trickled(r) => self.trickled(r),
            Input::RemoteCandidate(c) => self.remote_candidate(c),
            Input::ServerGone(why) if self.phase == Phase::Streaming => {
                self.lost(self.peer_state, &why, true)
            }
            Input::ServerGone(_) => {}
            Input::PeerState(s) if self.phase == Phase::Streaming => {
                self.peer_state = s;
                self.recovery_state(s)
            }
            Input::PeerState(s) => {
                self.peer_state = s;
                self.negotiate(Input::PeerState(s))
            }
            other if self.phase == Phase::Streaming => self.restart_step(other),
            other => self.negotiate(other),
        }
        self.tick();
    }

    /// Time passed: `now` is at or after the instant [`Output::Timeout`] named.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.tick();
    }

    /// The next thing to do or report; [`Output::Timeout`] once there is nothing until then.
    pub fn poll(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if self.sending() {
            match self.sender.poll(self.now) {
                Some(Outgoing::Rtp(p, probe)) => {
                    match p.transport_seq {
                        Some(seq) => self.bwe.on_sent(seq, p.payload.len(), probe, self.now),
                        None => self.bwe.on_sent_unnumbered(p.payload.len(), self.now),
                    }
                    return Output::Action(Action::SendRtp(p));
                }
                Some(Outgoing::Report(r)) => return Output::Action(Action::SendReport(r)),
                None => {}
            }
        }
        Output::Timeout(self.next_timeout())
    }

    /// Whether media goes out: while streaming, and while closing until the peer closes.
    fn sending(&self) -> bool {
        self.phase == Phase::Streaming || (self.phase == Phase::Closing && self.closing.sending)
    }

    /// Whether the session has ended (after [`Event::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn feedback_stats(&self) -> FeedbackStats {
        self.feedback
    }

    /// What became of the server's NACKs.
    pub fn retransmissions(&self) -> sender::Retransmissions {
        self.sender.retransmissions
    }

    /// Keyframe requests passed to the encoder, and how long each wait for the next keyframe was.
    pub fn keyframes(&self) -> &keyframes::KeyframeRequests {
        &self.keyframes
    }

    /// What each video layer has sent (one without simulcast).
    pub fn layer_stats(&self) -> Vec<LayerStats> {
        self.sender.layer_stats()
    }

    /// The round-trip time receiver reports revealed, if any did.
    pub fn rtt(&self) -> Option<Duration> {
        self.sender.rtt
    }

    /// Network congestion as the session sees it, 0..1: the worst of the loss the server reports, how far the
    /// bandwidth estimate is below what the streams are configured for and how far behind the pacer is (each beyond
    /// what is normal on a clear path), 1 while video is dropped.
    pub fn congestion(&self) -> f32 {
        let loss = f32::from(self.feedback.fraction_lost) / 256.0 / FULL_CONGESTION_LOSS;
        if self.phase != Phase::Streaming {
            return loss.min(1.0);
        }
        let beyond = |value: f64, normal: f64, full: f64| (value - normal) / (full - normal);
        let short = beyond(
            1.0 - self.bwe.estimate() / self.bwe.wanted(),
            NORMAL_SHORTFALL,
            1.0,
        );
        let behind = beyond(
            self.sender.video_delay().as_secs_f64(),
            NORMAL_VIDEO_DELAY.as_secs_f64(),
            MAX_VIDEO_DELAY.as_secs_f64(),
        );
        let dropping = if self.sender.dropping() { 1.0 } else { 0.0 };
        (loss as f64)
            .max(short)
            .max(behind)
            .max(dropping)
            .clamp(0.0, 1.0) as f32
    }

    /// The session's figures as they stand, for the metrics endpoint.
    pub fn figures(&self) -> Figures {
        let f = &self.feedback;
        Figures {
            streaming: self.phase == Phase::Streaming,
            estimate_bps: self.bwe.estimate(),
            video_target_kbps: self.adaptation.current_kbps(),
            rtt: self.sender.rtt,
            loss: f64::from(f.fraction_lost) / 256.0,
            video_jitter: (f.receiver_reports > 0).then(|| Duration::from_micros(f.jitter_us[0])),
            nacks: f.nacks,
            nacked_packets: f.nacked_packets,
            retransmitted_packets: self.sender.retransmissions.packets,
            keyframe_requests: f.pli + f.fir,
            frames_dropped: self.sender.dropped_frames,
            ice_restarts: self.recovery.repaired,
            bytes_sent: self.sender.bytes_sent,
            layers: self.sender.layer_stats(),
        }
    }

    /// The bandwidth estimate, bit/s.
    pub fn estimate(&self) -> f64 {
        self.bwe.estimate()
    }

    pub fn latency(&self) -> &Latency {
        &self.sender.latency
    }

    /// Bytes put on the wire (RTP headers included) and OBS packets fully sent, video and audio.
    pub fn sent(&self) -> (u64, u64, u64) {
        (
            self.sender.bytes_sent,
            self.sender.video_packets,
            self.sender.audio_packets,
        )
    }

    /// RTP packets sent so far, video and audio.
    pub fn rtp_packets(&self) -> u64 {
        self.sender.rtp_packets()
    }

    /// Outages that ICE restarts repaired.
    pub fn ice_restarts(&self) -> u32 {
        self.recovery.repaired
    }

    pub fn signalling(&self) -> &'static str {
        self.config.signalling
    }

    fn act(&mut self, a: Action) {
        self.out.push_back(Output::Action(a));
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn note(&mut self, n: Note) {
        self.event(Event::Note(n));
    }

    fn ms_since_start(&self) -> u64 {
        self.now.duration_since(self.started).as_millis() as u64
    }

    /// Whatever time alone decides: gathering limits, the connect deadline, ICE restarts, the close deadline.
    fn tick(&mut self) {
        match self.phase {
            Phase::Streaming => {
                self.recovery_tick();
                self.follow_network();
            }
            Phase::Closing => self.closing_tick(),
            Phase::Closed => {}
            _ => self.negotiation_tick(),
        }
    }

    fn next_timeout(&self) -> Instant {
        let due = match self.phase {
            Phase::Streaming => [
                self.sender.next_due(),
                self.recovery_due(),
                self.bwe.next_due(self.now),
                self.layers_due(),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Closing => [
                self.closing.deadline,
                self.closing.close_peer_at,
                self.closing
                    .sending
                    .then(|| self.sender.next_due())
                    .flatten(),
            ]
            .into_iter()
            .flatten()
            .min(),
            Phase::Closed => None,
            _ => self.negotiation_due(),
        };
        due.unwrap_or(self.now + IDLE_TICK)
    }

    fn media(&mut self, p: &EncodedPacket) {
        if self.phase != Phase::Streaming {
            return;
        }
        let pushed = self.sender.push(p, self.now);
        if pushed.want_first_keyframe {
            // Every frame dropped before the layer's first keyframe asks; keyframe_requested asks the encoder at
            // most every MIN_KEYFRAME_INTERVAL.
            self.keyframe_requested(pushed.layer);
        }
        if pushed.dropped {
            self.dropped_video(pushed.layer, pushed.want_keyframe);
        } else {
            self.keyframe_check(pushed.layer, p);
        }
        if let Some(d) = pushed.discontinuity {
            self.note(Note::warn(format!(
                "{} timestamps jumped ({:?}, {} ms): re-anchored to continue smoothly",
                p.kind.as_str(),
                d.kind,
                d.jump_ms.map_or("?".into(), |j| j.to_string())
            )));
        }
    }

    fn feedback(&mut self, f: Feedback) {
        let sending = self.sending();
        let s = &mut self.feedback;
        match f {
            Feedback::KeyframeRequest { ssrc, full } => {
                if full {
                    s.fir += 1;
                } else {
                    s.pli += 1;
                }
                let layer = self.sender.layer_of(ssrc);
                if let Some(layer) = layer.filter(|_| self.phase == Phase::Streaming) {
                    self.keyframe_requested(layer);
                }
            }
            Feedback::ReceiverReport {
                ssrc,
                fraction_lost,
                lsr,
                dlsr,
                jitter,
            } => {
                let (stream, clock_rate) = if self.sender.layer_of(ssrc).is_some() {
                    (0, 90_000)
                } else if ssrc == self.config.audio.ssrc {
                    (1, 48_000)
                } else {
                    return;
                };
                s.receiver_reports += 1;
                s.latest[stream] = fraction_lost;
                s.jitter_us[stream] = u64::from(jitter) * 1_000_000 / clock_rate;
                s.fraction_lost = s.latest[0].max(s.latest[1]);
                s.worst_fraction_lost = s.worst_fraction_lost.max(fraction_lost);
                self.sender.receiver_report(ssrc, lsr, dlsr, self.now);
                if stream == 0 {
                    let rtt = self.rtt_or_default();
                    self.bwe
                        .on_receiver_loss(f64::from(fraction_lost) / 256.0, rtt, self.now);
                }
            }
            Feedback::Nack { ssrc, seqs } => {
                s.nacks += 1;
                s.nacked_packets += seqs.len() as u64;
                if ssrc == self.config.audio.ssrc {
                    s.nacked_audio_packets += seqs.len() as u64;
                }
                if sending {
                    // Copies of a repair help through random loss; into a congested path they add to it.
                    let loss = match self.bwe.congested(self.now) {
                        true => 0.0,
                        false => f64::from(s.fraction_lost) / 256.0,
                    };
                    self.sender.nack(ssrc, &seqs, self.now, loss);
                }
            }
            Feedback::TransportCc(acks) => {
                let rtt = self.rtt_or_default();
                self.bwe.on_transport_feedback(&acks, rtt, self.now);
            }
            Feedback::Remb(bps) => self.bwe.on_remb(bps as f64, self.now),
        }
    }

    /// The round trip receiver reports gave, or 100 ms before one did.
    fn rtt_or_default(&self) -> Duration {
        self.sender.rtt.unwrap_or(Duration::from_millis(100))
    }

    fn stop(&mut self) {
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            Phase::Streaming => self.close(None),
            _ => self.close(Some(Failure::new(
                StopCode::Success,
                "stopped while connecting",
            ))),
        }
    }

    /// Ends the session: reports `failure` if there is one, then ends the server's session (once an offer went
    /// out) and closes the peer connection (once one exists), within [`CLOSE_LIMIT`].
    fn close(&mut self, failure: Option<Failure>) {
        if let Some(f) = failure {
            self.event(Event::Failed(f));
        }
        let sending = self.phase == Phase::Streaming;
        self.phase = Phase::Closing;
        self.closing = Closing {
            sending,
            deadline: Some(self.now + CLOSE_LIMIT),
            server_pending: self.negotiation.offer_sent,
            peer_pending: self.negotiation.peer_created,
            close_peer_at: self.negotiation.peer_created.then_some(self.now),
            server: None,
        };
        if self.closing.server_pending {
            self.act(Action::EndServerSession);
            if let Some(at) = self.closing.close_peer_at.as_mut() {
                *at += PEER_CLOSE_WAIT;
            }
        } else {
            self.close_peer();
        }
        self.maybe_closed();
    }

    fn close_peer(&mut self) {
        self.closing.sending = false;
        if self.closing.close_peer_at.take().is_some() {
            self.act(Action::ClosePeer);
        }
    }

    fn server_session_ended(&mut self, r: Result<String, String>) {
        if self.phase == Phase::Closing && self.closing.server_pending {
            self.closing.server_pending = false;
            self.closing.server = Some(r);
            self.close_peer();
            self.maybe_closed();
        }
    }

    fn peer_closed(&mut self) {
        if self.phase == Phase::Closing && self.closing.peer_pending {
            self.closing.peer_pending = false;
            self.maybe_closed();
        }
    }

    fn closing_tick(&mut self) {
        if self.closing.close_peer_at.is_some_and(|t| self.now >= t) {
            self.close_peer();
        }
        if self.closing.deadline.is_some_and(|d| self.now >= d) {
            if self.closing.server_pending {
                self.closing.server = Some(Err(format!(
                    "no answer within {} ms",
                    CLOSE_LIMIT.as_millis()
                )));
            }
            self.closing.server_pending = false;
            self.closing.peer_pending = false;
            self.maybe_closed();
        }
    }

    fn maybe_closed(&mut self) {
        if self.phase == Phase::Closing
            && !self.closing.server_pending
            && !self.closing.peer_pending
        {
            self.phase = Phase::Closed;
            let how = self
                .closing
                .server
                .take()
                .unwrap_or_else(|| Ok("no session was created".into()));
            self.event(Event::Closed(how));
        }
    }

    /// The connection is lost; with `republish`, the server may take a new session at once (see
    /// [`Failure::republish`]).
    fn lost(&mut self, state: PeerState, why: &str, republish: bool) {
        self.close(Some(Failure {
            republish,
            ..Failure::new(
                StopCode::Disconnected,
                format!("The WebRTC connection to the server was lost (state {state}; {why})"),
            )
        }));
    }
}
