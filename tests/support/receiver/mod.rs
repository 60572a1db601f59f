//! Our own WHIP receiver ("mock SFU"), shared by `examples/mock_sfu.rs` and the tests.
//!
//! It answers WHIP on a loopback HTTP endpoint with webrtc-rs, depacketizes H.264 with our media core and decodes
//! it with openh264, decodes Opus with libopus, and measures: frames decoded and their size and rate, time from the
//! WHIP POST to the first decoded frame, and the audio/video offset of the demo clip's content (a white flash and a
//! beep at the same instant every second), both placed on one clock through the RTCP sender reports' NTP↔RTP
//! mappings, as a browser does for lip sync.
#![allow(dead_code)]

mod answerer;
mod audio;
pub mod jitter;
mod measure;
mod rtx_unwrap;
mod video;
pub mod whip_http;
use measure::{av_offset, round1};
use rtc_studio::media::video::VideoCodec;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use video::decode_with_ffmpeg;
use webrtc::peer_connection::PeerConnection;
use whip_http::serve;

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
    /// After that, answer offers 503 (a server still recovering) until this long after the first it refused.
    pub refuse_offers_for: Duration,
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
    /// Ask for a keyframe (PLI) this often after the first request a second in (None: only that one).
    pub pli_every: Option<Duration>,
    /// Send transport-wide congestion control feedback (take the `transport-wide-cc` extension when offered).
    pub twcc: bool,
    /// Decode H.264 only, as many servers do: video offered in another codec finds nothing to match.
    pub h264_only: bool,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            http: "127.0.0.1:0".into(),
            udp: "127.0.0.1:0".into(),
            token: None,
            drop_first_session_after: None,
            refuse_offers_for: Duration::ZERO,
            ice_links: Vec::new(),
            answer_links: Vec::new(),
            trickle: false,
            refuse_patch: false,
            pli_every: None,
            twcc: true,
            h264_only: false,
        }
    }
}

/// What the receiver saw (one session at a time; a new POST resets it).
#[derive(Default, Debug)]
pub(crate) struct Stats {
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
    /// Whether the first session was dropped (`drop_first_session_after`); the first offer refused since, and how
    /// many were.
    dropped: bool,
    first_refused: Option<Instant>,
    offers_refused: u64,
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
    /// Packets given up on and decode errors when the DELETE came: what the stream itself suffered. Gaps still
    /// open then are given up afterwards, with no publisher left to repair them (the stream's end).
    at_delete: Option<(u64, u64)>,
    auth_failures: u32,
    /// The candidate types (host, srflx, relay) in the last offer.
    offer_candidate_types: Vec<String>,
    /// The addresses of the offer's candidates.
    offer_candidates: Vec<String>,
    /// Access units as received (Annex-B) with their RTP timestamps, for a second decoder when needed.
    units: Vec<(u32, Vec<u8>)>,
    b_slices: u64,
    decoder: &'static str,
    /// The codec the offer sent video in (the answer takes it).
    pub(crate) video_codec: VideoCodec,
    /// What the jitter buffer did (NACKs, retransmissions, losses given up on) and the RTT it learnt.
    jitter: jitter::JitterStats,
    rtt_ms: f64,
    /// Keyframe requests sent, and when the last one went (for the time to the next keyframe).
    plis_sent: u64,
    /// Decoded frames whose whole reference chain since the last IDR arrived intact.
    frames_intact: u64,
    /// Pauses between decoded frames longer than max(3 frames, 1 frame + 150 ms) (WebRTC's freeze), and their
    /// total duration.
    freezes: u64,
    freeze_ms: f64,
    /// IDR access units received, and for each keyframe request sent, how long until the next one arrived.
    keyframes: u64,
    pli_at: Option<Instant>,
    keyframe_waits_ms: Vec<f64>,
    /// Video RTP packets as they arrived (when, bytes), the distinct RTP timestamps seen (in arrival order), and
    /// the RTP timestamps of the frames decoded intact: the per-second timeline.
    video_arrivals: Vec<(Instant, usize)>,
    video_timestamps: Vec<u32>,
    intact_timestamps: Vec<u32>,
    /// Simulcast: the smaller layers' own measurements, by RID.
    layers: std::collections::BTreeMap<String, Shared>,
}

/// The RID of the full picture among simulcast layers (as browsers and RTC Studio name it).
pub const FULL_RID: &str = "f";

