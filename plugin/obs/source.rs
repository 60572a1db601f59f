//! The `obs_source_info` shell, for one kind of source: a private source that shows and plays nothing, whose
//! settings OBS's own properties dialog edits — how the plugin gets a settings window with OBS's widgets and no Qt
//! code of its own.
use super::data::{Data, Settings};
use super::guard::guard;
use super::module::text_ptr;
use super::properties::Properties;
use super::sys;
use std::ffi::{c_char, c_void, CStr, CString};

pub trait SettingsSourceType: 'static {
    const ID: &'static CStr;
    const NAME_KEY: &'static CStr;
    fn defaults(settings: &Settings);
    fn properties() -> Properties;
    /// The dialog's OK (its properties defer every change to it).
    fn update(settings: &Settings);
}

/// Any non-null pointer: the source keeps no state of its own (its settings are libobs's).
static INSTANCE: u8 = 0;

unsafe extern "C" fn get_name<T: SettingsSourceType>(_t: *mut c_void) -> *const c_char {
    guard("source get_name", T::ID.as_ptr(), || text_ptr(T::NAME_KEY))
}

unsafe extern "C" fn create(_s: *mut sys::obs_data_t, _src: *mut sys::obs_source_t) -> *mut c_void {
    guard("source create", std::ptr::null_mut(), || {
        &INSTANCE as *const u8 as *mut c_void
    })
}

unsafe extern "C" fn destroy(_data: *mut c_void) {
    guard("source destroy", (), || {})
}

unsafe extern "C" fn get_defaults<T: SettingsSourceType>(settings: *mut sys::obs_data_t) {
    guard("source get_defaults", (), || {
        T::defaults(&unsafe { Settings::from_raw(settings) })
    })
}

unsafe extern "C" fn get_properties<T: SettingsSourceType>(
    _data: *mut c_void,
) -> *mut sys::obs_properties_t {
    guard("source get_properties", std::ptr::null_mut(), || {
        T::properties().into_raw()
    })
}

unsafe extern "C" fn update<T: SettingsSourceType>(
    _data: *mut c_void,
    settings: *mut sys::obs_data_t,
) {
    guard("source update", (), || {
        T::update(&unsafe { Settings::from_raw(settings) })
    })
}

/// Registers `T` as an input that OBS lists nowhere (not under Add Source).
pub fn register<T: SettingsSourceType>() {
    let info = sys::obs_source_info {
        id: T::ID.as_ptr(),
        type_: sys::OBS_SOURCE_TYPE_INPUT,
        output_flags: sys::OBS_SOURCE_CAP_DISABLED,
        get_name: Some(get_name::<T>),
        create: Some(create),
        destroy: Some(destroy),
        get_defaults: Some(get_defaults::<T>),
        get_properties: Some(get_properties::<T>),
        update: Some(update::<T>),
        ..Default::default()
    };
    // SAFETY: libobs copies the struct (29.0's, whole); every pointer in it is 'static.
    unsafe { sys::obs_register_source_s(&info, std::mem::size_of::<sys::obs_source_info>()) };
}

/// A source of ours, released when dropped.
pub struct Source(*mut sys::obs_source_t);

impl Source {
    /// A private source (in no scene, saved nowhere) of type `id` with `settings`.
    pub fn private(id: &CStr, name: &str, settings: &Data) -> Option<Source> {
        let name = CString::new(name.replace('\0', "")).expect("NULs removed");
        // SAFETY: valid strings and settings; libobs copies the settings' values into the source's own.
        let raw = unsafe {
            sys::obs_source_create_private(id.as_ptr(), name.as_ptr(), settings.as_ptr())
        };
        (!raw.is_null()).then_some(Source(raw))
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::obs_source_t {
        self.0
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        // SAFETY: our reference from obs_source_create_private, released once.
        unsafe { sys::obs_source_release(self.0) }
    }
}
