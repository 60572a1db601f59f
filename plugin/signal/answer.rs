//! What a server's SDP answer must take of the offer before it is worth connecting: the video (H.264) and audio
//! (Opus) sections, not rejected (port 0), each with a payload type the offer named for that codec. Without this a
//! server that refused the video, or answered with a codec never offered, left the stream waiting for ICE until
//! the connect timeout, to fail as if the network were at fault.
use super::{Failure, StopCode};
use crate::media::video::VideoCodec;

/// One media section of an SDP: its kind, port, payload types and their codec names (`a=rtpmap`).
struct Section<'a> {
    kind: &'a str,
    port: &'a str,
    payload_types: Vec<&'a str>,
    codecs: Vec<(&'a str, &'a str)>,
}

fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_whitespace();
            let (kind, port) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            out.push(Section {
                kind,
                port,
                payload_types: words.skip(1).collect(),
                codecs: Vec::new(),
            });
        } else if let (Some(rtpmap), Some(section)) =
            (line.strip_prefix("a=rtpmap:"), out.last_mut())
        {
            if let Some((pt, codec)) = rtpmap.split_once(' ') {
                section
                    .codecs
                    .push((pt, codec.split('/').next().unwrap_or("")));
            }
        }
    }
    out
}

impl Section<'_> {
    fn codec_of(&self, pt: &str) -> Option<&str> {
        self.codecs.iter().find(|(p, _)| *p == pt).map(|(_, c)| *c)
    }

    /// The payload types this section names for `codec`.
    fn payload_types_of(&self, codec: &str) -> Vec<&str> {
        (self.payload_types.iter().copied())
            .filter(|pt| {
                self.codec_of(pt)
                    .is_some_and(|c| c.eq_ignore_ascii_case(codec))
            })
            .collect()
    }
}

/// What `offer` sends, as a streamer reads it: "H.264 + Opus", "AV1 + Opus".
pub fn offered_media(offer: &str) -> String {
    let kinds: Vec<String> = (sections(offer).iter())
        .filter_map(|s| Some((s.kind, s.codecs.first()?.1)))
        .map(|(kind, codec)| match kind {
            "audio" if codec.eq_ignore_ascii_case("opus") => "Opus".to_string(),
            _ => video_label(codec).to_string(),
        })
        .collect();
    kinds.join(" + ")
}

/// A video codec's name as a streamer reads it (H.264, HEVC, AV1), from its SDP encoding name.
fn video_label(rtp_name: &str) -> &str {
    VideoCodec::from_rtp_name(rtp_name).map_or(rtp_name, |c| c.label())
}