/// How far audio may sit from video in a stream from OBS (ms, beep − flash through the sender reports, as
/// `av_offset_ms`). OBS moves audio in ticks of 1024 samples (21.3 ms at 48 kHz): on 2026-12-05 one run of the
/// settings-dialog frontend test measured 21.4 ms — one tick — where every other run of it measured 0.0. An error of
/// the plugin's own in lining the streams up would be a video frame (33 ms) or more.
pub const AV_OFFSET_LIMIT_MS: f64 = 25.0;

/// Lip sync in the receiver's report `r`: at least `min_pairs` flash/beep pairs were placed on one clock through the
/// sender reports, and audio sat within [`AV_OFFSET_LIMIT_MS`] of video; `context` names the moment in a failure.
pub fn assert_av_in_sync(r: &serde_json::Value, min_pairs: u64, context: &str) {
    let pairs = r["av_pairs"].as_u64().unwrap_or(0);
    assert!(
        pairs >= min_pairs,
        "{context}: {pairs} flash/beep pair(s): {r}"
    );
    let offset = r["av_offset_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: no A/V measurement: {r}"));
    assert!(
        offset.abs() <= AV_OFFSET_LIMIT_MS,
        "{context}: audio/video offset {offset} ms: {r}"
    );
}

impl Stats {
    /// Where the video stream `ssrc` with RTP stream id `rid` is measured: `main` for the full picture (or a
    /// stream without simulcast), else statistics of the layer's own, kept in `main`.
    pub(crate) fn layer(main: &Shared, rid: &str, ssrc: u32) -> Shared {
        let mut m = main.lock().unwrap();
        if rid.is_empty() || rid == FULL_RID {
            m.video_ssrc = Some(ssrc);
            return main.clone();
        }
        let codec = m.video_codec;
        let layer = m.layers.entry(rid.to_string()).or_default();
        layer.lock().unwrap().video_codec = codec;
        layer.clone()
    }

    /// openh264 cannot decode B slices: a stream that had some is measured with libavcodec instead, as HEVC and
    /// AV1 streams always are (after the session).
    fn decode_with_libavcodec(&mut self) {
        self.decoder = match self.video_codec {
            VideoCodec::H264 if self.b_slices == 0 => {
                self.decoder = "openh264";
                return;
            }
            VideoCodec::H264 => "libavcodec (B-frames)",
            VideoCodec::Hevc => "libavcodec (HEVC)",
            VideoCodec::Av1 => "libavcodec (AV1)",
        };
        if let Some(d) = decode_with_ffmpeg(self.video_codec, &self.units) {
            self.video_frames_decoded = d.frames;
            self.decode_errors = d.errors;
            // The whole session decoded again: its errors replace openh264's, at the DELETE too.
            self.at_delete = self.at_delete.map(|(lost, _)| (lost, d.errors));
            self.flashes = d.flashes;
            self.first_frame_ts = Some(d.first);
            self.last_frame_ts = Some(d.last);
            if let Some((w, h)) = d.size {
                (self.width, self.height) = (w, h);
            }
        }
    }

    /// Frames per second between the first and last decoded frame's RTP timestamps.
    fn fps(&self) -> f64 {
        match (self.first_frame_ts, self.last_frame_ts) {
            (Some(a), Some(b)) if self.video_frames_decoded > 1 && b != a => {
                (self.video_frames_decoded - 1) as f64 * 90_000.0 / b.wrapping_sub(a) as f64
            }
            _ => 0.0,
        }
    }

    /// The video's mean bitrate (RTP payload and header) from its first packet to its last, kbit/s.
    fn video_kbps(&self) -> f64 {
        let (Some((first, _)), Some((last, _))) =
            (self.video_arrivals.first(), self.video_arrivals.last())
        else {
            return 0.0;
        };
        let seconds = last.duration_since(*first).as_secs_f64();
        let bytes: usize = self.video_arrivals.iter().map(|(_, b)| b).sum();
        match seconds > 0.0 {
            true => bytes as f64 * 8.0 / seconds / 1000.0,
            false => 0.0,
        }
    }

    /// What a smaller simulcast layer's report holds.
    fn layer_report(&self) -> serde_json::Value {
        json!({
            "video_frames_decoded": self.video_frames_decoded,
            "decode_errors": self.decode_errors,
            "width": self.width,
            "height": self.height,
            "fps": round1(self.fps()),
            "kbps": round1(self.video_kbps()),
            "rtp_packets": self.rtp_packets,
            "packets_lost": self.jitter.packets_lost,
            "packets_nacked": self.jitter.packets_nacked,
            "retransmissions_received": self.jitter.retransmissions_received,
            "keyframes": self.keyframes,
            "frames_intact": self.frames_intact,
            "decoder": self.decoder,
        })
    }

