//! Building the settings UI (`obs_properties_t`) that OBS shows for our output and service.
use super::sys;
use std::ffi::CString;

fn c(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// How a text field is shown.
#[derive(Clone, Copy, Debug)]
pub enum TextKind {
    Plain,
    /// Hidden characters with a "show" button: bearer tokens, TURN credentials.
    Password,
    Multiline,
}

/// A properties list under construction; handed to OBS with [`Properties::into_raw`].
pub struct Properties {
    raw: *mut sys::obs_properties_t,
}

/// One property just added, for setting its long description (tooltip).
pub struct Property {
    raw: *mut sys::obs_property_t,
}

impl Property {
    pub fn tooltip(self, text: &str) -> Self {
        let t = c(text);
        // SAFETY: raw belongs to a live properties list; libobs copies the text.
        unsafe { sys::obs_property_set_long_description(self.raw, t.as_ptr()) };
        self
    }
}

impl Properties {
    pub fn new() -> Self {
        // SAFETY: plain constructor.
        let raw = unsafe { sys::obs_properties_create() };
        assert!(!raw.is_null(), "obs_properties_create returned null");
        Properties { raw }
    }

    pub fn text(&mut self, name: &str, description: &str, kind: TextKind) -> Property {
        let (n, d) = (c(name), c(description));
        let kind = match kind {
            TextKind::Plain => sys::OBS_TEXT_DEFAULT,
            TextKind::Password => sys::OBS_TEXT_PASSWORD,
            TextKind::Multiline => sys::OBS_TEXT_MULTILINE,
        };
        // SAFETY: raw is live; libobs copies name and description.
        Property {
            raw: unsafe { sys::obs_properties_add_text(self.raw, n.as_ptr(), d.as_ptr(), kind) },
        }
    }

    pub fn int(
        &mut self,
        name: &str,
        description: &str,
        min: i32,
        max: i32,
        step: i32,
    ) -> Property {
        let (n, d) = (c(name), c(description));
        // SAFETY: as above.
        Property {
            raw: unsafe {
                sys::obs_properties_add_int(self.raw, n.as_ptr(), d.as_ptr(), min, max, step)
            },
        }
    }

    pub fn bool(&mut self, name: &str, description: &str) -> Property {
        let (n, d) = (c(name), c(description));
        // SAFETY: as above.
        Property {
            raw: unsafe { sys::obs_properties_add_bool(self.raw, n.as_ptr(), d.as_ptr()) },
        }
    }

    /// A drop-down of (label, value) string choices.
    pub fn choice(&mut self, name: &str, description: &str, choices: &[(&str, &str)]) -> Property {
        let (n, d) = (c(name), c(description));
        // SAFETY: as above.
        let raw = unsafe {
            sys::obs_properties_add_list(
                self.raw,
                n.as_ptr(),
                d.as_ptr(),
                sys::OBS_COMBO_TYPE_LIST,
                sys::OBS_COMBO_FORMAT_STRING,
            )
        };
        for (label, value) in choices {
            let (l, v) = (c(label), c(value));
            // SAFETY: raw is the list just created; libobs copies both strings.
            unsafe { sys::obs_property_list_add_string(raw, l.as_ptr(), v.as_ptr()) };
        }
        Property { raw }
    }

    /// Hands ownership to OBS (the return value of a `get_properties` callback).
    pub(crate) fn into_raw(self) -> *mut sys::obs_properties_t {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }
}

impl Default for Properties {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Properties {
    fn drop(&mut self) {
        // SAFETY: not handed to OBS, so we still own it.
        unsafe { sys::obs_properties_destroy(self.raw) }
    }
}
