//! Trickle ICE and ICE restart fragments (RFC 8840, carried by WHIP's PATCH, RFC 9725 §4.3–4.4), sans-IO: the
//! fragment for candidates gathered after the offer, the fragment of a restarted offer, and the server's answer
//! with the credentials and candidates of its restart fragment applied.

/// A trickle ICE fragment (RFC 8840) for candidates gathered after `offer_sdp` was sent: the offer's ICE
/// credentials, its first media section (the BUNDLE transport) with its mid, the new `a=candidate:` lines
/// (`candidate:…` strings, with or without the `a=`), and `a=end-of-candidates` when gathering has finished.
/// None when the offer has no media section or credentials.
pub fn trickle_fragment(offer_sdp: &str, candidates: &[String], end: bool) -> Option<String> {
    let lines: Vec<&str> = offer_sdp.lines().map(str::trim_end).collect();
    let first_m = lines.iter().position(|l| l.starts_with("m="))?;
    let find = |prefix: &str| {
        // Media-level first (the first section), then session-level.
        let section_end = lines[first_m + 1..]
            .iter()
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |i| first_m + 1 + i);
        lines[first_m + 1..section_end]
            .iter()
            .chain(lines[..first_m].iter())
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
    };
    let (ufrag, pwd) = (find("a=ice-ufrag:")?, find("a=ice-pwd:")?);
    let mut frag = format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n");
    if let Some(group) = lines.iter().find(|l| l.starts_with("a=group:BUNDLE")) {
        frag += &format!("{group}\r\n");
    }
    frag += &format!("{}\r\n", lines[first_m]);
    if let Some(mid) = find("a=mid:") {
        frag += &format!("a=mid:{mid}\r\n");
    }
    for c in candidates {
        let c = c.trim();
        let c = c.strip_prefix("a=").unwrap_or(c);
        frag += &format!("a={c}\r\n");
    }
    if end {
        frag += "a=end-of-candidates\r\n";
    }
    Some(frag)
}

/// The `candidate:…` attributes of an SDP (without the `a=`), in order.
pub fn sdp_candidates(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .map(str::to_string)
        .collect()
}

/// The PATCH fragment of an ICE restart (RFC 9725 §4.4): the restarted offer's new credentials, its BUNDLE
/// section and every candidate gathered for it, then `end-of-candidates`.
pub fn restart_fragment(restarted_offer_sdp: &str) -> Option<String> {
    trickle_fragment(
        restarted_offer_sdp,
        &sdp_candidates(restarted_offer_sdp),
        true,
    )
}

/// The ICE credentials (`ice-ufrag`, `ice-pwd`) and candidates of a trickle ICE fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceFragment {
    pub ufrag: String,
    pub pwd: String,
    pub candidates: Vec<String>,
}

pub fn parse_ice_fragment(fragment: &str) -> Option<IceFragment> {
    let value = |prefix: &str| {
        fragment
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::to_string)
    };
    Some(IceFragment {
        ufrag: value("a=ice-ufrag:")?,
        pwd: value("a=ice-pwd:")?,
        candidates: sdp_candidates(fragment),
    })
}

