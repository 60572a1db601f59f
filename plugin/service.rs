//! `rtc_studio_service`: what a streamer fills in under Settings → Stream — the WHIP endpoint URL and an optional
//! bearer token — and which output and codecs OBS should use with it.
use crate::obs::data::{Data, Settings};
use crate::obs::frontend;
use crate::obs::log;
use crate::obs::module::text;
use crate::obs::properties::{Properties, TextKind};
use crate::obs::service::{ServiceEndpoint, ServiceType};
use std::ffi::CStr;

pub const SERVICE_ID: &CStr = c"rtc_studio_service";
/// The id OBS 30+ gives the "WHIP" entry of Settings → Stream (`server`, `bearer_token`).
pub const WHIP_SERVICE_ID: &CStr = c"whip_custom";
pub const SETTING_SERVER: &str = "server";
pub const SETTING_BEARER_TOKEN: &str = "bearer_token";
/// How the offer reaches the server: `whip` (default) or `janus` (Janus's VideoRoom REST API).
pub const SETTING_SIGNALLING: &str = "signalling";
pub const SIGNALLING_WHIP: &str = "whip";
pub const SIGNALLING_JANUS: &str = "janus";
pub const SETTING_JANUS_ROOM: &str = "janus_room";
pub const SETTING_JANUS_PIN: &str = "janus_pin";
pub const SETTING_JANUS_DISPLAY: &str = "janus_display";
/// STUN/TURN servers, one URL per line; their long-term credentials, or coturn's shared secret.
pub const SETTING_ICE_SERVERS: &str = "ice_servers";
pub const SETTING_ICE_USERNAME: &str = "ice_username";
pub const SETTING_ICE_CREDENTIAL: &str = "ice_credential";
pub const SETTING_TURN_SECRET: &str = "turn_secret";
/// Only relayed (TURN) candidates: hides the machine's addresses, or tests the TURN path.
pub const SETTING_RELAY_ONLY: &str = "ice_relay_only";

pub struct RtcService;

/// OBS's "WHIP" service, for OBS builds without their own WebRTC output (every Debian build): same settings as
/// OBS's, streamed with our output. Registered only when no other module has registered `whip_custom`.
pub struct WhipService;

impl ServiceType for WhipService {
    const ID: &'static CStr = WHIP_SERVICE_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.WhipService";
    const OUTPUT_ID: &'static CStr = crate::output::OUTPUT_ID;
    const PROTOCOL: &'static CStr = c"WHIP";

    fn defaults(settings: &Settings) {
        RtcService::defaults(settings)
    }

    fn properties() -> Properties {
        RtcService::whip_properties()
    }

    fn endpoint(settings: &Settings) -> ServiceEndpoint {
        RtcService::endpoint(settings)
    }
}

/// Once every module has registered: provide `whip_custom` where OBS has none, and, inside the OBS frontend, a
/// Tools menu entry that makes RTC Studio the streaming service.
pub fn after_all_modules_loaded() {
    if crate::obs::service::type_exists(WHIP_SERVICE_ID) {
        log::info("OBS has its own WHIP service; RTC Studio is chosen from Tools → RTC Studio");
    } else {
        crate::obs::service::register::<WhipService>();
        log::info("OBS has no WHIP service of its own: Settings → Stream → WHIP now streams with RTC Studio");
    }
    if frontend::available()
        && frontend::add_tools_menu_item(&text(c"RtcStudio.MenuUse"), use_rtc_studio)
    {
        log::info("added Tools menu entry to stream with RTC Studio");
    }
}

/// The Tools menu action: the frontend's streaming service becomes RTC Studio's, keeping the WHIP URL and bearer
/// token of the current service (OBS's WHIP service, or "Custom..." with an http(s) server and the token as its
/// stream key). Runs on OBS's UI thread; touches no network.
fn use_rtc_studio() {
    if frontend::streaming_active() {
        log::warn(
            "Tools → RTC Studio: stop streaming first; the streaming service was not changed",
        );
        return;
    }
    let mut settings = Data::new();
    let previous = frontend::streaming_service();
    if let Some(current) = &previous {
        if current.id == SERVICE_ID.to_string_lossy() {
            log::info("Tools → RTC Studio: already streaming with RTC Studio");
            return;
        }
        let (server, token) = carried_over(&current.id, &current.settings.as_settings());
        settings
            .set_string(SETTING_SERVER, &server)
            .set_string(SETTING_BEARER_TOKEN, &token);
    }
    match frontend::use_streaming_service(SERVICE_ID, &settings) {
        Ok(()) => {
            let s = settings.as_settings();
            let server = s.string(SETTING_SERVER);
            log::info(&format!(
                "Tools → RTC Studio: streaming service is now RTC Studio (was {}; server {}, bearer token {})",
                previous.as_ref().map_or("none", |p| p.id.as_str()),
                if server.is_empty() { "not set".to_string() } else { crate::signal::whip::redact_url(&server) },
                if s.string(SETTING_BEARER_TOKEN).is_empty() { "none" } else { "kept" },
            ));
        }
        Err(e) => log::error(&format!("Tools → RTC Studio: {e}")),
    }
}

