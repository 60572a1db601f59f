//! Tools → "RTC Studio settings…": every service and output setting in OBS's own properties dialog, opened for a
//! private source of ours whose settings are a copy of the profile's streaming service. OK saves them as the
//! profile's streaming service (RTC Studio's) for the next Start Streaming; Cancel changes nothing (the dialog
//! defers every change to OK). While OBS streams, the dialog shows the settings greyed out and saves nothing.
use crate::obs::data::{Data, Settings};
use crate::obs::frontend;
use crate::obs::log;
use crate::obs::module::text;
use crate::obs::properties::{Check, Properties, TextKind};
use crate::obs::source::{SettingsSourceType, Source};
use crate::service::SERVICE_ID;
use crate::settings::{self, Default, Setting};
use std::ffi::CStr;
use std::sync::Mutex;

pub const SOURCE_ID: &CStr = c"rtc_studio_settings";

/// The info text at the top of the dialog that names what is wrong with the values as typed.
const PROBLEMS: &str = "rtc_studio_problems";

pub struct SettingsDialog;

/// The values (set ones only, as JSON) the last dialog opened with.
static OPENED_WITH: Mutex<Option<String>> = Mutex::new(None);

/// The dialog's boxes, in order: (title, settings).
const GROUPS: &[(&CStr, &[Setting])] = &[
    (
        c"RtcStudio.Group.Server",
        &[
            settings::SIGNALLING,
            settings::SERVER,
            settings::BEARER_TOKEN,
        ],
    ),
    (
        c"RtcStudio.Group.Janus",
        &[
            settings::JANUS_ROOM,
            settings::JANUS_PIN,
            settings::JANUS_DISPLAY,
        ],
    ),
    (
        c"RtcStudio.Group.AntMedia",
        &[settings::ANT_MEDIA_STREAM_ID],
    ),
    (
        c"RtcStudio.Group.Ice",
        &[
            settings::ICE_SERVERS,
            settings::ICE_USERNAME,
            settings::ICE_CREDENTIAL,
            settings::TURN_SECRET,
            settings::RELAY_ONLY,
        ],
    ),
    (
        c"RtcStudio.Group.Bandwidth",
        &[
            settings::ADAPTIVE_BITRATE,
            settings::MIN_BITRATE,
            settings::SIMULCAST_LAYERS,
            settings::SIMULCAST_SHARE,
        ],
    ),
    (c"RtcStudio.Group.Advanced", settings::OUTPUT),
];

/// Every setting the dialog shows.
fn all() -> impl Iterator<Item = &'static Setting> {
    GROUPS.iter().flat_map(|(_, group)| group.iter())
}

/// The settings whose changes make the dialog check all values again and redraw its verdict. Not the STUN/TURN
/// box: OBS redraws a multi-line field with its cursor at the start, so a redraw at each keystroke would type
/// backwards. Its lines are checked when the dialog opens and at the next change of any of these (Relay only, just
/// below it, among them).
const CHECKED: &[&str] = &[
    settings::SERVER.key,
    settings::SIGNALLING.key,
    settings::JANUS_ROOM.key,
    settings::ANT_MEDIA_STREAM_ID.key,
    settings::ICE_USERNAME.key,
    settings::RELAY_ONLY.key,
];

struct Problems;

impl Check for Problems {
    const INFO: &'static str = PROBLEMS;
    fn prefix() -> String {
        format!("{}: ", text(c"RtcStudio.Problems"))
    }
    fn check(settings: &Settings) -> String {
        settings::problems(settings).join("\n")
    }
}

impl SettingsSourceType for SettingsDialog {
    const ID: &'static CStr = SOURCE_ID;
    const NAME_KEY: &'static CStr = c"RtcStudio.SettingsDialog";

    fn defaults(s: &Settings) {
        settings::apply_defaults(settings::SERVICE, s);
        settings::apply_defaults(settings::OUTPUT, s);
    }

