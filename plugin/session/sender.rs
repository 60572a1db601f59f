//! The media send path, sans-IO: one OBS packet and the instant it arrives in, RTP packets (SSRC, sequence
//! number, timestamp, marker, payload, transport-wide sequence number) out as the [`Pacer`] releases them, and
//! RTCP sender reports from the capture-anchored clock.
//!
//! When the video waiting in the pacer would take longer than [`MAX_VIDEO_DELAY`] to leave (the path carries less
//! than the encoder makes, even at the floor, or the encoder cannot follow), new frames are dropped — whole,
//! before they are numbered, so the receiver sees no loss — up to the next keyframe, which is asked for.
use super::bwe::probe::{ProbeRequest, MIN_PACKETS as MIN_PROBE_PACKETS};
use super::history::{retention, NotResent, SendHistory};
use super::io::VideoLayer;
use super::pacer::{Lane, Pacer, Scheduled};
use crate::media::capture::CaptureClock;
use crate::media::clock::{Discontinuity, SessionClock};
use crate::media::h264_rtp::RtpPayload;
use crate::media::latency::LatencyHistogram;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::media::video::{VideoCodec, VideoFraming};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A repair goes more than once when the path loses packets, copies this far apart (out of the same loss burst). A
/// repair that is lost too costs the receiver another NACK round — Janus asks a second and last time only 155 ms
/// after the first, and the picture stalls meanwhile — so at 5 % loss one repair in twenty would stall it. Copies
/// are added until fewer than one repair in [`REPAIR_FAILURE_TARGET`] is lost, at most [`MAX_REPAIR_COPIES`]: at
/// 5 % loss three copies (one in 8,000 lost) for 10 % more bandwidth.
pub const REPAIR_COPY_GAP: Duration = Duration::from_millis(15);
pub const REPAIR_FAILURE_TARGET: f64 = 1000.0;
pub const MAX_REPAIR_COPIES: u32 = 3;

/// How many times to send a repair when the path loses `loss` (0..1) of packets: the fewest copies that all get
/// lost less than once in [`REPAIR_FAILURE_TARGET`], at least one (a path that loses nothing still lost the
/// packet being repaired: count that as 1 %).
pub fn repair_copies(loss: f64) -> u32 {
    let loss = loss.clamp(0.01, 0.5);
    let needed = (1.0 / REPAIR_FAILURE_TARGET).ln() / loss.ln();
    (needed.ceil() as u32).clamp(1, MAX_REPAIR_COPIES)
}
/// The RTP fixed header, counted into the bytes a packet puts on the wire.
const RTP_HEADER_BYTES: u64 = 12;
/// Video that would wait longer than this in the pacer is dropped up to the next keyframe.
pub const MAX_VIDEO_DELAY: Duration = Duration::from_millis(500);

/// One RTP packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub kind: MediaKind,
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
    /// Its transport-wide sequence number, when the server takes transport-wide congestion control.
    pub transport_seq: Option<u16>,
}

/// An RTCP sender report for one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderReport {
    pub kind: MediaKind,
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp: u32,
    pub packets: u32,
    pub octets: u32,
}

/// The identity of one outgoing stream: its SSRC, first sequence number and RTP timestamp offset (random, chosen
/// by the caller: the core draws no random numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamIds {
    pub ssrc: u32,
    pub first_seq: u16,
    pub rtp_offset: u32,
}

/// Per-stream RTP state.
#[derive(Debug)]
struct RtpStream {
    ssrc: u32,
    payload_type: u8,
    seq: u16,
    /// Sent so far (for sender reports; RFC 3550 counts wrap; retransmissions not included).
    packets: u32,
    octets: u32,
    /// Packets sent again on a NACK (each once, however many copies).
    resent: u64,
    /// What was sent, for retransmission.
    history: SendHistory,
    /// Sender reports sent: the middle 32 bits of their NTP time (what a receiver report's LSR names) and when.
    reports: VecDeque<(u32, Instant)>,
}

