//! Building the settings UI (`obs_properties_t`) that OBS shows for our output and service.
use super::data::Settings;
use super::guard::guard;
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
    /// Read-only text: the setting's value shown beside the label.
    Info,
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

    pub fn visible(self, visible: bool) -> Self {
        // SAFETY: raw belongs to a live properties list.
        unsafe { sys::obs_property_set_visible(self.raw, visible) };
        self
    }

    /// Greyed out (shown, not editable).
    pub fn enabled(self, enabled: bool) -> Self {
        // SAFETY: raw belongs to a live properties list.
        unsafe { sys::obs_property_set_enabled(self.raw, enabled) };
        self
    }

    /// `C` looks at the settings each time the user changes this property (and when the dialog opens), and its
    /// verdict is shown in the info text `C::INFO`, hidden while there is nothing to say.
    pub fn checked_by<C: Check>(self) -> Self {
        // SAFETY: raw belongs to a live properties list; the callback is a plain function.
        unsafe { sys::obs_property_set_modified_callback(self.raw, Some(modified::<C>)) };
        self
    }
}

/// What a settings dialog has to say about its values as they are typed.
pub trait Check: 'static {
    /// The key of the info text (`TextKind::Info`, hidden until there is something to say) that shows the verdict.
    const INFO: &'static str;
    /// Put before the verdict ("Please check: ").
    fn prefix() -> String;
    /// What is wrong with `settings`, one problem per line; empty when nothing is.
    fn check(settings: &Settings) -> String;
}

unsafe extern "C" fn modified<C: Check>(
    props: *mut sys::obs_properties_t,
    _property: *mut sys::obs_property_t,
    settings: *mut sys::obs_data_t,
) -> bool {
    guard("property modified", false, || {
        // SAFETY: libobs lends the dialog's settings for this call.
        let settings = unsafe { Settings::from_raw(settings) };
        let verdict = C::check(&settings);
        let key = c(C::INFO);
        // SAFETY: props is the dialog's live properties list; a missing property is null.
        let info = unsafe { sys::obs_properties_get(props, key.as_ptr()) };
        if info.is_null() {
            return false;
        }
        // The verdict is the info text's description, which OBS shows across the dialog while the text's value is
        // empty. (Not its value: a changed setting would make OBS ask "Settings Changed" on every close.)
        // SAFETY: a property of that list; its description is a string libobs owns, or null.
        let shown = unsafe {
            let d = sys::obs_property_description(info);
            (!d.is_null()).then(|| std::ffi::CStr::from_ptr(d).to_string_lossy().into_owned())
        };
        let text = match verdict.is_empty() {
            true => String::new(),
            false => format!("{}{verdict}", C::prefix()),
        };
        let t = c(&text);
        // SAFETY: as above; libobs copies the text.
        unsafe {
            sys::obs_property_set_description(info, t.as_ptr());
            sys::obs_property_set_visible(info, !verdict.is_empty());
        }
        // Redraw only when the text changed (a redraw moves the cursor of the field being typed in).
        shown.as_deref() != Some(text.as_str())
    })
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
            TextKind::Info => sys::OBS_TEXT_INFO,
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

    /// The property `name` of this list.
    pub fn get(&mut self, name: &str) -> Option<Property> {
        let n = c(name);
        // SAFETY: raw is live; a missing property is null.
        let raw = unsafe { sys::obs_properties_get(self.raw, n.as_ptr()) };
        (!raw.is_null()).then_some(Property { raw })
    }

    /// A titled box holding `group`'s properties (their settings stay at the top level).
    pub fn group(&mut self, name: &str, description: &str, group: Properties) -> Property {
        let (n, d) = (c(name), c(description));
        // SAFETY: both lists are live; libobs takes ownership of `group`.
        let raw = unsafe {
            sys::obs_properties_add_group(
                self.raw,
                n.as_ptr(),
                d.as_ptr(),
                sys::OBS_GROUP_NORMAL,
                group.into_raw(),
            )
        };
        Property { raw }
    }

    /// OBS's properties dialog applies changes only on OK (and Cancel then has nothing to undo).
    pub fn defer_updates(&mut self) {
        // SAFETY: raw is live.
        unsafe { sys::obs_properties_set_flags(self.raw, sys::OBS_PROPERTIES_DEFER_UPDATE) }
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
