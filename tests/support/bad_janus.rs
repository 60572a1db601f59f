//! A Janus of our own on loopback: its REST API as the VideoRoom plugin uses it (create, attach, join, publish,
//! the long poll, keepalive, leave, destroy), with the publisher's offer answered by our receiver over WHIP — and a
//! misbehaviour per scenario: replies and events for other transactions, events out of order, nothing for us at all.
use super::receiver::whip_http::{read_request, respond};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Before each event of ours, the long poll gives a keepalive, an event for another transaction (with an SDP
    /// answer that is not ours), one without a transaction, and a `webrtcup` for another handle.
    OthersFirst,
    /// The session's `create` is answered with another transaction's id.
    WrongTransaction,
    /// The long poll gives events for other transactions only, forever.
    NeverOurs,
    /// The long poll answers with something that is not JSON.
    Garbage,
}

const SESSION: u64 = 4_000_001;
const HANDLE: u64 = 4_000_002;

#[derive(Default)]
struct State {
    events: VecDeque<Value>,
    /// The receiver's WHIP resource, once the offer went there.
    resource: Option<String>,
}

/// Serves the fake Janus until the runtime ends; returns its REST API root (`http://127.0.0.1:P/janus`).
/// Offers go to the WHIP endpoint `whip` (our receiver).
pub async fn serve(behaviour: Misbehaviour, whip: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/janus", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(State::default()));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (state, whip) = (state.clone(), whip.clone());
            tokio::spawn(async move { handle(conn, behaviour, &whip, &state).await });
        }
    });
    api
}

fn other_events(behaviour: Misbehaviour) -> Vec<Value> {
    let stranger = json!({
        "janus": "event", "session_id": SESSION, "sender": HANDLE, "transaction": "someone-else-1",
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "configured": "ok"}},
        "jsep": {"type": "answer", "sdp": "v=0\r\nnot an answer of ours\r\n"}
    });
    match behaviour {
        Misbehaviour::OthersFirst => vec![
            json!({"janus": "keepalive"}),
            stranger,
            json!({"janus": "event", "session_id": SESSION, "sender": HANDLE,
                   "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "talking", "id": 9}}}),
            json!({"janus": "webrtcup", "session_id": SESSION, "sender": HANDLE + 7}),
        ],
        _ => vec![stranger],
    }
}

async fn handle(mut conn: TcpStream, behaviour: Misbehaviour, whip: &str, state: &Mutex<State>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    let json_reply = |v: Value| v.to_string().into_bytes();
    let ok = "200 OK";
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    if req.method == "GET" {
        // The long poll: the next event, or a keepalive after a while.
        if behaviour == Misbehaviour::Garbage {
            respond(&mut conn, ok, &[], b"<html>proxy error</html>").await;
            return;
        }
        for _ in 0..100 {
            let next = {
                let mut s = state.lock().unwrap();
                if behaviour == Misbehaviour::NeverOurs {
                    Some(other_events(behaviour).remove(0))
                } else {
                    s.events.pop_front()
                }
            };
            if let Some(event) = next {
                respond(&mut conn, ok, &[], &json_reply(event)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        respond(
            &mut conn,
            ok,
            &[],
            &json_reply(json!({"janus": "keepalive"})),
        )
        .await;
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        respond(&mut conn, "400 Bad Request", &[], b"").await;
        return;
    };
    let transaction = body["transaction"].clone();
    let reply = match (body["janus"].as_str().unwrap_or_default(), path.as_str()) {
        ("create", "/janus") => {
            let t = match behaviour {
                Misbehaviour::WrongTransaction => json!("someone-else-2"),
                _ => transaction,
            };
            json!({"janus": "success", "transaction": t, "data": {"id": SESSION}})
        }
        ("attach", _) => {
            json!({"janus": "success", "transaction": transaction, "session_id": SESSION,
                               "data": {"id": HANDLE}})
        }
        ("keepalive", _) => {
            json!({"janus": "ack", "transaction": transaction, "session_id": SESSION})
        }
        ("destroy", _) => {
            let resource = state.lock().unwrap().resource.take();
            if let Some(r) = resource {
                let _ = http(whip, "DELETE", &r, "").await;
            }
            json!({"janus": "success", "transaction": transaction, "session_id": SESSION})
        }
        ("message", _) => {
            let request = body["body"]["request"].as_str().unwrap_or_default();
            let data = match request {
                "join" => Some(
                    json!({"videoroom": "joined", "room": body["body"]["room"], "id": 77,
                                      "publishers": []}),
                ),
                "publish" | "configure" => Some(json!({"videoroom": "event", "configured": "ok"})),
                _ => None, // leave
            };
            let mut jsep = None;
            if let Some(offer) = body["jsep"]["sdp"].as_str() {
                match http(whip, "POST", "/whip", offer).await {
                    Some((201, location, answer)) => {
                        state.lock().unwrap().resource = location;
                        jsep = Some(json!({"type": "answer", "sdp": answer}));
                    }
                    other => panic!("our receiver did not answer the offer: {other:?}"),
                }
            }
            if let Some(data) = data {
                let mut event = json!({"janus": "event", "session_id": SESSION, "sender": HANDLE,
                    "transaction": transaction,
                    "plugindata": {"plugin": "janus.plugin.videoroom", "data": data}});
                if let Some(j) = jsep {
                    event["jsep"] = j;
                }
                let mut s = state.lock().unwrap();
                s.events.extend(other_events(behaviour));
                s.events.push_back(event);
            }
            json!({"janus": "ack", "transaction": transaction, "session_id": SESSION})
        }
        _ => json!({"janus": "error", "transaction": transaction,
                    "error": {"code": 457, "reason": "Unhandled request"}}),
    };
    respond(&mut conn, ok, &[], &json_reply(reply)).await;
}

/// A plain HTTP/1.1 request to the host of `base`: (status, Location, body).
async fn http(
    base: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, Option<String>, String)> {
    let host = base.strip_prefix("http://")?.split('/').next()?.to_string();
    let mut conn = TcpStream::connect(&host).await.ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    Some((status, location, body.to_string()))
}