impl RtpStream {
    fn new(ids: StreamIds, payload_type: u8) -> Self {
        RtpStream {
            ssrc: ids.ssrc,
            payload_type,
            seq: ids.first_seq,
            packets: 0,
            octets: 0,
            resent: 0,
            history: SendHistory::default(),
            reports: VecDeque::new(),
        }
    }

    fn next(&mut self, kind: MediaKind, timestamp: u32, marker: bool, payload: Bytes) -> RtpPacket {
        let p = RtpPacket {
            kind,
            ssrc: self.ssrc,
            payload_type: self.payload_type,
            seq: self.seq,
            timestamp,
            marker,
            payload,
            transport_seq: None,
        };
        self.seq = self.seq.wrapping_add(1);
        p
    }
}

/// One video layer's send state.
#[derive(Debug)]
struct VideoOut {
    rtp: RtpStream,
    /// Its encoder's framing: parameter sets (or the sequence header) put before keyframes that lack them.
    framing: VideoFraming,
    /// Sent: the answer took it and the bandwidth has room for it (a paused layer's frames are dropped).
    active: bool,
    /// Dropping up to the next keyframe (the pacer fell behind, or the layer was just resumed).
    dropping: bool,
    /// A keyframe has been sent: a stream that starts mid-picture-group (OBS reconnecting while its encoder runs
    /// on) sends nothing a receiver could decode before one.
    started: bool,
    /// OBS packets (frames) whose last RTP packet has left.
    frames: u64,
}

/// What one video layer has sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub ssrc: u32,
    pub active: bool,
    pub frames: u64,
    pub packets: u32,
    pub octets: u32,
    /// Packets sent again on a NACK.
    pub resent: u64,
}

/// Capture → hand-off (encoder and libobs) and hand-off → wire (the plugin), per media kind, in µs of OBS's clock.
#[derive(Default, Debug)]
pub struct Latency {
    pub video_handoff: LatencyHistogram,
    pub video_wire: LatencyHistogram,
    pub audio_handoff: LatencyHistogram,
    pub audio_wire: LatencyHistogram,
    /// Hand-off → wire, both kinds: the plugin's own share.
    pub plugin: LatencyHistogram,
}

/// What became of the sequence numbers a NACK asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retransmissions {
    /// Packets sent again, and their bytes.
    pub packets: u64,
    pub bytes: u64,
    /// Asked for but no longer (or never) in the history.
    pub gone: u64,
    /// Asked for again within a round trip of being re-sent.
    pub too_soon: u64,
}

/// What the sender puts out: RTP packets (with the probe cluster they belong to, and whether last) and sender
/// reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    Rtp(RtpPacket, Option<(u32, bool)>),
    Report(SenderReport),
}

/// What became of an OBS packet handed to the sender.
#[derive(Debug, Default)]
pub struct Pushed {
    /// A timestamp discontinuity to report.
    pub discontinuity: Option<Discontinuity>,
    /// The frame was dropped (the pacer is too far behind, or waiting for a keyframe).
    pub dropped: bool,
    /// Dropping began: a keyframe is wanted.
    pub want_keyframe: bool,
    /// The layer's first frame was not a keyframe: one is wanted to start with.
    pub want_first_keyframe: bool,
    /// The video layer the packet belongs to (0 for audio).
    pub layer: usize,
}

#[derive(Debug)]
pub struct MediaSender {
    clock: SessionClock,
    capture: CaptureClock,
    payloads: Vec<RtpPayload>,
    /// The video layers, the full picture first.
    video: Vec<VideoOut>,
    audio: RtpStream,
    pacer: Pacer,
    /// The next transport-wide sequence number, when the server takes transport-wide congestion control, and
    /// which streams carry it (video, audio).
    transport_seq: Option<u16>,
    numbered: [bool; 2],
    /// Drop video when the pacer falls behind (adaptation on); dropping up to the next keyframe.
    pub drop_when_behind: bool,
    pub dropped_frames: u64,
    /// Probe packets sent.
    pub probe_packets: u64,
    /// The round-trip time, from receiver reports.
    pub rtt: Option<Duration>,
    pub retransmissions: Retransmissions,
    /// Packets sent before this are not sent again: the connection came back from an outage then, and what went
    /// into it is stale — resending it (a second of media at once) held new video back past the point where it is
    /// dropped; the receiver gets a keyframe instead.
    repairs_from: Option<Instant>,
    next_report: Option<Instant>,
    reports: VecDeque<SenderReport>,
    pub latency: Latency,
    pub bytes_sent: u64,
    /// OBS packets whose last RTP packet has left, per kind.
    pub video_packets: u64,
    pub audio_packets: u64,
}

