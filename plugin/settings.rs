//! Every setting of the RTC Studio service and output, with one owner: each key, its default and how OBS shows it
//! come from one table ([`SERVICE`], [`OUTPUT`]); what the plugin reads is typed ([`ServiceSettings`],
//! [`OutputSettings`]), with secrets as [`crate::secret::Secret`] and bad values turned into the streamer's error message.
use crate::media::h264_rtp::DEFAULT_MAX_PAYLOAD;
use crate::obs::data::Settings;
use crate::obs::module::text;
use crate::obs::properties::{Properties, TextKind};
use crate::obs::service::ServiceEndpoint;
use crate::signal::ice::IceSettings;
use crate::signal::janus::{self, JanusRoom};
use crate::signal::{Failure, StopCode};
use std::ffi::CStr;
use std::time::Duration;

/// How a setting appears in OBS's properties view.
#[derive(Clone, Copy, Debug)]
pub enum Widget {
    Text(TextKind),
    Int {
        min: i32,
        max: i32,
        step: i32,
    },
    Bool,
    /// A drop-down of (label key, value).
    Choice(&'static [(&'static CStr, &'static str)]),
}

/// A setting's default value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Default {
    Text(&'static str),
    Int(i64),
    Bool(bool),
}

/// One setting: its key in OBS's settings, default, widget, and locale keys of its label and tooltip.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub key: &'static str,
    pub default: Default,
    pub widget: Widget,
    pub label: &'static CStr,
    pub tooltip: Option<&'static CStr>,
}

const fn text_setting(
    key: &'static str,
    kind: TextKind,
    label: &'static CStr,
    tooltip: Option<&'static CStr>,
) -> Setting {
    Setting {
        key,
        default: Default::Text(""),
        widget: Widget::Text(kind),
        label,
        tooltip,
    }
}

pub const SERVER: Setting = text_setting(
    "server",
    TextKind::Plain,
    c"RtcStudio.Server",
    Some(c"RtcStudio.Server.Tooltip"),
);
pub const BEARER_TOKEN: Setting = text_setting(
    "bearer_token",
    TextKind::Password,
    c"RtcStudio.BearerToken",
    Some(c"RtcStudio.BearerToken.Tooltip"),
);
pub const SIGNALLING_WHIP: &str = "whip";
pub const SIGNALLING_JANUS: &str = "janus";
pub const SIGNALLING_ANT_MEDIA: &str = "antmedia";
/// How the offer reaches the server: WHIP (default), Janus's VideoRoom REST API or Ant Media's WebSocket.
pub const SIGNALLING: Setting = Setting {
    key: "signalling",
    default: Default::Text(SIGNALLING_WHIP),
    widget: Widget::Choice(&[
        (c"RtcStudio.Signalling.Whip", SIGNALLING_WHIP),
        (c"RtcStudio.Signalling.Janus", SIGNALLING_JANUS),
        (c"RtcStudio.Signalling.AntMedia", SIGNALLING_ANT_MEDIA),
    ]),
    label: c"RtcStudio.Signalling",
    tooltip: Some(c"RtcStudio.Signalling.Tooltip"),
};
pub const JANUS_ROOM: Setting =
    text_setting("janus_room", TextKind::Plain, c"RtcStudio.JanusRoom", None);
pub const JANUS_PIN: Setting =
    text_setting("janus_pin", TextKind::Password, c"RtcStudio.JanusPin", None);
