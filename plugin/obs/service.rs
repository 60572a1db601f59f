//! The `obs_service_info` shell: a service holds the server URL and bearer token a streamer types into
//! Settings → Stream, and tells OBS which output and codecs to use.
use super::data::Settings;
use super::guard::guard;
use super::module::{registration_size, text_ptr};
use super::properties::Properties;
use super::sys;
use crate::secret::Secret;
use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::offset_of;
use std::sync::Mutex;

/// Where to publish, as a service's settings say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEndpoint {
    pub url: String,
    pub bearer_token: Secret,
}

pub trait ServiceType: 'static {
    const ID: &'static CStr;
    const NAME_KEY: &'static CStr;
    /// The output OBS should create for this service.
    const OUTPUT_ID: &'static CStr;
    const PROTOCOL: &'static CStr;
    fn defaults(settings: &Settings);
    fn properties() -> Properties;
    fn endpoint(settings: &Settings) -> ServiceEndpoint;
}

/// The C strings handed to OBS. Earlier versions are kept until the service is destroyed, so a pointer OBS got
/// from `get_url` stays valid even if the streamer edits the settings meanwhile.
struct Instance {
    versions: Mutex<Vec<(CString, CString)>>,
}

impl Instance {
    fn push(&self, endpoint: ServiceEndpoint) {
        let clean = |s: String| CString::new(s.replace('\0', "")).expect("NULs removed");
        let mut v = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        v.push((
            clean(endpoint.url),
            clean(endpoint.bearer_token.expose().to_string()),
        ));
    }

    fn current(&self, pick: impl Fn(&(CString, CString)) -> &CString) -> *const c_char {
        let v = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        v.last()
            .map_or(std::ptr::null(), |pair| pick(pair).as_ptr())
    }
}

struct StaticList<const N: usize>([*const c_char; N]);
// SAFETY: points only at 'static string literals.
unsafe impl<const N: usize> Sync for StaticList<N> {}
/// What the plugin sends (as `super::output::VIDEO_CODECS`, one name per entry).
static VIDEO_CODECS: StaticList<4> = StaticList([
    c"h264".as_ptr(),
    c"hevc".as_ptr(),
    c"av1".as_ptr(),
    std::ptr::null(),
]);
static AUDIO_CODECS: StaticList<2> = StaticList([c"opus".as_ptr(), std::ptr::null()]);

/// `obs_service_connect_info` values (libobs 29.1+).
const CONNECT_INFO_SERVER_URL: u32 = 0;
const CONNECT_INFO_BEARER_TOKEN: u32 = 10;

unsafe fn instance<'a>(data: *mut c_void) -> Option<&'a Instance> {
    (data as *const Instance).as_ref()
}

unsafe extern "C" fn get_name<T: ServiceType>(_t: *mut c_void) -> *const c_char {
    guard("service get_name", T::ID.as_ptr(), || text_ptr(T::NAME_KEY))
}

unsafe extern "C" fn create<T: ServiceType>(
    settings: *mut sys::obs_data_t,
    _s: *mut sys::obs_service_t,
) -> *mut c_void {
    guard("service create", std::ptr::null_mut(), || {
        let instance = Instance {
            versions: Mutex::new(Vec::new()),
        };
        instance.push(T::endpoint(&unsafe { Settings::from_raw(settings) }));
        Box::into_raw(Box::new(instance)) as *mut c_void
    })
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    guard("service destroy", (), || {
        if !data.is_null() {
            // SAFETY: created by Box::into_raw in `create`; destroyed once.
            drop(unsafe { Box::from_raw(data as *mut Instance) });
        }
    })
}

unsafe extern "C" fn update<T: ServiceType>(data: *mut c_void, settings: *mut sys::obs_data_t) {
    guard("service update", (), || {
        if let Some(i) = unsafe { instance(data) } {
            i.push(T::endpoint(&unsafe { Settings::from_raw(settings) }));
        }
    })
}

unsafe extern "C" fn get_defaults<T: ServiceType>(settings: *mut sys::obs_data_t) {
    guard("service get_defaults", (), || {
        T::defaults(&unsafe { Settings::from_raw(settings) })
    })
}