impl MediaSender {
    /// A sender for `video` (at least one layer, the full picture first) and `audio`.
    pub fn new(
        codec: VideoCodec,
        video: &[VideoLayer],
        audio: StreamIds,
        capture: CaptureClock,
        max_payload: usize,
        pacing_bps: f64,
    ) -> MediaSender {
        let offsets: Vec<u32> = video.iter().map(|l| l.ids.rtp_offset).collect();
        let video = video
            .iter()
            .map(|l| VideoOut {
                rtp: RtpStream::new(l.ids, 0),
                framing: VideoFraming::new(codec, &l.extra_data, max_payload),
                active: true,
                dropping: false,
                started: false,
                frames: 0,
            })
            .collect();
        MediaSender {
            clock: SessionClock::layered(&offsets, audio.rtp_offset),
            capture,
            payloads: Vec::with_capacity(64),
            video,
            audio: RtpStream::new(audio, 0),
            pacer: Pacer::new(pacing_bps),
            transport_seq: None,
            numbered: [false; 2],
            drop_when_behind: false,
            dropped_frames: 0,
            probe_packets: 0,
            rtt: None,
            retransmissions: Retransmissions::default(),
            repairs_from: None,
            next_report: None,
            reports: VecDeque::new(),
            latency: Latency::default(),
            bytes_sent: 0,
            video_packets: 0,
            audio_packets: 0,
        }
    }

    /// The payload types the answer settled on, and which streams' packets carry transport-wide sequence numbers
    /// (video, audio; one sequence for the whole session, ICE restarts included).
    pub fn set_payload_types(&mut self, video: u8, audio: u8, transport_cc: [bool; 2]) {
        for layer in &mut self.video {
            layer.rtp.payload_type = video;
        }
        self.audio.payload_type = audio;
        self.numbered = transport_cc;
        let any = transport_cc.iter().any(|n| *n);
        self.transport_seq = any.then(|| self.transport_seq.unwrap_or(1));
    }

    /// Video leaves at `bps` (on the wire) from `now`.
    pub fn set_pacing_rate(&mut self, bps: f64, now: Instant) {
        self.pacer.set_rate(bps, now);
    }

    /// How long the video waiting would take to leave.
    pub fn video_delay(&self) -> Duration {
        self.pacer.video_delay()
    }

    /// Whether video of an active layer is being dropped up to the next keyframe.
    pub fn dropping(&self) -> bool {
        self.video.iter().any(|l| l.active && l.dropping)
    }

    /// How many video layers there are.
    pub fn layers(&self) -> usize {
        self.video.len()
    }

    /// Whether video layer `layer` is sent.
    pub fn layer_active(&self, layer: usize) -> bool {
        self.video.get(layer).is_some_and(|l| l.active)
    }

    /// Pauses or resumes video layer `layer`. A resumed layer starts again at a keyframe (its caller asks the
    /// encoder for one).
    pub fn set_layer_active(&mut self, layer: usize, active: bool) {
        if let Some(l) = self.video.get_mut(layer) {
            l.dropping |= active && !l.active;
            l.active = active;
        }
    }

    /// What each video layer has sent.
    pub fn layer_stats(&self) -> Vec<LayerStats> {
        self.video
            .iter()
            .map(|l| LayerStats {
                ssrc: l.rtp.ssrc,
                active: l.active,
                frames: l.frames,
                packets: l.rtp.packets,
                octets: l.rtp.octets,
                resent: l.rtp.resent,
            })
            .collect()
    }

