//! Our own WHIP receiver ("mock SFU"), shared by `examples/mock_sfu.rs` and the tests.
//!
//! It answers WHIP on a loopback HTTP endpoint with webrtc-rs, depacketizes H.264 with our media core and decodes
//! it with openh264, decodes Opus with libopus, and measures: frames decoded and their size and rate, time from the
//! WHIP POST to the first decoded frame, and the audio/video offset of the demo clip's content (a white flash and a
//! beep at the same instant every second), both placed on one clock through the RTCP sender reports' NTP↔RTP
//! mappings, as a browser does for lip sync.
#![allow(dead_code)]

use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use rtc_studio::media::clock::unix_usec_from_ntp;
use rtc_studio::media::h264::to_annexb;
use rtc_studio::media::h264_rtp::H264Depacketizer;
use rtc_studio::transport::peer::RtcpTap;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    configure_nack, configure_rtcp_reports, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

/// Where and how the receiver listens.
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    /// HTTP listen address (loopback).
    pub http: String,
    /// Address for ICE host candidates.
    pub udp: String,
    /// Bearer token the receiver requires, if any.
    pub token: Option<String>,
    /// Close the first session's peer connection this long after answering (a server or network failure).
    pub drop_first_session_after: Option<Duration>,
    /// `Link` header values to announce ICE servers on OPTIONS (RFC 9725 §4.6 style).
    pub ice_links: Vec<String>,
    /// `Link` header values announcing ICE servers on the 201 (RFC 9725 §4.6).
    pub answer_links: Vec<String>,
    /// Take trickle ICE: `Accept-Patch: application/trickle-ice-sdpfrag` on OPTIONS and 201, candidates by PATCH
    /// (with `If-Match` the session's ETag). Without it, PATCH is answered 405.
    pub trickle: bool,
    /// Advertise trickle ICE on OPTIONS but answer every PATCH 405 (a front end that promises more than the
    /// server behind it does).
    pub refuse_patch: bool,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            http: "127.0.0.1:0".into(),
            udp: "127.0.0.1:0".into(),
            token: None,
            drop_first_session_after: None,
            ice_links: Vec::new(),
            answer_links: Vec::new(),
            trickle: false,
            refuse_patch: false,
        }
    }
}

/// What the receiver saw (one session at a time; a new POST resets it).
#[derive(Default, Debug)]
struct Stats {
    post_at: Option<Instant>,
    first_frame_at: Option<Instant>,
    /// The same instant on the wall clock (for benchmarks timing a start from another process).
    first_frame_wall: Option<std::time::SystemTime>,
    sessions: u32,
    video_frames_decoded: u64,
    decode_errors: u64,
    incomplete_units: u64,
    width: u32,
    height: u32,
    first_frame_ts: Option<u32>,
    last_frame_ts: Option<u32>,
    audio_packets: u64,
    /// RTP packets received, video and audio (counted as they arrive, before decoding).
    rtp_packets: u64,
    /// Trickle ICE: PATCH requests taken, candidates they carried, whether end-of-candidates came, and PATCHes
    /// refused for a wrong or missing If-Match.
    trickle_patches: u64,
    trickled_candidates: u64,
    end_of_candidates: bool,
    patch_precondition_failures: u64,
    /// ICE restarts taken by PATCH (RFC 9725 §4.4), and PATCHes answered 405.
    ice_restarts: u64,
    patches_refused: u64,
    /// Video frames decoded when the last ICE restart was answered.
    frames_at_restart: u64,
    audio_decode_errors: u64,
    video_ssrc: Option<u32>,
    audio_ssrc: Option<u32>,
    /// RTP timestamps of flash onsets (video) and beep onsets (audio).
    flashes: Vec<u32>,
    beeps: Vec<u32>,
    /// Sender reports per SSRC: (NTP, RTP).
    reports: HashMap<u32, Vec<(u64, u32)>>,
    delete_received: bool,
    auth_failures: u32,
    /// The candidate types (host, srflx, relay) in the last offer.
    offer_candidate_types: Vec<String>,
    /// Access units as received (Annex-B) with their RTP timestamps, for a second decoder when needed.
    units: Vec<(u32, Vec<u8>)>,
    b_slices: u64,
    decoder: &'static str,
}

