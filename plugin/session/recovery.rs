//! Keeping a stream up (RFC 9725 §4.4): when ICE has been disconnected (or failed) for [`DISCONNECTED_GRACE`] —
//! or the server's RTCP, which came regularly, stopped (see [`Silence`]: ICE notices a dead server only after 3 s) —
//! restart ICE through the server if it takes restarts — new credentials and candidates, the server's new ones
//! applied as its answer — and again every [`RESTART_RETRY`] while down. The stream is lost when it is not back
//! within [`RECOVERY_WINDOW`] (at once when the server takes no restarts, or no longer knows the session — a WHIP
//! server that restarted answers the restart 404, one that is down refuses the connection — where retrying for
//! 15 s only kept the streamer off the air): then the stream worker publishes again, and after that OBS's
//! reconnect takes over. Media
//! keeps flowing meanwhile: it is live, and a backlog would only add delay once the path is back.
use super::connect::{has_relay, GATHER_LIMIT};
use super::{Action, Input, Note, PeerState, Session};
use crate::signal::whip;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long ICE may stay disconnected before an ICE restart is tried (or the stream is declared lost).
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(1);
/// While the connection is down, a new ICE restart at most this often.
pub const RESTART_RETRY: Duration = Duration::from_secs(3);
/// How long ICE restarts may try to bring the connection back.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(15);

/// The shortest feedback silence that counts as the connection being down.
pub const SILENCE_MIN: Duration = Duration::from_secs(1);
/// Silence counts once this many RTCP packets have come (the server's pace is known).
const SILENCE_ARMED: u32 = 16;
/// The recent gaps between RTCP packets that set the limit.
const SILENCE_GAPS: usize = 16;

/// How the server's RTCP has been arriving. Once its pace is known, none for four times the longest recent gap
/// (at least [`SILENCE_MIN`]) counts as the connection being down since the last one: a receiver that sends
/// transport-wide feedback every 100 ms is found dead after 1 s, where ICE's consent checks take 3 s. A server that
/// reports only every second or more (RR alone), or takes no ICE restarts, is left to ICE.
#[derive(Debug, Default)]
struct Silence {
    last: Option<Instant>,
    count: u32,
    gaps: VecDeque<Duration>,
}

impl Silence {
    fn arrived(&mut self, now: Instant) {
        if let Some(last) = self.last {
            if self.gaps.len() == SILENCE_GAPS {
                self.gaps.pop_front();
            }
            self.gaps.push_back(now.saturating_duration_since(last));
        }
        self.last = Some(now);
        self.count += 1;
    }

    fn longest_gap(&self) -> Duration {
        self.gaps.iter().copied().max().unwrap_or_default()
    }

    fn limit(&self) -> Duration {
        (self.longest_gap() * 4).max(SILENCE_MIN)
    }

    /// When the silence under way counts as an outage, once the pace is known.
    fn due(&self) -> Option<Instant> {
        let last = self.last.filter(|_| self.count >= SILENCE_ARMED)?;
        Some(last + self.limit())
    }
}

/// Where an ICE restart stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Idle,
    /// The peer connection is making new credentials and an offer.
    Restarting,
    /// Gathering candidates for the restart offer, until gathering completes or this instant.
    Gathering(Instant),
    Reading,
    /// The server has our fragment.
    Signalling,
    /// Its answer (our answer with its new credentials and candidates) is being applied.
    Applying(String),
}

#[derive(Debug)]
pub(super) struct Recovery {
    /// While the connection is down: since when, in which state.
    down: Option<(Instant, PeerState)>,
    attempts: u32,
    last_attempt: Option<Instant>,
    step: Step,
    /// Outages that ICE restarts repaired.
    pub(super) repaired: u32,
    /// Why the server's session is gone, once a restart said so.
    gone: Option<String>,
    silence: Silence,
    /// The outage under way was found by feedback silence (ICE still said connected): it is over only once
    /// feedback comes again.
    silent: bool,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            down: None,
            attempts: 0,
            last_attempt: None,
            step: Step::Idle,
            repaired: 0,
            gone: None,
            silence: Silence::default(),
            silent: false,
        }
    }
}