    /// Whether a video frame (`keyframe` or not) of `layer` goes into the pacer, or is dropped. Returns (dropped,
    /// dropping just began).
    fn video_gate(&mut self, layer: usize, keyframe: bool) -> (bool, bool) {
        let behind = self.pacer.video_delay();
        let drop_when_behind = self.drop_when_behind;
        let l = &mut self.video[layer];
        if !l.active {
            return (true, false);
        }
        if !l.started {
            if !keyframe {
                self.dropped_frames += 1;
                return (true, false);
            }
            l.started = true;
        }
        if l.dropping {
            // A resumed layer waits for its keyframe; one dropped for lag also for the pacer to catch up.
            if keyframe && (behind < MAX_VIDEO_DELAY / 2 || !drop_when_behind) {
                l.dropping = false;
                return (false, false);
            }
        } else if drop_when_behind && behind > MAX_VIDEO_DELAY {
            l.dropping = true;
            self.dropped_frames += 1;
            return (true, true);
        } else {
            return (false, false);
        }
        self.dropped_frames += 1;
        (true, false)
    }

    /// The video layer that sends on `ssrc`.
    pub fn layer_of(&self, ssrc: u32) -> Option<usize> {
        self.video.iter().position(|l| l.rtp.ssrc == ssrc)
    }

    /// The RTP stream (a video layer's or the audio's) that sends on `ssrc`.
    fn stream_mut(&mut self, ssrc: u32) -> Option<&mut RtpStream> {
        match self.layer_of(ssrc) {
            Some(layer) => Some(&mut self.video[layer].rtp),
            None => (self.audio.ssrc == ssrc).then_some(&mut self.audio),
        }
    }

    /// Takes one OBS packet arriving at `now`: stamps it, frames it into RTP packets and hands them to the pacer —
    /// or drops a video frame when the pacer is too far behind.
    pub fn push(&mut self, p: &EncodedPacket, now: Instant) -> Pushed {
        let layer = match p.kind {
            MediaKind::Video => usize::from(p.layer),
            MediaKind::Audio => 0,
        };
        if layer >= self.video.len() {
            // A layer the session has none for (the answer refused it): nothing to send it on.
            return Pushed {
                dropped: true,
                layer,
                ..Pushed::default()
            };
        }
        let stamp = self.clock.stamp_layer(
            p.kind,
            layer,
            [p.pts, p.dts],
            (p.timebase_num, p.timebase_den),
            self.capture.unix_usec_of(p.sys_dts_usec),
        );
        let mut pushed = Pushed {
            discontinuity: stamp.discontinuity,
            layer,
            ..Pushed::default()
        };
        let last_of = Some((p.handoff_usec, p.sys_dts_usec));
        match p.kind {
            MediaKind::Video => {
                let first = !self.video[layer].started && self.video[layer].active;
                (pushed.dropped, pushed.want_keyframe) = self.video_gate(layer, p.keyframe);
                pushed.want_first_keyframe = first && pushed.dropped;
                if pushed.dropped {
                    return pushed;
                }
                let out = &mut self.video[layer];
                self.payloads.clear();
                if !out
                    .framing
                    .packetize(&p.data, p.keyframe, &mut self.payloads)
                {
                    pushed.dropped = true;
                    return pushed;
                }
                let count = self.payloads.len();
                for (i, payload) in self.payloads.drain(..).enumerate() {
                    let packet =
                        out.rtp
                            .next(MediaKind::Video, stamp.rtp, payload.marker, payload.payload);
                    self.pacer.push_video(Scheduled {
                        packet,
                        last_of: last_of.filter(|_| i + 1 == count),
                    });
                }
            }
            MediaKind::Audio => {
                let packet = self
                    .audio
                    .next(MediaKind::Audio, stamp.rtp, false, p.data.clone());
                self.pacer.push_audio(Scheduled { packet, last_of });
            }
        }
        self.next_report.get_or_insert(now);
        pushed
    }

