//! Janus VideoRoom signalling over Janus's REST API (the messages are in `crate::signal::janus`): create a session,
//! attach the VideoRoom plugin, join the room as a publisher, publish with the offer, and read the answer from the
//! long poll. Keepalives hold the session while streaming; leaving ends it.
use super::http::WhipHttp;
use super::signalling::{Signalling, Watch};
use super::Task;
use crate::secret::Secret;
use crate::session::ServerAnswer;
use crate::signal::janus::{self, JanusRoom, Reply};
use crate::signal::{Failure, StopCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Janus drops a session after 60 s without a request (its default); we send one well before.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// One long poll waits at most this long (Janus answers a quiet poll with a keepalive after 30 s).
const POLL_LIMIT: Duration = Duration::from_secs(35);
/// While streaming, a new long poll at most this often.
const POLL_AT_MOST_EVERY: Duration = Duration::from_millis(50);

pub struct JanusSignalling {
    http: Arc<WhipHttp>,
    base: Url,
    token: Secret,
    room: JanusRoom,
    session: Option<Url>,
    handle: Option<Url>,
    next_transaction: AtomicU64,
    keepalive: Option<Task>,
}

fn unreachable(what: &str, why: String) -> Failure {
    Failure::new(
        StopCode::ConnectFailed,
        format!("Could not reach the Janus server ({what}): {why}"),
    )
}

impl JanusSignalling {
    /// `base` is Janus's REST API root, e.g. `http://host:8088/janus`.
    pub fn new(http: WhipHttp, base: Url, token: Secret, room: JanusRoom) -> Self {
        JanusSignalling {
            http: Arc::new(http),
            base,
            token,
            room,
            session: None,
            handle: None,
            next_transaction: AtomicU64::new(1),
            keepalive: None,
        }
    }

    fn transaction(&self) -> String {
        format!(
            "rtc-studio-{}",
            self.next_transaction.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn child(parent: &Url, id: u64) -> Url {
        let mut url = parent.clone();
        let path = format!("{}/{id}", parent.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        url
    }

    async fn call(
        &self,
        url: &Url,
        request: serde_json::Value,
        what: &str,
    ) -> Result<Reply, Failure> {
        let (status, body) = self
            .http
            .post_json(url, &request)
            .await
            .map_err(|e| unreachable(what, e))?;
        if !(200..300).contains(&status) {
            let code = if status == 404 {
                StopCode::BadPath
            } else {
                StopCode::ConnectFailed
            };
            return Err(Failure::new(
                code,
                format!("The Janus server answered the {what} with HTTP {status} (is the URL Janus's REST API, e.g. http://host:8088/janus?)"),
            ));
        }
        let ours = request["transaction"].as_str().unwrap_or_default();
        let reply = janus::parse(&body)?;
        if let Some(theirs) = reply.transaction().filter(|t| *t != ours) {
            // A proxy or load balancer mixing up sessions, or a server that is not quite Janus.
            return Err(Failure::new(
                StopCode::ConnectFailed,
                format!(
                    "Janus answered the {what} for another request (transaction {theirs:?}, ours {ours:?})"
                ),
            ));
        }
        match reply {
            Reply::Error(f) => Err(f),
            reply => Ok(reply),
        }
    }

    /// Creates something (session or handle) and returns its id.
    async fn create(
        &self,
        url: &Url,
        request: serde_json::Value,
        what: &str,
    ) -> Result<u64, Failure> {
        match self.call(url, request, what).await? {
            Reply::Success { id: Some(id), .. } => Ok(id),
            other => Err(Failure::new(
                StopCode::ConnectFailed,
                format!("Janus answered the {what} unexpectedly: {other:?}"),
            )),
        }
    }

    /// The session's long poll, one event at a time.
    fn poll_url(&self, session: &Url) -> Url {
        let mut poll = session.clone();
        poll.query_pairs_mut().append_pair("maxev", "1");
        if !self.token.is_empty() {
            poll.query_pairs_mut()
                .append_pair("token", self.token.expose())
                .append_pair("apisecret", self.token.expose());
        }
        poll
    }

    /// Sends a VideoRoom message and waits on the long poll for the event that answers it.
    async fn message(
        &self,
        request: serde_json::Value,
        what: &str,
    ) -> Result<(serde_json::Value, Option<String>), Failure> {
        let transaction = request["transaction"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (session, handle) = (
            self.session.clone().expect("session"),
            self.handle.clone().expect("handle"),
        );
        match self.call(&handle, request, what).await? {
            Reply::Ack { .. } => {}
            // Some requests are answered synchronously.
            Reply::Event {
                data, answer_sdp, ..
            } => {
                janus::videoroom_result(&data)?;
                return Ok((data, answer_sdp));
            }
            other => {
                return Err(Failure::new(
                    StopCode::ConnectFailed,
                    format!("Janus answered the {what} unexpectedly: {other:?}"),
                ))
            }
        }
        let poll = self.poll_url(&session);
        // Bounded by the caller's connect deadline; each poll by POLL_LIMIT.
        loop {
            let (status, body) = self
                .http
                .get_with_limit(&poll, POLL_LIMIT)
                .await
                .map_err(|e| unreachable(what, e))?;
            if !(200..300).contains(&status) {
                return Err(Failure::new(
                    StopCode::ConnectFailed,
                    format!("Janus's event poll failed with HTTP {status}"),
                ));
            }
            match janus::parse(&body)? {
                Reply::Event {
                    transaction: Some(t),
                    data,
                    answer_sdp,
                } if t == transaction => {
                    janus::videoroom_result(&data)?;
                    return Ok((data, answer_sdp));
                }
                Reply::Hangup { reason } => {
                    return Err(Failure::new(
                        StopCode::ConnectFailed,
                        format!("Janus hung up during the {what}: {reason}"),
                    ))
                }
                Reply::Error(f) => return Err(f),
                _ => {} // keepalives, other events: keep polling
            }
        }
    }
}

#[async_trait::async_trait]
impl Signalling for JanusSignalling {
    fn name(&self) -> &'static str {
        "Janus VideoRoom"
    }

    async fn offer(&mut self, offer_sdp: String) -> Result<ServerAnswer, Failure> {
        let session_id = self
            .create(
                &self.base,
                janus::create(&self.transaction(), &self.token),
                "session request",
            )
            .await?;
        let session = Self::child(&self.base, session_id);
        self.session = Some(session.clone());
        let handle_id = self
            .create(
                &session,
                janus::attach(&self.transaction(), &self.token),
                "VideoRoom attach",
            )
            .await?;
        self.handle = Some(Self::child(&session, handle_id));

        let (joined, _) = self
            .message(
                janus::join(&self.transaction(), &self.token, &self.room),
                "join",
            )
            .await?;
        if joined["videoroom"] != "joined" {
            return Err(Failure::new(
                StopCode::ConnectFailed,
                format!("Janus did not let us join the room: {joined}"),
            ));
        }
        let (_, answer) = self
            .message(
                janus::publish(&self.transaction(), &self.token, &offer_sdp),
                "publish",
            )
            .await?;
        let answer = answer.ok_or_else(|| {
            Failure::new(
                StopCode::ConnectFailed,
                "Janus accepted the publish request without an SDP answer",
            )
        })?;

        let (http, token, url) = (self.http.clone(), self.token.clone(), session);
        let counter = self
            .next_transaction
            .fetch_add(1_000_000, Ordering::Relaxed);
        self.keepalive = Some(Task::spawn(async move {
            for n in 0u64.. {
                tokio::time::sleep(KEEPALIVE_INTERVAL).await;
                let tx = format!("rtc-studio-keepalive-{}", counter + n);
                let _ = http.post_json(&url, &janus::keepalive(&tx, &token)).await;
            }
        }));
        Ok(ServerAnswer {
            sdp: answer,
            restarts: false,
            ice_servers: Vec::new(),
        })
    }

    /// The session's long poll while streaming: Janus hanging up our PeerConnection, forgetting the session, or not
    /// answering at all (it died: the connection is refused or reset) ends it — faster than ICE's 3 s.
    fn watch(&mut self) -> Option<Watch> {
        let poll = self.poll_url(self.session.as_ref()?);
        let http = self.http.clone();
        Some(Box::pin(async move {
            loop {
                let asked = tokio::time::Instant::now();
                let (status, body) = match http.get_with_limit(&poll, POLL_LIMIT).await {
                    Ok(answer) => answer,
                    Err(e) => return format!("Janus's event poll failed: {e}"),
                };
                if !(200..300).contains(&status) {
                    return format!("Janus's event poll failed with HTTP {status}");
                }
                match janus::parse(&body) {
                    Ok(Reply::Hangup { reason }) => return format!("Janus hung up: {reason}"),
                    Ok(Reply::Error(f)) | Err(f) => return format!("Janus: {}", f.message),
                    Ok(_) => {} // keepalives, webrtcup, media, slowlink, other events
                }
                // A server that answers every poll at once gets at most 20 a second.
                tokio::time::sleep_until(asked + POLL_AT_MOST_EVERY).await;
            }
        }))
    }

    async fn end(&mut self) -> Result<String, String> {
        self.keepalive = None;
        let Some(session) = self.session.take() else {
            return Ok("no session was created".into());
        };
        if let Some(handle) = self.handle.take() {
            let _ = self
                .http
                .post_json(&handle, &janus::leave(&self.transaction(), &self.token))
                .await;
        }
        let (status, body) = self
            .http
            .post_json(&session, &janus::destroy(&self.transaction(), &self.token))
            .await?;
        match janus::parse(&body) {
            Ok(Reply::Success { .. }) => Ok("left the room, session destroyed".into()),
            Ok(other) => Err(format!("destroy answered HTTP {status}: {other:?}")),
            Err(f) => Err(f.message),
        }
    }
}