pub const JANUS_DISPLAY: Setting = text_setting(
    "janus_display",
    TextKind::Plain,
    c"RtcStudio.JanusDisplay",
    None,
);
pub const ANT_MEDIA_STREAM_ID: Setting = text_setting(
    "ant_media_stream_id",
    TextKind::Plain,
    c"RtcStudio.AntMediaStreamId",
    Some(c"RtcStudio.AntMediaStreamId.Tooltip"),
);
/// STUN/TURN servers, one URL per line; their long-term credentials, or coturn's shared secret.
pub const ICE_SERVERS: Setting = text_setting(
    "ice_servers",
    TextKind::Multiline,
    c"RtcStudio.IceServers",
    Some(c"RtcStudio.IceServers.Tooltip"),
);
pub const ICE_USERNAME: Setting = text_setting(
    "ice_username",
    TextKind::Plain,
    c"RtcStudio.IceUsername",
    None,
);
pub const ICE_CREDENTIAL: Setting = text_setting(
    "ice_credential",
    TextKind::Password,
    c"RtcStudio.IceCredential",
    None,
);
pub const TURN_SECRET: Setting = text_setting(
    "turn_secret",
    TextKind::Password,
    c"RtcStudio.TurnSecret",
    Some(c"RtcStudio.TurnSecret.Tooltip"),
);
/// Only relayed (TURN) candidates: hides the machine's addresses, or tests the TURN path.
pub const RELAY_ONLY: Setting = Setting {
    key: "ice_relay_only",
    default: Default::Bool(false),
    widget: Widget::Bool,
    label: c"RtcStudio.RelayOnly",
    tooltip: None,
};

/// Follow the network: the video encoder's bitrate goes down when the path carries less, and back up.
pub const ADAPTIVE_BITRATE: Setting = Setting {
    key: "adaptive_bitrate",
    default: Default::Bool(true),
    widget: Widget::Bool,
    label: c"RtcStudio.AdaptiveBitrate",
    tooltip: Some(c"RtcStudio.AdaptiveBitrate.Tooltip"),
};
/// The least video bitrate adaptation goes to, kbit/s.
pub const MIN_BITRATE: Setting = Setting {
    key: "min_bitrate_kbps",
    default: Default::Int(300),
    widget: Widget::Int {
        min: 50,
        max: 50_000,
        step: 50,
    },
    label: c"RtcStudio.MinBitrate",
    tooltip: Some(c"RtcStudio.MinBitrate.Tooltip"),
};

/// Simulcast: how many video layers to send (1: the full picture only; 2–3 add copies at 1/2 and 1/4 of its size,
/// each from an encoder of its own).
pub const SIMULCAST_LAYERS: Setting = Setting {
    key: "simulcast_layers",
    default: Default::Int(1),
    widget: Widget::Int {
        min: 1,
        max: crate::session::MAX_LAYERS as i32,
        step: 1,
    },
    label: c"RtcStudio.SimulcastLayers",
    tooltip: Some(c"RtcStudio.SimulcastLayers.Tooltip"),
};
/// Each smaller simulcast layer's bitrate, in percent of the next larger one's.
pub const SIMULCAST_SHARE: Setting = Setting {
    key: "simulcast_share_percent",
    default: Default::Int(25),
    widget: Widget::Int {
        min: 5,
        max: 90,
        step: 5,
    },
    label: c"RtcStudio.SimulcastShare",
    tooltip: Some(c"RtcStudio.SimulcastShare.Tooltip"),
};

/// What Settings → Stream → "WHIP" shows (OBS's own WHIP service has the same two).
pub const WHIP: &[Setting] = &[SERVER, BEARER_TOKEN];
/// Everything the RTC Studio service has.
pub const SERVICE: &[Setting] = &[
    SERVER,
    BEARER_TOKEN,
    SIGNALLING,
    JANUS_ROOM,
    JANUS_PIN,
    JANUS_DISPLAY,
    ANT_MEDIA_STREAM_ID,
    ICE_SERVERS,
    ICE_USERNAME,
    ICE_CREDENTIAL,
    TURN_SECRET,
    RELAY_ONLY,
    ADAPTIVE_BITRATE,
    MIN_BITRATE,
    SIMULCAST_LAYERS,
    SIMULCAST_SHARE,
];

