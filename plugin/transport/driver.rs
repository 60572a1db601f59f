//! The session's driver: one loop on the plugin's runtime that turns what happens — the server's replies, the
//! WebRTC stack's events, OBS's packets, timers, a stop — into [`Input`]s for the sans-IO [`Session`], and carries
//! out the [`Action`]s it asks for: signalling requests (on a task of their own, one at a time, in order), peer
//! connection calls and RTP writes. Time advances on timers, not on the arrival of the next media packet.
use super::ant_media::AntMediaSignalling;
use super::http::WhipHttp;
use super::janus::JanusSignalling;
use super::peer::Peer;
use super::signalling::{Signalling, WhipSignalling};
use super::turn_bridge::TurnBridges;
use super::Task;
use crate::media::capture::CaptureClock;
use crate::media::packet::EncodedPacket;
use crate::media::video::VideoCodec;
use crate::secret::Secret;
use crate::session::sender::StreamIds;
use crate::session::{
    Action, ConnectTimings, Event, Figures, Input, Note, Output, PeerState, RateConfig, Session,
    SessionConfig, VideoLayer, MAX_LAYERS,
};
use crate::signal::janus::JanusRoom;
use crate::signal::whip::{self, IceServer};
use crate::signal::{Failure, StopCode};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;

/// Everything needed to publish, from the output's settings and encoders.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// The WHIP endpoint, or Janus's REST API root when `janus` is set.
    pub endpoint: String,
    pub bearer_token: Secret,
    /// Publish into this Janus VideoRoom through Janus's own API instead of WHIP.
    pub janus: Option<JanusRoom>,
    /// Publish this stream ID over Ant Media's WebSocket signalling instead (`endpoint` is the application's
    /// WebSocket URL or page).
    pub ant_media: Option<String>,
    pub ice_servers: Vec<IceServer>,
    /// Only relayed (TURN) candidates.
    pub relay_only: bool,
    /// Limit for the whole connect (HTTP + ICE + DTLS).
    pub connect_timeout: Duration,
    pub max_payload: usize,
    /// What the video encoders produce.
    pub video_codec: VideoCodec,
    /// The video encoders: the full picture's first, then (simulcast) each smaller layer's.
    pub video: Vec<LayerEncoder>,
    /// The audio encoder's extra data (OpusHead).
    pub audio_extra_data: Bytes,
    /// OBS's clock, ours and the wall clock read together.
    pub capture: CaptureClock,
    /// The encoders' bitrates and how the video's follows the network.
    pub rate: RateConfig,
}

/// One video layer's encoder, as the session needs to know it.
#[derive(Clone, Debug, Default)]
pub struct LayerEncoder {
    /// Its extra data (H.264/HEVC: Annex-B parameter sets; AV1: the sequence header).
    pub extra_data: Bytes,
    /// Its configured bitrate, kbit/s.
    pub kbps: u32,
}

/// The RTP stream ids of simulcast layers, full picture first (as browsers name them: full, half, quarter).
pub const LAYER_RIDS: [&str; MAX_LAYERS] = ["f", "h", "q"];

/// Where the session's notes go (the streamer's log).
pub type NoteSink = Arc<dyn Fn(&Note) + Send + Sync>;

/// What the session may ask of OBS's video encoder; the glue carries it out (the driver never calls libobs).
pub trait EncoderControl: Send + Sync {
    /// Asks the encoder of video layer `layer` (0: the full picture) for a keyframe as soon as it can make one.
    fn request_keyframe(&self, layer: usize);
    /// Simulcast layer `layer` is not sent: its encoder may stop.
    fn release_layer(&self, _layer: usize) {}
    /// Sets the encoder's bitrate, kbit/s.
    fn set_video_bitrate(&self, kbps: u32);
}

/// An encoder that cannot be asked for anything (the replay benchmark's pre-encoded media).
pub struct FixedEncoder;

impl EncoderControl for FixedEncoder {
    fn request_keyframe(&self, _layer: usize) {}
    fn set_video_bitrate(&self, _kbps: u32) {}
}

/// What has gone out so far, for OBS's counters.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// A packet was taken from the queue since the last report.
    pub taken: bool,
    pub bytes_sent: u64,
    pub video_packets: u64,
    pub audio_packets: u64,
    pub congestion: f32,
    /// The session's figures, once every [`FIGURES_EVERY`] (for the metrics endpoint).
    pub figures: Option<(Figures, Instant)>,
}

/// How often the session's figures go out with the progress.
pub const FIGURES_EVERY: Duration = Duration::from_secs(1);

/// A request for the signalling task.
enum SignalRequest {
    Preflight(Duration),
    Offer(String),
    Trickle(String),
    Restart(String),
    End,
}

