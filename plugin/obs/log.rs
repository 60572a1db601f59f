//! Logging through OBS's `blog`, every line prefixed with `[rtc-studio]`.
//!
//! Callers never pass secrets here: settings types redact bearer tokens and credentials in their `Debug`.
use super::sys;
use std::ffi::CString;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

pub fn write(level: Level, message: &str) {
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
