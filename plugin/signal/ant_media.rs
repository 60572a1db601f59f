//! Ant Media Server's native WebRTC signalling (the Community Edition's only way in), sans-IO: JSON text messages
//! over a WebSocket at `ws(s)://host:port/<App>/websocket`. A publisher sends `publish` (stream ID, token); the
//! server answers `start`; the publisher's offer goes as `takeConfiguration` (type offer) and the answer comes back
//! the same way; ICE candidates go both ways as `takeCandidate` (label = m-line index, id = mid); `ping` keeps the
//! socket alive (`pong`); `stop` ends it. The server speaks up with `notification` (`publish_started`,
//! `publish_finished`) and `error` (a `definition` such as `streamIdInUse`). What each definition means for the
//! streamer is [`refusal`].
use super::{Failure, StopCode};
use crate::secret::Secret;
use serde_json::{json, Value};

/// The WebSocket URL of an Ant Media application from what a streamer types: its `wss://…/<App>/websocket`
/// itself, or the application's page (`https://host:5443/LiveApp`, `http://host:5080/LiveApp/`) from which it is
/// derived. Err: not a URL of either kind.
pub fn websocket_url(typed: &str) -> Result<url::Url, Failure> {
    let bad = |why: &str| {
        Failure::new(
            StopCode::BadPath,
            format!(
                "The Ant Media server URL {why}: give the application's WebSocket URL \
                 (wss://host:5443/LiveApp/websocket) or its page (https://host:5443/LiveApp)"
            ),
        )
    };
    let mut url = url::Url::parse(typed.trim()).map_err(|_| bad("is not a URL"))?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad("is neither ws(s):// nor http(s)://")),
    };
    url.set_scheme(scheme).map_err(|_| bad("cannot be used"))?;
    let path = url.path().trim_end_matches('/').to_string();
    if path.is_empty() {
        return Err(bad("names no application"));
    }
    if !path.ends_with("/websocket") {
        url.set_path(&format!("{path}/websocket"));
    }
    url.set_fragment(None);
    Ok(url)
}

/// `publish`: the stream `stream_id`, with video and audio, and the token when the server wants one.
pub fn publish(stream_id: &str, token: &Secret) -> String {
    let mut m = json!({"command": "publish", "streamId": stream_id, "video": true, "audio": true});
    if !token.expose().is_empty() {
        m["token"] = json!(token.expose());
    }
    m.to_string()
}

/// Our offer.
pub fn offer(stream_id: &str, sdp: &str) -> String {
    json!({"command": "takeConfiguration", "streamId": stream_id, "type": "offer", "sdp": sdp})
        .to_string()
}

/// One of our ICE candidates (`candidate:…` without `a=`), for m-line `label` with `mid`.
pub fn candidate(stream_id: &str, label: u32, mid: &str, candidate: &str) -> String {
    json!({"command": "takeCandidate", "streamId": stream_id, "label": label, "id": mid, "candidate": candidate})
        .to_string()
}

pub fn ping() -> String {
    json!({"command": "ping"}).to_string()
}

pub fn stop(stream_id: &str) -> String {
    json!({"command": "stop", "streamId": stream_id}).to_string()
}

/// What a message from the server says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Go ahead: send the offer.
    Start,
    /// The server's answer (SDP).
    Answer(String),
    /// One of the server's ICE candidates (empty: its end of candidates).
    Candidate {
        label: u32,
        mid: String,
        candidate: String,
    },
    /// `publish_started`: media is arriving.
    Started,
    /// `publish_finished`: the server ended the stream.
    Finished,
    Pong,
    /// An error, as the streamer reads it.
    Refused(Failure),
    /// Anything else (other commands, other streams' messages, notifications we do not act on).
    Other,
}

