//! How an SDP offer reaches a server and its answer comes back: WHIP (RFC 9725) or Janus's VideoRoom API. The
//! session (`crate::session`) and the WebRTC side (`super::peer`) are the same for both.
use super::http::WhipHttp;
use crate::secret::Secret;
use crate::session::{Preflight, RequestError, ServerAnswer};
use crate::signal::whip;
use crate::signal::Failure;
use std::time::Duration;
use url::Url;

/// Ends, with the reason, when the server says that the session is gone.
pub type Watch = std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// One server's signalling. It carries requests and reports what the server said; when to ask for what is the
/// session's decision (`crate::session`).
#[async_trait::async_trait]
pub trait Signalling: Send {
    /// What the streamer's log calls this server ("WHIP", "Janus VideoRoom").
    fn name(&self) -> &'static str;
    /// STUN/TURN servers the server announces before the offer, and whether it takes trickle ICE (none and no by
    /// default).
    async fn preflight(&mut self, _limit: Duration) -> Preflight {
        Preflight::default()
    }
    /// Sends the offer and returns the server's answer.
    async fn offer(&mut self, offer_sdp: String) -> Result<ServerAnswer, Failure>;
    /// Sends a trickle ICE fragment (candidates gathered after the offer).
    async fn trickle(&mut self, _fragment: String) -> Result<(), RequestError> {
        Err(RequestError::Unsupported(
            "this server takes no trickled candidates".into(),
        ))
    }
    /// Sends an ICE restart fragment (new credentials and candidates); returns the server's.
    async fn restart(&mut self, _fragment: String) -> Result<String, RequestError> {
        Err(RequestError::Unsupported(
            "this server takes no ICE restarts".into(),
        ))
    }
    /// Once the offer is answered: the server's ICE candidates as it sends them after its answer (servers that
    /// trickle their own candidates, as Ant Media does; none for the others).
    fn remote_candidates(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::session::RemoteCandidate>> {
        None
    }
    /// Once the offer is answered: something that ends, with the reason, when the server says unasked that the
    /// session is gone (none for servers that say nothing between requests, as WHIP's).
    fn watch(&mut self) -> Option<Watch> {
        None
    }
    /// Ends the server-side session; describes how it went for the log.
    async fn end(&mut self) -> Result<String, String>;
}

/// WHIP: OPTIONS pre-flight for ICE servers, POST offer → 201 + Location, PATCH for trickle ICE and ICE restarts,
/// DELETE on the way out.
pub struct WhipSignalling {
    http: WhipHttp,
    endpoint: Url,
    token: Secret,
    resource: Option<String>,
    etag: Option<String>,
    /// The pre-flight's `Accept-Patch` named trickle ICE fragments (until a PATCH was refused).
    preflight_patch: bool,
}

impl WhipSignalling {
    pub fn new(http: WhipHttp, endpoint: Url, token: Secret) -> Self {
        WhipSignalling {
            http,
            endpoint,
            token,
            resource: None,
            etag: None,
            preflight_patch: false,
        }
    }

    /// A PATCH to the session resource; the status and body of the answer once it is taken.
    async fn patch(
        &mut self,
        if_match: Option<String>,
        fragment: String,
    ) -> Result<(u16, Vec<u8>), PatchError> {
        let resource = self
            .resource
            .as_deref()
            .ok_or_else(|| PatchError::Unsent("no session".into()))?;
        let (status, etag, body) = self
            .http
            .patch(resource, &self.token, if_match.as_deref(), fragment)
            .await
            .map_err(|u| match u.refused {
                true => PatchError::Down(u.message),
                false => PatchError::Unsent(u.message),
            })?;
        match whip::interpret_patch_status(status) {
            whip::PatchOutcome::Accepted => {
                self.etag = etag.or(self.etag.take());
                Ok((status, body))
            }
            whip::PatchOutcome::Unsupported => {
                self.preflight_patch = false;
                Err(PatchError::Unsupported(status))
            }
            whip::PatchOutcome::Refused(s) => Err(PatchError::Refused(s)),
        }
    }
}

/// Why a PATCH was not taken.
enum PatchError {
    /// The server takes no PATCH at all (405, 501, 415).
    Unsupported(u16),
    Refused(u16),
    /// It did not reach the server, or no answer came.
    Unsent(String),
    /// Nothing listens at the server's address (the connection was refused).
    Down(String),
}

#[async_trait::async_trait]
impl Signalling for WhipSignalling {
    fn name(&self) -> &'static str {
        "WHIP"
    }

    async fn preflight(&mut self, limit: Duration) -> Preflight {
        let (ice_servers, trickle) = self
            .http
            .preflight(&self.endpoint, &self.token, limit)
            .await;
        self.preflight_patch = trickle;
        Preflight {
            ice_servers,
            trickle,
        }
    }

    async fn offer(&mut self, offer_sdp: String) -> Result<ServerAnswer, Failure> {
        let session = self
            .http
            .post_offer(&self.endpoint, &self.token, offer_sdp)
            .await?;
        self.resource = Some(session.resource);
        self.etag = session.etag;
        Ok(ServerAnswer {
            sdp: session.answer_sdp,
            restarts: session.accepts_patch || self.preflight_patch,
            ice_servers: session.ice_servers,
        })
    }

    async fn trickle(&mut self, fragment: String) -> Result<(), RequestError> {
        match self.patch(self.etag.clone(), fragment).await {
            Ok(_) => Ok(()),
            Err(PatchError::Unsupported(status)) => Err(RequestError::Unsupported(format!(
                "the server does not take trickle ICE after all (HTTP {status})"
            ))),
            Err(PatchError::Refused(status)) => Err(RequestError::Failed(format!(
                "the server refused the candidates (HTTP {status})"
            ))),
            Err(PatchError::Unsent(why) | PatchError::Down(why)) => Err(RequestError::Failed(why)),
        }
    }

    async fn restart(&mut self, fragment: String) -> Result<String, RequestError> {
        let (status, body) = match self
            .patch(Some(whip::RESTART_IF_MATCH.to_string()), fragment)
            .await
        {
            Ok(answer) => answer,
            Err(PatchError::Unsupported(status)) => {
                return Err(RequestError::Unsupported(format!(
                    "the server takes no ICE restarts (HTTP {status})"
                )))
            }
            Err(PatchError::Refused(status @ (404 | 410))) => {
                return Err(RequestError::Gone(format!(
                    "the server no longer knows this session (HTTP {status} to the ICE restart: it restarted or \
                     dropped it)"
                )))
            }
            Err(PatchError::Refused(status)) => {
                return Err(RequestError::Failed(format!(
                    "the server refused the ICE restart (HTTP {status})"
                )))
            }
            Err(PatchError::Down(why)) => {
                return Err(RequestError::Gone(format!(
                    "the server is down: the ICE restart could not reach it ({why})"
                )))
            }
            Err(PatchError::Unsent(why)) => return Err(RequestError::Failed(why)),
        };
        if status != 200 {
            return Err(RequestError::Failed(format!(
                "the server answered the ICE restart with HTTP {status} and no ICE credentials"
            )));
        }
        String::from_utf8(body)
            .map_err(|_| RequestError::Failed("the server's ICE restart answer is not text".into()))
    }

    async fn end(&mut self) -> Result<String, String> {
        let Some(resource) = self.resource.take() else {
            return Ok("no session was created".into());
        };
        self.http
            .delete(&resource, &self.token)
            .await
            .map(|status| format!("DELETE answered {status}"))
    }
}