    /// A keyframe request went out at `at` (the wait for the next keyframe starts, unless one is under way).
    fn pli_sent(&mut self, at: Instant) {
        self.plis_sent += 1;
        self.pli_at.get_or_insert(at);
    }
}

pub(crate) type Shared = Arc<Mutex<Stats>>;

/// A running receiver.
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    stats: Shared,
    pcs: Arc<tokio::sync::Mutex<Vec<Arc<dyn PeerConnection>>>>,
    options: Arc<ReceiverOptions>,
    accept: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts listening; must be called inside a tokio runtime.
    pub async fn start(options: ReceiverOptions) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(&options.http).await?;
        let addr = listener.local_addr()?;
        let stats: Shared = Arc::default();
        let pcs: Arc<tokio::sync::Mutex<Vec<Arc<dyn PeerConnection>>>> = Arc::default();
        let options = Arc::new(options);
        let (s, p, o) = (stats.clone(), pcs.clone(), options.clone());
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
            options,
            accept,
        })
    }

    /// A new session answered outside WHIP (another signalling in front of this receiver): measured from now,
    /// as a WHIP POST's would be.
    pub async fn answer_session(
        &self,
        offer: String,
    ) -> Result<(Arc<dyn PeerConnection>, String), String> {
        {
            let mut s = self.stats.lock().unwrap();
            *s = Stats {
                sessions: s.sessions + 1,
                ..Default::default()
            };
            s.post_at = Some(Instant::now());
        }
        let (pc, sdp) = answerer::answer(offer, self.stats.clone(), &self.options).await?;
        let pc: Arc<dyn PeerConnection> = Arc::from(pc);
        self.pcs.lock().await.push(pc.clone());
        Ok((pc, sdp))
    }

    /// The publisher ended its session (as a WHIP DELETE says).
    pub fn session_ended(&self) {
        let mut s = self.stats.lock().unwrap();
        s.at_delete = Some((s.jitter.packets_lost, s.decode_errors));
        s.delete_received = true;
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
        s.decode_with_libavcodec();
        for layer in s.layers.values() {
            layer.lock().unwrap().decode_with_libavcodec();
        }
        let fps = s.fps();
        let first_frame_ms = match (s.post_at, s.first_frame_at) {
            (Some(p), Some(f)) => json!(round1(f.duration_since(p).as_secs_f64() * 1000.0)),
            _ => serde_json::Value::Null,
        };
        let (offset, pairs) = av_offset(&s);
        let (lost, decode_errors) = s
            .at_delete
            .unwrap_or((s.jitter.packets_lost, s.decode_errors));
        let mut report = json!({
            "video_frames_decoded": s.video_frames_decoded,
            "decode_errors": decode_errors,
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
            "frames_intact": s.frames_intact,
            "freezes": s.freezes,
            "freeze_ms": round1(s.freeze_ms),
            "packets_nacked": s.jitter.packets_nacked,
            "nack_requests": s.jitter.nack_requests,
            "retransmissions_received": s.jitter.retransmissions_received,
            "packets_lost": lost,
            "plis_sent": s.plis_sent,
            "keyframes": s.keyframes,
            "keyframe_waits_ms": s.keyframe_waits_ms,
            "rtt_ms": round1(s.rtt_ms),
            "sessions": s.sessions,
            "auth_failures": s.auth_failures,
            "offer_candidate_types": s.offer_candidate_types,
            "timeline": measure::timeline(&s),
        });
        report["video_codec"] = json!(s.video_codec.label());
        report["given_up_after_delete"] = json!(s.jitter.packets_lost - lost);
        report["offers_refused"] = json!(s.offers_refused);
        report["offer_candidate_addresses"] = json!(s.offer_candidates);
        report["video_kbps"] = json!(round1(s.video_kbps()));
        let layers: serde_json::Map<String, serde_json::Value> = (s.layers.iter())
            .map(|(rid, l)| (rid.clone(), l.lock().unwrap().layer_report()))
            .collect();
        report["layers"] = serde_json::Value::Object(layers);
        report
    }

    pub async fn stop(self) {
        self.accept.abort();
        for pc in self.pcs.lock().await.drain(..) {
            let _ = pc.close().await;
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
