//! Janus VideoRoom signalling over Janus's REST API, sans-IO: the JSON requests a publisher sends and what Janus's
//! replies mean. A session (`create`) holds a handle (`attach` to `janus.plugin.videoroom`); the handle `join`s a
//! room as a publisher and `publish`es with the SDP offer; answers arrive as asynchronous events (long poll).
use super::{Failure, StopCode};
use crate::secret::Secret;
use serde_json::{json, Value};

pub const PLUGIN: &str = "janus.plugin.videoroom";

/// Which room to publish into, and as whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JanusRoom {
    pub room: u64,
    /// The room's PIN, if it has one (empty: none).
    pub pin: Secret,
    /// The name other participants see.
    pub display: String,
}

/// Reads the room number a streamer typed.
pub fn parse_room(text: &str) -> Result<u64, Failure> {
    let t = text.trim();
    t.parse::<u64>().ok().filter(|r| *r > 0).ok_or_else(|| {
        Failure::new(
            StopCode::BadPath,
            if t.is_empty() {
                "No Janus room is set. Enter the VideoRoom's number under Settings → Stream."
                    .to_string()
            } else {
                format!("The Janus room must be a positive number, not {t:?}")
            },
        )
    })
}

/// A request with its transaction id and, when the streamer set one, the token. Janus checks `apisecret` when the
/// server has an API secret and `token` when it uses stored-token auth; a bearer token fills both.
fn request(kind: &str, transaction: &str, token: &Secret) -> Value {
    let mut v = json!({"janus": kind, "transaction": transaction});
    if !token.is_empty() {
        v["token"] = json!(token.expose());
        v["apisecret"] = json!(token.expose());
    }
    v
}

pub fn create(transaction: &str, token: &Secret) -> Value {
    request("create", transaction, token)
}

pub fn attach(transaction: &str, token: &Secret) -> Value {
    let mut v = request("attach", transaction, token);
    v["plugin"] = json!(PLUGIN);
    v
}

pub fn keepalive(transaction: &str, token: &Secret) -> Value {
    request("keepalive", transaction, token)
}

pub fn destroy(transaction: &str, token: &Secret) -> Value {
    request("destroy", transaction, token)
}

fn message(transaction: &str, token: &Secret, body: Value) -> Value {
    let mut v = request("message", transaction, token);
    v["body"] = body;
    v
}

pub fn join(transaction: &str, token: &Secret, room: &JanusRoom) -> Value {
    let mut body = json!({"request": "join", "ptype": "publisher", "room": room.room, "display": room.display});
    if !room.pin.is_empty() {
        body["pin"] = json!(room.pin.expose());
    }
    message(transaction, token, body)
}

pub fn publish(transaction: &str, token: &Secret, offer_sdp: &str) -> Value {
    let mut v = message(
        transaction,
        token,
        json!({"request": "publish", "audio": true, "video": true}),
    );
    v["jsep"] = json!({"type": "offer", "sdp": offer_sdp});
    v
}

pub fn leave(transaction: &str, token: &Secret) -> Value {
    message(transaction, token, json!({"request": "leave"}))
}

/// What one reply or event from Janus says.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// `success`, with the new session or handle id when one was created.
    Success {
        transaction: String,
        id: Option<u64>,
    },
    /// The request was accepted; its result follows as an event.
    Ack { transaction: String },
    /// A plugin event: the VideoRoom's data and, for an answer, the SDP.
    Event {
        transaction: Option<String>,
        data: Value,
        answer_sdp: Option<String>,
    },
    /// Nothing happened during the long poll.
    Keepalive,
    /// Janus ended the PeerConnection or the handle.
    Hangup { reason: String },
    /// Other notifications (webrtcup, media, slowlink, …).
    Notice { kind: String },
    /// A core error (`janus: error`).
    Error(Failure),
}

