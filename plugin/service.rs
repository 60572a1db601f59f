//! `rtc_studio_service`: what a streamer fills in under Settings → Stream — the WHIP endpoint URL and an optional
//! bearer token — and which output and codecs OBS should use with it.
use crate::obs::data::{Data, Settings};
use crate::obs::frontend;
use crate::obs::log;
use crate::obs::module::text;
use crate::obs::properties::Properties;
use crate::obs::service::{ServiceEndpoint, ServiceType};
use crate::settings::{self, BEARER_TOKEN, SERVER};
use std::ffi::CStr;

pub const SERVICE_ID: &CStr = c"rtc_studio_service";
/// The id OBS 30+ gives the "WHIP" entry of Settings → Stream (`server`, `bearer_token`).
pub const WHIP_SERVICE_ID: &CStr = c"whip_custom";
/// The output both services stream with.
pub const OUTPUT_ID: &CStr = c"rtc_studio_output";

pub struct RtcService;

/// OBS's "WHIP" service, for OBS builds without their own WebRTC output (every Debian build): same settings as
/// OBS's, streamed with our output. Registered only when no other module has registered `whip_custom`.
pub struct WhipService;

impl ServiceType for WhipService {
    const ID: &'static CStr = WHIP_SERVICE_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.WhipService";
    const OUTPUT_ID: &'static CStr = OUTPUT_ID;
    const PROTOCOL: &'static CStr = c"WHIP";

    fn defaults(settings: &Settings) {
        settings::apply_defaults(settings::WHIP, settings)
    }

    fn properties() -> Properties {
        settings::properties(settings::WHIP)
    }

    fn endpoint(settings: &Settings) -> ServiceEndpoint {
        settings::endpoint(settings)
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
        && frontend::add_tools_menu_item(
            &text(c"RtcStudio.MenuSettings"),
            crate::settings_dialog::open,
        )
    {
        log::info("added Tools menu entries to stream with RTC Studio and to open its settings");
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
            .set_string(SERVER.key, &server)
            .set_string(BEARER_TOKEN.key, &token);
    }
    match frontend::use_streaming_service(SERVICE_ID, &settings) {
        Ok(()) => {
            let s = settings.as_settings();
            let server = s.string(SERVER.key);
            log::info(&format!(
                "Tools → RTC Studio: streaming service is now RTC Studio (was {}; server {}, bearer token {})",
                previous.as_ref().map_or("none", |p| p.id.as_str()),
                if server.is_empty() { "not set".to_string() } else { crate::signal::whip::redact_url(&server) },
                if s.string(BEARER_TOKEN.key).is_empty() { "none" } else { "kept" },
            ));
        }
        Err(e) => log::error(&format!("Tools → RTC Studio: {e}")),
    }
}

/// What a streamer already typed that means the same to us: (WHIP URL, bearer token).
pub(crate) fn carried_over(service_id: &str, settings: &Settings) -> (String, String) {
    let server = settings.string(SERVER.key).trim().to_string();
    let web = server.starts_with("https://") || server.starts_with("http://");
    match service_id {
        _ if !web => (String::new(), String::new()),
        "rtmp_custom" => (server, settings.string("key").trim().to_string()),
        _ => (server, settings.string(BEARER_TOKEN.key).trim().to_string()),
    }
}

impl ServiceType for RtcService {
    const ID: &'static CStr = SERVICE_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.Service";
    const OUTPUT_ID: &'static CStr = OUTPUT_ID;
    const PROTOCOL: &'static CStr = c"WHIP";

    fn defaults(settings: &Settings) {
        settings::apply_defaults(settings::SERVICE, settings)
    }

    fn properties() -> Properties {
        settings::properties(settings::SERVICE)
    }

    fn endpoint(settings: &Settings) -> ServiceEndpoint {
        settings::endpoint(settings)
    }
}
