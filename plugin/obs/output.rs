//! The `obs_output_info` shell: C callbacks that forward to a safe [`OutputType`], and [`OutputHandle`], the safe
//! way back into libobs for one output.
use super::data::Settings;
use super::guard::guard;
use super::module::{registration_size, text_ptr};
use super::properties::Properties;
use super::sys;
use crate::media::packet::{EncodedPacket, MediaKind};
use bytes::Bytes;
use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

pub use crate::signal::StopCode;

/// libobs's `OBS_OUTPUT_*` code for a stop code.
fn raw_stop_code(code: StopCode) -> i32 {
    match code {
        StopCode::Success => sys::OBS_OUTPUT_SUCCESS as i32,
        StopCode::BadPath => sys::OBS_OUTPUT_BAD_PATH,
        StopCode::ConnectFailed => sys::OBS_OUTPUT_CONNECT_FAILED,
        StopCode::InvalidStream => sys::OBS_OUTPUT_INVALID_STREAM,
        StopCode::Error => sys::OBS_OUTPUT_ERROR,
        StopCode::Disconnected => sys::OBS_OUTPUT_DISCONNECTED,
        StopCode::Unsupported => sys::OBS_OUTPUT_UNSUPPORTED,
    }
}

/// What the video encoder attached to the output says about its stream.
#[derive(Clone, Debug, Default)]
pub struct VideoEncoderInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Codec configuration (for H.264: SPS and PPS in Annex-B form).
    pub extra_data: Vec<u8>,
}

/// What the audio encoder attached to the output says about its stream.
#[derive(Clone, Debug, Default)]
pub struct AudioEncoderInfo {
    pub codec: String,
    pub sample_rate: u32,
    /// Codec configuration (for Opus: the OpusHead).
    pub extra_data: Vec<u8>,
}

struct RawOutput(NonNull<sys::obs_output_t>);
// SAFETY: the libobs functions we call through a handle (data capture, stop signals, errors, service and encoder
// queries) lock the output internally and are documented as callable from any thread.
unsafe impl Send for RawOutput {}

/// The safe way for our code to call libobs about one output. Cloneable and usable from any thread; once OBS
/// destroys the output the handle is detached and every call becomes a no-op, so no thread can touch a freed
/// output.
#[derive(Clone)]
pub struct OutputHandle {
    link: Arc<Mutex<Option<RawOutput>>>,
}

