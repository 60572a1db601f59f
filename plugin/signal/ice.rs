//! STUN/TURN servers a streamer configures, sans-IO: one URL per line, long-term credentials, or coturn's REST-style
//! time-limited credentials computed from a shared secret (`use-auth-secret`): username `<expiry>:<name>`,
//! password base64(HMAC-SHA1(secret, username)). Time is an argument.
use super::whip::IceServer;
use super::{Failure, StopCode};
use crate::secret::Secret;
use base64::Engine;

/// How long REST credentials stay valid.
pub const TURN_CREDENTIAL_TTL_S: u64 = 24 * 3600;

/// What the streamer typed for ICE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceSettings {
    /// One `stun:`/`turn:`/`turns:` URL per line (commas also separate).
    pub urls: String,
    pub username: String,
    pub credential: Secret,
    /// coturn's `static-auth-secret`: if set, username and credential are computed from it.
    pub turn_secret: Secret,
    /// Only relayed (TURN) candidates: needs at least one TURN URL.
    pub relay_only: bool,
}

/// coturn REST API credentials for `name` valid until `now_unix + ttl`.
pub fn rest_credentials(secret: &str, name: &str, now_unix: u64, ttl: u64) -> (String, String) {
    let expiry = now_unix + ttl;
    let username = if name.is_empty() {
        expiry.to_string()
    } else {
        format!("{expiry}:{name}")
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = ring::hmac::sign(&key, username.as_bytes());
    (
        username,
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
    )
}

/// A TURN server reached over a byte stream: `turn:host[:port]?transport=tcp` (port 3478) or `turns:host[:port]`
/// (TLS, port 5349; RFC 7065). Our WebRTC stack speaks TURN over UDP only, so these go through a bridge
/// (`crate::transport::turn_bridge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTurnUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// The stream TURN server a URL names; None for UDP TURN, STUN, or a URL that is not TURN at all.
pub fn stream_turn_url(url: &str) -> Option<StreamTurnUrl> {
    let (scheme, hostport, query) = url_parts(url.trim())?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "turns" => true,
        "turn" => false,
        _ => return None,
    };
    let transport = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("transport="))
        .map(str::to_ascii_lowercase);
    match (tls, transport.as_deref()) {
        (false, Some("tcp")) | (true, None | Some("tcp")) => {}
        _ => return None,
    }
    let (host, port) = host_port(hostport, if tls { 5349 } else { 3478 })?;
    Some(StreamTurnUrl { host, port, tls })
}

/// `scheme:host[:port][?query]` in its three parts (None: no scheme).
fn url_parts(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    Some((scheme, hostport, query))
}

/// `host[:port]` or `[IPv6][:port]`: the host and the port (`default_port` when none is given); None when the host is
/// empty or not a name or address, or the port is not 1–65535.
fn host_port(hostport: &str, default_port: u16) -> Option<(String, u16)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        h.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (hostport, default_port),
        }
    };
    let name = |h: &str| {
        (h.chars()).all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !h.is_empty()
    };
    (hostport.starts_with('[') || name(host)).then(|| (host.to_string(), port))
}

