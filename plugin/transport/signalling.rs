//! How an SDP offer reaches a server and its answer comes back: WHIP (RFC 9725) or Janus's VideoRoom API. The
//! WebRTC session ([`super::session::Publisher`]) is the same for both.
use super::http::WhipHttp;
use crate::secret::Secret;
use crate::signal::whip::{self, IceServer};
use crate::signal::Failure;
use std::time::Duration;
use url::Url;

/// Why a trickled fragment was not taken. `unsupported`: the server takes none at all (405/501/415), so the
/// offer it has will never learn our candidates.
#[derive(Debug)]
pub struct TrickleError {
    pub unsupported: bool,
    pub message: String,
}

#[async_trait::async_trait]
pub trait Signalling: Send + Sync {
    /// What the streamer's log calls this server ("WHIP", "Janus VideoRoom").
    fn name(&self) -> &'static str;
    /// STUN/TURN servers the server announces before the offer (none by default).
    async fn ice_servers(&mut self, _limit: Duration) -> Vec<IceServer> {
        Vec::new()
    }
    /// Whether the server takes candidates after the offer (trickle ICE); known after [`Self::ice_servers`].
    fn trickles(&self) -> bool {
        false
    }
    /// Sends the offer and returns the server's SDP answer. Complete (all candidates gathered) unless the server
    /// trickles.
    async fn exchange(&mut self, offer_sdp: String) -> Result<String, Failure>;
    /// Sends a trickle ICE fragment (candidates gathered after the offer).
    async fn trickle(&mut self, _fragment: String) -> Result<(), TrickleError> {
        Err(TrickleError {
            unsupported: true,
            message: "this server takes no trickled candidates".into(),
        })
    }
    /// Sends complete offers from now on, even if the server said it takes trickle ICE.
    fn forgo_trickle(&mut self) {}
    /// Whether the server takes ICE restarts (known once the offer was answered).
    fn restarts(&self) -> bool {
        false
    }
    /// Sends an ICE restart fragment (new credentials and candidates); returns the server's (its new credentials
    /// and candidates).
    async fn restart_ice(&mut self, _fragment: String) -> Result<String, String> {
        Err("this server takes no ICE restarts".into())
    }
    /// STUN/TURN servers the server announced with its answer (WHIP: `Link` headers of the 201).
    fn session_ice_servers(&self) -> Vec<IceServer> {
        Vec::new()
    }
    /// Ends the server-side session; describes how it went for the log.
    async fn end(&mut self) -> Result<String, String>;
}

/// WHIP: OPTIONS pre-flight for ICE servers, POST offer → 201 + Location, DELETE on the way out.
pub struct WhipSignalling {
    http: WhipHttp,
    endpoint: Url,
    token: Secret,
    resource: Option<String>,
    etag: Option<String>,
    /// The OPTIONS pre-flight's `Accept-Patch` named trickle ICE fragments.
    trickle: bool,
    /// The 201's did (or the pre-flight's, and the session has not refused a PATCH).
    patchable: bool,
    session_ice_servers: Vec<IceServer>,
}

impl WhipSignalling {
    pub fn new(http: WhipHttp, endpoint: Url, token: Secret) -> Self {
        WhipSignalling {
            http,
            endpoint,
            token,
            resource: None,
            etag: None,
            trickle: false,
            patchable: false,
            session_ice_servers: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl Signalling for WhipSignalling {
    fn name(&self) -> &'static str {
        "WHIP"
    }

    async fn ice_servers(&mut self, limit: Duration) -> Vec<IceServer> {
        let (servers, trickle) = self
            .http
            .preflight(&self.endpoint, &self.token, limit)
            .await;
        self.trickle = trickle;
        servers
    }

    fn trickles(&self) -> bool {
        self.trickle
    }

    async fn trickle(&mut self, fragment: String) -> Result<(), TrickleError> {
        let refused = |unsupported, message| TrickleError {
            unsupported,
            message,
        };
        let Some(resource) = self.resource.as_deref() else {
            return Err(refused(false, "no session".into()));
        };
        let (status, etag, _) = self
            .http
            .patch(resource, &self.token, self.etag.as_deref(), fragment)
            .await
            .map_err(|e| refused(false, e))?;
        match whip::interpret_patch_status(status) {
            whip::PatchOutcome::Accepted => {
                self.etag = etag.or(self.etag.take());
                Ok(())
            }
            whip::PatchOutcome::Unsupported => {
                self.trickle = false;
                self.patchable = false;
                Err(refused(
                    true,
                    format!("the server does not take trickle ICE after all (HTTP {status})"),
                ))
            }
            whip::PatchOutcome::Refused(s) => Err(refused(
                false,
                format!("the server refused the candidates (HTTP {s})"),
            )),
        }
    }

    fn forgo_trickle(&mut self) {
        self.trickle = false;
    }

    fn restarts(&self) -> bool {
        self.patchable
    }

    async fn restart_ice(&mut self, fragment: String) -> Result<String, String> {
        let Some(resource) = self.resource.as_deref() else {
            return Err("no session".into());
        };
        let (status, etag, body) = self
            .http
            .patch(
                resource,
                &self.token,
                Some(whip::RESTART_IF_MATCH),
                fragment,
            )
            .await?;
        match whip::interpret_patch_status(status) {
            whip::PatchOutcome::Accepted if status == 200 => {
                self.etag = etag.or(self.etag.take());
                String::from_utf8(body)
                    .map_err(|_| "the server's ICE restart answer is not text".to_string())
            }
            whip::PatchOutcome::Accepted => Err(format!(
                "the server answered the ICE restart with HTTP {status} and no ICE credentials"
            )),
            whip::PatchOutcome::Unsupported => {
                self.patchable = false;
                Err(format!("the server takes no ICE restarts (HTTP {status})"))
            }
            whip::PatchOutcome::Refused(s) => {
                Err(format!("the server refused the ICE restart (HTTP {s})"))
            }
        }
    }

    fn session_ice_servers(&self) -> Vec<IceServer> {
        self.session_ice_servers.clone()
    }

    async fn exchange(&mut self, offer_sdp: String) -> Result<String, Failure> {
        let session = self
            .http
            .post_offer(&self.endpoint, &self.token, offer_sdp)
            .await?;
        self.resource = Some(session.resource);
        self.etag = session.etag;
        self.patchable = session.accepts_patch || self.trickle;
        self.session_ice_servers = session.ice_servers;
        Ok(session.answer_sdp)
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
