//! The packet log: a diagnostic sink that writes one JSON line per packet OBS handed us (timing, sizes, H.264 NAL
//! types), instead of or before publishing. Streamers turn it on to report problems; tests read it to check what
//! OBS really delivers.
use crate::media::h264;
use crate::media::packet::{EncodedPacket, MediaKind};
use crate::obs::output::{AudioEncoderInfo, VideoEncoderInfo};
use crate::signal::Failure;
use crate::signal::StopCode;
use crate::stream::{PacketReceiver, PacketSink, StopFlag, StreamStats};
use serde_json::json;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::Ordering;

pub struct PacketLog {
    out: BufWriter<File>,
    path: String,
}

impl PacketLog {
    /// Creates (truncates) `path` and writes the stream description as its first line.
    pub fn create(
        path: &str,
        video: Option<&VideoEncoderInfo>,
        audio: Option<&AudioEncoderInfo>,
    ) -> Result<PacketLog, Failure> {
        let file = File::create(path).map_err(|e| {
            Failure::new(
                StopCode::Error,
                format!("cannot write the packet log {path}: {e}"),
            )
        })?;
        let mut log = PacketLog {
            out: BufWriter::new(file),
            path: path.to_string(),
        };
        let header = json!({
            "event": "start",
            "video": video.map(|v| json!({
                "codec": v.codec, "width": v.width, "height": v.height,
                "extra_data_nals": h264::annexb_nal_types(&v.extra_data),
                "extra_data_len": v.extra_data.len(),
            })),
            "audio": audio.map(|a| json!({
                "codec": a.codec, "sample_rate": a.sample_rate, "extra_data_len": a.extra_data.len(),
            })),
        });
        log.line(&header)?;
        Ok(log)
    }

    fn line(&mut self, value: &serde_json::Value) -> Result<(), Failure> {
        writeln!(self.out, "{value}").map_err(|e| {
            Failure::new(
                StopCode::Error,
                format!("cannot write the packet log {}: {e}", self.path),
            )
        })
    }
}

impl PacketLog {
    fn write(&mut self, p: &EncodedPacket) -> Result<(), Failure> {
        let mut v = json!({
            "kind": p.kind.as_str(),
            "pts": p.pts,
            "dts": p.dts,
            "tb": [p.timebase_num, p.timebase_den],
            "key": p.keyframe,
            "size": p.data.len(),
            "dts_usec": p.dts_usec,
            "sys_dts_usec": p.sys_dts_usec,
            "handoff_usec": p.handoff_usec,
        });
        if p.kind == MediaKind::Video {
            v["annexb"] = json!(h264::is_annexb(&p.data));
            v["nals"] = json!(h264::annexb_nal_types(&p.data));
        }
        self.line(&v)
    }
}

impl PacketSink for PacketLog {
    fn run(
        &mut self,
        packets: &mut PacketReceiver,
        stats: &StreamStats,
        stop: &StopFlag,
    ) -> Option<Failure> {
        while let Some(p) = packets.blocking_recv() {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            if *stop.borrow() {
                break;
            }
            if let Err(f) = self.write(&p) {
                return Some(f);
            }
            stats
                .bytes_sent
                .fetch_add(p.data.len() as u64, Ordering::Relaxed);
            let counter = match p.kind {
                MediaKind::Video => &stats.video_packets,
                MediaKind::Audio => &stats.audio_packets,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        None
    }

    fn close(&mut self) {
        let _ = self.line(&json!({"event": "end"}));
        let _ = self.out.flush();
    }
}