pub(super) fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: libobs returns NUL-terminated strings that live at least for this call.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl OutputHandle {
    fn new(raw: *mut sys::obs_output_t) -> Self {
        OutputHandle {
            link: Arc::new(Mutex::new(NonNull::new(raw).map(RawOutput))),
        }
    }

    fn detach(&self) {
        *self.link.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs `f` with the raw output while it is alive; `None` once detached.
    fn with<R>(&self, f: impl FnOnce(*mut sys::obs_output_t) -> R) -> Option<R> {
        let link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        link.as_ref().map(|raw| f(raw.0.as_ptr()))
    }

    pub fn is_attached(&self) -> bool {
        self.link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// `obs_output_can_begin_data_capture`, then (`initialize`) `obs_output_initialize_encoders`.
    pub fn prepare_capture(&self, initialize: bool) -> bool {
        // SAFETY: the output is alive while `with` holds the link.
        self.with(|o| unsafe { sys::obs_output_can_begin_data_capture(o, 0) })
            .unwrap_or(false)
            && (!initialize || self.initialize_encoders())
    }

    /// `obs_output_initialize_encoders` (nothing to do for encoders already initialised).
    pub fn initialize_encoders(&self) -> bool {
        // SAFETY: as above.
        self.with(|o| unsafe { sys::obs_output_initialize_encoders(o, 0) })
            .unwrap_or(false)
    }

    pub fn begin_data_capture(&self) -> bool {
        // SAFETY: as above.
        self.with(|o| unsafe { sys::obs_output_begin_data_capture(o, 0) })
            .unwrap_or(false)
    }

    /// Opens taps on the output's encoders (see [`super::tap`]): packets then also reach `deliver` straight from
    /// the encoders, ahead of libobs's interleaver.
    pub fn tap_encoders(
        &self,
        deliver: super::tap::Deliver,
    ) -> Result<super::tap::EncoderTaps, String> {
        // SAFETY: the output is alive while `with` holds the link.
        self.with(|o| unsafe { super::tap::open(o, deliver) })
            .unwrap_or_else(|| Err("the output is gone".into()))
    }

    pub fn end_data_capture(&self) {
        // SAFETY: as above.
        self.with(|o| unsafe { sys::obs_output_end_data_capture(o) });
    }

    /// Ends the output with an error code; OBS shows `set_last_error`'s message and may reconnect.
    pub fn signal_stop(&self, code: StopCode) {
        // SAFETY: as above.
        self.with(|o| unsafe { sys::obs_output_signal_stop(o, raw_stop_code(code)) });
    }

    /// OBS's name for the output (`adv_stream`, `simple_stream`, …); empty once it is gone.
    pub fn name(&self) -> String {
        // SAFETY: the output is alive while `with` holds the link; libobs owns the name, copied here.
        self.with(|o| unsafe {
            let name = sys::obs_output_get_name(o);
            match name.is_null() {
                true => String::new(),
                false => std::ffi::CStr::from_ptr(name)
                    .to_string_lossy()
                    .into_owned(),
            }
        })
        .unwrap_or_default()
    }

    /// Whether libobs is waiting to restart the output (after a `Disconnected` stop).
    pub fn reconnecting(&self) -> bool {
        // SAFETY: the output is alive while `with` holds the link.
        self.with(|o| unsafe { sys::obs_output_reconnecting(o) })
            .unwrap_or(false)
    }

    /// The message OBS shows the streamer when the output fails. Never put secrets in it.
    pub fn set_last_error(&self, message: &str) {
        let m = CString::new(message.replace('\0', "")).expect("NULs removed");
        // SAFETY: as above; libobs copies the message.
        self.with(|o| unsafe { sys::obs_output_set_last_error(o, m.as_ptr()) });
    }

    /// The server URL and key (bearer token) of the service attached to the output, if any.
    pub fn service_endpoint(&self) -> Option<super::service::ServiceEndpoint> {
        self.with(|o| {
            // SAFETY: the service pointer is borrowed from the live output; getters return strings it owns.
            let service = unsafe { sys::obs_output_get_service(o) };
            if service.is_null() {
                return None;
            }
            let api = service_api();
            // SAFETY: live service; the functions (when found) have these signatures in every libobs that exports
            // them (checked against 29.0's exports by tests/abi_layout.rs); returned strings belong to the service.
            let (url, key) = unsafe {
                match (api.connect_info, api.url, api.key) {
                    (Some(info), _, _) => (
                        info(service, CONNECT_INFO_SERVER_URL),
                        info(service, CONNECT_INFO_BEARER_TOKEN),
                    ),
                    (None, Some(url), Some(key)) => (url(service), key(service)),
                    _ => return None,
                }
            };
            Some(super::service::ServiceEndpoint {
                url: cstr_to_string(url).trim().to_string(),
                bearer_token: cstr_to_string(key).trim().into(),
            })
        })
        .flatten()
    }

    /// The output's own settings (a reference of our own).
    pub fn settings(&self) -> Option<super::data::Data> {
        self.with(|o| {
            // SAFETY: live output; get_settings adds a reference we own.
            let raw = unsafe { sys::obs_output_get_settings(o) };
            (!raw.is_null()).then(|| unsafe { super::data::Data::from_owned(raw) })
        })
        .flatten()
    }

    /// A copy of the output's service settings (a reference of our own).
    pub fn service_settings(&self) -> Option<super::data::Data> {
        self.with(|o| {
            // SAFETY: the service pointer is borrowed from the live output; get_settings adds a reference we own.
            let service = unsafe { sys::obs_output_get_service(o) };
            if service.is_null() {
                return None;
            }
            let raw = unsafe { sys::obs_service_get_settings(service) };
            (!raw.is_null()).then(|| unsafe { super::data::Data::from_owned(raw) })
        })
        .flatten()
    }

    pub fn video_encoder(&self) -> Option<VideoEncoderInfo> {
        self.with(|o| {
            // SAFETY: the encoder pointer is borrowed from the live output.
            let enc = unsafe { sys::obs_output_get_video_encoder(o) };
            if enc.is_null() {
                return None;
            }
            Some(VideoEncoderInfo {
                codec: cstr_to_string(unsafe { sys::obs_encoder_get_codec(enc) }),
                width: unsafe { sys::obs_encoder_get_width(enc) },
                height: unsafe { sys::obs_encoder_get_height(enc) },
                extra_data: encoder_extra_data(enc),
            })
        })
        .flatten()
    }

    /// The video encoders besides the stream's that OBS attached to the output (OBS 32.1+'s simulcast layers, in the
    /// order it numbered them), each with a reference of our own. None on a libobs without multi-track video.
    pub fn attached_video_encoders(&self) -> Vec<super::encoder::OwnedEncoder> {
        let Some(get) = output_api().video_encoder2 else {
            return Vec::new();
        };
        self.with(|o| {
            // SAFETY: the output is alive while `with` holds the link; libobs 30+ bounds-checks `idx`; the
            // encoders are borrowed and each gets a reference of its own at once.
            (1..8)
                .map_while(|idx| unsafe {
                    super::encoder::OwnedEncoder::from_borrowed(get(o, idx))
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The video encoder's id (e.g. `obs_x264`) and a copy of its settings.
    pub fn video_encoder_settings(&self) -> Option<(String, super::data::Data)> {
        self.with(|o| {
            // SAFETY: the encoder pointer is borrowed from the live output; get_settings adds a reference we own.
            let enc = unsafe { sys::obs_output_get_video_encoder(o) };
            if enc.is_null() {
                return None;
            }
            let id = cstr_to_string(unsafe { sys::obs_encoder_get_id(enc) });
            let raw = unsafe { sys::obs_encoder_get_settings(enc) };
            (!raw.is_null()).then(|| (id, unsafe { super::data::Data::from_owned(raw) }))
        })
        .flatten()
    }

    /// Whether the video encoder takes bitrate changes while encoding (`OBS_ENCODER_CAP_DYN_BITRATE`).
    pub fn video_encoder_takes_bitrate_changes(&self) -> bool {
        self.with(|o| {
            // SAFETY: the encoder pointer is borrowed from the live output.
            let enc = unsafe { sys::obs_output_get_video_encoder(o) };
            !enc.is_null()
                && unsafe { sys::obs_encoder_get_caps(enc) } & sys::OBS_ENCODER_CAP_DYN_BITRATE != 0
        })
        .unwrap_or(false)
    }

    /// The audio encoder's configured bitrate (kbit/s), when it has one.
    pub fn audio_encoder_bitrate(&self) -> Option<u32> {
        self.with(|o| {
            // SAFETY: the encoder pointer is borrowed from the live output; get_settings adds a reference we own.
            let enc = unsafe { sys::obs_output_get_audio_encoder(o, 0) };
            if enc.is_null() {
                return None;
            }
            let raw = unsafe { sys::obs_encoder_get_settings(enc) };
            let data = (!raw.is_null()).then(|| unsafe { super::data::Data::from_owned(raw) })?;
            u32::try_from(data.as_settings().int("bitrate"))
                .ok()
                .filter(|b| *b > 0)
        })
        .flatten()
    }

    /// Merges `settings` into the video encoder's; libobs applies them on its encode thread at the next frame.
    pub fn update_video_encoder(&self, settings: &super::data::Data) {
        self.with(|o| {
            // SAFETY: live output and encoder; libobs copies the values it takes from `settings`.
            let enc = unsafe { sys::obs_output_get_video_encoder(o) };
            if !enc.is_null() {
                unsafe { sys::obs_encoder_update(enc, settings.as_ptr()) };
            }
        });
    }

    pub fn audio_encoder(&self) -> Option<AudioEncoderInfo> {
        self.with(|o| {
            // SAFETY: the encoder pointer is borrowed from the live output.
            let enc = unsafe { sys::obs_output_get_audio_encoder(o, 0) };
            if enc.is_null() {
                return None;
            }
            Some(AudioEncoderInfo {
                codec: cstr_to_string(unsafe { sys::obs_encoder_get_codec(enc) }),
                sample_rate: unsafe { sys::obs_encoder_get_sample_rate(enc) },
                extra_data: encoder_extra_data(enc),
            })
        })
        .flatten()
    }
}

pub(super) fn encoder_extra_data(enc: *mut sys::obs_encoder_t) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: enc is a live encoder; on success data points at `size` bytes the encoder owns, copied at once.
    let ok = unsafe { sys::obs_encoder_get_extra_data(enc, &mut data, &mut size) };
    if !ok || data.is_null() || size == 0 {
        return Vec::new();
    }
    unsafe { std::slice::from_raw_parts(data, size) }.to_vec()
}

/// The video codecs our outputs take from encoders, as libobs names them (`encoded_video_codecs`).
pub const VIDEO_CODECS: &CStr = c"h264;hevc;av1";

/// An output type implemented in safe Rust. OBS calls these from several threads (UI, output, encoder threads),
/// hence `&self` and `Sync`.
pub trait OutputType: Send + Sync + Sized + 'static {
    const ID: &'static CStr;
    /// Locale key of the name shown in OBS.
    const NAME_KEY: &'static CStr;
    const VIDEO_CODECS: &'static CStr;
    const AUDIO_CODECS: &'static CStr;
    const PROTOCOLS: &'static CStr;

    fn create(settings: &Settings, output: OutputHandle) -> Self;
    fn update(&self, settings: &Settings);
    fn defaults(settings: &Settings);
    fn properties() -> Properties;
    /// Must return at once; connecting happens elsewhere.
    fn start(&self) -> bool;
    /// Must return at once; teardown happens elsewhere.
    fn stop(&self, ts: u64);
    /// Called on OBS's output thread for every packet; must not block.
    fn packet(&self, packet: EncodedPacket);
    fn total_bytes(&self) -> u64;
    fn dropped_frames(&self) -> i32;
    fn congestion(&self) -> f32;
    fn connect_time_ms(&self) -> i32;
    /// A panic was caught in one of our callbacks: fail the stream cleanly.
    fn internal_error(&self, entry: &str);
    /// OBS is destroying the output (after stopping it).
    fn destroy(self);
}

struct Instance<T> {
    handle: OutputHandle,
    inner: T,
}

/// # Safety
/// `data` is the pointer `create` returned and OBS keeps it alive until `destroy`.
unsafe fn instance<'a, T>(data: *mut c_void) -> Option<&'a Instance<T>> {
    (data as *const Instance<T>).as_ref()
}

unsafe extern "C" fn get_name<T: OutputType>(_type_data: *mut c_void) -> *const c_char {
    guard("output get_name", T::ID.as_ptr(), || text_ptr(T::NAME_KEY))
}

unsafe extern "C" fn create<T: OutputType>(
    settings: *mut sys::obs_data_t,
    output: *mut sys::obs_output_t,
) -> *mut c_void {
    guard("output create", std::ptr::null_mut(), || {
        let handle = OutputHandle::new(output);
        // SAFETY: settings is valid for this call.
        let settings = unsafe { Settings::from_raw(settings) };
        let inner = T::create(&settings, handle.clone());
        Box::into_raw(Box::new(Instance { handle, inner })) as *mut c_void
    })
}

unsafe extern "C" fn destroy<T: OutputType>(data: *mut c_void) {
    guard("output destroy", (), || {
        if data.is_null() {
            return;
        }
        // SAFETY: created by Box::into_raw in `create`; OBS calls destroy once.
        let instance = unsafe { Box::from_raw(data as *mut Instance<T>) };
        instance.handle.detach();
        instance.inner.destroy();
    })
}

unsafe extern "C" fn start<T: OutputType>(data: *mut c_void) -> bool {
    guard("output start", false, || {
        match unsafe { instance::<T>(data) } {
            Some(i) => i.inner.start(),
            None => false,
        }
    })
}

unsafe extern "C" fn stop<T: OutputType>(data: *mut c_void, ts: u64) {
    guard("output stop", (), || {
        if let Some(i) = unsafe { instance::<T>(data) } {
            i.inner.stop(ts)
        }
    })
}

/// Copies one packet out of OBS's buffer. Returns None for a packet with no usable data.
///
/// # Safety
/// `packet` is null or points at a valid `encoder_packet` whose `data` holds `size` bytes for this call.
pub(super) unsafe fn copy_packet(packet: *const sys::encoder_packet) -> Option<EncodedPacket> {
    let p = packet.as_ref()?;
    if p.data.is_null() || p.size == 0 {
        return None;
    }
    let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(p.data, p.size));
    Some(EncodedPacket {
        kind: if p.type_ == sys::OBS_ENCODER_VIDEO {
            MediaKind::Video
        } else {
            MediaKind::Audio
        },
        data: bytes,
        pts: p.pts,
        dts: p.dts,
        timebase_num: p.timebase_num,
        timebase_den: p.timebase_den,
        keyframe: p.keyframe,
        dts_usec: p.dts_usec,
        sys_dts_usec: p.sys_dts_usec,
        track: p.track_idx,
        // libobs 30+ numbers an output's video encoders (simulcast layers OBS attached) in `track_idx`.
        layer: match p.type_ == sys::OBS_ENCODER_VIDEO {
            true => u8::try_from(p.track_idx).unwrap_or(u8::MAX),
            false => 0,
        },
        handoff_usec: super::libobs_clock_usec(),
    })
}

unsafe extern "C" fn encoded_packet<T: OutputType>(
    data: *mut c_void,
    packet: *mut sys::encoder_packet,
) {
    let Some(i) = (unsafe { instance::<T>(data) }) else {
        return;
    };
    let ok = guard("output encoded_packet", false, || {
        // SAFETY: OBS lends the packet for this call.
        if let Some(p) = unsafe { copy_packet(packet) } {
            i.inner.packet(p);
        }
        true
    });
    if !ok {
        guard("output internal_error", (), || {
            i.inner.internal_error("encoded_packet")
        });
    }
}

unsafe extern "C" fn update<T: OutputType>(data: *mut c_void, settings: *mut sys::obs_data_t) {
    guard("output update", (), || {
        if let Some(i) = unsafe { instance::<T>(data) } {
            i.inner.update(&unsafe { Settings::from_raw(settings) })
        }
    })
}

unsafe extern "C" fn get_defaults<T: OutputType>(settings: *mut sys::obs_data_t) {
    guard("output get_defaults", (), || {
        T::defaults(&unsafe { Settings::from_raw(settings) })
    })
}

unsafe extern "C" fn get_properties<T: OutputType>(
    _data: *mut c_void,
) -> *mut sys::obs_properties_t {
    guard("output get_properties", std::ptr::null_mut(), || {
        T::properties().into_raw()
    })
}

unsafe extern "C" fn get_total_bytes<T: OutputType>(data: *mut c_void) -> u64 {
    guard("output get_total_bytes", 0, || {
        unsafe { instance::<T>(data) }.map_or(0, |i| i.inner.total_bytes())
    })
}

unsafe extern "C" fn get_dropped_frames<T: OutputType>(data: *mut c_void) -> i32 {
    guard("output get_dropped_frames", 0, || {
        unsafe { instance::<T>(data) }.map_or(0, |i| i.inner.dropped_frames())
    })
}

unsafe extern "C" fn get_congestion<T: OutputType>(data: *mut c_void) -> f32 {
    guard("output get_congestion", 0.0, || {
        unsafe { instance::<T>(data) }.map_or(0.0, |i| i.inner.congestion())
    })
}

unsafe extern "C" fn get_connect_time_ms<T: OutputType>(data: *mut c_void) -> i32 {
    guard("output get_connect_time_ms", 0, || {
        unsafe { instance::<T>(data) }.map_or(0, |i| i.inner.connect_time_ms())
    })
}

/// Registers `T` with libobs, sized for the running libobs version.
pub fn register<T: OutputType>() {
    let info = sys::obs_output_info {
        id: T::ID.as_ptr(),
        flags: sys::OBS_OUTPUT_AV
            | sys::OBS_OUTPUT_ENCODED
            | sys::OBS_OUTPUT_SERVICE
            | multi_track_video(),
        get_name: Some(get_name::<T>),
        create: Some(create::<T>),
        destroy: Some(destroy::<T>),
        start: Some(start::<T>),
        stop: Some(stop::<T>),
        encoded_packet: Some(encoded_packet::<T>),
        update: Some(update::<T>),
        get_defaults: Some(get_defaults::<T>),
        get_properties: Some(get_properties::<T>),
        get_total_bytes: Some(get_total_bytes::<T>),
        get_dropped_frames: Some(get_dropped_frames::<T>),
        get_congestion: Some(get_congestion::<T>),
        get_connect_time_ms: Some(get_connect_time_ms::<T>),
        encoded_video_codecs: T::VIDEO_CODECS.as_ptr(),
        encoded_audio_codecs: T::AUDIO_CODECS.as_ptr(),
        protocols: T::PROTOCOLS.as_ptr(),
        ..Default::default()
    };
    let size = registration_size(
        std::mem::size_of::<sys::obs_output_info>(),
        offset_of!(sys::obs_output_info, protocols),
    );
    // SAFETY: libobs copies `size` bytes of the struct; every pointer in it is 'static.
    unsafe { sys::obs_register_output_s(&info, size) };
}

/// `obs_service_connect_info` values (libobs 29.1+).
const CONNECT_INFO_SERVER_URL: u32 = 0;
const CONNECT_INFO_BEARER_TOKEN: u32 = 10;

/// How this libobs gives a service's URL and key: `obs_service_get_connect_info` (29.1+) or the older
/// `obs_service_get_url`/`get_key` (removed in 32).
struct ServiceApi {
    connect_info: sys::obs_service_get_connect_info_fn,
    url: sys::obs_service_get_url_fn,
    key: sys::obs_service_get_key_fn,
}

/// libobs 30+'s `OBS_OUTPUT_MULTI_TRACK_VIDEO` (not in the 29.0 ABI our header declares): the output takes more
/// than one video encoder — how OBS 32.1+'s frontend hands it the simulcast layers it made.
const OBS_OUTPUT_MULTI_TRACK_VIDEO: u32 = 1 << 6;

/// The multi-track video flag where libobs knows it (it has `obs_output_get_video_encoder2`), else nothing.
fn multi_track_video() -> u32 {
    match output_api().video_encoder2 {
        Some(_) => OBS_OUTPUT_MULTI_TRACK_VIDEO,
        None => 0,
    }
}

/// libobs 30+ output functions, looked up at run time.
struct OutputApi {
    video_encoder2: sys::obs_output_get_video_encoder2_fn,
}

fn output_api() -> &'static OutputApi {
    static API: std::sync::OnceLock<OutputApi> = std::sync::OnceLock::new();
    API.get_or_init(|| {
        let found = super::loader::Library::libobs().symbol(c"obs_output_get_video_encoder2");
        // SAFETY: as in `service_api`: a symbol libobs exports has the signature its `_fn` type declares.
        unsafe {
            OutputApi {
                video_encoder2: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_output_get_video_encoder2_fn,
                >(found),
            }
        }
    })
}

fn service_api() -> &'static ServiceApi {
    static API: std::sync::OnceLock<ServiceApi> = std::sync::OnceLock::new();
    API.get_or_init(|| {
        let libobs = super::loader::Library::libobs();
        let find = |name: &std::ffi::CStr| libobs.symbol(name);
        // SAFETY: each symbol libobs exports has the signature its `_fn` type declares. A missing symbol (null)
        // becomes None.
        unsafe {
            ServiceApi {
                connect_info: std::mem::transmute::<
                    *mut c_void,
                    sys::obs_service_get_connect_info_fn,
                >(find(c"obs_service_get_connect_info")),
                url: std::mem::transmute::<*mut c_void, sys::obs_service_get_url_fn>(find(
                    c"obs_service_get_url",
                )),
                key: std::mem::transmute::<*mut c_void, sys::obs_service_get_key_fn>(find(
                    c"obs_service_get_key",
                )),
            }
        }
    })
}
