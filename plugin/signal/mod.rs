//! Signalling state and messages, sans-IO: what to send and what replies mean.
pub mod answer;
pub mod ant_media;
pub mod ice;
pub mod janus;
pub mod sdp_fragment;
pub mod turn_stream;
pub mod websocket;
pub mod whip;

/// How a stream ended, in the terms OBS's frontend acts on (the FFI shell maps these to libobs's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCode {
    Success,
    /// The server URL is wrong.
    BadPath,
    ConnectFailed,
    /// The server refused the credentials (bearer token).
    InvalidStream,
    Error,
    /// Lost after connecting: OBS's reconnect logic takes over.
    Disconnected,
    Unsupported,
}

/// A failure that ends (or prevents) a stream: the stop code and the message the streamer reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: StopCode,
    pub message: String,
    /// The server's side of the session is gone (it restarted, or takes no ICE restarts), but it may take a new
    /// one at once: the stream worker publishes again (a new session) before OBS's reconnect takes over.
    pub republish: bool,
}

impl Failure {
    pub fn new(code: StopCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            republish: false,
        }
    }
}
