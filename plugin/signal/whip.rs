//! WHIP (RFC 9725) as pure functions: what the offer request carries, and what the server's answer means —
//! the session resource URL, the SDP answer, ICE servers from `Link` headers, and readable errors with the OBS stop
//! code that fits each failure. No sockets here; `crate::transport` performs the requests.
use super::{Failure, StopCode};
use crate::secret::Secret;
use url::Url;

/// Largest response body we read from a WHIP server (an SDP answer is a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Redirects (307/308) followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// An ICE server announced by the WHIP server (`Link: <turn:…>; rel="ice-server"; username=…; credential=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: Secret,
    pub credential: Secret,
}

/// A created WHIP session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhipSession {
    /// The session resource (absolute), for PATCH and DELETE.
    pub resource: String,
    pub answer_sdp: String,
    pub etag: Option<String>,
    pub ice_servers: Vec<IceServer>,
    /// The 201's `Accept-Patch` names trickle ICE fragments (PATCH for candidates and ICE restarts).
    pub accepts_patch: bool,
}

/// Checks the endpoint URL a streamer typed before anything is sent.
pub fn validate_endpoint(url: &str) -> Result<Url, Failure> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        Failure::new(
            StopCode::BadPath,
            format!("The server URL is not a valid URL ({e}): check Settings → Stream"),
        )
    })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Failure::new(
                StopCode::BadPath,
                format!("The server URL must start with https:// or http://, not {other}://"),
            ))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Failure::new(
            StopCode::BadPath,
            "The server URL has no host",
        ));
    }
    Ok(parsed)
}

/// A URL fit for logs: no user info, no query (some servers put tokens there), no fragment.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            if had_query {
                format!("{u}?…")
            } else {
                u.to_string()
            }
        }
        Err(_) => "<invalid URL>".into(),
    }
}

/// Headers of the offer POST (RFC 9725 §4.2). The token is only ever put in this header, never logged.
pub fn offer_headers(bearer_token: &Secret) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("Content-Type", "application/sdp".to_string()),
        ("Accept", "application/sdp".to_string()),
    ];
    if !bearer_token.is_empty() {
        h.push(("Authorization", format!("Bearer {}", bearer_token.expose())));
    }
    h
}

/// Headers of the DELETE that ends the session.
pub fn delete_headers(bearer_token: &Secret) -> Vec<(&'static str, String)> {
    offer_headers(bearer_token)
        .into_iter()
        .filter(|(k, _)| *k == "Authorization")
        .collect()
}

/// The media type of trickle ICE and ICE restart fragments (RFC 8840), sent with PATCH (RFC 9725 §4.3).
pub const TRICKLE_MEDIA_TYPE: &str = "application/trickle-ice-sdpfrag";

/// Whether a response's `Accept-Patch` says the server takes trickle ICE fragments.
pub fn accepts_trickle(headers: &[(String, String)]) -> bool {
    header(headers, "accept-patch").any(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(TRICKLE_MEDIA_TYPE))
    })
}

/// Headers of a trickle PATCH: the fragment's type, `If-Match` with the session's ETag when the server gave one
/// (RFC 9725 §4.3.1), and the token.
pub fn patch_headers(bearer_token: &Secret, etag: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = vec![("Content-Type", TRICKLE_MEDIA_TYPE.to_string())];
    if let Some(etag) = etag {
        h.push(("If-Match", etag.to_string()));
    }
    h.extend(delete_headers(bearer_token));
    h
}

/// What the answer to a trickle PATCH means.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchOutcome {
    Accepted,
    /// 405/501 (or 400/415 for the media type): the server takes no trickle; send no more fragments.
    Unsupported,
    /// Anything else (412: the ETag no longer matches, 404: the session is gone…).
    Refused(u16),
}

pub fn interpret_patch_status(status: u16) -> PatchOutcome {
    match status {
        200..=299 => PatchOutcome::Accepted,
        405 | 501 | 415 => PatchOutcome::Unsupported,
        s => PatchOutcome::Refused(s),
    }
}

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

/// `If-Match` of an ICE restart PATCH: RFC 9725 §4.4 requires `*` (the client cannot know whether the ETag
/// still holds).
pub const RESTART_IF_MATCH: &str = "*";

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

/// The server's error body as something safe to show: printable, one line, at most 300 characters.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if clean.chars().count() > 300 {
        clean.chars().take(300).collect::<String>() + "…"
    } else {
        clean
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(move |(k, _)| k.to_ascii_lowercase() == name)
        .map(|(_, v)| v.as_str())
}

/// Seconds from a `Retry-After` header given in seconds.
pub fn retry_after_secs(headers: &[(String, String)]) -> Option<u64> {
    header(headers, "retry-after")
        .next()
        .and_then(|v| v.trim().parse().ok())
}

