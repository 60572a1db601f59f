//! WHIP (RFC 9725) as pure functions: what the offer request carries, and what the server's answer means —
//! the session resource URL, the SDP answer, ICE servers from `Link` headers, and readable errors with the OBS stop
//! code that fits each failure. No sockets here; `crate::transport` performs the requests. The SDP fragments that
//! PATCH carries are built and read in [`super::sdp_fragment`].
pub use super::sdp_fragment::{
    apply_ice_fragment, parse_ice_fragment, restart_fragment, sdp_candidates, trickle_fragment,
    IceFragment,
};
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

/// `If-Match` of an ICE restart PATCH: RFC 9725 §4.4 requires `*` (the client cannot know whether the ETag
/// still holds).
pub const RESTART_IF_MATCH: &str = "*";

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
    offered: &str,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<WhipSession, Failure> {
    if !matches!(status, 200 | 201) {
        return Err(offer_refused(offered, status, headers, body));
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

/// Why an offer (of `offered`, e.g. "AV1 + Opus") was not taken, with the OBS stop code that fits and the
/// server's own words.
fn offer_refused(offered: &str, status: u16, headers: &[(String, String)], body: &[u8]) -> Failure {
    let b = body_excerpt(body);
    let said = if b.is_empty() {
        String::new()
    } else {
        format!(" The server said: {b}")
    };
    let (code, message) = match status {
        400 => (
            StopCode::ConnectFailed,
            "The WHIP server rejected the stream offer (HTTP 400).".to_string(),
        ),
        401 | 403 => (
            StopCode::InvalidStream,
            format!("The WHIP server refused the bearer token (HTTP {status}): check the token in Settings → Stream."),
        ),
        404 | 410 => (
            StopCode::BadPath,
            format!("No WHIP endpoint at this URL (HTTP {status}): check the server URL."),
        ),
        415 | 422 | 488 => (
            StopCode::Unsupported,
            format!("The WHIP server cannot take {offered} as offered (HTTP {status})."),
        ),
        429 | 503 => {
            let retry = retry_after_secs(headers).map(|s| format!(" It asks to retry in {s} s.")).unwrap_or_default();
            (StopCode::ConnectFailed, format!("The WHIP server is busy (HTTP {status}).{retry}"))
        }
        300..=399 => {
            return Failure::new(
                StopCode::BadPath,
                format!("The WHIP server redirected without a usable target (HTTP {status})"),
            )
        }
        _ => (StopCode::ConnectFailed, format!("The WHIP server failed (HTTP {status}).")),
    };
    Failure::new(code, format!("{message}{said}"))
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
        let s = interpret_offer_response(&url(), "H.264 + Opus", 201, &headers, SDP).unwrap();
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
        let abs = interpret_offer_response(
            &url(),
            "H.264 + Opus",
            201,
            &h(&[("location", "https://other/r/1")]),
            SDP,
        )
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
            (
                415,
                StopCode::Unsupported,
                "cannot take H.264 + Opus as offered",
            ),
        ];
        for (status, code, words) in cases {
            let e = interpret_offer_response(
                &url(),
                "H.264 + Opus",
                status,
                &[],
                b"room is\n closed\x07",
            )
            .unwrap_err();
            assert_eq!(e.code, code, "{status}");
            assert!(e.message.contains(words), "{status}: {}", e.message);
            assert!(
                e.message.contains("The server said: room is closed"),
                "{}",
                e.message
            );
        }
        let e = interpret_offer_response(
            &url(),
            "H.264 + Opus",
            503,
            &h(&[("Retry-After", "30")]),
            b"",
        )
        .unwrap_err();
        assert_eq!(e.code, StopCode::ConnectFailed);
        assert!(e.message.contains("retry in 30 s"), "{}", e.message);
    }

    #[test]
    fn a_201_needs_a_location_and_an_sdp_answer() {
        let e = interpret_offer_response(&url(), "H.264 + Opus", 201, &[], SDP).unwrap_err();
        assert!(e.message.contains("no Location"), "{}", e.message);
        let e = interpret_offer_response(
            &url(),
            "H.264 + Opus",
            201,
            &h(&[("Location", "/r")]),
            b"<html>oops</html>",
        )
        .unwrap_err();
        assert!(e.message.contains("not an SDP"), "{}", e.message);
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let body = vec![b'x'; 5000];
        let e = interpret_offer_response(&url(), "H.264 + Opus", 500, &[], &body).unwrap_err();
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
}
