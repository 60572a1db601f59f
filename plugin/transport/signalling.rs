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
    /// Sends the complete offer (all candidates gathered) and returns the server's SDP answer.
    async fn exchange(&mut self, offer_sdp: String) -> Result<String, Failure>;
    /// Ends the server-side session; describes how it went for the log.
    async fn end(&mut self) -> Result<String, String>;
}

/// WHIP: OPTIONS pre-flight for ICE servers, POST offer → 201 + Location, DELETE on the way out.
pub struct WhipSignalling {
    http: WhipHttp,
    endpoint: Url,
    token: String,
    resource: Option<String>,
}

impl WhipSignalling {
    pub fn new(http: WhipHttp, endpoint: Url, token: String) -> Self {
        WhipSignalling {
            http,
            endpoint,
            token,
            resource: None,
        }
    }
}

#[async_trait::async_trait]
impl Signalling for WhipSignalling {
    fn name(&self) -> &'static str {
        "WHIP"
    }

    async fn ice_servers(&mut self, limit: Duration) -> Vec<IceServer> {
        self.http
            .ice_servers(&self.endpoint, &self.token, limit)
            .await
    }

    async fn exchange(&mut self, offer_sdp: String) -> Result<String, Failure> {
        let session = self
            .http
            .post_offer(&self.endpoint, &self.token, offer_sdp)
            .await?;
        self.resource = Some(session.resource);
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
