//! The WebRTC sink: runs the transport's [`Driver`] (and through it the sans-IO session) on a runtime of its own
//! driven by the stream worker thread, and tells the streamer's log what happened.
use crate::media::capture::CaptureClock;
use crate::obs::log;
use crate::session::{ConnectTimings, Level, Note};
use crate::signal::whip::redact_url;
use crate::signal::{Failure, StopCode};
use crate::stream::{PacketReceiver, PacketSink, StopFlag, StreamStats};
use crate::transport::driver::{Driver, EncoderControl, NoteSink, Progress, PublishConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub struct WhipSink {
    runtime: crate::transport::SessionRuntime,
    driver: Option<Driver>,
    /// OBS's counters when this session began to send, and once it closed.
    before: Option<Counted>,
    closed: Option<Counted>,
}

/// What a sink measured, for benchmarks.
#[derive(Clone, Debug)]
pub struct SinkReport {
    /// Hand-off → wire per packet (ms): p50, p99, max.
    pub plugin_ms: [f64; 3],
    pub rtp_packets: u64,
}

/// OBS's clock, the session's and the wall clock, read together now.
pub fn capture_clock_now() -> CaptureClock {
    let unix_usec = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    CaptureClock::new(Instant::now(), crate::obs::clock_usec(), unix_usec)
}

fn log_note(note: &Note) {
    match note.level {
        Level::Info => log::info(&note.text),
        Level::Warn => log::warn(&note.text),
    }
}

fn log_timeline(t: &ConnectTimings) {
    log::info(&format!(
        "connect timeline: offer ready {} ms ({}), answer {} ms, {}",
        t.offer_ms,
        match (t.trickle, t.gathering_complete) {
            (true, _) => "sent at once: the server takes trickle ICE",
            (false, true) => "all candidates",
            (false, false) => "candidate gathering cut short",
        },
        t.answer_ms,
        match t.ice_ms {
            Some(ice) => format!(
                "ICE connected {ice} ms, DTLS connected {} ms",
                t.connected_ms
            ),
            None => format!("ICE+DTLS connected {} ms", t.connected_ms),
        }
    ));
    if t.trickle {
        log::info(&format!(
            "trickle ICE: {} candidate(s) sent after the offer{}{}",
            t.trickled_candidates,
            if t.end_of_candidates_sent {
                ", then end-of-candidates"
            } else {
                ""
            },
            t.trickle_note
                .as_ref()
                .map_or(String::new(), |n| format!("; stopped: {n}"))
        ));
    }
}

impl WhipSink {
    /// Connects (signalling, ICE, DTLS) on the calling thread — the stream worker, never an OBS thread — and gives
    /// up at once when `stop` turns true. After a failure the teardown (WHIP DELETE, DTLS close) goes on in the
    /// background, within its deadline.
    pub fn connect(
        config: PublishConfig,
        encoder: Arc<dyn EncoderControl>,
        mut stop: StopFlag,
    ) -> Result<WhipSink, Failure> {
        let runtime = crate::transport::session_runtime().map_err(|e| {
            Failure::new(
                StopCode::Error,
                format!("cannot start the network runtime: {e}"),
            )
        })?;
        match &config.janus {
            None if config.ant_media.is_some() => log::info(&format!(
                "connecting to {} (Ant Media WebSocket signalling)",
                redact_url(&config.endpoint)
            )),
            None => log::info(&format!(
                "connecting to {} (WHIP)",
                redact_url(&config.endpoint)
            )),
            Some(room) => log::info(&format!(
                "connecting to {} (Janus VideoRoom, room {})",
                redact_url(&config.endpoint),
                room.room
            )),
        }
        let notes: NoteSink = Arc::new(log_note);
        let mut driver = runtime.block_on(async { Driver::start(config, notes, encoder) })?;
        match runtime.block_on(driver.connect(&mut stop)) {
            Ok(timings) => {
                log_timeline(&timings);
                Ok(WhipSink {
                    runtime,
                    driver: Some(driver),
                    before: None,
                    closed: None,
                })
            }
            Err(f) => {
                close_in_background(runtime, driver);
                Err(f)
            }
        }
    }

    pub fn report(&self) -> SinkReport {
        let Some(d) = &self.driver else {
            return SinkReport {
                plugin_ms: [0.0; 3],
                rtp_packets: 0,
            };
        };
        let l = &d.session().latency().plugin;
        let q = |x| l.quantile_ms(x).unwrap_or(0.0);
        SinkReport {
            plugin_ms: [q(0.5), q(0.99), q(1.0)],
            rtp_packets: d.session().rtp_packets(),
        }
    }
}

/// Ends a session that never streamed on a thread of its own (its runtime goes with it), so the failure reaches
/// OBS at once; module unload waits for that thread as for the stream workers.
fn close_in_background(runtime: crate::transport::SessionRuntime, driver: Driver) {
    let closing = crate::stream::spawn_worker("rtc-studio-close", move || {
        let (how, _) = runtime.block_on(driver.close());
        if let Err(e) = how {
            log::warn(&format!("the failed session did not end cleanly: {e}"));
        }
    });
    if let Err(e) = closing {
        log::warn(&format!(
            "cannot start a thread to end the failed session: {e}"
        ));
    }
}

/// OBS's counters (bytes and packets sent) as they stood when this session began: an earlier session's, if the
/// stream published again.
#[derive(Clone, Copy, Debug)]
struct Counted {
    bytes: u64,
    video: u64,
    audio: u64,
}

impl Counted {
    fn read(stats: &StreamStats) -> Counted {
        Counted {
            bytes: stats.bytes_sent.load(Ordering::Relaxed),
            video: stats.video_packets.load(Ordering::Relaxed),
            audio: stats.audio_packets.load(Ordering::Relaxed),
        }
    }
}

/// Keeps OBS's counters current from the driver's progress (which counts from `before`).
fn update_stats(stats: &StreamStats, before: Counted, p: Progress) {
    if p.taken {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
    }
    stats
        .bytes_sent
        .store(before.bytes + p.bytes_sent, Ordering::Relaxed);
    stats
        .video_packets
        .store(before.video + p.video_packets, Ordering::Relaxed);
    stats
        .audio_packets
        .store(before.audio + p.audio_packets, Ordering::Relaxed);
    stats
        .network_congestion
        .store(p.congestion.to_bits(), Ordering::Relaxed);
    if let Some((figures, at)) = p.figures {
        let mut sample = stats.sample.lock().unwrap_or_else(|e| e.into_inner());
        *sample = sample.next(figures, at);
    }
}

impl PacketSink for WhipSink {
    fn run(
        &mut self,
        packets: &mut PacketReceiver,
        stats: &StreamStats,
        stop: &StopFlag,
    ) -> Option<Failure> {
        let driver = self.driver.as_mut()?;
        let before = *self.before.get_or_insert(Counted::read(stats));
        let mut progress = |p: Progress| update_stats(stats, before, p);
        self.runtime
            .block_on(driver.stream(packets, stop, &mut progress))
    }

    fn close(&mut self) {
        let Some(driver) = self.driver.take() else {
            return;
        };
        let s = driver.session();
        let l = s.latency();
        log::info(&format!(
            "capture → wire: video {}; audio {}. Of that, capture → plugin (encoder + libobs): video {}; audio {}; \
             plugin (hand-off → wire): {}",
            l.video_wire.summary(),
            l.audio_wire.summary(),
            l.video_handoff.summary(),
            l.audio_handoff.summary(),
            l.plugin.summary()
        ));
        let f = s.feedback_stats();
        log::info(&format!(
            "receiver reports from the server: {}, worst loss {:.1} %",
            f.receiver_reports,
            f32::from(f.worst_fraction_lost) / 2.56
        ));
        if f.pli + f.fir > 0 {
            let k = s.keyframes();
            log::info(&format!(
                "keyframe requests from the server: {} (PLI {}, FIR {}); the encoder was asked {} time(s); \
                 request → keyframe on the wire: {}",
                f.pli + f.fir,
                f.pli,
                f.fir,
                k.asked,
                k.waits.summary()
            ));
        }
        let r = s.retransmissions();
        if f.nacks > 0 {
            log::info(&format!(
                "NACKs from the server: {} asking for {} packet(s) (video {}, audio {}); sent again: {} ({} bytes), \
                 no longer kept: {}, asked again within a round trip: {}; round trip {}",
                f.nacks,
                f.nacked_packets,
                f.nacked_packets - f.nacked_audio_packets,
                f.nacked_audio_packets,
                r.packets,
                r.bytes,
                r.gone,
                r.too_soon,
                s.rtt().map_or("unknown".into(), |t| format!("{} ms", t.as_millis()))
            ));
        }
        log::info(&s.rate_summary());
        if let Some(layers) = s.layer_summary() {
            log::info(&layers);
        }
        if s.ice_restarts() > 0 {
            log::info(&format!(
                "outages repaired by ICE restart (same session): {}",
                s.ice_restarts()
            ));
        }
        let name = s.signalling();
        let (how, (bytes, video, audio)) = self.runtime.block_on(driver.close());
        match how {
            Ok(how) => log::info(&format!("{name} session ended ({how})")),
            Err(e) => log::warn(&format!("{name} session did not end cleanly: {e}")),
        }
        self.closed = self.before.map(|b| Counted {
            bytes: b.bytes + bytes,
            video: b.video + video,
            audio: b.audio + audio,
        });
    }

    fn sent_in_all(&self) -> Option<(u64, u64, u64)> {
        self.closed.map(|c| (c.bytes, c.video, c.audio))
    }
}