/// Interprets the response to the offer POST. `final_url` is the URL that answered (after redirects), against
/// which a relative `Location` is resolved.
pub fn interpret_offer_response(
    final_url: &Url,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<WhipSession, Failure> {
    let server_says = || {
        let b = body_excerpt(body);
        if b.is_empty() {
            String::new()
        } else {
            format!(" The server said: {b}")
        }
    };
    match status {
        200 | 201 => {}
        400 => {
            return Err(Failure::new(
                StopCode::ConnectFailed,
                format!("The WHIP server rejected the stream offer (HTTP 400).{}", server_says()),
            ))
        }
        401 | 403 => {
            return Err(Failure::new(
                StopCode::InvalidStream,
                format!(
                    "The WHIP server refused the bearer token (HTTP {status}): check the token in Settings → Stream.{}",
                    server_says()
                ),
            ))
        }
        404 | 410 => {
            return Err(Failure::new(
                StopCode::BadPath,
                format!("No WHIP endpoint at this URL (HTTP {status}): check the server URL.{}", server_says()),
            ))
        }
        415 | 422 | 488 => {
            return Err(Failure::new(
                StopCode::Unsupported,
                format!("The WHIP server cannot take H.264 + Opus as offered (HTTP {status}).{}", server_says()),
            ))
        }
        429 | 503 => {
            let retry = retry_after_secs(headers).map(|s| format!(" It asks to retry in {s} s.")).unwrap_or_default();
            return Err(Failure::new(
                StopCode::ConnectFailed,
                format!("The WHIP server is busy (HTTP {status}).{retry}{}", server_says()),
            ));
        }
        300..=399 => {
            return Err(Failure::new(
                StopCode::BadPath,
                format!("The WHIP server redirected without a usable target (HTTP {status})"),
            ))
        }
        _ => {
            return Err(Failure::new(
                StopCode::ConnectFailed,
                format!("The WHIP server failed (HTTP {status}).{}", server_says()),
            ))
        }
    }
    let location = header(headers, "location").next().map(str::trim).filter(|l| !l.is_empty()).ok_or_else(|| {
        Failure::new(
            StopCode::ConnectFailed,
            "The WHIP server accepted the offer but sent no Location header, so the session could not be managed",
        )
    })?;
    let resource = final_url.join(location).map_err(|e| {
        Failure::new(
            StopCode::ConnectFailed,
            format!("The WHIP server sent a bad Location ({e})"),
        )
    })?;
    let answer_sdp = String::from_utf8(body.to_vec())
        .ok()
        .filter(|s| s.trim_start().starts_with("v=0"))
        .ok_or_else(|| {
            Failure::new(
                StopCode::ConnectFailed,
                "The WHIP server's answer is not an SDP document",
            )
        })?;
    Ok(WhipSession {
        resource: resource.to_string(),
        answer_sdp,
        etag: header(headers, "etag").next().map(|s| s.trim().to_string()),
        ice_servers: link_ice_servers(headers),
        accepts_patch: accepts_trickle(headers),
    })
}

/// ICE servers from all `Link` headers of a response (OPTIONS pre-flight or 201).
pub fn link_ice_servers(headers: &[(String, String)]) -> Vec<IceServer> {
    header(headers, "link")
        .flat_map(parse_link_ice_servers)
        .collect()
}

/// ICE servers from one `Link` header value (which may hold several comma-separated links), per RFC 9725 §4.6.
pub fn parse_link_ice_servers(value: &str) -> Vec<IceServer> {
    split_links(value)
        .into_iter()
        .filter_map(|link| {
            let link = link.trim();
            let (target, params) = link.strip_prefix('<')?.split_once('>')?;
            let mut rel_ice = false;
            let (mut username, mut credential) = (String::new(), String::new());
            for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = param.split_once('=').unwrap_or((param, ""));
                let v = v.trim().trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "rel" => {
                        rel_ice = v
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("ice-server"))
                    }
                    "username" => username = v,
                    "credential" => credential = v,
                    _ => {}
                }
            }
            let target = target.trim();
            let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|s| target.starts_with(s));
            (rel_ice && scheme_ok).then(|| IceServer {
                urls: vec![target.to_string()],
                username: username.into(),
                credential: credential.into(),
            })
        })
        .collect()
}

