//! Getting connected: the pre-flight, the offer (at once when the server takes trickle ICE; else once candidate
//! gathering completed or [`GATHER_LIMIT`] passed), the answer, trickled candidates, and ICE + DTLS — all within
//! the connect timeout. A server that promised trickle ICE but refuses the candidates (RFC 9725 §4.3.2) gets its
//! session ended and a new, complete offer.
use super::{
    Action, Event, Input, LayerSpec, Note, PeerSpec, PeerState, Phase, RemoteCandidate,
    RequestError, Session,
};
use crate::media::opus::OpusHead;
use crate::signal::whip::{self, IceServer};
use crate::signal::{Failure, StopCode};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long we wait for our own ICE candidates before sending the offer with what we have. STUN answers and TURN
/// allocations take well under a second on real networks; an unreachable server must not hold the first frame
/// back longer than that.
pub const GATHER_LIMIT: Duration = Duration::from_secs(1);
/// The OPTIONS pre-flight may take at most this long (servers without it answer at once).
pub const PREFLIGHT_LIMIT: Duration = Duration::from_secs(2);

/// Milliseconds from the start to: the offer being ready, the server's answer, and ICE + DTLS being connected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectTimings {
    pub offer_ms: u64,
    pub gathering_complete: bool,
    pub answer_ms: u64,
    /// When ICE found its path, where the WebRTC stack told (DTLS follows: the server begins it as its client).
    pub ice_ms: Option<u64>,
    pub connected_ms: u64,
    /// The offer went before gathering finished; later candidates follow by PATCH (trickle ICE).
    pub trickle: bool,
    /// Candidates sent by PATCH, and whether `end-of-candidates` was.
    pub trickled_candidates: usize,
    pub end_of_candidates_sent: bool,
    /// Why trickling stopped early, if it did.
    pub trickle_note: Option<String>,
}

/// The negotiation's state, across attempts (a complete offer after refused trickle ICE is a second attempt).
#[derive(Debug)]
pub(super) struct Negotiation {
    deadline: Instant,
    /// ICE servers the server announced before the offer, and with its answer.
    announced: Vec<IceServer>,
    pub(super) answer_servers: Vec<IceServer>,
    trickle: bool,
    /// The offer of this attempt, and the answer in force (updated by ICE restarts).
    pub(super) offer_sdp: String,
    pub(super) answer_sdp: String,
    /// The server takes ICE restarts.
    pub(super) restarts: bool,
    /// A peer connection was asked for (and must be closed), and is ready (its offer set locally).
    pub(super) peer_created: bool,
    peer_ready: bool,
    pub(super) offer_sent: bool,
    /// Gathering rounds completed since the last peer creation or ICE restart.
    pub(super) gathered: bool,
    /// When the offer is read even if gathering has not completed; whether it is being read.
    gather_until: Option<Instant>,
    reading: bool,
    /// Trickle ICE: candidates gathered and not yet sent, those sent, whether a PATCH is under way (with its
    /// candidate count and whether it ends the candidates), whether trickling goes on, and a relay seen.
    pending: Vec<String>,
    sent: HashSet<String>,
    in_flight: Option<(usize, bool)>,
    trickling: bool,
    relay_seen: bool,
    /// The server's trickled candidates that came before its answer was applied, and whether it is.
    remote: Vec<RemoteCandidate>,
    answer_applied: bool,
    pub(super) timings: ConnectTimings,
}

impl Negotiation {
    pub(super) fn new(deadline: Instant) -> Self {
        Negotiation {
            deadline,
            announced: Vec::new(),
            answer_servers: Vec::new(),
            trickle: false,
            offer_sdp: String::new(),
            answer_sdp: String::new(),
            restarts: false,
            peer_created: false,
            peer_ready: false,
            offer_sent: false,
            gathered: false,
            gather_until: None,
            reading: false,
            pending: Vec::new(),
            remote: Vec::new(),
            answer_applied: false,
            sent: HashSet::new(),
            in_flight: None,
            trickling: true,
            relay_seen: false,
            timings: ConnectTimings::default(),
        }
    }

    /// Every ICE server of the session: configured, announced before the offer and with the answer.
    pub(super) fn all_servers(&self, configured: &[IceServer]) -> Vec<IceServer> {
        let mut all = configured.to_vec();
        for s in self.announced.iter().chain(&self.answer_servers) {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }
}

pub(super) fn has_relay(sdp: &str) -> bool {
    sdp.lines()
        .any(|l| l.starts_with("a=candidate:") && l.contains(" typ relay"))
}

pub(super) fn relay_only_without_relay() -> Failure {
    Failure::new(
        StopCode::ConnectFailed,
        "The TURN server gave no relay address (\"Relay only\" is on): check the TURN URL, username and password \
         or shared secret",
    )
}

impl Session {
    pub(super) fn preflight(&mut self) {
        let limit = PREFLIGHT_LIMIT.min(self.config.connect_timeout / 3);
        self.act(Action::Preflight { limit });
    }