/// How many packets may wait between OBS and the network before frames are dropped.
pub const QUEUE_PACKETS: Setting = Setting {
    key: "queue_packets",
    default: Default::Int(256),
    widget: Widget::Int {
        min: 16,
        max: 65_536,
        step: 16,
    },
    label: c"RtcStudio.QueuePackets",
    tooltip: None,
};
/// Seconds allowed for signalling + ICE + DTLS before the start fails.
pub const CONNECT_TIMEOUT: Setting = Setting {
    key: "connect_timeout_s",
    default: Default::Int(10),
    widget: Widget::Int {
        min: 1,
        max: 120,
        step: 1,
    },
    label: c"RtcStudio.ConnectTimeout",
    tooltip: None,
};
/// Largest RTP payload in bytes.
pub const MAX_PAYLOAD: Setting = Setting {
    key: "max_rtp_payload",
    default: Default::Int(DEFAULT_MAX_PAYLOAD as i64),
    widget: Widget::Int {
        min: 300,
        max: 1400,
        step: 10,
    },
    label: c"RtcStudio.MaxPayload",
    tooltip: None,
};
/// Take packets straight from the encoders (bypassing libobs's interleaver, which holds audio back for as long as
/// the video encoder's delay).
pub const DIRECT_FROM_ENCODERS: Setting = Setting {
    key: "direct_from_encoders",
    default: Default::Bool(true),
    widget: Widget::Bool,
    label: c"RtcStudio.DirectFromEncoders",
    tooltip: Some(c"RtcStudio.DirectFromEncoders.Tooltip"),
};
/// Write a JSON line per packet to this file instead of publishing (diagnostics).
pub const PACKET_LOG: Setting = text_setting(
    "packet_log",
    TextKind::Plain,
    c"RtcStudio.PacketLog",
    Some(c"RtcStudio.PacketLog.Tooltip"),
);
/// Serve Prometheus metrics here: a port (on 127.0.0.1) or an address with a port; empty: off.
pub const METRICS_LISTEN: Setting = text_setting(
    "metrics_listen",
    TextKind::Plain,
    c"RtcStudio.MetricsListen",
    Some(c"RtcStudio.MetricsListen.Tooltip"),
);
pub const OUTPUT: &[Setting] = &[
    QUEUE_PACKETS,
    CONNECT_TIMEOUT,
    MAX_PAYLOAD,
    DIRECT_FROM_ENCODERS,
    PACKET_LOG,
    METRICS_LISTEN,
];

/// Where settings are read from: OBS's settings object, or a table in tests.
pub trait Source {
    fn string(&self, key: &str) -> String;
    fn int(&self, key: &str) -> i64;
    fn bool(&self, key: &str) -> bool;
}

impl Source for Settings<'_> {
    fn string(&self, key: &str) -> String {
        Settings::string(self, key)
    }
    fn int(&self, key: &str) -> i64 {
        Settings::int(self, key)
    }
    fn bool(&self, key: &str) -> bool {
        Settings::bool(self, key)
    }
}

/// Settings read from `over` where it holds a value of its own (set by the user or a saved profile), else from
/// `under`: the output's settings as the settings dialog saved them into the profile's service (OBS's window gives
/// its stream output no settings of its own) over the output's own.
pub struct Layered<'a> {
    pub over: &'a Settings<'a>,
    pub under: &'a dyn Source,
}

impl Source for Layered<'_> {
    fn string(&self, key: &str) -> String {
        match self.over.has_user_value(key) {
            true => self.over.string(key),
            false => self.under.string(key),
        }
    }
    fn int(&self, key: &str) -> i64 {
        match self.over.has_user_value(key) {
            true => self.over.int(key),
            false => self.under.int(key),
        }
    }
    fn bool(&self, key: &str) -> bool {
        match self.over.has_user_value(key) {
            true => self.over.bool(key),
            false => self.under.bool(key),
        }
    }
}

/// Sets OBS's defaults for every setting of `table`.
pub fn apply_defaults(table: &[Setting], settings: &Settings) {
    for s in table {
        match s.default {
            Default::Text(v) => settings.set_default_string(s.key, v),
            Default::Int(v) => settings.set_default_int(s.key, v),
            Default::Bool(v) => settings.set_default_bool(s.key, v),
        }
    }
}