/// Splits on commas outside `<…>` and quotes.
fn split_links(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut angle, mut quote) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            '"' => quote = !quote,
            ',' if !angle && !quote => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn url() -> Url {
        Url::parse("https://sfu.example/whip/endpoint/room1").unwrap()
    }

    const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n";

    #[test]
    fn created_session_resolves_relative_location_and_reads_links() {
        let headers = h(&[
            ("Location", "../resource/abc"),
            ("ETag", "\"xyz\""),
            ("Link", "<stun:stun.example:3478>; rel=\"ice-server\""),
            ("link", "<turn:turn.example?transport=udp>; rel=\"ice-server\"; username=\"u\"; credential=\"p\"; credential-type=\"password\", <https://x>; rel=\"other\""),
        ]);
        let s = interpret_offer_response(&url(), 201, &headers, SDP).unwrap();
        assert_eq!(s.resource, "https://sfu.example/whip/resource/abc");
        assert_eq!(s.etag.as_deref(), Some("\"xyz\""));
        assert_eq!(s.ice_servers.len(), 2);
        assert_eq!(
            s.ice_servers[1].urls,
            vec!["turn:turn.example?transport=udp"]
        );
        assert_eq!(
            (
                s.ice_servers[1].username.expose(),
                s.ice_servers[1].credential.expose()
            ),
            ("u", "p")
        );
        assert!(
            !format!("{:?}", s.ice_servers).contains("\"p\""),
            "credentials never printed"
        );
        let abs =
            interpret_offer_response(&url(), 201, &h(&[("location", "https://other/r/1")]), SDP)
                .unwrap();
        assert_eq!(abs.resource, "https://other/r/1");
    }

    #[test]
    fn statuses_map_to_stop_codes_with_the_servers_words() {
        let cases = [
            (401, StopCode::InvalidStream, "bearer token"),
            (403, StopCode::InvalidStream, "bearer token"),
            (404, StopCode::BadPath, "No WHIP endpoint"),
            (500, StopCode::ConnectFailed, "failed (HTTP 500)"),
            (415, StopCode::Unsupported, "H.264 + Opus"),
        ];
        for (status, code, words) in cases {
            let e =
                interpret_offer_response(&url(), status, &[], b"room is\n closed\x07").unwrap_err();
            assert_eq!(e.code, code, "{status}");
            assert!(e.message.contains(words), "{status}: {}", e.message);
            assert!(
                e.message.contains("The server said: room is closed"),
                "{}",
                e.message
            );
        }
        let e =
            interpret_offer_response(&url(), 503, &h(&[("Retry-After", "30")]), b"").unwrap_err();
        assert_eq!(e.code, StopCode::ConnectFailed);
        assert!(e.message.contains("retry in 30 s"), "{}", e.message);
    }

    #[test]
    fn a_201_needs_a_location_and_an_sdp_answer() {
        let e = interpret_offer_response(&url(), 201, &[], SDP).unwrap_err();
        assert!(e.message.contains("no Location"), "{}", e.message);
        let e =
            interpret_offer_response(&url(), 201, &h(&[("Location", "/r")]), b"<html>oops</html>")
                .unwrap_err();
        assert!(e.message.contains("not an SDP"), "{}", e.message);
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let body = vec![b'x'; 5000];
        let e = interpret_offer_response(&url(), 500, &[], &body).unwrap_err();
        assert!(e.message.len() < 500);
    }

    #[test]
    fn urls_in_logs_carry_no_secrets() {
        assert_eq!(
            redact_url("https://u:p@h.example/whip?token=abc#x"),
            "https://h.example/whip?…"
        );
        assert_eq!(
            redact_url("https://h.example/whip"),
            "https://h.example/whip"
        );
    }

    #[test]
    fn endpoint_validation() {
        assert!(validate_endpoint("https://a.example/whip").is_ok());
        assert_eq!(
            validate_endpoint("rtmp://a/b").unwrap_err().code,
            StopCode::BadPath
        );
        assert_eq!(
            validate_endpoint("not a url").unwrap_err().code,
            StopCode::BadPath
        );
    }

    #[test]
    fn token_goes_only_in_the_authorization_header() {
        assert_eq!(offer_headers(&Secret::default()).len(), 2);
        let hs = offer_headers(&"s3cret".into());
        assert!(hs.contains(&("Authorization", "Bearer s3cret".to_string())));
        assert_eq!(
            delete_headers(&"s3cret".into()),
            vec![("Authorization", "Bearer s3cret".to_string())]
        );
        assert!(delete_headers(&Secret::default()).is_empty());
    }

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
    fn trickle_support_and_patch_answers() {
        let h = |v: &str| vec![("Accept-Patch".to_string(), v.to_string())];
        assert!(accepts_trickle(&h(
            "application/json, Application/Trickle-ICE-SDPFrag"
        )));
        assert!(!accepts_trickle(&h("application/json")));
        assert!(!accepts_trickle(&[]));
        let headers = patch_headers(&"t0k".into(), Some("\"xyz\""));
        assert!(headers.contains(&("If-Match", "\"xyz\"".to_string())));
        assert!(headers.contains(&("Content-Type", TRICKLE_MEDIA_TYPE.to_string())));
        assert!(headers.contains(&("Authorization", "Bearer t0k".to_string())));
        assert_eq!(interpret_patch_status(204), PatchOutcome::Accepted);
        assert_eq!(interpret_patch_status(405), PatchOutcome::Unsupported);
        assert_eq!(interpret_patch_status(501), PatchOutcome::Unsupported);
        assert_eq!(interpret_patch_status(412), PatchOutcome::Refused(412));
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
