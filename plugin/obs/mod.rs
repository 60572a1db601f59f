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

/// OBS's monotonic clock in microseconds (`os_gettime_ns() / 1000`), the clock of `sys_dts_usec`.
pub fn clock_usec() -> i64 {
    // SAFETY: no arguments, no state.
    (unsafe { sys::os_gettime_ns() } / 1000) as i64
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
