//! RTC Studio: an OBS Studio output that publishes OBS's encoded H.264 + Opus over WebRTC.
//!
//! Layers, each calling only the ones below it:
//! - [`obs`]: the FFI shell, the only `unsafe` code (bindings, safe wrappers, panic guards, module exports);
//! - [`output`], [`service`], [`settings_dialog`], [`stream`], [`recorder`]: OBS glue — decisions and hand-off, never
//!   blocking OBS;
//! - [`media`], [`signal`]: the sans-IO core (timestamps, bitstream framing, WHIP), pure and unit-tested;
//! - [`transport`]: the only network code (HTTP, WebRTC) on a tokio runtime the plugin owns.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod obs;

pub mod encoder;
pub mod keyframes;
pub mod media;
pub mod metrics;
pub mod output;
pub mod publish;
pub mod recorder;
pub mod secret;
pub mod service;
pub mod session;
pub mod settings;
pub mod settings_dialog;
pub mod signal;
pub mod simulcast;
pub mod stream;
pub mod transport;

use std::time::Duration;

/// How long module unload waits for stream threads still tearing down.
const UNLOAD_DEADLINE: Duration = Duration::from_secs(3);

pub(crate) fn module_load() -> bool {
    obs::use_libobs();
    obs::output::register::<output::RtcOutput>();
    obs::service::register::<service::RtcService>();
    obs::source::register::<settings_dialog::SettingsDialog>();
    obs::tap::register();
    obs::log::info(&format!(
        "version {} loaded into libobs {}",
        env!("CARGO_PKG_VERSION"),
        obs::module::libobs_version_string()
    ));
    true
}

pub(crate) fn module_post_load() {
    service::after_all_modules_loaded();
}

pub(crate) fn module_unload() {
    let left = stream::join_workers(UNLOAD_DEADLINE);
    transport::shutdown(Duration::from_secs(1));
    // The metrics endpoint's listeners ran on that runtime: they are closed.
    metrics::forget_listeners();
    if left > 0 {
        obs::log::warn(&format!(
            "unloaded with {left} stream thread(s) still tearing down"
        ));
    } else {
        obs::log::info("unloaded: every stream thread has ended");
    }
}