unsafe extern "C" fn get_properties<T: ServiceType>(
    _data: *mut c_void,
) -> *mut sys::obs_properties_t {
    guard("service get_properties", std::ptr::null_mut(), || {
        T::properties().into_raw()
    })
}

unsafe extern "C" fn get_url(data: *mut c_void) -> *const c_char {
    guard("service get_url", std::ptr::null(), || {
        unsafe { instance(data) }.map_or(std::ptr::null(), |i| i.current(|p| &p.0))
    })
}

unsafe extern "C" fn get_key(data: *mut c_void) -> *const c_char {
    guard("service get_key", std::ptr::null(), || {
        unsafe { instance(data) }.map_or(std::ptr::null(), |i| i.current(|p| &p.1))
    })
}

unsafe extern "C" fn get_output_type<T: ServiceType>(_data: *mut c_void) -> *const c_char {
    T::OUTPUT_ID.as_ptr()
}

unsafe extern "C" fn get_protocol<T: ServiceType>(_data: *mut c_void) -> *const c_char {
    T::PROTOCOL.as_ptr()
}

unsafe extern "C" fn get_video_codecs(_data: *mut c_void) -> *mut *const c_char {
    VIDEO_CODECS.0.as_ptr() as *mut *const c_char
}

unsafe extern "C" fn get_audio_codecs(_data: *mut c_void) -> *mut *const c_char {
    AUDIO_CODECS.0.as_ptr() as *mut *const c_char
}

unsafe extern "C" fn get_connect_info(data: *mut c_void, kind: u32) -> *const c_char {
    guard("service get_connect_info", std::ptr::null(), || {
        let Some(i) = (unsafe { instance(data) }) else {
            return std::ptr::null();
        };
        match kind {
            CONNECT_INFO_SERVER_URL => i.current(|p| &p.0),
            CONNECT_INFO_BEARER_TOKEN => i.current(|p| &p.1),
            _ => std::ptr::null(),
        }
    })
}

/// libobs 30+ refuses to start an output whose service says it cannot connect, with no message of its own. We
/// always say yes: the output's start then explains what is missing ("No server URL is set …") in OBS's error
/// dialog, and a diagnostics run with a packet log needs no URL at all.
unsafe extern "C" fn can_try_to_connect(_data: *mut c_void) -> bool {
    guard("service can_try_to_connect", true, || true)
}

/// Whether some module has registered a service type with this id.
pub fn type_exists(id: &CStr) -> bool {
    let mut idx = 0;
    let mut found: *const c_char = std::ptr::null();
    // SAFETY: libobs writes a pointer to its own static id string for each index until it returns false.
    while unsafe { sys::obs_enum_service_types(idx, &mut found) } {
        // SAFETY: non-null NUL-terminated id owned by libobs.
        if !found.is_null() && unsafe { CStr::from_ptr(found) } == id {
            return true;
        }
        idx += 1;
    }
    false
}

/// Registers `T` with libobs, sized for the running libobs version.
pub fn register<T: ServiceType>() {
    let info = sys::obs_service_info {
        id: T::ID.as_ptr(),
        get_name: Some(get_name::<T>),
        create: Some(create::<T>),
        destroy: Some(destroy),
        update: Some(update::<T>),
        get_defaults: Some(get_defaults::<T>),
        get_properties: Some(get_properties::<T>),
        get_url: Some(get_url),
        get_key: Some(get_key),
        get_output_type: Some(get_output_type::<T>),
        get_supported_video_codecs: Some(get_video_codecs),
        get_protocol: Some(get_protocol::<T>),
        get_supported_audio_codecs: Some(get_audio_codecs),
        get_connect_info: Some(get_connect_info),
        can_try_to_connect: Some(can_try_to_connect),
        ..Default::default()
    };
    let size = registration_size(
        std::mem::size_of::<sys::obs_service_info>(),
        offset_of!(sys::obs_service_info, get_protocol),
    );
    // SAFETY: libobs copies `size` bytes; every pointer in the struct is 'static.
    unsafe { sys::obs_register_service_s(&info, size) };
}