type Shared = Arc<Mutex<Stats>>;

/// A running receiver.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    stats: Shared,
    pcs: Arc<tokio::sync::Mutex<Vec<Arc<dyn PeerConnection>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts listening; must be called inside a tokio runtime.
    pub async fn start(options: ReceiverOptions) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(&options.http).await?;
        let addr = listener.local_addr()?;
        let stats: Shared = Arc::default();
        let pcs: Arc<tokio::sync::Mutex<Vec<Arc<dyn PeerConnection>>>> = Arc::default();
        let (s, p, o) = (stats.clone(), pcs.clone(), Arc::new(options));
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (s, p, o) = (s.clone(), p.clone(), o.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, s, p, o).await;
                });
            }
        });
        Ok(Receiver {
            addr,
            stats,
            pcs,
            accept,
        })
    }

    pub fn whip_url(&self) -> String {
        format!("http://{}/whip", self.addr)
    }

    pub fn delete_received(&self) -> bool {
        self.stats.lock().unwrap().delete_received
    }

    /// Waits until a DELETE arrived or `limit` passed.
    pub async fn wait_for_delete(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.delete_received() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.delete_received()
    }

    /// The measurements as one JSON object.
    /// After a stream: waits (bounded) for the WHIP DELETE and for the last frames to leave the decoder.
    pub async fn settled_report(&self, limit: Duration) -> serde_json::Value {
        self.wait_for_delete(limit).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.report()
    }

    pub fn report(&self) -> serde_json::Value {
        let mut s = self.stats.lock().unwrap();
        s.decoder = "openh264";
        if s.b_slices > 0 {
            // openh264 cannot decode B slices: measure this session with libavcodec instead.
            if let Some((frames, errors, flashes, first, last)) =
                decode_with_ffmpeg(&s.units, s.width, s.height)
            {
                s.decoder = "libavcodec (B-frames)";
                s.video_frames_decoded = frames;
                s.decode_errors = errors;
                s.flashes = flashes;
                s.first_frame_ts = Some(first);
                s.last_frame_ts = Some(last);
            }
        }
        let fps = match (s.first_frame_ts, s.last_frame_ts) {
            (Some(a), Some(b)) if s.video_frames_decoded > 1 && b != a => {
                (s.video_frames_decoded - 1) as f64 * 90_000.0 / b.wrapping_sub(a) as f64
            }
            _ => 0.0,
        };
        let first_frame_ms = match (s.post_at, s.first_frame_at) {
            (Some(p), Some(f)) => json!(round1(f.duration_since(p).as_secs_f64() * 1000.0)),
            _ => serde_json::Value::Null,
        };
        let (offset, pairs) = av_offset(&s);
        json!({
            "video_frames_decoded": s.video_frames_decoded,
            "decode_errors": s.decode_errors,
            "incomplete_units": s.incomplete_units,
            "width": s.width,
            "height": s.height,
            "fps": round1(fps),
            "audio_packets": s.audio_packets,
            "rtp_packets": s.rtp_packets,
            "trickle_patches": s.trickle_patches,
            "ice_restarts": s.ice_restarts,
            "frames_after_restart": s.video_frames_decoded - s.frames_at_restart,
            "patches_refused": s.patches_refused,
            "trickled_candidates": s.trickled_candidates,
            "end_of_candidates": s.end_of_candidates,
            "patch_precondition_failures": s.patch_precondition_failures,
            "audio_decode_errors": s.audio_decode_errors,
            "first_frame_ms": first_frame_ms,
            "first_frame_unix_ms": s.first_frame_wall.and_then(|w| w.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| round1(d.as_secs_f64() * 1000.0)),
            "av_offset_ms": offset.map(round1),
            "av_pairs": pairs,
            "flashes": s.flashes.len(),
            "beeps": s.beeps.len(),
            "sender_reports": s.reports.values().map(Vec::len).sum::<usize>(),
            "delete_received": s.delete_received,
            "decoder": s.decoder,
            "b_slice_units": s.b_slices,
            "sessions": s.sessions,
            "auth_failures": s.auth_failures,
            "offer_candidate_types": s.offer_candidate_types,
        })
    }

    pub async fn stop(self) {
        self.accept.abort();
        for pc in self.pcs.lock().await.drain(..) {
            let _ = pc.close().await;
        }
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The wall-clock time (µs) of RTP timestamp `ts` on `ssrc`, through the sender report nearest in RTP time.
fn wall_usec(s: &Stats, ssrc: u32, ts: u32, rate: f64) -> Option<f64> {
    let reports = s.reports.get(&ssrc)?;
    let (ntp, rtp) = reports
        .iter()
        .min_by_key(|(_, rtp)| (ts.wrapping_sub(*rtp) as i32).unsigned_abs())?;
    let delta = ts.wrapping_sub(*rtp) as i32 as f64;
    Some(unix_usec_from_ntp(*ntp) as f64 + delta * 1e6 / rate)
}

/// Mean (beep − flash) in ms over flashes that have a beep within 500 ms, and how many such pairs there were.
fn av_offset(s: &Stats) -> (Option<f64>, usize) {
    let (Some(v), Some(a)) = (s.video_ssrc, s.audio_ssrc) else {
        return (None, 0);
    };
    let beeps: Vec<f64> = s
        .beeps
        .iter()
        .filter_map(|&ts| wall_usec(s, a, ts, 48_000.0))
        .collect();
    let mut offsets = Vec::new();
    for &f in &s.flashes {
        let Some(fw) = wall_usec(s, v, f, 90_000.0) else {
            continue;
        };
        if let Some(b) = beeps
            .iter()
            .min_by(|x, y| (*x - fw).abs().total_cmp(&(*y - fw).abs()))
        {
            if (b - fw).abs() < 500_000.0 {
                offsets.push((b - fw) / 1000.0);
            }
        }
    }
    if offsets.is_empty() {
        (None, 0)
    } else {
        (
            Some(offsets.iter().sum::<f64>() / offsets.len() as f64),
            offsets.len(),
        )
    }
}

// ---- HTTP ---------------------------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn read_request(conn: &mut TcpStream) -> Option<Request> {
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

async fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
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

async fn serve(
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
            {
                let mut s = stats.lock().unwrap();
                // A new session starts a new measurement; session and auth counts carry over.
                *s = Stats {
                    sessions: s.sessions + 1,
                    auth_failures: s.auth_failures,
                    patches_refused: s.patches_refused,
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
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
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
            stats.lock().unwrap().delete_received = true;
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

// ---- WebRTC ---------------------------------------------------------------------------------------------------

struct Handler {
    stats: Shared,
    gathered: tokio::sync::watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_connection_state_change(&self, _state: RTCPeerConnectionState) {}

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        let stats = self.stats.clone();
        match kind {
            RtpCodecKind::Video => {
                stats.lock().unwrap().video_ssrc = Some(ssrc);
                tokio::spawn(receive_video(track, stats));
            }
            _ => {
                stats.lock().unwrap().audio_ssrc = Some(ssrc);
                tokio::spawn(receive_audio(track, stats));
            }
        }
    }
}

fn fmtp_value<'a>(sdp: &'a str, key: &str) -> Option<&'a str> {
    let at = sdp.find(&format!("{key}="))? + key.len() + 1;
    sdp[at..]
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
}

async fn answer(
    offer: String,
    stats: Shared,
    options: &ReceiverOptions,
) -> Result<(Box<dyn PeerConnection>, String), String> {
    let profile = fmtp_value(&offer, "profile-level-id")
        .unwrap_or("42e01f")
        .to_string();
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_H264.into(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!(
                        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
                    ),
                    rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
                },
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| e.to_string())?;
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.into(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(|e| e.to_string())?;
    let registry = RtcpTap::add_to(
        configure_rtcp_reports(configure_nack(Registry::new(), &mut media)),
        |p| p.as_any().is::<SenderReport>(),
    );
    let (gathered_tx, mut gathered) = tokio::sync::watch::channel(false);
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            stats,
            gathered: gathered_tx,
        }))
        .with_udp_addrs(vec![options.udp.clone()])
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let pc: Box<dyn PeerConnection> = Box::new(pc);
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .await
            .map_err(|e| e.to_string())?;
    }
    let offer = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(answer)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(Duration::from_secs(2), gathered.wait_for(|g| *g)).await;
    let sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .ok_or("no local description")?;
    Ok((pc, sdp))
}

