//! Keeping a stream up (RFC 9725 §4.4): when ICE has been disconnected (or failed) for [`DISCONNECTED_GRACE`],
//! restart ICE through the server if it takes restarts — new credentials and candidates, the server's new ones
//! applied as its answer — and again every [`RESTART_RETRY`] while down. The stream is lost when it is not back
//! within [`RECOVERY_WINDOW`] (at once when the server takes no restarts, or no longer knows the session — a WHIP
//! server that restarted answers the restart 404 — where retrying for 15 s only kept the streamer off the air),
//! and OBS's reconnect takes over. Media
//! keeps flowing meanwhile: it is live, and a backlog would only add delay once the path is back.
use super::connect::{has_relay, GATHER_LIMIT};
use super::{Action, Input, Note, PeerState, Session};
use crate::signal::whip;
use std::time::{Duration, Instant};

/// How long ICE may stay disconnected before an ICE restart is tried (or the stream is declared lost).
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(1);
/// While the connection is down, a new ICE restart at most this often.
pub const RESTART_RETRY: Duration = Duration::from_secs(3);
/// How long ICE restarts may try to bring the connection back.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(15);

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
        }
    }
}

impl Session {
    pub(super) fn recovery_state(&mut self, state: PeerState) {
        match state {
            PeerState::Closed => self.lost(state, "the connection was closed"),
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

    /// The connection is up again: the outage is over once no restart is under way.
    fn maybe_back(&mut self) {
        let r = &mut self.recovery;
        let Some((since, _)) = r.down else {
            return;
        };
        if r.step != Step::Idle {
            return;
        }
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
    }

    pub(super) fn recovery_tick(&mut self) {
        let Some((since, state)) = self.recovery.down else {
            return;
        };
        let elapsed = self.now.duration_since(since);
        if let Some(why) = self.recovery.gone.take() {
            self.lost(state, &why);
            return;
        }
        if !self.negotiation.restarts && elapsed >= DISCONNECTED_GRACE {
            self.lost(state, "the server takes no ICE restarts");
            return;
        }
        if elapsed >= RECOVERY_WINDOW {
            let why = format!(
                "not back within {} s after {} ICE restart(s)",
                RECOVERY_WINDOW.as_secs(),
                self.recovery.attempts
            );
            self.lost(state, &why);
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
        let (since, _) = r.down?;
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