/// The configured servers; an error names the line a streamer must fix.
pub fn ice_servers(settings: &IceSettings, now_unix: u64) -> Result<Vec<IceServer>, Failure> {
    let urls: Vec<String> = settings
        .urls
        .split(['\n', ','])
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    for u in &urls {
        let parts = url_parts(u).filter(|(scheme, hostport, query)| {
            let scheme = scheme.to_ascii_lowercase();
            matches!(scheme.as_str(), "stun" | "stuns" | "turn" | "turns")
                && !(hostport.is_empty() && query.is_empty())
        });
        let Some((_, hostport, _)) = parts else {
            return Err(Failure::new(
                StopCode::BadPath,
                format!("ICE server {u:?} is not a stun:, turn: or turns: URL (e.g. turn:turn.example.com:3478)"),
            ));
        };
        if host_port(hostport, 3478).is_none() {
            return Err(Failure::new(
                StopCode::BadPath,
                format!(
                    "ICE server {u:?}: {hostport:?} is not a host with an optional port from 1 to 65535 \
                     (e.g. turn:turn.example.com:3478)"
                ),
            ));
        }
    }
    let has_turn = urls.iter().any(|u| {
        let u = u.to_ascii_lowercase();
        u.starts_with("turn:") || u.starts_with("turns:")
    });
    if settings.relay_only && !has_turn {
        return Err(Failure::new(
            StopCode::BadPath,
            "\"Relay only\" needs a TURN server (turn:host:port, turn:host:port?transport=tcp or turns:host:port) \
             under Settings → Stream",
        ));
    }
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let (username, credential) = if settings.turn_secret.is_empty() {
        (settings.username.trim().into(), settings.credential.clone())
    } else {
        let (user, password) = rest_credentials(
            settings.turn_secret.expose(),
            settings.username.trim(),
            now_unix,
            TURN_CREDENTIAL_TTL_S,
        );
        (user.into(), password.into())
    };
    Ok(vec![IceServer {
        urls,
        username,
        credential,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_coturns_formula() {
        // HMAC-SHA1("secret", "1700086400:obs") computed independently with `openssl dgst -sha1 -hmac secret -binary |
        // base64`.
        let (user, pass) = rest_credentials("secret", "obs", 1_700_000_000, 86_400);
        assert_eq!(user, "1700086400:obs");
        assert_eq!(pass, "6xYzFkXulsWJgPPkIViDZ8kINAI=");
        assert_eq!(rest_credentials("secret", "", 10, 5).0, "15");
    }

    #[test]
    fn urls_are_split_checked_and_share_the_credentials() {
        let s = IceSettings {
            urls: " stun:127.0.0.1:3478\nturn:127.0.0.1:3478?transport=udp , turn:h.example".into(),
            username: "u".into(),
            credential: "p".into(),
            ..Default::default()
        };
        let servers = ice_servers(&s, 0).unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(
            servers[0].urls,
            [
                "stun:127.0.0.1:3478",
                "turn:127.0.0.1:3478?transport=udp",
                "turn:h.example"
            ]
        );
        assert_eq!(
            (servers[0].username.expose(), servers[0].credential.expose()),
            ("u", "p")
        );
        assert!(ice_servers(&IceSettings::default(), 0).unwrap().is_empty());
        let bad = ice_servers(
            &IceSettings {
                urls: "http://x".into(),
                ..Default::default()
            },
            0,
        )
        .unwrap_err();
        assert_eq!(bad.code, StopCode::BadPath);
        assert!(bad.message.contains("http://x"));
        assert!(ice_servers(
            &IceSettings {
                urls: "turn:".into(),
                ..Default::default()
            },
            0
        )
        .is_err());
        let secret = IceSettings {
            urls: "turn:t".into(),
            turn_secret: "k".into(),
            ..Default::default()
        };
        assert!(ice_servers(&secret, 100).unwrap()[0]
            .username
            .expose()
            .starts_with(&(100 + TURN_CREDENTIAL_TTL_S).to_string()));
        assert!(!format!("{secret:?}").contains("\"k\""));
    }

    #[test]
    fn a_host_or_port_that_cannot_be_reached_is_named() {
        let urls = |urls: &str| {
            let s = IceSettings {
                urls: urls.into(),
                ..Default::default()
            };
            ice_servers(&s, 0)
        };
        // One run of the settings-dialog test typed the port with Shift still held (2026-12-05).
        for bad in [
            "turn:127.0.0.1:%$$##?transport=udp",
            "turn:h:0",
            "turn:h:65536",
            "stun:h:",
            "turn::3478",
            "turn:my host:3478",
            "turns:[2001:db8::1:5349",
            "turn:[not-v6]:3478",
        ] {
            let e = urls(&format!("stun:ok.example\n{bad}")).unwrap_err();
            assert_eq!(e.code, StopCode::BadPath, "{bad}");
            assert!(e.message.contains(&format!("{bad:?}")), "{bad}: {e:?}");
            assert!(e.message.contains("port from 1 to 65535"), "{e:?}");
        }
        for good in [
            "turn:127.0.0.1:3478?transport=udp",
            "stun:stun.l.google.com:19302",
            "turns:turn_1.example-net.org",
            "turn:[2001:db8::1]:3478?transport=tcp",
            "stun:[::1]",
        ] {
            assert!(urls(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn relay_only_needs_a_turn_url() {
        let relay = |urls: &str| IceSettings {
            urls: urls.into(),
            relay_only: true,
            ..Default::default()
        };
        for urls in ["", "stun:h:3478"] {
            let e = ice_servers(&relay(urls), 0).unwrap_err();
            assert_eq!(e.code, StopCode::BadPath);
            assert!(
                e.message.contains("\"Relay only\" needs a TURN server"),
                "{e:?}"
            );
        }
        for urls in ["turn:h:3478", "TURNS:h", "stun:h\nturn:h?transport=tcp"] {
            assert!(ice_servers(&relay(urls), 0).is_ok(), "{urls}");
        }
    }

    #[test]
    fn turn_over_tcp_and_tls_urls() {
        let tcp = |host: &str, port, tls| {
            Some(StreamTurnUrl {
                host: host.into(),
                port,
                tls,
            })
        };
        assert_eq!(
            stream_turn_url("turn:h.example:3478?transport=tcp"),
            tcp("h.example", 3478, false)
        );
        assert_eq!(
            stream_turn_url("TURN:h?transport=TCP"),
            tcp("h", 3478, false)
        );
        assert_eq!(
            stream_turn_url("turns:h.example"),
            tcp("h.example", 5349, true)
        );
        assert_eq!(
            stream_turn_url("turns:10.0.0.1:443?transport=tcp"),
            tcp("10.0.0.1", 443, true)
        );
        assert_eq!(
            stream_turn_url("turn:[2001:db8::1]:3478?transport=tcp"),
            tcp("2001:db8::1", 3478, false)
        );
        // UDP TURN, STUN and nonsense are not stream TURN.
        assert_eq!(stream_turn_url("turn:h:3478"), None);
        assert_eq!(stream_turn_url("turn:h:3478?transport=udp"), None);
        assert_eq!(stream_turn_url("turns:h?transport=udp"), None);
        assert_eq!(stream_turn_url("stun:h:3478"), None);
        assert_eq!(stream_turn_url("turn::3478?transport=tcp"), None);
        assert_eq!(stream_turn_url("turn:h:port?transport=tcp"), None);
    }
}