    /// A new peer connection and offer (the first, or a complete one after refused trickle ICE).
    fn create_peer(&mut self) {
        let n = &mut self.negotiation;
        n.gathered = false;
        n.reading = false;
        n.gather_until = Some((self.now + GATHER_LIMIT).min(n.deadline));
        n.pending.clear();
        n.sent.clear();
        n.in_flight = None;
        n.remote.clear();
        n.answer_applied = false;
        n.trickling = true;
        n.peer_created = true;
        n.peer_ready = false;
        let video = self
            .config
            .video
            .iter()
            .map(|l| LayerSpec {
                rid: l.rid.clone(),
                ssrc: l.ids.ssrc,
                rtx_ssrc: l.rtx_ssrc,
            })
            .collect();
        let spec = PeerSpec {
            ice_servers: n.all_servers(&self.config.ice_servers),
            relay_only: self.config.relay_only,
            stream_id: self.config.stream_id.clone(),
            video,
            audio_ssrc: self.config.audio.ssrc,
            video_codec: self.config.video_codec,
            video_fmtp: self
                .config
                .video_codec
                .fmtp(&self.config.video[0].extra_data),
            stereo: OpusHead::parse(&self.config.audio_extra_data).is_none_or(|h| h.channels >= 2),
        };
        self.phase = Phase::Offering;
        self.act(Action::CreatePeer(spec));
    }

    /// Inputs while connecting.
    pub(super) fn negotiate(&mut self, input: Input) {
        match input {
            Input::Preflighted(p) if self.phase == Phase::Preflight => {
                if !p.ice_servers.is_empty() {
                    self.note(Note::info(format!(
                        "ICE servers announced by the {} server: {:?}",
                        self.config.signalling, p.ice_servers
                    )));
                }
                self.negotiation.announced = p.ice_servers;
                self.negotiation.trickle = p.trickle;
                self.create_peer();
            }
            Input::PeerCreated(Ok(())) => {
                self.negotiation.peer_ready = true;
                self.maybe_read_offer()
            }
            Input::GatheringComplete => {
                self.negotiation.gathered = true;
                self.maybe_read_offer();
                self.maybe_trickle();
            }
            Input::LocalCandidate(c) if self.negotiation.trickle => {
                self.negotiation.pending.push(c);
                self.maybe_trickle();
            }
            Input::Offer(Ok(sdp)) if self.phase == Phase::Offering => self.send_offer(sdp),
            Input::Answered(Ok(a)) if self.phase == Phase::Answering => {
                if !a.ice_servers.is_empty() {
                    self.note(Note::info(format!(
                        "ICE servers announced with the server's answer (used for ICE restarts): {:?}",
                        a.ice_servers
                    )));
                }
                let n = &mut self.negotiation;
                n.timings.answer_ms = self.now.duration_since(self.started).as_millis() as u64;
                n.answer_sdp = a.sdp.clone();
                n.restarts = a.restarts;
                n.answer_servers = a.ice_servers;
                self.phase = Phase::Applying;
                self.act(Action::ApplyAnswer(a.sdp));
            }
            Input::AnswerApplied(Ok(pt)) if self.phase == Phase::Applying => {
                self.negotiation.answer_applied = true;
                for c in std::mem::take(&mut self.negotiation.remote) {
                    self.act(Action::AddRemoteCandidate(c));
                }
                self.sender
                    .set_payload_types(pt.video, pt.audio, pt.transport_cc);
                self.layers_taken(pt.layers);
                let transport_cc = pt.transport_cc[0] || pt.transport_cc[1];
                // Probes are video packets sent again on the RTX stream: numbered only when video is.
                self.bwe.set_can_probe(
                    pt.transport_cc[0] && pt.video_rtx.is_some() && self.config.rate.adaptive,
                );
                self.note(Note::info(match pt.video_rtx {
                    Some(rtx) => format!(
                        "retransmissions of lost video packets on their own stream (RTX, RFC 4588, payload type {rtx})"
                    ),
                    None => "retransmissions of lost packets in the same stream (the server did not take RTX)"
                        .to_string(),
                }));
                self.note(Note::info(if transport_cc {
                    "bandwidth estimation from transport-wide congestion control feedback"
                } else {
                    "the server did not take transport-wide congestion control: bandwidth estimated from the loss its \
                     receiver reports give (and its REMB, if it sends one)"
                }));
                self.phase = Phase::Connecting;
                self.maybe_trickle();
            }
            Input::IceConnected
                if matches!(self.phase, Phase::Applying | Phase::Connecting)
                    && self.negotiation.timings.ice_ms.is_none() =>
            {
                self.negotiation.timings.ice_ms = Some(self.ms_since_start());
            }
            Input::PeerState(PeerState::Connected) if self.phase == Phase::Connecting => {
                self.negotiation.timings.connected_ms = self.ms_since_start();
                self.phase = Phase::Streaming;
                self.adaptation.start(self.now);
                self.event(Event::Connected(self.negotiation.timings.clone()));
            }
            Input::PeerState(s @ (PeerState::Failed | PeerState::Closed))
                if self.phase == Phase::Connecting =>
            {
                self.close(Some(Failure::new(
                    StopCode::ConnectFailed,
                    format!("The WebRTC connection (ICE/DTLS) to the server ended in state {s}"),
                )))
            }
            Input::PeerCreated(Err(f))
            | Input::Offer(Err(f))
            | Input::Answered(Err(f))
            | Input::AnswerApplied(Err(f)) => self.close(Some(f)),
            _ => {}
        }
    }