    fn properties() -> Properties {
        let streaming = frontend::streaming_active();
        let mut p = Properties::new();
        p.defer_updates();
        if streaming {
            log::info("RTC Studio settings: streaming now, shown read-only");
            p.text(
                "rtc_studio_streaming",
                &text(c"RtcStudio.StopStreamingFirst"),
                TextKind::Info,
            );
        }
        p.text(PROBLEMS, "", TextKind::Info).visible(false);
        for (title, group) in GROUPS {
            let mut inner = settings::properties(group);
            for s in group.iter() {
                if let Some(prop) = inner.get(s.key) {
                    let prop = prop.enabled(!streaming);
                    if CHECKED.contains(&s.key) {
                        prop.checked_by::<Problems>();
                    }
                }
            }
            let key = format!("rtc_studio_group_{}", group[0].key);
            p.group(&key, &text(title), inner);
        }
        p
    }

    fn update(s: &Settings) {
        if frontend::streaming_active() {
            log::warn("RTC Studio settings: not saved while streaming; stop streaming first");
            return;
        }
        // OBS's dialog also calls this with the settings it opened with, when the streamer closes it and
        // discards the changes: nothing is saved then.
        let typed = copied(s, |key| s.has_user_value(key)).json();
        if OPENED_WITH
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(typed.as_str())
        {
            log::info("RTC Studio settings: nothing changed, nothing saved");
            return;
        }
        let service = service_settings(s);
        let problems = settings::problems(&service.as_settings());
        match frontend::use_streaming_service(SERVICE_ID, &service) {
            Ok(()) => log::info(&format!(
                "RTC Studio settings saved as the streaming service: {}{}",
                summary(&service.as_settings()),
                match problems.len() {
                    0 => String::new(),
                    n => format!("; {n} problem(s) the dialog showed remain"),
                }
            )),
            Err(e) => log::error(&format!("RTC Studio settings: {e}")),
        }
    }
}

/// The dialog's values of every setting, as the service's settings.
fn service_settings(s: &Settings) -> Data {
    copied(s, |_| true)
}

/// The settings of `s` for which `take` says yes.
fn copied(s: &Settings, take: impl Fn(&str) -> bool) -> Data {
    let mut data = Data::new();
    for setting in all().filter(|setting| take(setting.key)) {
        match setting.default {
            Default::Text(_) => data.set_string(setting.key, &s.string(setting.key)),
            Default::Int(_) => data.set_int(setting.key, s.int(setting.key)),
            Default::Bool(_) => data.set_bool(setting.key, s.bool(setting.key)),
        };
    }
    data
}

/// What was saved, for the log: no secret, only whether each is set.
fn summary(s: &Settings) -> String {
    let set = |key: &str| match s.string(key).is_empty() {
        true => "none",
        false => "set",
    };
    let servers = s
        .string(settings::ICE_SERVERS.key)
        .split(['\n', ','])
        .filter(|u| !u.trim().is_empty())
        .count();
    format!(
        "signalling {}, server {}, bearer token {}, {servers} STUN/TURN server(s), TURN password {}, TURN secret {}, \
         relay only {}",
        s.string(settings::SIGNALLING.key),
        crate::signal::whip::redact_url(&s.string(settings::SERVER.key)),
        set(settings::BEARER_TOKEN.key),
        set(settings::ICE_CREDENTIAL.key),
        set(settings::TURN_SECRET.key),
        s.bool(settings::RELAY_ONLY.key),
    )
}

/// The Tools menu action: opens the dialog on a copy of the current streaming service's settings (RTC Studio's,
/// or the WHIP URL and token another service carries). Runs on OBS's UI thread; touches no network.
pub fn open() {
    let mut settings = Data::new();
    if let Some(current) = frontend::streaming_service() {
        let s = current.settings.as_settings();
        if current.id == SERVICE_ID.to_string_lossy() {
            // A saved profile holds only what differs from the defaults; the dialog's source has the defaults.
            settings = copied(&s, |key| s.has_user_value(key));
        } else {
            let (server, token) = crate::service::carried_over(&current.id, &s);
            settings
                .set_string(settings::SERVER.key, &server)
                .set_string(settings::BEARER_TOKEN.key, &token);
        }
    }
    *OPENED_WITH.lock().unwrap_or_else(|e| e.into_inner()) = Some(settings.json());
    let Some(source) = Source::private(SOURCE_ID, &text(c"RtcStudio.SettingsDialog"), &settings)
    else {
        log::error("RTC Studio settings: OBS could not create the dialog's source");
        return;
    };
    if frontend::open_source_properties(&source) {
        log::info("RTC Studio settings: dialog opened");
    } else {
        log::error("RTC Studio settings: this OBS cannot open a properties dialog");
    }
}
