//! The WHIP sink: runs the transport's [`Publisher`] on the plugin's runtime from the stream worker thread.
use crate::media::latency::LatencyHistogram;
use crate::media::packet::EncodedPacket;
use crate::obs::log;
use crate::signal::whip::redact_url;
use crate::signal::{Failure, StopCode};
use crate::stream::PacketSink;
use crate::transport::session::{unix_usec_now, PublishConfig, Publisher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long teardown (WHIP DELETE, DTLS close) may take in the background.
pub const TEARDOWN_DEADLINE: Duration = Duration::from_secs(2);

pub struct WhipSink {
    runtime: tokio::runtime::Handle,
    publisher: Option<Publisher>,
    discontinuities: u64,
    latency: Latency,
}

/// Where the time between OBS capturing a frame (`sys_dts_usec`) and its packet leaving goes: encoder and libobs
/// (capture → hand-off to the plugin), then the plugin (hand-off → wire), per media kind.
#[derive(Default)]
struct Latency {
    video_handoff: LatencyHistogram,
    video_wire: LatencyHistogram,
    audio_handoff: LatencyHistogram,
    audio_wire: LatencyHistogram,
    /// Hand-off → wire, both kinds: the plugin's own share.
    plugin: LatencyHistogram,
}

/// What a sink measured, for benchmarks.
#[derive(Clone, Debug)]
pub struct SinkReport {
    /// Hand-off → wire per packet (ms): p50, p99, max.
    pub plugin_ms: [f64; 3],
    pub rtp_packets: u64,
}

impl WhipSink {
    /// Connects (signalling, ICE, DTLS) on the calling thread — the stream worker, never an OBS thread — and gives
    /// up within 50 ms once `stop` turns true.
    pub fn connect(config: PublishConfig, stop: Arc<AtomicBool>) -> Result<WhipSink, Failure> {
        let runtime = crate::transport::runtime().map_err(|e| {
            Failure::new(
                StopCode::Error,
                format!("cannot start the network runtime: {e}"),
            )
        })?;
        match &config.janus {
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
        let stopped = async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let mut publisher = runtime.block_on(async {
            tokio::select! {
                connected = Publisher::connect(config) => connected,
                () = stopped => Err(Failure::new(StopCode::Success, "stopped while connecting")),
            }
        })?;
        let t = publisher.timings;
        log::info(&format!(
            "connect timeline: offer ready {} ms ({}), answer {} ms, ICE+DTLS connected {} ms",
            t.offer_ms,
            match (t.trickle, t.gathering_complete) {
                (true, _) => "sent at once: the server takes trickle ICE",
                (false, true) => "all candidates",
                (false, false) => "candidate gathering cut short",
            },
            t.answer_ms,
            t.connected_ms
        ));
        if t.trickle {
            log::info(&format!(
                "trickle ICE: {} candidate(s) sent by PATCH after the offer{}{}",
                t.trickled_candidates,
                if t.end_of_candidates_sent {
                    ", then end-of-candidates"
                } else {
                    ""
                },
                publisher
                    .trickle_note
                    .as_ref()
                    .map_or(String::new(), |n| format!("; stopped: {n}"))
            ));
        }
        log_notes(&mut publisher);
        if !publisher.announced_ice_servers.is_empty() {
            log::info(&format!(
                "ICE servers announced by the WHIP server: {:?}",
                publisher.announced_ice_servers
            ));
        }
        if !publisher.answer_ice_servers.is_empty() {
            log::info(&format!(
                "ICE servers announced with the server's answer (used for ICE restarts): {:?}",
                publisher.answer_ice_servers
            ));
        }
        Ok(WhipSink {
            runtime,
            publisher: Some(publisher),
            discontinuities: 0,
            latency: Latency::default(),
        })
    }
}

impl WhipSink {
    pub fn report(&self) -> SinkReport {
        let q = |x| self.latency.plugin.quantile_ms(x).unwrap_or(0.0);
        SinkReport {
            plugin_ms: [q(0.5), q(0.99), q(1.0)],
            rtp_packets: self.publisher.as_ref().map_or(0, |p| p.rtp_packets()),
        }
    }
}

/// Logs what the publisher noted about its connection (trickle fallback, TURN bridges, ICE restarts).
fn log_notes(publisher: &mut Publisher) {
    for (warning, note) in publisher.take_notes() {
        if warning {
            log::warn(&note);
        } else {
            log::info(&note);
        }
    }
}

/// Loss reported by the server that shows as full congestion in OBS's status bar (red square): 10 %.
const FULL_CONGESTION_LOSS: f32 = 0.10;

impl PacketSink for WhipSink {
    fn congestion(&self) -> f32 {
        self.publisher
            .as_ref()
            .map_or(0.0, |p| (p.feedback.loss() / FULL_CONGESTION_LOSS).min(1.0))
    }

    fn send(&mut self, packet: &EncodedPacket) -> Result<u64, Failure> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Err(Failure::new(StopCode::Error, "the session is closed"));
        };
        // The capture instant on the wall clock: now, minus how long ago OBS captured the frame.
        let age_usec = (crate::obs::clock_usec() - packet.sys_dts_usec).max(0);
        let capture_unix_usec = unix_usec_now() - age_usec;
        let sent = self
            .runtime
            .block_on(publisher.send(packet, capture_unix_usec));
        log_notes(publisher);
        let (bytes, discontinuity) = sent?;
        let on_wire = crate::obs::clock_usec();
        let (handoff, wire) = match packet.kind {
            crate::media::packet::MediaKind::Video => (
                &mut self.latency.video_handoff,
                &mut self.latency.video_wire,
            ),
            crate::media::packet::MediaKind::Audio => (
                &mut self.latency.audio_handoff,
                &mut self.latency.audio_wire,
            ),
        };
        self.latency.plugin.record(on_wire - packet.handoff_usec);
        if packet.sys_dts_usec > 0 {
            handoff.record(packet.handoff_usec - packet.sys_dts_usec);
            wire.record(on_wire - packet.sys_dts_usec);
        }
        if let Some(d) = discontinuity {
            self.discontinuities += 1;
            log::warn(&format!(
                "{} timestamps jumped ({:?}, {} ms): re-anchored to continue smoothly",
                packet.kind.as_str(),
                d.kind,
                d.jump_ms.map_or("?".into(), |j| j.to_string())
            ));
        }
        Ok(bytes)
    }

    fn close(&mut self) {
        if let Some(p) = self.publisher.take() {
            let l = &self.latency;
            log::info(&format!(
                "capture → wire: video {}; audio {}. Of that, capture → plugin (encoder + libobs): video {}; audio {}; \
                 plugin (hand-off → wire): {}",
                l.video_wire.summary(),
                l.audio_wire.summary(),
                l.video_handoff.summary(),
                l.audio_handoff.summary(),
                l.plugin.summary()
            ));
            let feedback = p.feedback.clone();
            let (pli, fir) = (
                feedback.pli.load(Ordering::Relaxed),
                feedback.fir.load(Ordering::Relaxed),
            );
            log::info(&format!(
                "receiver reports from the server: {}, worst loss {:.1} %",
                feedback.receiver_reports.load(Ordering::Relaxed),
                feedback.worst_fraction_lost.load(Ordering::Relaxed) as f32 / 2.56
            ));
            if pli + fir > 0 {
                // OBS 29 offers outputs no way to ask the encoder for a keyframe; the next one comes with keyint.
                log::info(&format!(
                    "keyframe requests from the server: {} (PLI {pli}, FIR {fir})",
                    pli + fir
                ));
            }
            if p.ice_restarts > 0 {
                log::info(&format!(
                    "outages repaired by ICE restart (same session): {}",
                    p.ice_restarts
                ));
            }
            let name = p.signalling_name();
            match self.runtime.block_on(p.close(TEARDOWN_DEADLINE)) {
                Ok(how) => log::info(&format!("{name} session ended ({how})")),
                Err(e) => log::warn(&format!("{name} session did not end cleanly: {e}")),
            }
        }
    }
}
