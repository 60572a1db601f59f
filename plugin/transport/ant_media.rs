//! Ant Media Server's native signalling (the messages are in `crate::signal::ant_media`) over a WebSocket: before
//! the offer, `publish` and the server's `start`; the offer and its answer as `takeConfiguration`; our candidates
//! trickled as `takeCandidate`, the server's passed to the session; a `ping` every 3 s; `stop` on the way out.
//! The server ending the stream (`publish_finished`, an error, the socket closing) ends the session.
use super::signalling::{Signalling, Watch};
use super::websocket::{self, Connection};
use super::Task;
use crate::secret::Secret;
use crate::session::{Preflight, RemoteCandidate, RequestError, ServerAnswer};
use crate::signal::ant_media::{self, Incoming};
use crate::signal::{Failure, StopCode};
use std::time::Duration;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use url::Url;

/// How often the socket is kept alive (Ant Media's own client pings every 3 s).
const PING_EVERY: Duration = Duration::from_secs(3);

pub struct AntMediaSignalling {
    url: Url,
    stream_id: String,
    token: Secret,
    limit: Duration,
    connection: Option<Connection>,
    /// Why the pre-flight (connect, publish, start) failed: the offer's answer then.
    failed: Option<Failure>,
    /// The server's candidates that came before its answer.
    early: Vec<RemoteCandidate>,
    candidates: Option<UnboundedReceiver<RemoteCandidate>>,
    gone: Option<Watch>,
    tasks: Vec<Task>,
}

impl AntMediaSignalling {
    /// `url` is the application's WebSocket URL; `connect_timeout` the whole connect's limit, of which each wait
    /// for the server takes at most three quarters (a server that never answers is named as such, before the
    /// session's own deadline).
    pub fn new(url: Url, stream_id: String, token: Secret, connect_timeout: Duration) -> Self {
        AntMediaSignalling {
            url,
            stream_id,
            token,
            limit: connect_timeout.mul_f64(0.75),
            connection: None,
            failed: None,
            early: Vec::new(),
            candidates: None,
            gone: None,
            tasks: Vec::new(),
        }
    }

    fn send(&self, text: &str) -> bool {
        self.connection
            .as_ref()
            .is_some_and(|c| c.sender.send(text))
    }

    /// The next message about our stream that matters before the answer, within the limit: candidates are kept,
    /// pongs and other messages skipped, errors and the socket ending are failures.
    async fn next(&mut self, waiting_for: &str) -> Result<Incoming, Failure> {
        let limit = self.limit;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return Err(Failure::new(
                    StopCode::ConnectFailed,
                    "The Ant Media connection is closed",
                ));
            };
            let message = match tokio::time::timeout_at(deadline, connection.incoming.recv()).await
            {
                Err(_) => {
                    return Err(Failure::new(
                        StopCode::ConnectFailed,
                        format!(
                            "The Ant Media server did not send {waiting_for} within {:.1} s",
                            limit.as_secs_f64()
                        ),
                    ))
                }
                Ok(None) => Err("the connection ended".to_string()),
                Ok(Some(m)) => m,
            };
            let text = message.map_err(|why| {
                Failure::new(
                    StopCode::ConnectFailed,
                    format!(
                        "The Ant Media server ended the connection before {waiting_for}: {why}"
                    ),
                )
            })?;
            match ant_media::parse(&text, &self.stream_id) {
                Err(why) => {
                    return Err(Failure::new(
                        StopCode::ConnectFailed,
                        format!("The Ant Media server sent a message that is not its signalling ({why})"),
                    ))
                }
                Ok(Incoming::Refused(f)) => return Err(f),
                Ok(Incoming::Finished) => {
                    return Err(Failure::new(
                        StopCode::ConnectFailed,
                        format!("The Ant Media server ended the stream before {waiting_for} (publish_finished)"),
                    ))
                }
                Ok(Incoming::Candidate { label, mid, candidate }) => self.early.push(RemoteCandidate {
                    mline: u16::try_from(label).unwrap_or(0),
                    mid,
                    candidate,
                }),
                Ok(Incoming::Pong | Incoming::Other | Incoming::Started) => {}
                Ok(m @ (Incoming::Start | Incoming::Answer(_))) => return Ok(m),
            }
        }
    }

    async fn start(&mut self) -> Result<(), Failure> {
        let connection = websocket::connect(&self.url, self.limit).await?;
        let pinger = connection.sender.clone();
        self.tasks.push(Task::spawn(async move {
            let mut every = tokio::time::interval(PING_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                if !pinger.send(&ant_media::ping()) {
                    break;
                }
            }
        }));
        self.connection = Some(connection);
        self.send(&ant_media::publish(&self.stream_id, &self.token));
        match self.next("its start").await? {
            Incoming::Start => Ok(()),
            _ => Err(Failure::new(
                StopCode::ConnectFailed,
                "The Ant Media server sent an answer before it was asked for one",
            )),
        }
    }

    /// After the answer: the server's candidates go to the session, and its word that the stream ended (or the
    /// socket's end) ends it.
    fn follow(&mut self) {
        let Some(mut connection_in) = self
            .connection
            .as_mut()
            .map(|c| std::mem::replace(&mut c.incoming, mpsc::unbounded_channel().1))
        else {
            return;
        };
        let (candidates, rx) = mpsc::unbounded_channel();
        for c in self.early.drain(..) {
            let _ = candidates.send(c);
        }
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<String>();
        let stream_id = self.stream_id.clone();
        self.tasks.push(Task::spawn(async move {
            let why = loop {
                let text = match connection_in.recv().await {
                    Some(Ok(t)) => t,
                    Some(Err(why)) => break format!("the Ant Media connection ended: {why}"),
                    None => break "the Ant Media connection ended".to_string(),
                };
                match ant_media::parse(&text, &stream_id) {
                    Ok(Incoming::Candidate {
                        label,
                        mid,
                        candidate,
                    }) => {
                        let _ = candidates.send(RemoteCandidate {
                            mline: u16::try_from(label).unwrap_or(0),
                            mid,
                            candidate,
                        });
                    }
                    Ok(Incoming::Finished) => {
                        break "the Ant Media server ended the stream (publish_finished)".into()
                    }
                    Ok(Incoming::Refused(f)) => break f.message,
                    _ => {}
                }
            };
            let _ = gone_tx.send(why);
        }));
        self.candidates = Some(rx);
        self.gone = Some(Box::pin(async move {
            gone_rx
                .await
                .unwrap_or_else(|_| "the Ant Media connection ended".into())
        }));
    }
}