impl Session {
    pub(super) fn recovery_state(&mut self, state: PeerState) {
        match state {
            PeerState::Closed => self.lost(state, "the connection was closed", false),
            PeerState::Disconnected | PeerState::Failed => {
                let r = &mut self.recovery;
                match &mut r.down {
                    Some((_, s)) => *s = state,
                    None => r.down = Some((self.now, state)),
                }
            }
            PeerState::Connected => self.maybe_back(),
            PeerState::Connecting => {}
        }
    }

    /// RTCP from the server arrived (now): the connection is back if only silence had said it was down.
    pub(super) fn feedback_arrived(&mut self) {
        self.recovery.silence.arrived(self.now);
        if self.peer_state == PeerState::Connected {
            self.maybe_back();
        }
    }

    /// Whether feedback silence is watched: while connected, with a server that takes ICE restarts — a restart
    /// is cheap and keeps the session. Without restarts the only remedy is a new session, which viewers of an SFU
    /// notice more than a short freeze: there ICE decides (a 1.5 s cut heals by itself), and servers that can say
    /// they lost the session (Janus's event poll) say so.
    fn silence_watched(&self) -> bool {
        self.negotiation.restarts && self.peer_state == PeerState::Connected
    }

    /// The server's RTCP stopped: the connection counts as down since its last packet.
    fn silence_tick(&mut self) {
        if self.recovery.down.is_some() || !self.silence_watched() {
            return;
        }
        let r = &mut self.recovery;
        let (Some(due), Some(last)) = (r.silence.due(), r.silence.last) else {
            return;
        };
        if self.now < due {
            return;
        }
        r.down = Some((last, PeerState::Disconnected));
        r.silent = true;
        let gap = r.silence.longest_gap().as_millis();
        let quiet = self.now.duration_since(last).as_millis();
        self.note(Note::warn(format!(
            "no RTCP from the server for {quiet} ms (it came at most {gap} ms apart): the connection counts as down"
        )));
    }

    /// The connection is up again: the outage is over once no restart is under way (and, if silence found
    /// it, once feedback came again).
    fn maybe_back(&mut self) {
        let r = &mut self.recovery;
        let Some((since, _)) = r.down else {
            return;
        };
        if r.step != Step::Idle || (r.silent && r.silence.last <= Some(since)) {
            return;
        }
        r.silent = false;
        let out_ms = self.now.duration_since(since).as_millis();
        let how = match r.attempts {
            0 => "ICE recovered by itself".to_string(),
            n => {
                r.repaired += 1;
                format!("{n} ICE restart(s), same session")
            }
        };
        r.down = None;
        r.attempts = 0;
        r.last_attempt = None;
        self.note(Note::info(format!(
            "connection back after {out_ms} ms ({how})"
        )));
        // The receiver lost the picture's chain: a keyframe now rather than after its request's round trip.
        self.sender.outage_over(self.now);
        for layer in 0..self.config.video.len() {
            self.keyframe_requested(layer);
        }
    }

    pub(super) fn recovery_tick(&mut self) {
        self.silence_tick();
        let Some((since, state)) = self.recovery.down else {
            return;
        };
        let elapsed = self.now.duration_since(since);
        if let Some(why) = self.recovery.gone.take() {
            self.lost(state, &why, true);
            return;
        }
        if !self.negotiation.restarts && elapsed >= DISCONNECTED_GRACE {
            self.lost(state, "the server takes no ICE restarts", true);
            return;
        }
        if elapsed >= RECOVERY_WINDOW {
            let why = format!(
                "not back within {} s after {} ICE restart(s)",
                RECOVERY_WINDOW.as_secs(),
                self.recovery.attempts
            );
            self.lost(state, &why, false);
            return;
        }
        if let Step::Gathering(until) = self.recovery.step {
            if self.negotiation.gathered || self.now >= until {
                self.recovery.step = Step::Reading;
                self.act(Action::ReadOffer);
            }
            return;
        }
        let r = &mut self.recovery;
        let retry_due = r.last_attempt.is_none_or(|t| self.now >= t + RESTART_RETRY);
        if elapsed >= DISCONNECTED_GRACE && r.step == Step::Idle && retry_due {
            r.attempts += 1;
            r.last_attempt = Some(self.now);
            r.step = Step::Restarting;
            let n = r.attempts;
            self.negotiation.gathered = false;
            self.note(Note::warn(format!(
                "connection {state} for {} ms: ICE restart {n} through the {} server",
                elapsed.as_millis(),
                self.config.signalling
            )));
            let servers = self.negotiation.all_servers(&self.config.ice_servers);
            self.act(Action::RestartIce(servers));
        }
    }

