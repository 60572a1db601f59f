//! The FFI shell: the only module with `unsafe`. It turns libobs's C API into safe Rust types and catches every
//! panic at the boundary. Nothing here decides anything about streaming; see `crate::output` and `crate::service`.
pub mod data;
pub mod encoder;
pub mod frontend;
pub mod guard;
pub mod log;
pub mod module;
pub mod output;
pub mod properties;
pub mod service;
pub mod sys;
pub mod tap;

/// OBS's monotonic clock in microseconds (`os_gettime_ns() / 1000`), the clock of `sys_dts_usec`.
pub fn clock_usec() -> i64 {
    // SAFETY: no arguments, no state.
    (unsafe { sys::os_gettime_ns() } / 1000) as i64
}