/// OBS's properties view of `table`, labels and tooltips in the current locale.
pub fn properties(table: &[Setting]) -> Properties {
    let mut p = Properties::new();
    for s in table {
        let label = text(s.label);
        let added = match s.widget {
            Widget::Text(kind) => p.text(s.key, &label, kind),
            Widget::Int { min, max, step } => p.int(s.key, &label, min, max, step),
            Widget::Bool => p.bool(s.key, &label),
            Widget::Choice(choices) => {
                let labels: Vec<(String, &str)> =
                    choices.iter().map(|(l, v)| (text(l), *v)).collect();
                let pairs: Vec<(&str, &str)> =
                    labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
                p.choice(s.key, &label, &pairs)
            }
        };
        if let Some(tip) = s.tooltip {
            added.tooltip(&text(tip));
        }
    }
    p
}

/// Settings written after the server URL's `#` (`http://janus:8088/janus#room=1234&pin=…&display=…`), the way
/// OBS's SRT output takes options in its URL: what a Server field alone (OBS's own Stream page, a hand-written
/// profile) can carry. A fragment is never sent to any server, so nothing a server expects in its URL is taken
/// away. `room` means Janus VideoRoom signalling; `pin` and `display` go with it; `streamId` means Ant Media's;
/// `signalling=whip|janus|antmedia` says it outright. They win over the same settings made elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlSettings {
    /// The URL without its fragment: what is used to connect.
    pub url: String,
    values: Vec<(&'static str, String)>,
}

impl UrlSettings {
    pub fn parse(url: &str) -> UrlSettings {
        let url = url.trim();
        let Some((base, fragment)) = url.split_once('#') else {
            return UrlSettings {
                url: url.to_string(),
                values: Vec::new(),
            };
        };
        let mut values = Vec::new();
        for (name, value) in url::form_urlencoded::parse(fragment.as_bytes()) {
            let key = match name.as_ref() {
                "room" => {
                    values.push((SIGNALLING.key, SIGNALLING_JANUS.to_string()));
                    JANUS_ROOM.key
                }
                "pin" => JANUS_PIN.key,
                "display" => JANUS_DISPLAY.key,
                "signalling" => SIGNALLING.key,
                "streamId" => {
                    values.push((SIGNALLING.key, SIGNALLING_ANT_MEDIA.to_string()));
                    ANT_MEDIA_STREAM_ID.key
                }
                _ => continue,
            };
            values.push((key, value.into_owned()));
        }
        UrlSettings {
            url: base.to_string(),
            values,
        }
    }

    /// `settings` with this URL's values over them.
    pub fn over<'a>(&'a self, settings: &'a dyn Source) -> impl Source + 'a {
        UrlOver {
            url: self,
            under: settings,
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

struct UrlOver<'a> {
    url: &'a UrlSettings,
    under: &'a dyn Source,
}

impl Source for UrlOver<'_> {
    fn string(&self, key: &str) -> String {
        match self.url.get(key) {
            Some(v) => v.to_string(),
            None => self.under.string(key),
        }
    }
    fn int(&self, key: &str) -> i64 {
        self.under.int(key)
    }
    fn bool(&self, key: &str) -> bool {
        self.under.bool(key)
    }
}

/// Every setting at its default: a service without settings of ours.
pub struct Defaults;

impl Defaults {
    fn of(key: &str) -> Option<Default> {
        SERVICE
            .iter()
            .chain(OUTPUT)
            .find(|s| s.key == key)
            .map(|s| s.default)
    }
}

impl Source for Defaults {
    fn string(&self, key: &str) -> String {
        match Defaults::of(key) {
            Some(Default::Text(v)) => v.to_string(),
            _ => String::new(),
        }
    }
    fn int(&self, key: &str) -> i64 {
        match Defaults::of(key) {
            Some(Default::Int(v)) => v,
            _ => 0,
        }
    }
    fn bool(&self, key: &str) -> bool {
        matches!(Defaults::of(key), Some(Default::Bool(true)))
    }
}

/// The server to publish to, as a service's settings give it.
pub fn endpoint(settings: &dyn Source) -> ServiceEndpoint {
    ServiceEndpoint {
        url: settings.string(SERVER.key).trim().to_string(),
        bearer_token: settings.string(BEARER_TOKEN.key).trim().into(),
    }
}

/// How the offer reaches the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signalling {
    Whip,
    Janus(JanusRoom),
    /// Ant Media's WebSocket signalling, publishing this stream ID.
    AntMedia(String),
}