    /// Recent video packets sent again at `req.bps` from `now`, as probe cluster `req.id`: as many as make
    /// `req.bytes` (at least [`MIN_PROBE_PACKETS`]). Returns how many (none when nothing was sent yet).
    pub fn probe(&mut self, req: ProbeRequest, now: Instant) -> usize {
        let window = Duration::from_millis(500);
        let Some(recent) = self
            .video
            .iter()
            .filter(|l| l.active)
            .map(|l| l.rtp.history.recent(now, window))
            .find(|r| !r.is_empty())
        else {
            return 0;
        };
        let mut packets = Vec::new();
        let mut bytes = 0;
        for p in recent.iter().cycle() {
            if bytes >= req.bytes && packets.len() >= MIN_PROBE_PACKETS as usize {
                break;
            }
            bytes += p.payload.len() + super::bwe::PACKET_OVERHEAD;
            packets.push(p.clone());
        }
        let n = packets.len();
        self.pacer.push_probe(req.id, packets, req.bps as f64, now);
        n
    }

    /// The next packet or report due at `now`: repairs and probes first, then audio, then video as paced, then a
    /// sender report when one is due. Packets get their transport-wide sequence number as they leave.
    pub fn poll(&mut self, now: Instant) -> Option<Outgoing> {
        if let Some((mut s, lane)) = self.pacer.poll(now) {
            let size = s.packet.payload.len() as u64;
            self.bytes_sent += size + RTP_HEADER_BYTES;
            let probe = match lane {
                Lane::Resend => {
                    self.retransmissions.packets += 1;
                    self.retransmissions.bytes += size;
                    None
                }
                Lane::Probe { id, last } => {
                    self.probe_packets += 1;
                    Some((id, last))
                }
                Lane::Audio | Lane::Video => {
                    self.account(&s, now);
                    None
                }
            };
            let numbered = match s.packet.kind {
                MediaKind::Video => self.numbered[0],
                MediaKind::Audio => self.numbered[1],
            };
            if let Some(seq) = self.transport_seq.as_mut().filter(|_| numbered) {
                s.packet.transport_seq = Some(*seq);
                *seq = seq.wrapping_add(1);
            }
            return Some(Outgoing::Rtp(s.packet, probe));
        }
        if self.next_report.is_some_and(|t| t <= now) {
            self.make_reports(now);
        }
        self.reports.pop_front().map(Outgoing::Report)
    }

    /// RTP packets sent so far, video and audio.
    pub fn rtp_packets(&self) -> u64 {
        let video: u64 = self.video.iter().map(|l| u64::from(l.rtp.packets)).sum();
        video + u64::from(self.audio.packets)
    }

    /// The connection is back from an outage at `now`: nothing sent before is sent again.
    pub fn outage_over(&mut self, now: Instant) {
        self.repairs_from = Some(now);
    }

    /// The server asked (NACK) for packets of stream `ssrc` again: those still in its history are queued to go
    /// first, each at most once per round trip, in as many copies as the loss calls for.
    /// `loss` is what the server last reported (0..1); it decides how many copies of each repair go.
    pub fn nack(&mut self, ssrc: u32, seqs: &[u16], now: Instant, loss: f64) {
        let copies = repair_copies(loss);
        // Until a receiver report tells the round trip, only a burst of duplicate requests is held back.
        let rtt = self.rtt.unwrap_or(Duration::from_millis(10));
        let retention = match self.repairs_from {
            Some(t) => retention(self.rtt).min(now.saturating_duration_since(t)),
            None => retention(self.rtt),
        };
        let Some(stream) = self.stream_mut(ssrc) else {
            return;
        };
        let mut resends = Vec::new();
        let mut counts = Retransmissions::default();
        for &seq in seqs {
            match stream.history.resend(seq, now, rtt, retention) {
                Ok(p) => resends.push(p),
                Err(NotResent::Gone) => counts.gone += 1,
                Err(NotResent::TooSoon) => counts.too_soon += 1,
            }
        }
        stream.resent += resends.len() as u64;
        self.retransmissions.gone += counts.gone;
        self.retransmissions.too_soon += counts.too_soon;
        for p in resends {
            for copy in 0..copies {
                self.pacer
                    .push_resend(now + REPAIR_COPY_GAP * copy, p.clone());
            }
        }
    }

