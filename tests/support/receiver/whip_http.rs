//! The receiver's WHIP side (RFC 9725): OPTIONS with ICE servers and trickle support, the offer POST answered by
//! our WebRTC answerer, trickle and ICE-restart PATCHes, DELETE; bearer tokens checked.
use super::answerer::answer;
use super::{ReceiverOptions, Shared, Stats};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request (headers and a Content-Length body of at most 1 MB), or None.
pub async fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(4096);
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > 1024 * 1024 {
        return None;
    }
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

const TRICKLE: &str = "application/trickle-ice-sdpfrag";

/// The ETag of session `n` after `restarts` ICE restarts (RFC 9725 §4.3.1: a trickle PATCH must carry it in
/// If-Match; a restart gets a new one).
fn etag(n: usize, restarts: u64) -> String {
    if restarts == 0 {
        format!("\"rtcs-session-{n}\"")
    } else {
        format!("\"rtcs-session-{n}-r{restarts}\"")
    }
}

pub async fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    // CORS as WHIP servers answer browsers (a page on another origin POSTs its offer and reads Location).
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: OPTIONS, POST, PATCH, DELETE\r\n\
         Access-Control-Allow-Headers: Content-Type, Authorization, If-Match\r\n\
         Access-Control-Expose-Headers: Location, Link, ETag, Accept-Patch\r\n",
        body.len()
    );
    for (k, v) in headers {
        out += &format!("{k}: {v}\r\n");
    }
    out += "\r\n";
    let _ = conn.write_all(out.as_bytes()).await;
    let _ = conn.write_all(body).await;
    let _ = conn.shutdown().await;
}