/// Carries out signalling requests one at a time, in order; each answer becomes the session's input. Once the
/// offer is answered, the server's word that the session is gone (a [`super::signalling::Watch`]) becomes one too,
/// until the session ends.
async fn serve_signalling(
    mut signalling: Box<dyn Signalling>,
    mut requests: UnboundedReceiver<SignalRequest>,
    inputs: UnboundedSender<Input>,
) {
    let mut _watching: Option<Task> = None;
    let mut _candidates: Option<Task> = None;
    while let Some(r) = requests.recv().await {
        let input = match r {
            SignalRequest::Preflight(limit) => {
                Input::Preflighted(signalling.preflight(limit).await)
            }
            SignalRequest::Offer(sdp) => {
                let answered = signalling.offer(sdp).await;
                if answered.is_ok() {
                    _candidates = signalling.remote_candidates().map(|mut candidates| {
                        let inputs = inputs.clone();
                        Task::spawn(async move {
                            while let Some(c) = candidates.recv().await {
                                if inputs.send(Input::RemoteCandidate(c)).is_err() {
                                    break;
                                }
                            }
                        })
                    });
                    _watching = signalling.watch().map(|gone| {
                        let inputs = inputs.clone();
                        Task::spawn(async move {
                            let _ = inputs.send(Input::ServerGone(gone.await));
                        })
                    });
                }
                Input::Answered(answered)
            }
            SignalRequest::Trickle(f) => Input::Trickled(signalling.trickle(f).await),
            SignalRequest::Restart(f) => Input::RestartAnswered(signalling.restart(f).await),
            SignalRequest::End => {
                _watching = None;
                _candidates = None;
                Input::ServerSessionEnded(signalling.end().await)
            }
        };
        if inputs.send(input).is_err() {
            break;
        }
    }
}

pub struct Driver {
    session: Session,
    peer: Option<Peer>,
    inputs_tx: UnboundedSender<Input>,
    inputs: UnboundedReceiver<Input>,
    signal: UnboundedSender<SignalRequest>,
    /// Ends the signalling when the driver goes (an answer still awaited is no longer wanted; Janus's keepalives
    /// stop).
    _signal_task: Task,
    bridges: TurnBridges,
    notes: NoteSink,
    encoder: Arc<dyn EncoderControl>,
    stop_sent: bool,
    /// An RTP write failed (the peer connection is gone): reported to the session once.
    write_failed: bool,
    /// Whether this host can multicast (mDNS), once looked at.
    mdns: Option<bool>,
    /// When the session's figures last went out with the progress.
    figures_at: Option<Instant>,
}