    /// A receiver report's block about stream `ssrc` arrived at `now`: the round trip it reveals (RFC 3550
    /// §6.4.1: now − the sender report it names (LSR) − the time the receiver held it (DLSR, 1/65536 s)).
    pub fn receiver_report(&mut self, ssrc: u32, lsr: u32, dlsr: u32, now: Instant) {
        let Some(stream) = self.stream_mut(ssrc) else {
            return;
        };
        let Some(&(_, sent)) = stream
            .reports
            .iter()
            .find(|(mid, _)| lsr != 0 && *mid == lsr)
        else {
            return;
        };
        let held = Duration::from_secs_f64(f64::from(dlsr) / 65_536.0);
        let rtt = now.saturating_duration_since(sent).saturating_sub(held);
        self.rtt = Some(match self.rtt {
            Some(r) => (r * 7 + rtt) / 8,
            None => rtt,
        });
    }

    /// When the next packet or report is due (after [`Self::poll`] has handed out everything due now).
    pub fn next_due(&self) -> Option<Instant> {
        [self.pacer.next_due(), self.next_report]
            .into_iter()
            .flatten()
            .min()
    }

    fn account(&mut self, s: &Scheduled, now: Instant) {
        let size = s.packet.payload.len();
        let retention = retention(self.rtt);
        let layer = self.layer_of(s.packet.ssrc);
        let Some(stream) = self.stream_mut(s.packet.ssrc) else {
            return;
        };
        stream.packets = stream.packets.wrapping_add(1);
        stream.octets = stream.octets.wrapping_add(size as u32);
        stream.history.record(&s.packet, now, retention);
        let Some((handoff, capture)) = s.last_of else {
            return;
        };
        if let Some(layer) = layer {
            self.video[layer].frames += 1;
            // OBS's counters and the latency figures follow the full picture.
            if layer > 0 {
                return;
            }
        }
        let on_wire = self.capture.obs_usec_at(now);
        let l = &mut self.latency;
        let (to_plugin, to_wire) = match s.packet.kind {
            MediaKind::Video => {
                self.video_packets += 1;
                (&mut l.video_handoff, &mut l.video_wire)
            }
            MediaKind::Audio => {
                self.audio_packets += 1;
                (&mut l.audio_handoff, &mut l.audio_wire)
            }
        };
        l.plugin.record(on_wire - handoff);
        if capture > 0 {
            to_plugin.record(handoff - capture);
            to_wire.record(on_wire - capture);
        }
    }

    /// Queues a sender report for each stream that has sent, from the capture-anchored clock, and schedules the
    /// next one [`SENDER_REPORT_INTERVAL`] later.
    fn make_reports(&mut self, now: Instant) {
        let wall = self.capture.unix_usec_at(now);
        let video = self
            .video
            .iter_mut()
            .enumerate()
            .map(|(i, l)| (MediaKind::Video, i, &mut l.rtp));
        for (kind, layer, stream) in video.chain([(MediaKind::Audio, 0, &mut self.audio)]) {
            if stream.packets == 0 {
                continue;
            }
            if let Some((ntp, rtp)) = self.clock.layer_report(kind, layer, wall) {
                // What a receiver report will name it by (LSR: the middle 32 bits of the NTP time).
                stream.reports.push_back(((ntp >> 16) as u32, now));
                if stream.reports.len() > 16 {
                    stream.reports.pop_front();
                }
                self.reports.push_back(SenderReport {
                    kind,
                    ssrc: stream.ssrc,
                    ntp,
                    rtp,
                    packets: stream.packets,
                    octets: stream.octets,
                });
            }
        }
        self.next_report = Some(now + SENDER_REPORT_INTERVAL);
    }
}