impl Reply {
    /// The transaction a reply or event answers, when it names one.
    pub fn transaction(&self) -> Option<&str> {
        match self {
            Reply::Success { transaction, .. } | Reply::Ack { transaction } => Some(transaction),
            Reply::Event { transaction, .. } => transaction.as_deref(),
            _ => None,
        }
    }
}

fn transaction_of(v: &Value) -> Option<String> {
    v["transaction"].as_str().map(str::to_string)
}

/// Interprets one JSON object from Janus.
pub fn parse(body: &[u8]) -> Result<Reply, Failure> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Failure::new(
            StopCode::ConnectFailed,
            format!("The Janus server sent something that is not JSON: {e}"),
        )
    })?;
    let kind = v["janus"].as_str().unwrap_or_default();
    Ok(match kind {
        "success" => Reply::Success { transaction: transaction_of(&v).unwrap_or_default(), id: v["data"]["id"].as_u64() },
        "ack" => Reply::Ack { transaction: transaction_of(&v).unwrap_or_default() },
        "event" => Reply::Event {
            transaction: transaction_of(&v),
            data: v["plugindata"]["data"].clone(),
            answer_sdp: (v["jsep"]["type"] == "answer").then(|| v["jsep"]["sdp"].as_str().map(str::to_string)).flatten(),
        },
        "keepalive" => Reply::Keepalive,
        "hangup" | "detached" => Reply::Hangup { reason: v["reason"].as_str().unwrap_or(kind).to_string() },
        "error" => Reply::Error(core_error(v["error"]["code"].as_i64().unwrap_or(0), v["error"]["reason"].as_str().unwrap_or(""))),
        "" => {
            return Err(Failure::new(StopCode::ConnectFailed, "The server's reply is not a Janus message (is the URL Janus's REST API, e.g. http://host:8088/janus?)"))
        }
        other => Reply::Notice { kind: other.to_string() },
    })
}

/// Janus core error codes (`janus.h`) as a streamer's message.
fn core_error(code: i64, reason: &str) -> Failure {
    let (stop, what) = match code {
        403 => (
            StopCode::InvalidStream,
            "Janus refused the token (wrong or missing API secret or token)",
        ),
        458 => (
            StopCode::ConnectFailed,
            "Janus no longer knows this session (it timed out)",
        ),
        459 => (StopCode::ConnectFailed, "Janus no longer knows this handle"),
        460 => (
            StopCode::Unsupported,
            "This Janus server has no VideoRoom plugin",
        ),
        465 | 466 => (StopCode::Unsupported, "Janus could not use our SDP offer"),
        _ => (StopCode::ConnectFailed, "Janus reported an error"),
    };
    Failure::new(stop, format!("{what} ({code}: {reason})"))
}