impl Driver {
    /// A session for `cfg`, its signalling task started (call inside the plugin's runtime).
    pub fn start(
        cfg: PublishConfig,
        notes: NoteSink,
        encoder: Arc<dyn EncoderControl>,
    ) -> Result<Driver, Failure> {
        let signalling: Box<dyn Signalling> = match (&cfg.ant_media, cfg.janus.clone()) {
            (Some(stream_id), _) => Box::new(AntMediaSignalling::new(
                crate::signal::ant_media::websocket_url(&cfg.endpoint)?,
                stream_id.clone(),
                cfg.bearer_token.clone(),
                cfg.connect_timeout,
            )),
            (None, None) => Box::new(WhipSignalling::new(
                WhipHttp::new(cfg.connect_timeout)?,
                whip::validate_endpoint(&cfg.endpoint)?,
                cfg.bearer_token.clone(),
            )),
            (None, Some(room)) => Box::new(JanusSignalling::new(
                WhipHttp::new(cfg.connect_timeout)?,
                whip::validate_endpoint(&cfg.endpoint)?,
                cfg.bearer_token.clone(),
                room,
            )),
        };
        let ids = || StreamIds {
            ssrc: rand::random(),
            first_seq: rand::random(),
            rtp_offset: rand::random(),
        };
        let encoders = match cfg.video.is_empty() {
            true => vec![LayerEncoder::default()],
            false => cfg.video,
        };
        let simulcast = encoders.len() > 1;
        let video = (encoders.iter().take(MAX_LAYERS).zip(LAYER_RIDS))
            .map(|(encoder, rid)| VideoLayer {
                rid: if simulcast { rid.into() } else { String::new() },
                ids: ids(),
                rtx_ssrc: rand::random(),
                extra_data: encoder.extra_data.clone(),
                kbps: encoder.kbps,
            })
            .collect();
        let config = SessionConfig {
            signalling: signalling.name(),
            ice_servers: cfg.ice_servers,
            relay_only: cfg.relay_only,
            connect_timeout: cfg.connect_timeout,
            max_payload: cfg.max_payload,
            video_codec: cfg.video_codec,
            audio_extra_data: cfg.audio_extra_data,
            capture: cfg.capture,
            video,
            audio: ids(),
            stream_id: format!("obs-{:08x}", rand::random::<u32>()),
            rate: cfg.rate,
        };
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let (signal, requests) = mpsc::unbounded_channel();
        let signal_task = Task::spawn(serve_signalling(signalling, requests, inputs_tx.clone()));
        Ok(Driver {
            session: Session::new(config, Instant::now()),
            peer: None,
            inputs_tx,
            inputs,
            signal,
            _signal_task: signal_task,
            bridges: TurnBridges::default(),
            notes,
            encoder,
            stop_sent: false,
            write_failed: false,
            mdns: None,
            figures_at: None,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Runs the session until ICE and DTLS are connected, it fails, or `stop` turns true (a failure with code
    /// `Success`). After a failure, [`Self::close`] finishes the teardown.
    pub async fn connect(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<ConnectTimings, Failure> {
        loop {
            let wake_at = match self.carry_out().await {
                Ok((Some(t), _)) => return Ok(t),
                Ok((None, wake_at)) => wake_at,
                Err(f) => return Err(f),
            };
            tokio::select! {
                Some(input) = self.inputs.recv() => self.session.handle(input, Instant::now()),
                _ = stop.wait_for(|s| *s), if !self.stop_sent => self.stop(),
                () = tokio::time::sleep_until(wake_at.into()) => self.session.handle_timeout(Instant::now()),
            }
        }
    }

    /// Streams OBS's packets until the queue closes or `stop` turns true (None), or the stream fails. `progress`
    /// hears of every packet taken and of what has gone out.
    pub async fn stream(
        &mut self,
        packets: &mut mpsc::Receiver<EncodedPacket>,
        stop: &watch::Receiver<bool>,
        progress: &mut dyn FnMut(Progress),
    ) -> Option<Failure> {
        loop {
            let wake_at = match self.carry_out().await {
                Err(f) => return Some(f),
                Ok((_, wake_at)) => wake_at,
            };
            progress(self.progress(false));
            tokio::select! {
                biased;
                Some(input) = self.inputs.recv() => self.session.handle(input, Instant::now()),
                packet = packets.recv() => {
                    let packet = packet?;
                    progress(self.progress(true));
                    if *stop.borrow() {
                        return None;
                    }
                    self.session.handle(Input::Media(packet), Instant::now());
                }
                () = tokio::time::sleep_until(wake_at.into()) => self.session.handle_timeout(Instant::now()),
            }
        }
    }

    /// Ends the session (the server's side and the peer connection), within the session's close deadline;
    /// returns how the server's side ended, and what the session sent in all (bytes, video and audio packets, as
    /// [`Progress`] counts them) — packets still paced out leave while it closes.
    pub async fn close(mut self) -> (Result<String, String>, (u64, u64, u64)) {
        self.stop();
        loop {
            let wake_at = loop {
                match self.next_event().await {
                    Ok(Event::Closed(how)) => return (how, self.session.sent()),
                    Ok(_) => {}
                    Err(wake_at) => break wake_at,
                }
            };
            tokio::select! {
                Some(input) = self.inputs.recv() => self.session.handle(input, Instant::now()),
                () = tokio::time::sleep_until(wake_at.into()) => self.session.handle_timeout(Instant::now()),
            }
        }
    }

    fn stop(&mut self) {
        if !self.stop_sent {
            self.stop_sent = true;
            self.session.handle(Input::Stop, Instant::now());
        }
    }

    fn progress(&mut self, taken: bool) -> Progress {
        let (bytes_sent, video_packets, audio_packets) = self.session.sent();
        let now = Instant::now();
        let figures = match self.figures_at {
            Some(t) if now < t + FIGURES_EVERY => None,
            _ => {
                self.figures_at = Some(now);
                Some((self.session.figures(), now))
            }
        };
        Progress {
            taken,
            bytes_sent,
            video_packets,
            audio_packets,
            congestion: self.session.congestion(),
            figures,
        }
    }

    /// Carries out everything due: the connect timings once connected, Err on a failure; and when to come back.
    async fn carry_out(&mut self) -> Result<(Option<ConnectTimings>, Instant), Failure> {
        let mut connected = None;
        loop {
            match self.next_event().await {
                Ok(Event::Connected(t)) => connected = Some(t),
                Ok(Event::Failed(f)) => return Err(self.bridges.explain(f)),
                Ok(_) => {}
                Err(wake_at) => return Ok((connected, wake_at)),
            }
        }
    }

    /// Carries out the session's actions and logs its notes until it reports an event (Ok) or waits (Err: until
    /// when).
    async fn next_event(&mut self) -> Result<Event, Instant> {
        loop {
            match self.session.poll() {
                Output::Action(a) => self.execute(a).await,
                Output::Event(Event::Note(n)) => (self.notes)(&n),
                Output::Event(e) => return Ok(e),
                Output::Timeout(t) => return Err(t),
            }
        }
    }

    fn signal(&self, r: SignalRequest) {
        // The task ends only with the driver.
        let _ = self.signal.send(r);
    }

    fn input(&self, i: Input) {
        let _ = self.inputs_tx.send(i);
    }

    async fn execute(&mut self, action: Action) {
        match action {
            Action::Preflight { limit } => self.signal(SignalRequest::Preflight(limit)),
            Action::CreatePeer(spec) => {
                if let Some(old) = self.peer.take() {
                    tokio::spawn(old.close());
                }
                let servers = self.bridged(spec.ice_servers.clone()).await;
                let mdns = self.mdns();
                let made = Peer::create(&spec, &servers, mdns, self.inputs_tx.clone()).await;
                let made = made.map(|p| {
                    self.peer = Some(p);
                });
                self.input(Input::PeerCreated(made));
            }
            Action::ReadOffer => {
                let offer = match &self.peer {
                    Some(p) => p.local_offer().await,
                    None => Err(no_peer()),
                };
                self.input(Input::Offer(offer));
            }
            Action::SendOffer(sdp) => self.signal(SignalRequest::Offer(sdp)),
            Action::ApplyAnswer(sdp) => {
                let applied = match &self.peer {
                    Some(p) => p.apply_answer(sdp).await,
                    None => Err(no_peer()),
                };
                self.input(Input::AnswerApplied(applied));
            }
            Action::SendTrickle(f) => self.signal(SignalRequest::Trickle(f)),
            Action::RestartIce(servers) => {
                let servers = self.bridged(servers).await;
                let restarted = match &self.peer {
                    Some(p) => p.restart_ice(&servers).await,
                    None => Err(crate::session::RequestError::Failed(no_peer().message)),
                };
                self.input(Input::IceRestarted(restarted));
            }
            Action::SendRestart(f) => self.signal(SignalRequest::Restart(f)),
            Action::SendRtp(p) => {
                let written = match &self.peer {
                    Some(peer) => peer.write_rtp(p).await,
                    None => Err(no_peer().message),
                };
                if written.is_err() && !self.write_failed {
                    self.write_failed = true;
                    self.input(Input::PeerState(PeerState::Closed));
                }
            }
            Action::SendReport(r) => {
                if let Some(p) = &self.peer {
                    p.write_report(r).await;
                }
            }
            Action::AddRemoteCandidate(c) => {
                if let Some(p) = &self.peer {
                    if let Err(e) = p.add_remote_candidate(&c).await {
                        (self.notes)(&Note::warn(format!(
                            "the server's candidate {:?} was not taken: {e}",
                            c.candidate
                        )));
                    }
                }
            }
            Action::EndServerSession => self.signal(SignalRequest::End),
            Action::RequestKeyframe(layer) => self.encoder.request_keyframe(layer),
            Action::ReleaseLayer(layer) => self.encoder.release_layer(layer),
            Action::SetVideoBitrate(kbps) => self.encoder.set_video_bitrate(kbps),
            Action::ClosePeer => match self.peer.take() {
                Some(p) => {
                    let done = self.inputs_tx.clone();
                    tokio::spawn(async move {
                        p.close().await;
                        let _ = done.send(Input::PeerClosed);
                    });
                }
                None => self.input(Input::PeerClosed),
            },
        }
    }

    /// Whether to resolve `.local` candidates by mDNS: where this host can multicast (said in the log once where it
    /// cannot).
    fn mdns(&mut self) -> bool {
        if let Some(works) = self.mdns {
            return works;
        }
        let works = super::peer::multicast_works();
        if !works {
            (self.notes)(&Note::info(
                "mDNS is off: this host cannot multicast (no default route?); the server's candidates are used as \
                 they are",
            ));
        }
        self.mdns = Some(works);
        works
    }

    /// `servers` with TURN over TCP/TLS bridged (bridges made once per session, noted when made).
    async fn bridged(&mut self, servers: Vec<IceServer>) -> Vec<IceServer> {
        let mut notes = Vec::new();
        let servers = self.bridges.bridged(servers, &mut notes).await;
        for n in &notes {
            (self.notes)(n);
        }
        servers
    }
}

fn no_peer() -> Failure {
    Failure::new(StopCode::Error, "no peer connection")
}
