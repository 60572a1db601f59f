//! Safe access to `obs_data_t` settings objects.
use super::sys;
use std::ffi::{CStr, CString};

fn key(name: &str) -> CString {
    CString::new(name).expect("setting names are literals without NUL")
}

fn text(value: &str) -> CString {
    CString::new(value.replace('\0', "")).expect("NULs removed")
}

/// A settings object OBS lends us for the duration of one callback.
pub struct Settings<'a> {
    raw: *mut sys::obs_data_t,
    _lent: std::marker::PhantomData<&'a ()>,
}

impl<'a> Settings<'a> {
    /// # Safety
    /// `raw` must be a valid `obs_data_t` for the lifetime `'a` (or null, which reads as empty settings).
    pub(crate) unsafe fn from_raw(raw: *mut sys::obs_data_t) -> Self {
        Settings {
            raw,
            _lent: std::marker::PhantomData,
        }
    }

    pub fn string(&self, name: &str) -> String {
        if self.raw.is_null() {
            return String::new();
        }
        let k = key(name);
        // SAFETY: raw is valid (constructor contract); libobs returns "" or a string owned by the data object.
        let p = unsafe { sys::obs_data_get_string(self.raw, k.as_ptr()) };
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-null NUL-terminated string that lives as long as the data object.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        if self.raw.is_null() {
            return 0;
        }
        let k = key(name);
        // SAFETY: valid data object and key.
        unsafe { sys::obs_data_get_int(self.raw, k.as_ptr()) }
    }

    pub fn bool(&self, name: &str) -> bool {
        if self.raw.is_null() {
            return false;
        }
        let k = key(name);
        // SAFETY: valid data object and key.
        unsafe { sys::obs_data_get_bool(self.raw, k.as_ptr()) }
    }

    /// Whether the user (or a saved profile) set `name`, rather than it reading as its default.
    pub fn has_user_value(&self, name: &str) -> bool {
        if self.raw.is_null() {
            return false;
        }
        let k = key(name);
        // SAFETY: valid data object and key.
        unsafe { sys::obs_data_has_user_value(self.raw, k.as_ptr()) }
    }

    pub fn set_default_string(&self, name: &str, value: &str) {
        if self.raw.is_null() {
            return;
        }
        let (k, v) = (key(name), text(value));
        // SAFETY: valid data object; libobs copies key and value.
        unsafe { sys::obs_data_set_default_string(self.raw, k.as_ptr(), v.as_ptr()) }
    }

    pub fn set_default_int(&self, name: &str, value: i64) {
        if self.raw.is_null() {
            return;
        }
        let k = key(name);
        // SAFETY: valid data object; libobs copies the key.
        unsafe { sys::obs_data_set_default_int(self.raw, k.as_ptr(), value) }
    }

    pub fn set_default_bool(&self, name: &str, value: bool) {
        if self.raw.is_null() {
            return;
        }
        let k = key(name);
        // SAFETY: valid data object; libobs copies the key.
        unsafe { sys::obs_data_set_default_bool(self.raw, k.as_ptr(), value) }
    }
}

/// A settings object we own (one reference), released on drop. Used when we create OBS objects as a host.
pub struct Data {
    raw: *mut sys::obs_data_t,
}

impl Data {
    pub fn new() -> Self {
        // SAFETY: plain constructor; returns a new object with one reference.
        let raw = unsafe { sys::obs_data_create() };
        assert!(!raw.is_null(), "obs_data_create returned null");
        Data { raw }
    }

    /// # Safety
    /// `raw` must be a valid `obs_data_t` whose one reference the caller hands over.
    pub unsafe fn from_owned(raw: *mut sys::obs_data_t) -> Self {
        Data { raw }
    }

    pub fn set_string(&mut self, name: &str, value: &str) -> &mut Self {
        let (k, v) = (key(name), text(value));
        // SAFETY: we own a reference to raw; libobs copies key and value.
        unsafe { sys::obs_data_set_string(self.raw, k.as_ptr(), v.as_ptr()) };
        self
    }

    pub fn set_int(&mut self, name: &str, value: i64) -> &mut Self {
        let k = key(name);
        // SAFETY: as above.
        unsafe { sys::obs_data_set_int(self.raw, k.as_ptr(), value) };
        self
    }

    pub fn set_bool(&mut self, name: &str, value: bool) -> &mut Self {
        let k = key(name);
        // SAFETY: as above.
        unsafe { sys::obs_data_set_bool(self.raw, k.as_ptr(), value) };
        self
    }

    /// A settings object of our own with the same values (changing it leaves this one alone).
    pub fn copy(&self) -> Data {
        let copy = Data::new();
        // SAFETY: both are live objects we hold a reference to; libobs copies the values.
        unsafe { sys::obs_data_apply(copy.raw, self.raw) };
        copy
    }

    /// The settings as OBS would save them (JSON).
    pub fn json(&self) -> String {
        // SAFETY: the returned string belongs to the data object and lives until the next call; we copy it now.
        let p = unsafe { sys::obs_data_get_json(self.raw) };
        if p.is_null() {
            return String::new();
        }
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    pub fn as_settings(&self) -> Settings<'_> {
        // SAFETY: raw stays valid while self is borrowed.
        unsafe { Settings::from_raw(self.raw) }
    }

    /// The raw object, for a libobs host of our own (the headless runner) to hand to libobs.
    pub fn as_ptr(&self) -> *mut sys::obs_data_t {
        self.raw
    }
}

impl Default for Data {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference.
        unsafe { sys::obs_data_release(self.raw) }
    }
}