pub(super) async fn serve(
    mut conn: TcpStream,
    stats: Shared,
    pcs: Arc<tokio::sync::Mutex<Vec<Arc<dyn PeerConnection>>>>,
    options: Arc<ReceiverOptions>,
) -> Option<()> {
    let req = read_request(&mut conn).await?;
    let arrived = Instant::now();
    if let Some(token) = &options.token {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        if auth != Some(&format!("Bearer {token}")) {
            stats.lock().unwrap().auth_failures += 1;
            respond(&mut conn, "401 Unauthorized", &[], b"bad token").await;
            return Some(());
        }
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("OPTIONS", "/whip") => {
            let mut links: Vec<(&str, String)> = options
                .ice_links
                .iter()
                .map(|l| ("Link", l.clone()))
                .collect();
            if options.trickle || options.refuse_patch {
                links.push(("Accept-Patch", TRICKLE.into()));
            }
            respond(&mut conn, "204 No Content", &links, b"").await;
        }
        ("POST", "/whip") => {
            let offer = String::from_utf8_lossy(&req.body).to_string();
            let refusing = {
                let mut s = stats.lock().unwrap();
                let refusing = s.dropped
                    && !options.refuse_offers_for.is_zero()
                    && s.first_refused.get_or_insert_with(Instant::now).elapsed()
                        < options.refuse_offers_for;
                s.offers_refused += u64::from(refusing);
                refusing
            };
            if refusing {
                respond(&mut conn, "503 Service Unavailable", &[], b"recovering").await;
                return Some(());
            }
            {
                let mut s = stats.lock().unwrap();
                // A new session starts a new measurement; session and auth counts carry over.
                *s = Stats {
                    sessions: s.sessions + 1,
                    auth_failures: s.auth_failures,
                    patches_refused: s.patches_refused,
                    dropped: s.dropped,
                    first_refused: s.first_refused,
                    offers_refused: s.offers_refused,
                    ..Default::default()
                };
                s.post_at = Some(arrived);
                let mut types: Vec<String> = offer
                    .lines()
                    .filter(|l| l.starts_with("a=candidate:"))
                    .filter_map(|l| {
                        l.split(" typ ")
                            .nth(1)?
                            .split_whitespace()
                            .next()
                            .map(str::to_string)
                    })
                    .collect();
                // "a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ …"
                let mut addresses: Vec<String> = (offer.lines())
                    .filter(|l| l.starts_with("a=candidate:"))
                    .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
                    .collect();
                addresses.sort();
                addresses.dedup();
                s.offer_candidates = addresses;
                types.sort();
                types.dedup();
                s.offer_candidate_types = types;
            }
            match answer(offer, stats.clone(), &options).await {
                Ok((pc, sdp)) => {
                    let pc: Arc<dyn PeerConnection> = Arc::from(pc);
                    let n = {
                        let mut all = pcs.lock().await;
                        all.push(pc.clone());
                        all.len()
                    };
                    if let (1, Some(after)) = (n, options.drop_first_session_after) {
                        let stats = stats.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            stats.lock().unwrap().dropped = true;
                            let _ = pc.close().await;
                        });
                    }
                    let mut headers = vec![
                        ("Content-Type", "application/sdp".to_string()),
                        ("Location", format!("/whip/session/{n}")),
                        ("ETag", etag(n, 0)),
                    ];
                    headers.extend(options.answer_links.iter().map(|l| ("Link", l.clone())));
                    if options.trickle {
                        headers.push(("Accept-Patch", TRICKLE.into()));
                    }
                    respond(&mut conn, "201 Created", &headers, sdp.as_bytes()).await;
                }
                Err(e) => respond(&mut conn, "400 Bad Request", &[], e.as_bytes()).await,
            }
        }
        ("PATCH", p) if p.starts_with("/whip/session/") => {
            let n: usize = p["/whip/session/".len()..].parse().unwrap_or(0);
            let if_match = req
                .headers
                .iter()
                .find(|(k, _)| k == "if-match")
                .map(|(_, v)| v.clone());
            let pc = pcs.lock().await.get(n.wrapping_sub(1)).cloned();
            let frag = String::from_utf8_lossy(&req.body).to_string();
            let restarts = stats.lock().unwrap().ice_restarts;
            let restart = match &pc {
                Some(pc) => is_ice_restart(pc.as_ref(), &frag).await,
                None => false,
            };
            match pc {
                _ if !options.trickle => {
                    stats.lock().unwrap().patches_refused += 1;
                    respond(
                        &mut conn,
                        "405 Method Not Allowed",
                        &[],
                        b"no trickle ICE here",
                    )
                    .await
                }
                None => respond(&mut conn, "404 Not Found", &[], b"no such session").await,
                // RFC 9725 §4.4: an ICE restart carries If-Match "*"; a trickle PATCH the current ETag.
                Some(_)
                    if (restart && if_match.as_deref() != Some("*"))
                        || (!restart
                            && if_match.as_deref() != Some(etag(n, restarts).as_str())) =>
                {
                    stats.lock().unwrap().patch_precondition_failures += 1;
                    respond(&mut conn, "412 Precondition Failed", &[], b"If-Match").await
                }
                Some(pc) if restart => match restart_ice(pc.as_ref(), &frag).await {
                    Ok(answer_frag) => {
                        let restarts = {
                            let mut s = stats.lock().unwrap();
                            s.ice_restarts += 1;
                            s.frames_at_restart = s.video_frames_decoded;
                            s.ice_restarts
                        };
                        respond(
                            &mut conn,
                            "200 OK",
                            &[
                                ("Content-Type", TRICKLE.into()),
                                ("ETag", etag(n, restarts)),
                            ],
                            answer_frag.as_bytes(),
                        )
                        .await
                    }
                    Err(e) => respond(&mut conn, "400 Bad Request", &[], e.as_bytes()).await,
                },
                Some(pc) => {
                    let mid = frag
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("a=mid:"))
                        .unwrap_or("0")
                        .to_string();
                    let mut added = 0;
                    for line in frag.lines().filter_map(|l| l.trim().strip_prefix("a=")) {
                        if line.starts_with("candidate:") {
                            let init = webrtc::peer_connection::RTCIceCandidateInit {
                                candidate: line.to_string(),
                                sdp_mid: Some(mid.clone()),
                                sdp_mline_index: Some(0),
                                ..Default::default()
                            };
                            if pc.add_ice_candidate(init).await.is_ok() {
                                added += 1;
                            }
                        }
                    }
                    {
                        let mut s = stats.lock().unwrap();
                        s.trickle_patches += 1;
                        s.trickled_candidates += added;
                        s.end_of_candidates |= frag.contains("a=end-of-candidates");
                    }
                    respond(&mut conn, "204 No Content", &[], b"").await;
                }
            }
        }
        ("DELETE", p) if p.starts_with("/whip/session/") => {
            let n: usize = p["/whip/session/".len()..].parse().unwrap_or(0);
            if pcs.lock().await.get(n.wrapping_sub(1)).is_none() {
                // A session this server never made (a publisher's, from before it restarted).
                respond(&mut conn, "404 Not Found", &[], b"no such session").await;
                return Some(());
            }
            {
                let mut s = stats.lock().unwrap();
                s.delete_received = true;
                s.at_delete = Some((s.jitter.packets_lost, s.decode_errors));
            }
            respond(&mut conn, "200 OK", &[], b"").await;
        }
        _ => respond(&mut conn, "404 Not Found", &[], b"no such resource").await,
    }
    Some(())
}