/// The server's answer as it stands after an ICE restart it accepted: `answer_sdp` with the fragment's
/// credentials in place of the old ones and its candidates in place of the old candidates (in the first media
/// section: the BUNDLE transport), followed by `end-of-candidates`. Everything else stays as negotiated
/// (RFC 9725 §4.4: no renegotiation of non-ICE information). None when the fragment has no credentials or the
/// answer no media section.
pub fn apply_ice_fragment(answer_sdp: &str, fragment: &str) -> Option<String> {
    let frag = parse_ice_fragment(fragment)?;
    let mut out = String::with_capacity(answer_sdp.len() + 256);
    let mut media_sections = 0;
    let mut saw_media = false;
    let flush = |out: &mut String, media_sections: usize| {
        if media_sections == 1 {
            for c in &frag.candidates {
                out.push_str(&format!("a={c}\r\n"));
            }
            out.push_str("a=end-of-candidates\r\n");
        }
    };
    for line in answer_sdp.lines().map(str::trim_end) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            flush(&mut out, media_sections);
            media_sections += 1;
            saw_media = true;
        }
        if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{}\r\n", frag.ufrag));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{}\r\n", frag.pwd));
        } else {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    flush(&mut out, media_sections);
    saw_media.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trickle_fragments_carry_credentials_the_bundle_section_and_candidates() {
        let offer = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4\r\n\
                     a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n\
                     m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4\r\n";
        let relay = "candidate:2 1 udp 16777215 198.51.100.7 49170 typ relay raddr 0.0.0.0 rport 0"
            .to_string();
        let frag = trickle_fragment(offer, std::slice::from_ref(&relay), true).unwrap();
        assert_eq!(
            frag,
            "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
             a=mid:0\r\na=candidate:2 1 udp 16777215 198.51.100.7 49170 typ relay raddr 0.0.0.0 rport 0\r\n\
             a=end-of-candidates\r\n"
        );
        // Session-level credentials are found too; no media section, no fragment.
        let session_level =
            "v=0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n";
        assert!(trickle_fragment(session_level, &[], true)
            .unwrap()
            .starts_with("a=ice-ufrag:u\r\na=ice-pwd:p\r\nm=audio"));
        assert_eq!(trickle_fragment("v=0\r\n", &[relay], false), None);
    }

    #[test]
    fn ice_restart_fragments_and_the_restarted_answer() {
        let offer = "v=0\r\no=- 1 3 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:NEWu\r\na=ice-pwd:NEWpassword\r\n\
                     a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n\
                     a=candidate:2 1 udp 16777215 198.51.100.7 49170 typ relay raddr 0.0.0.0 rport 0\r\n\
                     m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ice-ufrag:NEWu\r\na=ice-pwd:NEWpassword\r\n";
        let frag = restart_fragment(offer).unwrap();
        assert!(frag.starts_with("a=ice-ufrag:NEWu\r\na=ice-pwd:NEWpassword\r\n"));
        assert_eq!(frag.matches("a=candidate:").count(), 2);
        assert!(frag.ends_with("a=end-of-candidates\r\n"));
        assert_eq!(
            parse_ice_fragment(&frag).unwrap().candidates,
            sdp_candidates(offer)
        );

        let answer = "v=0\r\no=- 9 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpassword\r\n\
                      a=candidate:7 1 udp 2122260223 203.0.113.5 40000 typ host\r\na=end-of-candidates\r\n\
                      a=rtcp-mux\r\n\
                      m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ice-ufrag:old\r\na=ice-pwd:oldpassword\r\n\
                      a=candidate:7 1 udp 2122260223 203.0.113.5 40000 typ host\r\n";
        let server = "a=ice-ufrag:srv2\r\na=ice-pwd:serverpassword2\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\
                      a=mid:0\r\na=candidate:8 1 udp 2122260223 203.0.113.6 40002 typ host\r\na=end-of-candidates\r\n";
        let restarted = apply_ice_fragment(answer, server).unwrap();
        assert!(!restarted.contains("old"), "{restarted}");
        assert_eq!(restarted.matches("a=ice-ufrag:srv2").count(), 2);
        assert_eq!(restarted.matches("a=ice-pwd:serverpassword2").count(), 2);
        // The new candidate once, in the first (BUNDLE) section; the rest of the answer untouched.
        assert_eq!(restarted.matches("a=candidate:").count(), 1);
        let video = &restarted[..restarted.find("m=audio").unwrap()];
        assert!(video.ends_with("a=rtcp-mux\r\na=candidate:8 1 udp 2122260223 203.0.113.6 40002 typ host\r\na=end-of-candidates\r\n"));
        assert_eq!(restarted.matches("a=end-of-candidates").count(), 1);
        assert!(restarted.starts_with("v=0\r\no=- 9 2 IN IP4"));
        // A fragment without credentials, or an answer without media, is refused.
        assert_eq!(
            apply_ice_fragment(answer, "a=candidate:1 1 udp 1 1.2.3.4 5 typ host"),
            None
        );
        assert_eq!(apply_ice_fragment("v=0\r\n", server), None);
    }
}