/// Whether `answer` takes what `offer` sends; the failure the streamer reads otherwise.
pub fn check_answer(offer: &str, answer: &str) -> Result<(), Failure> {
    if !answer.lines().any(|l| l.starts_with("a=fingerprint:")) {
        return Err(Failure::new(
            StopCode::ConnectFailed,
            "The server's answer is invalid: it has no DTLS fingerprint (a=fingerprint), so the connection could \
             not be secured",
        ));
    }
    let answered = sections(answer);
    for offered in sections(offer) {
        let (codec, what) = match offered.kind {
            // The one video codec the offer sends (its first; RTX repairs it).
            "video" => {
                let Some(&(_, codec)) = offered.codecs.first() else {
                    continue;
                };
                (codec, format!("the video ({})", video_label(codec)))
            }
            "audio" => ("opus", "the audio (Opus)".to_string()),
            _ => continue,
        };
        let Some(section) = answered.iter().find(|s| s.kind == offered.kind) else {
            return Err(Failure::new(
                StopCode::Unsupported,
                format!(
                    "The server's answer has no {} section: it does not take {what}",
                    offered.kind
                ),
            ));
        };
        if section.port == "0" {
            return Err(Failure::new(
                StopCode::Unsupported,
                format!(
                    "The server refused {what}: its answer rejects the {} section",
                    offered.kind
                ),
            ));
        }
        let wanted = offered.payload_types_of(codec);
        // One of the offer's payload types for the codec, still that codec in the answer (an answer may leave the
        // rtpmap out).
        let takes = |pt: &&str| {
            wanted.contains(pt)
                && section
                    .codec_of(pt)
                    .is_none_or(|c| c.eq_ignore_ascii_case(codec))
        };
        if section.payload_types.iter().any(takes) {
            continue;
        }
        let never_offered: Vec<&str> = (section.payload_types.iter().copied())
            .filter(|pt| !offered.payload_types.contains(pt))
            .collect();
        return Err(if never_offered.is_empty() {
            let named: Vec<&str> = (section.payload_types.iter())
                .filter_map(|pt| section.codec_of(pt))
                .collect();
            Failure::new(
                StopCode::Unsupported,
                format!(
                    "The server does not take {what}: its answer names {}",
                    match named.is_empty() {
                        true => "no codec".to_string(),
                        false => named.join(", "),
                    }
                ),
            )
        } else {
            Failure::new(
                StopCode::ConnectFailed,
                format!(
                    "The server's answer is invalid: its {} section uses payload type(s) {} that the offer never \
                     named",
                    offered.kind,
                    never_offered.join(", ")
                ),
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=rtpmap:102 H264/90000\r\n\
        a=rtpmap:103 rtx/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

    fn answer(video: &str, audio: &str) -> String {
        format!("v=0\r\na=fingerprint:sha-256 AA:BB\r\n{video}{audio}")
    }

    const VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
    const AUDIO: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

    fn refused(answer: &str) -> (StopCode, String) {
        let f = check_answer(OFFER, answer).unwrap_err();
        (f.code, f.message)
    }

    #[test]
    fn an_answer_taking_h264_and_opus_from_the_offer_is_fine() {
        assert_eq!(check_answer(OFFER, &answer(VIDEO, AUDIO)), Ok(()));
        // Case and the RTX payload type beside it do not matter.
        let v = "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=rtpmap:102 h264/90000\r\na=rtpmap:103 rtx/90000\r\n";
        assert_eq!(check_answer(OFFER, &answer(v, AUDIO)), Ok(()));
    }

    #[test]
    fn a_rejected_or_missing_section_is_a_refusal_naming_the_codec() {
        let (code, m) = refused(&answer(&VIDEO.replace("video 9", "video 0"), AUDIO));
        assert_eq!(code, StopCode::Unsupported);
        assert_eq!(
            m,
            "The server refused the video (H.264): its answer rejects the video section"
        );
        let (code, m) = refused(&answer(VIDEO, ""));
        assert_eq!(code, StopCode::Unsupported);
        assert!(m.contains("no audio section"), "{m}");
    }

    #[test]
    fn an_answer_without_a_fingerprint_is_invalid() {
        let (code, m) =
            refused(&answer(VIDEO, AUDIO).replace("a=fingerprint:sha-256 AA:BB\r\n", ""));
        assert_eq!(code, StopCode::ConnectFailed);
        assert!(m.contains("no DTLS fingerprint"), "{m}");
    }

    #[test]
    fn a_codec_the_server_chose_instead_is_named() {
        let (code, m) = refused(&answer(&VIDEO.replace("H264", "VP8"), AUDIO));
        assert_eq!(code, StopCode::Unsupported);
        assert_eq!(
            m,
            "The server does not take the video (H.264): its answer names VP8"
        );
    }

    #[test]
    fn the_offered_video_codec_is_the_one_named_when_refused() {
        for (rtp, label) in [("AV1", "AV1"), ("H265", "HEVC")] {
            let offer = OFFER.replace("H264", rtp);
            let f = check_answer(&offer, &answer(VIDEO, AUDIO)).unwrap_err();
            assert_eq!(f.code, StopCode::Unsupported);
            assert_eq!(
                f.message,
                format!("The server does not take the video ({label}): its answer names H264")
            );
            let taken = answer(&VIDEO.replace("H264", rtp), AUDIO);
            assert_eq!(check_answer(&offer, &taken), Ok(()));
        }
    }

    #[test]
    fn the_offer_is_named_by_its_codecs() {
        assert_eq!(offered_media(OFFER), "H.264 + Opus");
        assert_eq!(offered_media(&OFFER.replace("H264", "AV1")), "AV1 + Opus");
        assert_eq!(offered_media(&OFFER.replace("H264", "H265")), "HEVC + Opus");
    }

    #[test]
    fn payload_types_never_offered_make_the_answer_invalid() {
        let (code, m) = refused(&answer(&VIDEO.replace("102", "121"), AUDIO));
        assert_eq!(code, StopCode::ConnectFailed);
        assert!(
            m.contains("payload type(s) 121 that the offer never named"),
            "{m}"
        );
    }
}