#[async_trait::async_trait]
impl Signalling for AntMediaSignalling {
    fn name(&self) -> &'static str {
        "Ant Media"
    }

    /// Connects, asks to publish and waits for the server's `start`; a failure is the offer's answer.
    async fn preflight(&mut self, _limit: Duration) -> Preflight {
        match self.start().await {
            Ok(()) => Preflight {
                ice_servers: Vec::new(),
                trickle: true,
            },
            Err(f) => {
                self.failed = Some(f);
                Preflight::default()
            }
        }
    }

    async fn offer(&mut self, offer_sdp: String) -> Result<ServerAnswer, Failure> {
        if let Some(f) = self.failed.take() {
            return Err(f);
        }
        self.send(&ant_media::offer(&self.stream_id, &offer_sdp));
        match self.next("its answer").await? {
            Incoming::Answer(sdp) => {
                self.follow();
                Ok(ServerAnswer {
                    sdp,
                    restarts: false,
                    ice_servers: Vec::new(),
                })
            }
            _ => Err(Failure::new(
                StopCode::ConnectFailed,
                "The Ant Media server sent start again instead of its answer",
            )),
        }
    }

    /// Our candidates of a trickle fragment (all in the BUNDLE section, the first), one `takeCandidate` each.
    async fn trickle(&mut self, fragment: String) -> Result<(), RequestError> {
        let mid = (fragment.lines())
            .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .unwrap_or("0")
            .to_string();
        for c in crate::signal::sdp_fragment::sdp_candidates(&fragment) {
            if !self.send(&ant_media::candidate(&self.stream_id, 0, &mid, &c)) {
                return Err(RequestError::Failed(
                    "the Ant Media connection is closed".into(),
                ));
            }
        }
        Ok(())
    }

    fn remote_candidates(&mut self) -> Option<UnboundedReceiver<RemoteCandidate>> {
        self.candidates.take()
    }

    fn watch(&mut self) -> Option<Watch> {
        self.gone.take()
    }

    async fn end(&mut self) -> Result<String, String> {
        let Some(connection) = self.connection.take() else {
            return Err("never connected".into());
        };
        let sent = connection.sender.send(&ant_media::stop(&self.stream_id));
        connection.sender.close();
        // The writer sends what is queued before the close; give it a moment before the tasks go.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.tasks.clear();
        match sent {
            true => Ok("stop sent".into()),
            false => Err("the connection was already closed".into()),
        }
    }
}