/// Whether the video bitrate follows the network, and its floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adaptation {
    pub enabled: bool,
    pub min_kbps: u32,
}

/// Simulcast: how many video layers, and each smaller one's bitrate in percent of the next larger one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimulcastSettings {
    pub layers: usize,
    pub share_percent: u32,
}

impl SimulcastSettings {
    /// Each layer's bitrate (kbit/s), the full picture's (`kbps`) first.
    pub fn bitrates(&self, kbps: u32) -> Vec<u32> {
        let mut rates = vec![kbps];
        for _ in 1..self.layers {
            let smaller =
                u64::from(*rates.last().unwrap_or(&kbps)) * u64::from(self.share_percent) / 100;
            rates.push((smaller as u32).max(1));
        }
        rates
    }
}

/// What only the RTC Studio service has: signalling, ICE, adaptation and simulcast. Other services (OBS's WHIP) read as the
/// defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSettings {
    pub signalling: Signalling,
    pub ice: IceSettings,
    pub adaptation: Adaptation,
    pub simulcast: SimulcastSettings,
}

impl ServiceSettings {
    /// Reads and checks the settings; an error is the message the streamer sees.
    pub fn read(settings: &dyn Source) -> Result<ServiceSettings, Failure> {
        let signalling = if settings.string(SIGNALLING.key) == SIGNALLING_JANUS {
            let display = settings.string(JANUS_DISPLAY.key).trim().to_string();
            Signalling::Janus(JanusRoom {
                room: janus::parse_room(&settings.string(JANUS_ROOM.key))?,
                pin: settings.string(JANUS_PIN.key).into(),
                display: if display.is_empty() {
                    "OBS".into()
                } else {
                    display
                },
            })
        } else if settings.string(SIGNALLING.key) == SIGNALLING_ANT_MEDIA {
            let stream_id = settings.string(ANT_MEDIA_STREAM_ID.key).trim().to_string();
            if stream_id.is_empty() {
                return Err(Failure::new(
                    StopCode::BadPath,
                    "No Ant Media stream ID is set: enter it under Tools → RTC Studio settings… (or add \
                     #streamId=… to the server URL)",
                ));
            }
            Signalling::AntMedia(stream_id)
        } else {
            Signalling::Whip
        };
        Ok(ServiceSettings {
            signalling,
            ice: IceSettings {
                urls: settings.string(ICE_SERVERS.key),
                username: settings.string(ICE_USERNAME.key),
                credential: settings.string(ICE_CREDENTIAL.key).into(),
                turn_secret: settings.string(TURN_SECRET.key).into(),
                relay_only: settings.bool(RELAY_ONLY.key),
            },
            adaptation: Adaptation {
                enabled: settings.bool(ADAPTIVE_BITRATE.key),
                min_kbps: int_in_range(settings, &MIN_BITRATE) as u32,
            },
            simulcast: SimulcastSettings {
                layers: int_in_range(settings, &SIMULCAST_LAYERS) as usize,
                share_percent: int_in_range(settings, &SIMULCAST_SHARE) as u32,
            },
        })
    }
}

/// What is wrong with the service settings as typed, one message per problem, in the words the stream's start
/// would use — for the settings dialog to say so while the streamer is still in it. An empty server is no problem
/// yet (the dialog may be saved before the URL is known).
pub fn problems(settings: &dyn Source) -> Vec<String> {
    let mut found = Vec::new();
    let server = UrlSettings::parse(&settings.string(SERVER.key));
    if !server.url.is_empty() {
        let ant_media = server.over(settings).string(SIGNALLING.key) == SIGNALLING_ANT_MEDIA;
        if let Err(e) = check_server_url(&server.url, ant_media) {
            found.push(e.message);
        }
    }
    match ServiceSettings::read(&server.over(settings)) {
        Err(e) => found.push(e.message),
        Ok(s) => {
            if let Err(e) = crate::signal::ice::ice_servers(&s.ice, 0) {
                found.push(e.message);
            }
        }
    }
    found
}