    /// One of the server's candidates: to the peer connection once the answer is applied, kept until then.
    pub(super) fn remote_candidate(&mut self, c: RemoteCandidate) {
        if self.negotiation.answer_applied {
            self.act(Action::AddRemoteCandidate(c));
        } else {
            self.negotiation.remote.push(c);
        }
    }

    fn maybe_read_offer(&mut self) {
        let n = &mut self.negotiation;
        let due = n.trickle || n.gathered || n.gather_until.is_some_and(|t| self.now >= t);
        if self.phase == Phase::Offering && n.peer_ready && !n.reading && due {
            n.reading = true;
            self.act(Action::ReadOffer);
        }
    }

    fn send_offer(&mut self, sdp: String) {
        let n = &mut self.negotiation;
        n.timings.offer_ms = self.now.duration_since(self.started).as_millis() as u64;
        n.timings.gathering_complete = n.gathered;
        n.timings.trickle = n.trickle;
        if self.config.relay_only && !n.trickle && !has_relay(&sdp) {
            self.close(Some(relay_only_without_relay()));
            return;
        }
        n.sent = whip::sdp_candidates(&sdp).into_iter().collect();
        n.relay_seen = has_relay(&sdp);
        n.offer_sdp = sdp.clone();
        n.offer_sent = true;
        self.phase = Phase::Answering;
        self.act(Action::SendOffer(sdp));
    }

    /// Sends the candidates gathered since the last PATCH (one PATCH at a time), then `end-of-candidates` once
    /// gathering is complete — after the answer, until connected.
    fn maybe_trickle(&mut self) {
        let n = &mut self.negotiation;
        if self.phase != Phase::Connecting || !n.trickle {
            return;
        }
        if n.trickling && n.in_flight.is_none() {
            let batch: Vec<String> = n
                .pending
                .drain(..)
                .filter(|c| n.sent.insert(c.clone()))
                .collect();
            n.relay_seen |= batch.iter().any(|c| c.contains(" typ relay"));
            if !batch.is_empty() || (n.gathered && !n.timings.end_of_candidates_sent) {
                match whip::trickle_fragment(&n.offer_sdp, &batch, n.gathered) {
                    Some(fragment) => {
                        n.in_flight = Some((batch.len(), n.gathered));
                        self.act(Action::SendTrickle(fragment));
                    }
                    None => n.trickling = false,
                }
            }
        }
        let n = &self.negotiation;
        if self.config.relay_only && n.gathered && !n.relay_seen {
            self.close(Some(relay_only_without_relay()));
        }
    }

    pub(super) fn trickled(&mut self, r: Result<(), RequestError>) {
        let Some((count, done)) = self.negotiation.in_flight.take() else {
            return;
        };
        match r {
            Ok(()) => {
                let t = &mut self.negotiation.timings;
                t.trickled_candidates += count;
                t.end_of_candidates_sent |= done;
                self.maybe_trickle();
            }
            Err(RequestError::Unsupported(why)) if self.phase != Phase::Streaming => {
                // The server's session will never learn our candidates: end it, and offer all of them at once.
                self.note(Note::warn(format!(
                    "trickle ICE refused after the offer ({why}): sent a new, complete offer"
                )));
                self.negotiation.trickle = false;
                self.negotiation.offer_sent = false;
                self.act(Action::EndServerSession);
                self.act(Action::ClosePeer);
                self.create_peer();
            }
            Err(e) => {
                self.negotiation.timings.trickle_note = Some(e.message().to_string());
                self.negotiation.trickling = false;
            }
        }
    }

    pub(super) fn negotiation_tick(&mut self) {
        if self.now >= self.negotiation.deadline {
            let why = match self.phase {
                Phase::Preflight | Phase::Answering => format!(
                    "The {} server did not answer within {} s",
                    self.config.signalling,
                    self.config.connect_timeout.as_secs()
                ),
                _ => format!(
                    "The WebRTC connection (ICE/DTLS) to the server did not connect within {} s",
                    self.config.connect_timeout.as_secs()
                ),
            };
            self.close(Some(Failure::new(StopCode::ConnectFailed, why)));
            return;
        }
        self.maybe_read_offer();
    }

    pub(super) fn negotiation_due(&self) -> Option<Instant> {
        let n = &self.negotiation;
        let gather = (self.phase == Phase::Offering && !n.reading)
            .then_some(n.gather_until)
            .flatten();
        Some(gather.map_or(n.deadline, |g| g.min(n.deadline)))
    }
}