/// Reads a server message about `stream_id`. Err: not a JSON object with a `command`.
pub fn parse(text: &str, stream_id: &str) -> Result<Incoming, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let command = v["command"]
        .as_str()
        .ok_or_else(|| "a message without a command".to_string())?;
    let about_us = v["streamId"].as_str().is_none_or(|s| s == stream_id);
    let str_of = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Ok(match command {
        "pong" => Incoming::Pong,
        _ if !about_us => Incoming::Other,
        "start" => Incoming::Start,
        "takeConfiguration" if v["type"] == "answer" => match v["sdp"].as_str() {
            Some(sdp) => Incoming::Answer(sdp.to_string()),
            None => return Err("an answer without SDP".into()),
        },
        "takeCandidate" => Incoming::Candidate {
            label: v["label"]
                .as_u64()
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(0),
            mid: str_of("id"),
            candidate: str_of("candidate"),
        },
        "notification" => match v["definition"].as_str() {
            Some("publish_started") => Incoming::Started,
            Some("publish_finished") => Incoming::Finished,
            _ => Incoming::Other,
        },
        "error" => Incoming::Refused(refusal(v["definition"].as_str().unwrap_or(""))),
        _ => Incoming::Other,
    })
}

/// An Ant Media error `definition` as OBS's stop code and the streamer's message (Ant Media's own word in it).
pub fn refusal(definition: &str) -> Failure {
    let (code, what) = match definition {
        "unauthorized_access" => (
            StopCode::InvalidStream,
            "refused the token for this stream ID: check the token in the settings",
        ),
        "streamIdInUse" | "already_publishing" => (
            StopCode::InvalidStream,
            "says this stream ID is already publishing: stop the other publisher or choose another stream ID",
        ),
        "not_allowed_unregistered_streams" => (
            StopCode::InvalidStream,
            "takes only streams created on it first: create the stream ID in its panel or REST API",
        ),
        "no_stream_exist" | "stream_not_active_or_expired" => (
            StopCode::InvalidStream,
            "has no active stream with this stream ID (not created, or outside its planned time)",
        ),
        "noStreamNameSpecified" | "invalidStreamName" => (
            StopCode::InvalidStream,
            "refused the stream ID: it is empty or has characters Ant Media does not allow",
        ),
        "no_codec_enabled_in_the_server" | "notSetRemoteDescription" => (
            StopCode::Unsupported,
            "cannot take the stream's codecs: enable them in the application's settings",
        ),
        "highResourceUsage" => (
            StopCode::ConnectFailed,
            "is too busy (CPU or memory over its limit) to take a stream now",
        ),
        "publishTimeoutError" => (
            StopCode::ConnectFailed,
            "received no media in time and gave up on the stream",
        ),
        _ => (StopCode::ConnectFailed, "refused the stream"),
    };
    let named = match definition {
        "" => String::new(),
        d => format!(" ({d})"),
    };
    Failure::new(code, format!("The Ant Media server {what}{named}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_urls_become_websocket_urls() {
        let cases = [
            (
                "https://ams.example:5443/LiveApp",
                "wss://ams.example:5443/LiveApp/websocket",
            ),
            (
                "http://ams.example:5080/LiveApp/",
                "ws://ams.example:5080/LiveApp/websocket",
            ),
            (
                "wss://ams.example:5443/WebRTCAppEE/websocket",
                "wss://ams.example:5443/WebRTCAppEE/websocket",
            ),
            (
                "ws://10.0.0.2:5080/LiveApp/websocket?target=origin",
                "ws://10.0.0.2:5080/LiveApp/websocket?target=origin",
            ),
            (
                "https://ams.example/LiveApp#streamId=x",
                "wss://ams.example/LiveApp/websocket",
            ),
        ];
        for (typed, want) in cases {
            assert_eq!(
                websocket_url(typed).map(|u| u.to_string()),
                Ok(want.to_string()),
                "{typed}"
            );
        }
        for bad in [
            "rtmp://ams.example/LiveApp",
            "https://ams.example/",
            "not a url",
        ] {
            let f = websocket_url(bad).unwrap_err();
            assert_eq!(f.code, StopCode::BadPath, "{bad}");
            assert!(
                f.message.starts_with("The Ant Media server URL"),
                "{}",
                f.message
            );
        }
    }

    #[test]
    fn messages_we_send_are_ant_medias() {
        let p: Value = serde_json::from_str(&publish("cam1", &Secret::new("tok"))).unwrap();
        assert_eq!(
            p,
            json!({"command": "publish", "streamId": "cam1", "token": "tok", "video": true, "audio": true})
        );
        let p: Value = serde_json::from_str(&publish("cam1", &Secret::new(""))).unwrap();
        assert!(p.get("token").is_none());
        let o: Value = serde_json::from_str(&offer("cam1", "v=0\r\n")).unwrap();
        assert_eq!(
            o,
            json!({"command": "takeConfiguration", "streamId": "cam1", "type": "offer", "sdp": "v=0\r\n"})
        );
        let c: Value = serde_json::from_str(&candidate(
            "cam1",
            1,
            "1",
            "candidate:1 1 udp 1 10.0.0.1 9 typ host",
        ))
        .unwrap();
        assert_eq!(c["label"], 1);
        assert_eq!(c["id"], "1");
        assert_eq!(c["command"], "takeCandidate");
        assert_eq!(ping(), r#"{"command":"ping"}"#);
        assert_eq!(stop("cam1"), r#"{"command":"stop","streamId":"cam1"}"#);
    }

    #[test]
    fn server_messages_are_read_and_other_streams_skipped() {
        let p = |t: &str| parse(t, "cam1");
        assert_eq!(
            p(r#"{"command":"start","streamId":"cam1"}"#),
            Ok(Incoming::Start)
        );
        assert_eq!(
            p(r#"{"command":"takeConfiguration","streamId":"cam1","type":"answer","sdp":"v=0"}"#),
            Ok(Incoming::Answer("v=0".into()))
        );
        assert_eq!(
            p(
                r#"{"command":"takeCandidate","streamId":"cam1","label":0,"id":"0","candidate":"candidate:2 1 udp 5 10.0.0.2 5000 typ host"}"#
            ),
            Ok(Incoming::Candidate {
                label: 0,
                mid: "0".into(),
                candidate: "candidate:2 1 udp 5 10.0.0.2 5000 typ host".into()
            })
        );
        assert_eq!(
            p(r#"{"command":"notification","definition":"publish_started","streamId":"cam1"}"#),
            Ok(Incoming::Started)
        );
        assert_eq!(
            p(r#"{"command":"notification","definition":"publish_finished","streamId":"cam1"}"#),
            Ok(Incoming::Finished)
        );
        assert_eq!(p(r#"{"command":"pong"}"#), Ok(Incoming::Pong));
        assert_eq!(
            p(r#"{"command":"start","streamId":"other"}"#),
            Ok(Incoming::Other)
        );
        assert_eq!(
            p(r#"{"command":"bitrateMeasurement","streamId":"cam1","targetBitrate":1}"#),
            Ok(Incoming::Other)
        );
        assert!(p("not json").is_err());
        assert!(p(r#"{"streamId":"cam1"}"#).is_err());
        assert!(p(r#"{"command":"takeConfiguration","streamId":"cam1","type":"answer"}"#).is_err());
    }

    #[test]
    fn errors_are_stop_codes_in_ant_medias_words() {
        let f = match parse(
            r#"{"command":"error","definition":"streamIdInUse","streamId":"cam1"}"#,
            "cam1",
        ) {
            Ok(Incoming::Refused(f)) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(f.code, StopCode::InvalidStream);
        assert_eq!(
            f.message,
            "The Ant Media server says this stream ID is already publishing: stop the other publisher or choose \
             another stream ID (streamIdInUse)"
        );
        assert_eq!(refusal("unauthorized_access").code, StopCode::InvalidStream);
        assert_eq!(
            refusal("no_codec_enabled_in_the_server").code,
            StopCode::Unsupported
        );
        assert_eq!(refusal("highResourceUsage").code, StopCode::ConnectFailed);
        assert_eq!(
            refusal("something_new").message,
            "The Ant Media server refused the stream (something_new)"
        );
        assert_eq!(
            refusal("").message,
            "The Ant Media server refused the stream"
        );
    }
}
