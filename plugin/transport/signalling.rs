//! How an SDP offer reaches a server and its answer comes back: WHIP (RFC 9725) or Janus's VideoRoom API. The
//! WebRTC session ([`super::session::Publisher`]) is the same for both.
use super::http::WhipHttp;
use crate::signal::whip::IceServer;
use crate::signal::Failure;
use std::time::Duration;
use url::Url;

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
    /// Sends a trickle ICE fragment (candidates gathered after the offer); Err says why the server took it not,
    /// after which no more are sent.
    async fn trickle(&mut self, _fragment: String) -> Result<(), String> {
        Err("this server takes no trickled candidates".into())
    }
    /// Ends the server-side session; describes how it went for the log.
    async fn end(&mut self) -> Result<String, String>;
}

/// WHIP: OPTIONS pre-flight for ICE servers, POST offer → 201 + Location, DELETE on the way out.
pub struct WhipSignalling {
    http: WhipHttp,
    endpoint: Url,
    token: String,
    resource: Option<String>,
    etag: Option<String>,
    /// The OPTIONS pre-flight's `Accept-Patch` named trickle ICE fragments.
    trickle: bool,
}

impl WhipSignalling {
    pub fn new(http: WhipHttp, endpoint: Url, token: String) -> Self {
        WhipSignalling {
            http,
            endpoint,
            token,
            resource: None,
            etag: None,
            trickle: false,
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

    async fn trickle(&mut self, fragment: String) -> Result<(), String> {
        let Some(resource) = self.resource.as_deref() else {
            return Err("no session".into());
        };
        let status = self
            .http
            .patch(resource, &self.token, self.etag.as_deref(), fragment)
            .await?;
        match crate::signal::whip::interpret_patch_status(status) {
            crate::signal::whip::PatchOutcome::Accepted => Ok(()),
            crate::signal::whip::PatchOutcome::Unsupported => {
                self.trickle = false;
                Err(format!(
                    "the server does not take trickle ICE after all (HTTP {status})"
                ))
            }
            crate::signal::whip::PatchOutcome::Refused(s) => {
                Err(format!("the server refused the candidates (HTTP {s})"))
            }
        }
    }

    async fn exchange(&mut self, offer_sdp: String) -> Result<String, Failure> {
        let session = self
            .http
            .post_offer(&self.endpoint, &self.token, offer_sdp)
            .await?;
        self.resource = Some(session.resource);
        self.etag = session.etag;
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