/// Whether the server URL can be used: an http(s) URL for WHIP and Janus, an Ant Media application's WebSocket
/// URL or page for Ant Media.
pub fn check_server_url(url: &str, ant_media: bool) -> Result<(), Failure> {
    match ant_media {
        true => crate::signal::ant_media::websocket_url(url).map(|_| ()),
        false => crate::signal::whip::validate_endpoint(url).map(|_| ()),
    }
}

/// The output's settings, each within its range (out-of-range values read as the default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSettings {
    pub packet_log: String,
    pub queue_packets: usize,
    pub connect_timeout: Duration,
    pub max_payload: usize,
    pub direct: bool,
    /// Where to serve Prometheus metrics (empty: nowhere).
    pub metrics_listen: String,
}

/// `key`'s integer if it lies within the setting's range, else its default.
fn int_in_range(settings: &dyn Source, setting: &Setting) -> i64 {
    let (Widget::Int { min, max, .. }, Default::Int(default)) = (setting.widget, setting.default)
    else {
        unreachable!("{} is not an integer setting", setting.key)
    };
    let v = settings.int(setting.key);
    if (i64::from(min)..=i64::from(max)).contains(&v) {
        v
    } else {
        default
    }
}

impl OutputSettings {
    pub fn read(settings: &dyn Source) -> OutputSettings {
        OutputSettings {
            packet_log: settings.string(PACKET_LOG.key).trim().to_string(),
            queue_packets: int_in_range(settings, &QUEUE_PACKETS) as usize,
            connect_timeout: Duration::from_secs(int_in_range(settings, &CONNECT_TIMEOUT) as u64),
            max_payload: int_in_range(settings, &MAX_PAYLOAD) as usize,
            direct: settings.bool(DIRECT_FROM_ENCODERS.key),
            metrics_listen: settings.string(METRICS_LISTEN.key).trim().to_string(),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Settings as a table of JSON values, as OBS would hold them (absent keys read as 0, "" and false).
    #[derive(Default)]
    pub struct Table(pub HashMap<&'static str, serde_json::Value>);

    impl Source for Table {
        fn string(&self, key: &str) -> String {
            self.0
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        }
        fn int(&self, key: &str) -> i64 {
            self.0.get(key).and_then(|v| v.as_i64()).unwrap_or(0)
        }
        fn bool(&self, key: &str) -> bool {
            self.0.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
        }
    }

    fn table(pairs: &[(&'static str, serde_json::Value)]) -> Table {
        Table(pairs.iter().cloned().collect())
    }

    #[test]
    fn a_janus_room_pin_and_name_may_ride_in_the_server_urls_fragment() {
        let u = UrlSettings::parse(
            " http://janus:8088/janus#room=1234&pin=p%20w&display=Studio%20A&other=x ",
        );
        assert_eq!(
            u.url, "http://janus:8088/janus",
            "the fragment never reaches the server"
        );
        let base = table(&[("janus_room", "99".into()), ("janus_display", "OBS".into())]);
        let s = ServiceSettings::read(&u.over(&base)).unwrap();
        let Signalling::Janus(room) = s.signalling else {
            panic!("a room means Janus: {s:?}")
        };
        assert_eq!(
            (room.room, room.pin.expose(), room.display.as_str()),
            (1234, "p w", "Studio A")
        );
        // Without a fragment, nothing changes; a WHIP URL's query stays the server's.
        let plain = UrlSettings::parse("https://ams.example.com/live/whip/s1?token=abc");
        assert_eq!(plain.url, "https://ams.example.com/live/whip/s1?token=abc");
        assert_eq!(
            ServiceSettings::read(&plain.over(&base))
                .unwrap()
                .signalling,
            Signalling::Whip
        );
        // Named outright, and checked as typed settings are.
        let whip = UrlSettings::parse("https://h/whip#signalling=whip");
        assert_eq!(
            ServiceSettings::read(&whip.over(&Defaults))
                .unwrap()
                .signalling,
            Signalling::Whip
        );
        let bad = table(&[("server", "http://janus:8088/janus#room=lobby".into())]);
        assert!(problems(&bad)[0].contains("room must be a positive number, not \"lobby\""));
    }

    #[test]
    fn an_ant_media_stream_id_means_ant_medias_signalling_and_its_urls() {
        let u = UrlSettings::parse("https://ams.example:5443/LiveApp#streamId=cam%201");
        assert_eq!(u.url, "https://ams.example:5443/LiveApp");
        let s = ServiceSettings::read(&u.over(&Defaults)).unwrap();
        assert_eq!(s.signalling, Signalling::AntMedia("cam 1".into()));
        let chosen = table(&[
            ("signalling", "antmedia".into()),
            ("server", "wss://ams.example:5443/LiveApp/websocket".into()),
        ]);
        let f = ServiceSettings::read(&chosen).unwrap_err();
        assert_eq!(f.code, StopCode::BadPath);
        assert!(
            f.message.starts_with("No Ant Media stream ID is set"),
            "{}",
            f.message
        );
        // A ws(s) URL is fine for Ant Media and refused for WHIP, as the start would.
        assert_eq!(problems(&chosen), vec![f.message]);
        let whip = table(&[("server", "wss://ams.example:5443/LiveApp/websocket".into())]);
        assert_eq!(problems(&whip).len(), 1);
        let bad = table(&[("server", "rtmp://ams.example/LiveApp#streamId=cam1".into())]);
        assert!(
            problems(&bad)[0].starts_with("The Ant Media server URL"),
            "{:?}",
            problems(&bad)
        );
    }

    #[test]
    fn the_dialog_names_each_problem_as_the_start_would() {
        assert!(problems(&Table::default()).is_empty(), "nothing typed yet");
        let good = table(&[
            ("server", "https://sfu.example.com/whip/1".into()),
            (
                "ice_servers",
                "stun:stun.example.com:3478\nturn:t.example.com:3478".into(),
            ),
            ("ice_relay_only", true.into()),
            ("signalling", "janus".into()),
            ("janus_room", "1234".into()),
        ]);
        assert_eq!(problems(&good), Vec::<String>::new());
        let bad = table(&[
            ("server", "rtmp://live.example.com/app".into()),
            ("ice_servers", "turn.example.com:3478".into()),
            ("signalling", "janus".into()),
            ("janus_room", "lobby".into()),
        ]);
        let p = problems(&bad);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("must start with https:// or http://, not rtmp://"),
            "{p:?}"
        );
        assert!(
            p[1].contains("room must be a positive number, not \"lobby\""),
            "{p:?}"
        );
        // With the room fixed, the TURN line is next.
        let bad_turn = table(&[
            ("ice_servers", "turn.example.com:3478".into()),
            ("ice_relay_only", true.into()),
        ]);
        let p = problems(&bad_turn);
        assert!(
            p.len() == 1
                && p[0].contains("\"turn.example.com:3478\" is not a stun:, turn: or turns: URL"),
            "{p:?}"
        );
        let relay_without_turn = table(&[
            ("ice_servers", "stun:s:3478".into()),
            ("ice_relay_only", true.into()),
        ]);
        assert!(problems(&relay_without_turn)[0].contains("\"Relay only\" needs a TURN server"));
    }

    #[test]
    fn every_key_is_unique_and_has_a_default_of_its_widgets_kind() {
        let mut keys = std::collections::HashSet::new();
        for s in SERVICE.iter().chain(OUTPUT) {
            assert!(keys.insert(s.key), "{} twice", s.key);
            let ok = matches!(
                (s.widget, s.default),
                (Widget::Text(_) | Widget::Choice(_), Default::Text(_))
                    | (Widget::Int { .. }, Default::Int(_))
                    | (Widget::Bool, Default::Bool(_))
            );
            assert!(ok, "{}: default {:?} for {:?}", s.key, s.default, s.widget);
            if let (Widget::Int { min, max, .. }, Default::Int(d)) = (s.widget, s.default) {
                assert!((i64::from(min)..=i64::from(max)).contains(&d), "{}", s.key);
            }
        }
    }

    #[test]
    fn every_label_and_tooltip_is_in_the_english_locale() {
        let ini = include_str!("../data/locale/en-US.ini");
        let labels = SERVICE.iter().chain(OUTPUT).flat_map(|s| {
            let choices: Vec<&CStr> = match s.widget {
                Widget::Choice(c) => c.iter().map(|(l, _)| *l).collect(),
                _ => Vec::new(),
            };
            std::iter::once(s.label).chain(s.tooltip).chain(choices)
        });
        for key in labels {
            let key = key.to_str().unwrap();
            assert!(
                ini.lines().any(|l| l.starts_with(&format!("{key}=\""))),
                "{key} is missing from data/locale/en-US.ini"
            );
        }
        // And every other text key the plugin's sources name (menu entries, the dialog's boxes, …).
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/plugin"
        ))];
        let mut named = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                for piece in source.split("c\"RtcStudio.").skip(1) {
                    let key = format!("RtcStudio.{}", piece.split('"').next().unwrap());
                    named += 1;
                    assert!(
                        ini.lines().any(|l| l.starts_with(&format!("{key}=\""))),
                        "{key} ({}) is missing from data/locale/en-US.ini",
                        path.display()
                    );
                }
            }
        }
        assert!(named > 40, "found only {named} text keys in the sources");
    }

    #[test]
    fn output_settings_out_of_range_read_as_defaults() {
        let s = OutputSettings::read(&table(&[
            ("queue_packets", 3.into()),
            ("connect_timeout_s", 30.into()),
            ("max_rtp_payload", 5000.into()),
            ("packet_log", " /tmp/p.jsonl ".into()),
            ("metrics_listen", " 9464 ".into()),
        ]));
        assert_eq!(
            s,
            OutputSettings {
                packet_log: "/tmp/p.jsonl".into(),
                queue_packets: 256,
                connect_timeout: Duration::from_secs(30),
                max_payload: DEFAULT_MAX_PAYLOAD,
                direct: false,
                metrics_listen: "9464".into(),
            }
        );
    }

    #[test]
    fn service_settings_are_typed_and_secrets_never_shown() {
        let janus = ServiceSettings::read(&table(&[
            ("signalling", "janus".into()),
            ("janus_room", " 1234 ".into()),
            ("janus_pin", "pin-5150".into()),
            ("ice_servers", "turn:t:3478".into()),
            ("ice_credential", "pw-8086".into()),
            ("turn_secret", "secret-6502".into()),
            ("ice_relay_only", true.into()),
        ]))
        .unwrap();
        let Signalling::Janus(room) = &janus.signalling else {
            panic!("{janus:?}")
        };
        assert_eq!(
            (room.room, room.pin.expose(), room.display.as_str()),
            (1234, "pin-5150", "OBS")
        );
        assert!(janus.ice.relay_only);
        let shown = format!("{janus:?}");
        for secret in ["pin-5150", "pw-8086", "secret-6502"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let bad_room = ServiceSettings::read(&table(&[
            ("signalling", "janus".into()),
            ("janus_room", "lobby".into()),
        ]));
        assert!(bad_room.unwrap_err().message.contains("positive number"));
        // The settings' defaults: WHIP, no ICE servers, adaptation on from 300 kbit/s, one layer (25 % share).
        let defaults = ServiceSettings::read(&Defaults).unwrap();
        assert_eq!(
            defaults,
            ServiceSettings {
                signalling: Signalling::Whip,
                ice: IceSettings::default(),
                adaptation: Adaptation {
                    enabled: true,
                    min_kbps: 300,
                },
                simulcast: SimulcastSettings {
                    layers: 1,
                    share_percent: 25,
                },
            }
        );
        // Absent keys read as false and 0 (OBS fills in the defaults first, `apply_defaults`).
        let absent = ServiceSettings::read(&Table::default()).unwrap();
        assert_eq!(
            absent,
            ServiceSettings {
                adaptation: Adaptation {
                    enabled: false,
                    ..defaults.adaptation
                },
                ..defaults
            }
        );
        let e = endpoint(&table(&[
            ("server", " https://h/whip ".into()),
            ("bearer_token", "tok-1".into()),
        ]));
        assert_eq!(e.url, "https://h/whip");
        assert!(!format!("{e:?}").contains("tok-1"));
    }
}
