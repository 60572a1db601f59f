//! `rtc_studio_service`: what a streamer fills in under Settings → Stream — the WHIP endpoint URL and an optional
//! bearer token — and which output and codecs OBS should use with it.
use crate::obs::data::Settings;
use crate::obs::module::text;
use crate::obs::properties::{Properties, TextKind};
use crate::obs::service::{ServiceEndpoint, ServiceType};
use std::ffi::CStr;

pub const SERVICE_ID: &CStr = c"rtc_studio_service";
pub const SETTING_SERVER: &str = "server";
pub const SETTING_BEARER_TOKEN: &str = "bearer_token";

pub struct RtcService;

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

    fn endpoint(settings: &Settings) -> ServiceEndpoint {
        ServiceEndpoint {
            url: settings.string(SETTING_SERVER).trim().to_string(),
            bearer_token: settings.string(SETTING_BEARER_TOKEN).trim().to_string(),
        }
    }
}
