//! The FFI shell: the only module with `unsafe`. It turns libobs's C API into safe Rust types and catches every
//! panic at the boundary. Nothing here decides anything about streaming; see `crate::output` and `crate::service`.
pub mod data;
pub mod encoder;
pub mod frontend;
pub mod guard;
pub mod loader;
pub mod log;
pub mod module;
pub mod output;
pub mod properties;
pub mod service;
pub mod source;
pub mod sys;
pub mod tap;

use std::sync::OnceLock;
use std::time::Instant;

/// OBS's monotonic clock in microseconds (`os_gettime_ns() / 1000`), the clock of `sys_dts_usec` — once the module is
/// loaded into libobs ([`use_libobs`]). A program running the stream engine without libobs (the replay benchmark's
/// publisher, which stamps its packets with this clock too) gets a monotonic clock of the process's own.
pub fn clock_usec() -> i64 {
    match LIBOBS_CLOCK.get() {
        Some(clock) => clock(),
        None => {
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_micros() as i64
        }
    }
}

/// libobs's clock, set at module load (a pointer rather than a call, so that a program which never loads the module
/// links without libobs).
static LIBOBS_CLOCK: OnceLock<fn() -> i64> = OnceLock::new();

/// libobs's clock itself (`os_gettime_ns() / 1000`), for code that runs only inside libobs.
pub(super) fn libobs_clock_usec() -> i64 {
    // SAFETY: no arguments, no state.
    (unsafe { sys::os_gettime_ns() } / 1000) as i64
}

/// The module is loaded into libobs: the log and the clock are libobs's from now on.
pub fn use_libobs() {
    log::use_libobs();
    let _ = LIBOBS_CLOCK.set(libobs_clock_usec);
}

/// Gives the heap pages that are free again back to the system (glibc's `malloc_trim`): a session's teardown frees
/// megabytes (packet history, queues, the connection's buffers), which glibc otherwise keeps in its arenas — the
/// next session, on other threads, often takes fresh pages instead, and OBS's resident memory grows with each
/// reconnect. Called after a session ends, on the stream's own thread; elsewhere than glibc it does nothing.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: takes no pointers; it only releases whole free pages of the allocator's arenas.
        unsafe {
            malloc_trim(0);
        }
    }
}