    pub(super) fn recovery_due(&self) -> Option<Instant> {
        let r = &self.recovery;
        let Some((since, _)) = r.down else {
            return r.silence.due().filter(|_| self.silence_watched());
        };
        let mut due = vec![since + RECOVERY_WINDOW];
        if r.step == Step::Idle {
            let next = r
                .last_attempt
                .map_or(since + DISCONNECTED_GRACE, |t| t + RESTART_RETRY);
            due.push(next.max(since + DISCONNECTED_GRACE));
        }
        if let Step::Gathering(until) = r.step {
            due.push(until);
        }
        due.into_iter().min()
    }

    /// Inputs while streaming other than the connection's state: the steps of an ICE restart.
    pub(super) fn restart_step(&mut self, input: Input) {
        let n = self.recovery.attempts;
        let step = self.recovery.step.clone();
        let outcome: Result<(), String> = match (step, input) {
            (_, Input::GatheringComplete) => {
                self.negotiation.gathered = true;
                Ok(())
            }
            (Step::Restarting, Input::IceRestarted(r)) => {
                r.map_err(|e| e.message().to_string()).map(|()| {
                    self.recovery.step = Step::Gathering(self.now + GATHER_LIMIT);
                })
            }
            (Step::Reading, Input::Offer(r)) => match r {
                Ok(sdp) => self.restart_offer(&sdp),
                Err(f) => Err(f.message),
            },
            (Step::Signalling, Input::RestartAnswered(r)) => match r {
                Ok(fragment) => whip::apply_ice_fragment(&self.negotiation.answer_sdp, &fragment)
                    .ok_or_else(|| {
                        "the server's ICE restart answer has no ICE credentials".to_string()
                    })
                    .map(|answer| {
                        self.recovery.step = Step::Applying(answer.clone());
                        self.act(Action::ApplyAnswer(answer));
                    }),
                Err(e) => {
                    match &e {
                        super::RequestError::Unsupported(_) => self.negotiation.restarts = false,
                        super::RequestError::Gone(why) => self.recovery.gone = Some(why.clone()),
                        super::RequestError::Failed(_) => {}
                    }
                    Err(e.message().to_string())
                }
            },
            (Step::Applying(answer), Input::AnswerApplied(r)) => match r {
                Ok(_) => {
                    self.negotiation.answer_sdp = answer;
                    self.recovery.step = Step::Idle;
                    self.note(Note::info(format!(
                        "ICE restart {n} accepted by the server: checking the new paths"
                    )));
                    Ok(())
                }
                Err(f) => Err(f.message),
            },
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            self.recovery.step = Step::Idle;
            self.note(Note::warn(format!("ICE restart {n} failed: {e}")));
        }
        // Back while the restart was under way: the outage is over now that it has finished.
        if self.peer_state == PeerState::Connected {
            self.maybe_back();
        }
    }

    /// The restart offer as gathered: its fragment goes to the server.
    fn restart_offer(&mut self, sdp: &str) -> Result<(), String> {
        if self.config.relay_only && !has_relay(sdp) {
            return Err("no relay candidate for the restart (\"Relay only\" is on)".into());
        }
        if !self.negotiation.gathered && whip::sdp_candidates(sdp).is_empty() {
            return Err("no candidates gathered for the restart".into());
        }
        let fragment =
            whip::restart_fragment(sdp).ok_or("the restart offer has no ICE credentials")?;
        self.recovery.step = Step::Signalling;
        self.act(Action::SendRestart(fragment));
        Ok(())
    }
}
