//! Logging through OBS's `blog`, every line prefixed with `[rtc-studio]` — once the module is loaded into libobs
//! ([`super::use_libobs`]); a program that runs the stream engine without libobs (the replay benchmark's publisher)
//! gets the lines on standard error instead, and never maps libobs.
//!
//! Callers never pass secrets here: settings types redact bearer tokens and credentials in their `Debug`.
use super::sys;
use std::ffi::CString;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

/// Where lines go once the module is loaded into libobs. A pointer set at load rather than a call here, so that a
/// program which never loads the module holds no reference to libobs and links without it.
static SINK: OnceLock<fn(Level, &str)> = OnceLock::new();

/// From now on lines go to libobs's log.
pub(super) fn use_libobs() {
    let _ = SINK.set(to_libobs);
}

pub fn write(level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("{level:?}: [rtc-studio] {message}"),
    }
}

fn to_libobs(level: Level, message: &str) {
    let code = match level {
        Level::Error => sys::LOG_ERROR,
        Level::Warning => sys::LOG_WARNING,
        Level::Info => sys::LOG_INFO,
        Level::Debug => sys::LOG_DEBUG,
    } as i32;
    let line = CString::new(format!("[rtc-studio] {message}").replace('\0', "\u{FFFD}"))
        .expect("NULs were replaced");
    // SAFETY: "%s" with one valid NUL-terminated string; blog copies it before returning.
    unsafe { sys::blog(code, c"%s".as_ptr(), line.as_ptr()) };
}

pub fn error(message: &str) {
    write(Level::Error, message)
}
pub fn warn(message: &str) {
    write(Level::Warning, message)
}
pub fn info(message: &str) {
    write(Level::Info, message)
}
pub fn debug(message: &str) {
    write(Level::Debug, message)
}
