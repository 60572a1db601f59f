//! The symbols libobs looks up in a module (`obs_module_load`, `obs_module_ver`, locale hooks…), and the
//! version-aware registration of our output and service types.
use super::guard::guard;
use super::sys;
use std::ffi::{c_char, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

/// The libobs API version we are built against: the oldest we support (29.0).
pub const MODULE_API_VERSION: u32 = sys::semantic_version(29, 0, 0);
/// The first libobs that knows the `protocols` / `get_protocol` fields appended to the info structs.
pub const PROTOCOL_FIELDS_SINCE: u32 = sys::semantic_version(29, 1, 0);

static MODULE: AtomicPtr<sys::obs_module_t> = AtomicPtr::new(ptr::null_mut());

struct Lookup(*mut sys::lookup_t);
// SAFETY: the lookup table is only touched under the LOCALE mutex, and libobs's text lookups are plain data.
unsafe impl Send for Lookup {}
static LOCALE: Mutex<Lookup> = Mutex::new(Lookup(ptr::null_mut()));

/// The running libobs version (`MAKE_SEMANTIC_VERSION` encoding).
pub fn libobs_version() -> u32 {
    // SAFETY: no arguments; callable at any time after libobs is loaded.
    unsafe { sys::obs_get_version() }
}

pub fn libobs_version_string() -> String {
    // SAFETY: returns a static string.
    let p = unsafe { sys::obs_get_version_string() };
    if p.is_null() {
        return String::from("unknown");
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The localized text for `key` (from `data/locale/*.ini`), or the key itself when missing.
pub fn text(key: &CStr) -> String {
    // SAFETY: text_ptr returns a valid string (table entry or `key`), copied before the lock is released.
    let guard = LOCALE.lock().unwrap_or_else(|e| e.into_inner());
    let p = lookup_locked(&guard, key);
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Pointer form for `get_name` callbacks: valid until the locale changes, as with OBS's own modules.
pub(crate) fn text_ptr(key: &'static CStr) -> *const c_char {
    let guard = LOCALE.lock().unwrap_or_else(|e| e.into_inner());
    lookup_locked(&guard, key)
}

fn lookup_locked(lookup: &Lookup, key: &CStr) -> *const c_char {
    if lookup.0.is_null() {
        return key.as_ptr();
    }
    let mut out: *const c_char = ptr::null();
    // SAFETY: lookup is a live table created by obs_module_load_locale; out receives a pointer into it.
    let found = unsafe { sys::text_lookup_getstr(lookup.0, key.as_ptr(), &mut out) };
    if found && !out.is_null() {
        out
    } else {
        key.as_ptr()
    }
}

/// Size to pass to `obs_register_*_s`: libobs 29.0 rejects a struct larger than its own, so on 29.0 we stop at
/// the first field 29.1 appended.
pub(crate) fn registration_size(full: usize, size_29_0: usize) -> usize {
    if libobs_version() >= PROTOCOL_FIELDS_SINCE {
        full
    } else {
        size_29_0
    }
}

/// # Safety
/// Called by libobs with its handle for this module.
#[no_mangle]
pub unsafe extern "C" fn obs_module_set_pointer(module: *mut sys::obs_module_t) {
    MODULE.store(module, Ordering::SeqCst);
}

#[no_mangle]
pub extern "C" fn obs_current_module() -> *mut sys::obs_module_t {
    MODULE.load(Ordering::SeqCst)
}

#[no_mangle]
pub extern "C" fn obs_module_ver() -> u32 {
    MODULE_API_VERSION
}

#[no_mangle]
pub extern "C" fn obs_module_name() -> *const c_char {
    c"RTC Studio".as_ptr()
}

#[no_mangle]
pub extern "C" fn obs_module_description() -> *const c_char {
    c"Publish to WebRTC servers (WHIP, Janus) with sub-second latency".as_ptr()
}

/// # Safety
/// Called by libobs with a locale name (NUL-terminated) or null.
#[no_mangle]
pub unsafe extern "C" fn obs_module_set_locale(locale: *const c_char) {
    guard("obs_module_set_locale", (), || {
        let module = MODULE.load(Ordering::SeqCst);
        if module.is_null() {
            return;
        }
        let mut current = LOCALE.lock().unwrap_or_else(|e| e.into_inner());
        if !current.0.is_null() {
            // SAFETY: we created it and nobody else holds it (the lock is ours).
            unsafe { sys::text_lookup_destroy(current.0) };
        }
        // SAFETY: module is the pointer libobs gave us; locale is a valid string or null (libobs handles null).
        current.0 = unsafe { sys::obs_module_load_locale(module, c"en-US".as_ptr(), locale) };
    })
}

#[no_mangle]
pub extern "C" fn obs_module_free_locale() {
    guard("obs_module_free_locale", (), || {
        let mut current = LOCALE.lock().unwrap_or_else(|e| e.into_inner());
        if !current.0.is_null() {
            // SAFETY: created by obs_module_load_locale; destroyed once.
            unsafe { sys::text_lookup_destroy(current.0) };
            current.0 = ptr::null_mut();
        }
    })
}

#[no_mangle]
pub extern "C" fn obs_module_load() -> bool {
    guard("obs_module_load", false, crate::module_load)
}

#[no_mangle]
pub extern "C" fn obs_module_post_load() {
    guard("obs_module_post_load", (), crate::module_post_load)
}

#[no_mangle]
pub extern "C" fn obs_module_unload() {
    guard("obs_module_unload", (), crate::module_unload)
}