fn record_reports(stats: &Shared, packets: &[Box<dyn rtc::rtcp::Packet>]) {
    let mut s = stats.lock().unwrap();
    for p in packets {
        if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
            s.reports
                .entry(sr.ssrc)
                .or_default()
                .push((sr.ntp_time, sr.rtp_time));
        }
    }
}

/// Depacketizes on the track's task; decodes on a thread of its own (openh264's decoder is not `Send`).
async fn receive_video(track: Arc<dyn TrackRemote>, stats: Shared) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>, bool)>(256);
    let decode_stats = stats.clone();
    std::thread::spawn(move || decode_video(rx, decode_stats));
    let mut depacketizer = H264Depacketizer::new();
    // Like a browser after loss, ask once for a keyframe a second into the session.
    let pli_track = track.clone();
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        let _ = pli_track.write_rtcp(vec![Box::new(pli)]).await;
    });
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                stats.lock().unwrap().rtp_packets += 1;
                let (units, _err) = depacketizer.push(
                    p.header.sequence_number,
                    p.header.timestamp,
                    p.header.marker,
                    &p.payload,
                );
                for u in units {
                    if tx
                        .send((u.timestamp, to_annexb(&u.nals), u.complete))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => record_reports(&stats, &packets),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Reads one unsigned Exp-Golomb number (ue(v)) at bit `pos`.
fn read_ue(data: &[u8], pos: &mut usize) -> Option<u32> {
    let bit = |p: usize| data.get(p / 8).map(|b| (b >> (7 - p % 8)) & 1);
    let mut zeros = 0;
    while bit(*pos)? == 0 {
        zeros += 1;
        *pos += 1;
        if zeros > 31 {
            return None;
        }
    }
    *pos += 1;
    let mut value = 0u32;
    for _ in 0..zeros {
        value = (value << 1) | bit(*pos)? as u32;
        *pos += 1;
    }
    Some((1 << zeros) - 1 + value)
}

/// Whether an access unit has a B slice (slice_type 1 or 6 in the first slice header).
fn has_b_slice(annexb: &[u8]) -> bool {
    rtc_studio::media::h264::annexb_units(annexb).any(|unit| {
        matches!(unit[0] & 0x1f, 1 | 5) && {
            let mut pos = 8; // after the NAL header byte
            read_ue(unit, &mut pos).is_some()
                && matches!(read_ue(unit, &mut pos), Some(1) | Some(6))
        }
    })
}

/// Decodes a whole session with ffmpeg's libavcodec (for B-frame streams, which openh264 cannot decode) and
/// redoes the video measurements from its frames: (frames, errors, flash timestamps, first timestamp, last).
fn decode_with_ffmpeg(
    units: &[(u32, Vec<u8>)],
    width: u32,
    height: u32,
) -> Option<(u64, u64, Vec<u32>, u32, u32)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("rtc-studio-receiver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let input = dir.join("session.h264");
    let mut f = std::fs::File::create(&input).ok()?;
    for (_, au) in units {
        f.write_all(au).ok()?;
    }
    drop(f);
    // Small grey frames are enough to measure brightness.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&input)
        .args([
            "-vf",
            "scale=64:36",
            "-pix_fmt",
            "gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("rror"))
        .count() as u64;
    let frames: Vec<&[u8]> = out.stdout.chunks_exact(64 * 36).collect();
    // Frames come out in presentation order, which is ascending RTP timestamp (unwrapped from the first unit).
    let first = units.first()?.0;
    let mut stamps: Vec<u32> = units.iter().map(|(ts, _)| ts.wrapping_sub(first)).collect();
    stamps.sort_unstable();
    let _ = (width, height);
    let mut flashes = Vec::new();
    let mut was_flash = false;
    for (frame, rel) in frames.iter().zip(&stamps) {
        let mean = frame.iter().map(|&v| v as u64).sum::<u64>() / frame.len() as u64;
        let flash = mean > 200;
        if flash && !was_flash {
            flashes.push(first.wrapping_add(*rel));
        }
        was_flash = flash;
    }
    let n = frames.len().min(stamps.len());
    (n > 0).then(|| {
        (
            n as u64,
            errors,
            flashes,
            first.wrapping_add(stamps[0]),
            first.wrapping_add(stamps[n - 1]),
        )
    })
}

fn decode_video(rx: std::sync::mpsc::Receiver<(u32, Vec<u8>, bool)>, stats: Shared) {
    use openh264::formats::YUVSource;
    let Ok(mut decoder) = openh264::decoder::Decoder::new() else {
        stats.lock().unwrap().decode_errors += 1;
        return;
    };
    let mut was_flash = false;
    while let Ok((ts, annexb, complete)) = rx.recv() {
        {
            let mut s = stats.lock().unwrap();
            if !complete {
                s.incomplete_units += 1;
            }
            if has_b_slice(&annexb) {
                s.b_slices += 1;
            }
            s.units.push((ts, annexb.clone()));
        }
        match decoder.decode(&annexb) {
            Ok(Some(yuv)) => {
                let (w, h) = yuv.dimensions();
                let (stride, _, _) = yuv.strides();
                let y = yuv.y();
                // Mean luma over a sparse grid.
                let (mut sum, mut n) = (0u64, 0u64);
                for row in (0..h).step_by(8) {
                    for col in (0..w).step_by(8) {
                        sum += y[row * stride + col] as u64;
                        n += 1;
                    }
                }
                let flash = n > 0 && sum / n > 200;
                let mut s = stats.lock().unwrap();
                s.video_frames_decoded += 1;
                s.width = w as u32;
                s.height = h as u32;
                if s.first_frame_at.is_none() {
                    s.first_frame_at = Some(Instant::now());
                    s.first_frame_wall = Some(std::time::SystemTime::now());
                    s.first_frame_ts = Some(ts);
                }
                s.last_frame_ts = Some(ts);
                if flash && !was_flash {
                    s.flashes.push(ts);
                }
                was_flash = flash;
            }
            Ok(None) => {}
            Err(_) => stats.lock().unwrap().decode_errors += 1,
        }
    }
}

async fn receive_audio(track: Arc<dyn TrackRemote>, stats: Shared) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u32, Vec<u8>)>(512);
    let decode_stats = stats.clone();
    std::thread::spawn(move || decode_audio(rx, decode_stats));
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                stats.lock().unwrap().rtp_packets += 1;
                if tx.send((p.header.timestamp, p.payload.to_vec())).is_err() {
                    return;
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => record_reports(&stats, &packets),
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

fn decode_audio(rx: std::sync::mpsc::Receiver<(u32, Vec<u8>)>, stats: Shared) {
    let Ok(mut decoder) = opus::Decoder::new(48_000, opus::Channels::Stereo) else {
        stats.lock().unwrap().audio_decode_errors += 1;
        return;
    };
    let mut pcm = vec![0i16; 5760 * 2];
    // Samples of quiet since the last loud one: a beep starts after ≥ 200 ms of quiet.
    let mut quiet: u64 = u64::MAX / 2;
    while let Ok((ts, payload)) = rx.recv() {
        match decoder.decode(&payload, &mut pcm, false) {
            Ok(samples) => {
                let mut s = stats.lock().unwrap();
                s.audio_packets += 1;
                for i in 0..samples {
                    let level = pcm[2 * i].unsigned_abs().max(pcm[2 * i + 1].unsigned_abs());
                    if level > 1500 {
                        if quiet >= 9_600 {
                            s.beeps.push(ts.wrapping_add(i as u32));
                        }
                        quiet = 0;
                    } else {
                        quiet += 1;
                    }
                }
            }
            Err(_) => stats.lock().unwrap().audio_decode_errors += 1,
        }
    }
}

/// The runtime a test drives its receiver on.
pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
