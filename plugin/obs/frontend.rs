//! The OBS frontend API (`libobs-frontend-api`), when the plugin runs inside the `obs` program: a Tools menu entry
//! and the frontend's streaming service. The plugin never links the library (other libobs hosts, such as our
//! headless runner, do not have it): it asks the loader whether the library is already in the process and looks the
//! few functions it needs up by name (`super::loader`).
use super::data::Data;
use super::guard::guard;
use super::loader::Library;
use super::source::Source;
use super::sys;
use std::ffi::{c_void, CStr, CString};
use std::sync::OnceLock;

const LIBRARY: &CStr = c"libobs-frontend-api.so.0";
const LIBRARY_WINDOWS: &CStr = c"obs-frontend-api.dll";

struct Api {
    add_tools_menu_item: sys::obs_frontend_add_tools_menu_item_fn,
    get_streaming_service: sys::obs_frontend_get_streaming_service_fn,
    set_streaming_service: sys::obs_frontend_set_streaming_service_fn,
    save_streaming_service: sys::obs_frontend_save_streaming_service_fn,
    streaming_active: sys::obs_frontend_streaming_active_fn,
    open_source_properties: sys::obs_frontend_open_source_properties_fn,
}

// SAFETY: plain function pointers into a library that stays loaded for the life of the process.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        let library = Library::loaded(LIBRARY, LIBRARY_WINDOWS)?;
        let find = |name: &CStr| -> *mut c_void { library.symbol(name) };
        // SAFETY: each symbol, when present, is the OBS 29.0+ frontend function whose signature the `_fn` type
        // declares (checked against the library's exports by tests/abi_layout.rs). A null pointer becomes None.
        let api = unsafe {
            Api {
                add_tools_menu_item: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_add_tools_menu_item_fn,
                >(find(c"obs_frontend_add_tools_menu_item")),
                get_streaming_service: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_get_streaming_service_fn,
                >(find(
                    c"obs_frontend_get_streaming_service",
                )),
                set_streaming_service: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_set_streaming_service_fn,
                >(find(
                    c"obs_frontend_set_streaming_service",
                )),
                save_streaming_service: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_save_streaming_service_fn,
                >(find(
                    c"obs_frontend_save_streaming_service",
                )),
                streaming_active: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_streaming_active_fn,
                >(find(c"obs_frontend_streaming_active")),
                open_source_properties: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_frontend_open_source_properties_fn,
                >(find(
                    c"obs_frontend_open_source_properties",
                )),
            }
        };
        let complete = api.add_tools_menu_item.is_some()
            && api.get_streaming_service.is_some()
            && api.set_streaming_service.is_some()
            && api.save_streaming_service.is_some()
            && api.streaming_active.is_some();
        complete.then_some(api)
    })
    .as_ref()
}

/// Whether the plugin runs inside the OBS frontend.
pub fn available() -> bool {
    api().is_some()
}

/// The action of a Tools menu entry.
pub type MenuAction = fn();

unsafe extern "C" fn on_menu_item(private_data: *mut c_void) {
    guard("tools menu", (), || {
        // SAFETY: private_data is the `MenuAction` we registered below (a plain fn pointer, 'static).
        let action: MenuAction =
            unsafe { std::mem::transmute::<*mut c_void, MenuAction>(private_data) };
        action();
    })
}

/// Adds `name` to OBS's Tools menu; `action` runs on OBS's UI thread when the streamer picks it. Returns false
/// outside the frontend.
pub fn add_tools_menu_item(name: &str, action: MenuAction) -> bool {
    let Some(add) = api().and_then(|a| a.add_tools_menu_item) else {
        return false;
    };
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: the frontend copies the name into its QAction; the callback and its data (a fn pointer) are 'static.
    unsafe { add(name.as_ptr(), Some(on_menu_item), action as *mut c_void) };
    true
}

/// The frontend's current streaming service, as its type id and a copy of its settings.
pub struct StreamingService {
    pub id: String,
    pub settings: Data,
}

pub fn streaming_service() -> Option<StreamingService> {
    let get = api()?.get_streaming_service?;
    // SAFETY: returns the frontend's service without a new reference (valid during this UI-thread callback).
    let service = unsafe { get() };
    if service.is_null() {
        return None;
    }
    // SAFETY: live service; the id string belongs to its type (static); get_settings adds a reference we own.
    let (id, settings) = unsafe {
        let id = sys::obs_service_get_id(service);
        let id = if id.is_null() {
            String::new()
        } else {
            CStr::from_ptr(id).to_string_lossy().into_owned()
        };
        (id, sys::obs_service_get_settings(service))
    };
    if settings.is_null() {
        return None;
    }
    // SAFETY: we own the reference obs_service_get_settings returned.
    let settings = unsafe { Data::from_owned(settings) };
    Some(StreamingService { id, settings })
}

pub fn streaming_active() -> bool {
    // SAFETY: no arguments; UI-thread query.
    api()
        .and_then(|a| a.streaming_active)
        .is_some_and(|f| unsafe { f() })
}

/// Makes a new service of type `id` with `settings` the frontend's streaming service and saves it to the profile
/// (`service.json`), as Settings → Stream → Apply does.
pub fn use_streaming_service(id: &CStr, settings: &Data) -> Result<(), String> {
    let api = api().ok_or("not running inside the OBS frontend")?;
    let (Some(set), Some(save)) = (api.set_streaming_service, api.save_streaming_service) else {
        return Err("the OBS frontend lacks the streaming service functions".into());
    };
    // SAFETY: valid id and settings; the new service has one reference, ours.
    let service = unsafe {
        sys::obs_service_create(
            id.as_ptr(),
            c"default_service".as_ptr(),
            settings.as_ptr(),
            std::ptr::null_mut(),
        )
    };
    if service.is_null() {
        return Err(format!(
            "OBS could not create the service {}",
            id.to_string_lossy()
        ));
    }
    // SAFETY: the frontend takes its own reference to the service; we then drop ours.
    unsafe {
        set(service);
        save();
        sys::obs_service_release(service);
    }
    Ok(())
}

/// Opens OBS's properties dialog for `source` (returns at once; the dialog keeps its own reference). False outside
/// the frontend.
pub fn open_source_properties(source: &Source) -> bool {
    let Some(open) = api().and_then(|a| a.open_source_properties) else {
        return false;
    };
    // SAFETY: a live source; the frontend takes its own reference for the dialog's lifetime.
    unsafe { open(source.as_ptr()) };
    true
}