fn sdp_attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines().find_map(|l| {
        l.trim()
            .strip_prefix("a=")?
            .strip_prefix(name)?
            .strip_prefix(':')
    })
}

/// A PATCH whose fragment carries ICE credentials other than the session's: an ICE restart.
async fn is_ice_restart(pc: &dyn PeerConnection, frag: &str) -> bool {
    let Some(ufrag) = sdp_attr(frag, "ice-ufrag") else {
        return false;
    };
    match pc.remote_description().await {
        Some(d) => sdp_attr(&d.sdp, "ice-ufrag") != Some(ufrag),
        None => false,
    }
}

/// Restarts ICE as an answerer: the session's offer again with the fragment's credentials (no candidates), a new
/// answer, then the fragment's candidates added one by one. Returns our fragment: new credentials, candidates.
async fn restart_ice(pc: &dyn PeerConnection, frag: &str) -> Result<String, String> {
    let (ufrag, pwd) = match (sdp_attr(frag, "ice-ufrag"), sdp_attr(frag, "ice-pwd")) {
        (Some(u), Some(p)) => (u, p),
        _ => return Err("an ICE restart needs ice-ufrag and ice-pwd".into()),
    };
    let current = pc.remote_description().await.ok_or("no offer")?;
    let offer: String = current
        .sdp
        .lines()
        .filter(|l| !l.starts_with("a=candidate:") && !l.starts_with("a=end-of-candidates"))
        .map(|l| {
            if l.starts_with("a=ice-ufrag:") {
                format!("a=ice-ufrag:{ufrag}\r\n")
            } else if l.starts_with("a=ice-pwd:") {
                format!("a=ice-pwd:{pwd}\r\n")
            } else {
                format!("{}\r\n", l.trim_end())
            }
        })
        .collect();
    let offer = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| format!("restart offer: {e}"))?;
    let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    let mid = sdp_attr(frag, "mid").unwrap_or("0").to_string();
    for c in frag
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
    {
        let init = webrtc::peer_connection::RTCIceCandidateInit {
            candidate: c.to_string(),
            sdp_mid: Some(mid.clone()),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        pc.add_ice_candidate(init)
            .await
            .map_err(|e| format!("candidate {c}: {e}"))?;
    }
    // Host candidates on our fixed address come at once; wait briefly for them.
    let mut ours = String::new();
    for _ in 0..50 {
        ours = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        if ours.contains("a=candidate:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_m = ours
        .lines()
        .find(|l| l.starts_with("m="))
        .ok_or("no media")?;
    let mut out = format!(
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n{first_m}\r\na=mid:{}\r\n",
        sdp_attr(&ours, "ice-ufrag").ok_or("no ufrag")?,
        sdp_attr(&ours, "ice-pwd").ok_or("no pwd")?,
        sdp_attr(&ours, "mid").unwrap_or("0"),
    );
    let mut seen = std::collections::HashSet::new();
    for l in ours.lines().filter(|l| l.starts_with("a=candidate:")) {
        if seen.insert(l) {
            out += &format!("{l}\r\n");
        }
    }
    out += "a=end-of-candidates\r\n";
    Ok(out)
}