/// What a streamer already typed that means the same to us: (WHIP URL, bearer token).
fn carried_over(service_id: &str, settings: &Settings) -> (String, String) {
    let server = settings.string(SETTING_SERVER).trim().to_string();
    let web = server.starts_with("https://") || server.starts_with("http://");
    match service_id {
        _ if !web => (String::new(), String::new()),
        "rtmp_custom" => (server, settings.string("key").trim().to_string()),
        _ => (
            server,
            settings.string(SETTING_BEARER_TOKEN).trim().to_string(),
        ),
    }
}

impl ServiceType for RtcService {
    const ID: &'static CStr = SERVICE_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.Service";
    const OUTPUT_ID: &'static CStr = crate::output::OUTPUT_ID;
    const PROTOCOL: &'static CStr = c"WHIP";

    fn defaults(settings: &Settings) {
        settings.set_default_string(SETTING_SERVER, "");
        settings.set_default_string(SETTING_BEARER_TOKEN, "");
    }

    fn properties() -> Properties {
        let mut p = RtcService::whip_properties();
        p.choice(
            SETTING_SIGNALLING,
            &text(c"RtcStudio.Signalling"),
            &[
                (&text(c"RtcStudio.Signalling.Whip"), SIGNALLING_WHIP),
                (&text(c"RtcStudio.Signalling.Janus"), SIGNALLING_JANUS),
            ],
        )
        .tooltip(&text(c"RtcStudio.Signalling.Tooltip"));
        p.text(
            SETTING_JANUS_ROOM,
            &text(c"RtcStudio.JanusRoom"),
            TextKind::Plain,
        );
        p.text(
            SETTING_JANUS_PIN,
            &text(c"RtcStudio.JanusPin"),
            TextKind::Password,
        );
        p.text(
            SETTING_JANUS_DISPLAY,
            &text(c"RtcStudio.JanusDisplay"),
            TextKind::Plain,
        );
        p.text(
            SETTING_ICE_SERVERS,
            &text(c"RtcStudio.IceServers"),
            TextKind::Multiline,
        )
        .tooltip(&text(c"RtcStudio.IceServers.Tooltip"));
        p.text(
            SETTING_ICE_USERNAME,
            &text(c"RtcStudio.IceUsername"),
            TextKind::Plain,
        );
        p.text(
            SETTING_ICE_CREDENTIAL,
            &text(c"RtcStudio.IceCredential"),
            TextKind::Password,
        );
        p.text(
            SETTING_TURN_SECRET,
            &text(c"RtcStudio.TurnSecret"),
            TextKind::Password,
        )
        .tooltip(&text(c"RtcStudio.TurnSecret.Tooltip"));
        p.bool(SETTING_RELAY_ONLY, &text(c"RtcStudio.RelayOnly"));
        p
    }

    fn endpoint(settings: &Settings) -> ServiceEndpoint {
        ServiceEndpoint {
            url: settings.string(SETTING_SERVER).trim().to_string(),
            bearer_token: settings.string(SETTING_BEARER_TOKEN).trim().to_string(),
        }
    }
}

impl RtcService {
    fn whip_properties() -> Properties {
        let mut p = Properties::new();
        p.text(SETTING_SERVER, &text(c"RtcStudio.Server"), TextKind::Plain)
            .tooltip(&text(c"RtcStudio.Server.Tooltip"));
        p.text(
            SETTING_BEARER_TOKEN,
            &text(c"RtcStudio.BearerToken"),
            TextKind::Password,
        )
        .tooltip(&text(c"RtcStudio.BearerToken.Tooltip"));
        p
    }
}
