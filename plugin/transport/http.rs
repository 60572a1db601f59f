//! WHIP over HTTP(S): the offer POST and the session DELETE, with certificate verification (rustls with the
//! system's trust store), bounded redirects, a request timeout and a bounded response body.
use crate::secret::Secret;
use crate::signal::whip::{self, WhipSession};
use crate::signal::{Failure, StopCode};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

pub struct WhipHttp {
    client: reqwest::Client,
    timeout: Duration,
}

/// TLS with certificates verified against the system's trust store (also for TURN over TLS).
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_platform_verifier()
        .map_err(|e| e.to_string())
        .map(|b| b.with_no_client_auth())
}

/// The chain of causes of a reqwest error, as one line, without the URL (it may carry a token).
fn describe(err: &reqwest::Error) -> String {
    let mut text = String::from(if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text += &format!(": {part}");
        }
        source = s.source();
    }
    text
}

/// A response's headers as (name, value) pairs for the sans-IO interpreters (values that are not text left out).
fn header_pairs(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

impl WhipHttp {
    pub fn new(timeout: Duration) -> Result<WhipHttp, Failure> {
        let tls = tls_config()
            .map_err(|e| Failure::new(StopCode::Error, format!("cannot set up TLS: {e}")))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::limited(whip::MAX_REDIRECTS))
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("rtc-studio/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Failure::new(
                    StopCode::Error,
                    format!("cannot set up HTTP: {}", describe(&e)),
                )
            })?;
        Ok(WhipHttp { client, timeout })
    }

    fn transport_error(&self, err: &reqwest::Error, what: &str) -> Failure {
        if err.is_timeout() {
            Failure::new(
                StopCode::ConnectFailed,
                format!(
                    "The WHIP server did not answer the {what} within {} s",
                    self.timeout.as_secs()
                ),
            )
        } else if err.is_redirect() {
            Failure::new(
                StopCode::BadPath,
                format!(
                    "The WHIP server redirected more than {} times",
                    whip::MAX_REDIRECTS
                ),
            )
        } else if err.is_connect() {
            Failure::new(
                StopCode::ConnectFailed,
                format!("Could not reach the WHIP server: {}", describe(err)),
            )
        } else {
            let why = describe(err);
            let message = match why.contains("message head is too large") {
                true => format!(
                    "The WHIP server's answer has far more headers than a WHIP answer needs ({why})"
                ),
                false => format!("The exchange with the WHIP server failed: {why}"),
            };
            Failure::new(StopCode::ConnectFailed, message)
        }
    }

    /// Reads at most `MAX_BODY_BYTES`; more is an error.
    async fn body(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, "offer"))?
        {
            if body.len() + chunk.len() > whip::MAX_BODY_BYTES {
                return Err(Failure::new(
                    StopCode::ConnectFailed,
                    format!(
                        "The WHIP server's answer is larger than {} KiB",
                        whip::MAX_BODY_BYTES / 1024
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// POSTs the SDP offer and interprets the answer.
    pub async fn post_offer(
        &self,
        endpoint: &Url,
        token: &Secret,
        offer_sdp: String,
    ) -> Result<WhipSession, Failure> {
        let offered = crate::signal::answer::offered_media(&offer_sdp);
        let mut req = self.client.post(endpoint.clone()).body(offer_sdp);
        for (k, v) in whip::offer_headers(token) {
            req = req.header(k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(&e, "offer"))?;
        let (status, final_url) = (resp.status().as_u16(), resp.url().clone());
        let headers = header_pairs(resp.headers());
        let body = self.body(resp).await?;
        whip::interpret_offer_response(&final_url, &offered, status, &headers, &body)
    }

    /// An OPTIONS pre-flight: the ICE servers the endpoint announces in `Link` headers (as MediaMTX and others
    /// do), so TURN/STUN can be used from the first offer, and whether its `Accept-Patch` takes trickle ICE.
    /// Servers that do not support OPTIONS just yield none and no trickle.
    pub async fn preflight(
        &self,
        endpoint: &Url,
        token: &Secret,
        limit: Duration,
    ) -> (Vec<whip::IceServer>, bool) {
        let mut req = self
            .client
            .request(reqwest::Method::OPTIONS, endpoint.clone());
        for (k, v) in whip::delete_headers(token) {
            req = req.header(k, v);
        }
        match tokio::time::timeout(limit, req.send()).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let headers = header_pairs(resp.headers());
                (
                    whip::link_ice_servers(&headers),
                    whip::accepts_trickle(&headers),
                )
            }
            _ => (Vec::new(), false),
        }
    }

    /// PATCHes a trickle ICE or ICE restart fragment to the session resource (`if_match`: the session's ETag, or
    /// `*` for a restart); returns the status, the new ETag if one came, and the body (a restart's answer).
    pub async fn patch(
        &self,
        resource: &str,
        token: &Secret,
        if_match: Option<&str>,
        fragment: String,
    ) -> Result<(u16, Option<String>, Vec<u8>), Unsent> {
        let mut req = self.client.patch(resource).body(fragment);
        for (k, v) in whip::patch_headers(token, if_match) {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| Unsent {
            message: describe(&e),
            refused: refused(&e),
        })?;
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        let (status, body) = self.small_body(resp).await.map_err(|message| Unsent {
            message,
            refused: false,
        })?;
        Ok((status, etag, body))
    }

    /// POSTs a JSON request (Janus's REST API); returns the status and at most `MAX_BODY_BYTES` of body.
    pub async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<(u16, Vec<u8>), String> {
        let resp = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        self.small_body(resp).await
    }

    /// GETs `url` (a Janus long poll) with its own time limit.
    pub async fn get_with_limit(
        &self,
        url: &Url,
        limit: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let resp = self
            .client
            .get(url.clone())
            .timeout(limit)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        self.small_body(resp).await
    }

    async fn small_body(&self, mut resp: reqwest::Response) -> Result<(u16, Vec<u8>), String> {
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > whip::MAX_BODY_BYTES {
                return Err(format!(
                    "the answer is larger than {} KiB",
                    whip::MAX_BODY_BYTES / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// DELETEs the session resource; returns the HTTP status.
    pub async fn delete(&self, resource: &str, token: &Secret) -> Result<u16, String> {
        let mut req = self.client.delete(resource);
        for (k, v) in whip::delete_headers(token) {
            req = req.header(k, v);
        }
        req.send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| describe(&e))
    }
}

/// A request that got no answer.
#[derive(Debug)]
pub struct Unsent {
    pub message: String,
    /// Nothing listens at the server's address any more (the connection was refused): it is down or restarting.
    pub refused: bool,
}

/// Whether `err` is a refused connection.
fn refused(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = e.source();
    }
    false
}