/// The VideoRoom's own outcome in an event's data: an error (`error_code`) becomes a streamer's message.
pub fn videoroom_result(data: &Value) -> Result<(), Failure> {
    let Some(code) = data["error_code"].as_i64() else {
        return Ok(());
    };
    let reason = data["error"].as_str().unwrap_or("");
    let (stop, what) = match code {
        426 => (StopCode::BadPath, "There is no such Janus room"),
        433 => (StopCode::InvalidStream, "The Janus room refused the PIN"),
        432 => (
            StopCode::ConnectFailed,
            "The Janus room has no free publisher slot",
        ),
        436 => (
            StopCode::ConnectFailed,
            "Someone already publishes with this ID in the Janus room",
        ),
        437 | 431 => (
            StopCode::Unsupported,
            "The Janus room could not use our SDP offer",
        ),
        _ => (
            StopCode::ConnectFailed,
            "The Janus room refused to let us publish",
        ),
    };
    Err(Failure::new(stop, format!("{what} ({code}: {reason})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_transaction_token_and_room() {
        let room = JanusRoom {
            room: 4242,
            pin: "p1n".into(),
            display: "OBS".into(),
        };
        let j = join("t1", &"tok".into(), &room);
        assert_eq!(j["janus"], "message");
        assert_eq!(j["transaction"], "t1");
        assert_eq!(
            (j["token"].as_str(), j["apisecret"].as_str()),
            (Some("tok"), Some("tok"))
        );
        assert_eq!(
            j["body"],
            json!({"request": "join", "ptype": "publisher", "room": 4242, "display": "OBS", "pin": "p1n"})
        );
        let no_pin = join(
            "t",
            &Secret::default(),
            &JanusRoom {
                pin: Secret::default(),
                ..room.clone()
            },
        );
        assert!(no_pin["body"].get("pin").is_none() && no_pin.get("token").is_none());
        let p = publish("t2", &Secret::default(), "v=0\r\n");
        assert_eq!(p["jsep"], json!({"type": "offer", "sdp": "v=0\r\n"}));
        assert_eq!(attach("t", &Secret::default())["plugin"], PLUGIN);
        assert_eq!(leave("t", &Secret::default())["body"]["request"], "leave");
        assert!(
            !format!("{room:?}").contains("p1n"),
            "the PIN must not reach logs"
        );
    }

    #[test]
    fn replies_are_understood() {
        assert_eq!(
            parse(br#"{"janus":"success","transaction":"a","data":{"id":77}}"#).unwrap(),
            Reply::Success {
                transaction: "a".into(),
                id: Some(77)
            }
        );
        assert_eq!(
            parse(br#"{"janus":"ack","transaction":"b"}"#).unwrap(),
            Reply::Ack {
                transaction: "b".into()
            }
        );
        let ev = parse(
            br#"{"janus":"event","sender":1,"transaction":"c","plugindata":{"plugin":"janus.plugin.videoroom",
                "data":{"videoroom":"event","configured":"ok"}},"jsep":{"type":"answer","sdp":"v=0"}}"#,
        )
        .unwrap();
        let Reply::Event {
            transaction,
            data,
            answer_sdp,
        } = ev
        else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (transaction.as_deref(), answer_sdp.as_deref()),
            (Some("c"), Some("v=0"))
        );
        assert!(videoroom_result(&data).is_ok());
        assert_eq!(
            parse(br#"{"janus":"keepalive"}"#).unwrap(),
            Reply::Keepalive
        );
        assert!(
            matches!(parse(br#"{"janus":"hangup","reason":"DTLS alert"}"#).unwrap(), Reply::Hangup { reason } if reason == "DTLS alert")
        );
        assert!(matches!(
            parse(br#"{"janus":"webrtcup"}"#).unwrap(),
            Reply::Notice { .. }
        ));
    }

    #[test]
    fn errors_become_stop_codes_and_messages() {
        let Reply::Error(f) =
            parse(br#"{"janus":"error","error":{"code":403,"reason":"Unauthorized request"}}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(f.code, StopCode::InvalidStream);
        assert!(f.message.contains("Unauthorized request"), "{}", f.message);
        let room = videoroom_result(
            &json!({"videoroom":"event","error_code":426,"error":"No such room (5)"}),
        )
        .unwrap_err();
        assert_eq!(room.code, StopCode::BadPath);
        assert!(room.message.contains("No such room (5)"));
        assert_eq!(
            videoroom_result(&json!({"error_code":433,"error":"Unauthorized (wrong pin)"}))
                .unwrap_err()
                .code,
            StopCode::InvalidStream
        );
        assert_eq!(parse(b"<html>").unwrap_err().code, StopCode::ConnectFailed);
        assert!(parse(b"{}")
            .unwrap_err()
            .message
            .contains("not a Janus message"));
        assert_eq!(parse_room(" 1234 ").unwrap(), 1234);
        assert_eq!(parse_room("").unwrap_err().code, StopCode::BadPath);
        assert!(parse_room("lobby")
            .unwrap_err()
            .message
            .contains("positive number"));
    }
}
