//! Encoder taps: packets straight from the encoders, without libobs's interleaver.
//!
//! libobs feeds an output that has both audio and video through its interleaver, which sorts packets by
//! timestamp and releases one per arriving packet: whatever depth it reaches at start-up (audio waits for video
//! held in x264's lookahead) stays for the whole stream. An output of a single kind gets each packet from the
//! encoder directly. A tap is such an output, private to the plugin: two of them (one video, one audio) share
//! the encoders of our main output, which OBS still starts, stops, counts and reconnects as an ordinary AV output.
//! Taps are never listed to the user (no protocol, never started through `obs_output_start`).
//!
//! Simulcast layers come the same way from encoders of our own ([`LayerTap`]): a tap is what initialises and
//! starts such an encoder, and it tags the packets with their layer.
use super::guard::guard;
use super::output::copy_packet;
use super::sys;
use crate::media::packet::{EncodedPacket, MediaKind};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const TAP_VIDEO_ID: &CStr = c"rtc_studio_tap_video";
const TAP_AUDIO_ID: &CStr = c"rtc_studio_tap_audio";

/// Where a tap's packets go. Called on the encoder's thread: must not block.
pub type Deliver = Arc<dyn Fn(EncodedPacket) + Send + Sync>;

thread_local! {
    /// The receiver for the tap being created on this thread: `obs_output_create` calls our `create` synchronously.
    static PENDING: RefCell<Option<Deliver>> = const { RefCell::new(None) };
}

struct TapData {
    output: *mut sys::obs_output_t,
    /// None when the tap was created by anyone but [`open`] (it then refuses to start and drops packets).
    deliver: Option<Deliver>,
}

unsafe extern "C" fn get_name(_type_data: *mut c_void) -> *const c_char {
    guard("tap get_name", TAP_VIDEO_ID.as_ptr(), || {
        c"RTC Studio encoder tap (internal)".as_ptr()
    })
}

unsafe extern "C" fn create(
    _settings: *mut sys::obs_data_t,
    output: *mut sys::obs_output_t,
) -> *mut c_void {
    guard("tap create", std::ptr::null_mut(), || {
        let deliver = PENDING.with(|p| p.borrow_mut().take());
        Box::into_raw(Box::new(TapData { output, deliver })) as *mut c_void
    })
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    guard("tap destroy", (), || {
        if !data.is_null() {
            // SAFETY: made by Box::into_raw in `create`; libobs destroys once, after the last packet.
            drop(unsafe { Box::from_raw(data as *mut TapData) });
        }
    })
}

/// Taps are begun directly by [`open`], never through `obs_output_start`.
unsafe extern "C" fn start(_data: *mut c_void) -> bool {
    guard("tap start", false, || false)
}

/// libobs stops every output of a failing encoder (`full_stop`): end the tap's capture.
unsafe extern "C" fn stop(data: *mut c_void, _ts: u64) {
    guard("tap stop", (), || {
        // SAFETY: data is our TapData while libobs keeps the output alive.
        if let Some(tap) = unsafe { (data as *const TapData).as_ref() } {
            unsafe { sys::obs_output_end_data_capture(tap.output) };
        }
    })
}

unsafe extern "C" fn encoded_packet(data: *mut c_void, packet: *mut sys::encoder_packet) {
    guard("tap encoded_packet", (), || {
        // SAFETY: data is our TapData; OBS lends the packet (or null, when an encoder fails) for this call.
        let Some(tap) = (unsafe { (data as *const TapData).as_ref() }) else {
            return;
        };
        if let (Some(deliver), Some(p)) = (&tap.deliver, unsafe { copy_packet(packet) }) {
            deliver(p);
        }
    })
}

fn register_one(id: &'static CStr, flags: u32) {
    let info = sys::obs_output_info {
        id: id.as_ptr(),
        flags: flags | sys::OBS_OUTPUT_ENCODED,
        get_name: Some(get_name),
        create: Some(create),
        destroy: Some(destroy),
        start: Some(start),
        stop: Some(stop),
        encoded_packet: Some(encoded_packet),
        encoded_video_codecs: super::output::VIDEO_CODECS.as_ptr(),
        encoded_audio_codecs: c"opus".as_ptr(),
        ..Default::default()
    };
    let size = super::module::registration_size(
        std::mem::size_of::<sys::obs_output_info>(),
        offset_of!(sys::obs_output_info, protocols),
    );
    // SAFETY: libobs copies `size` bytes; every pointer in the struct is 'static.
    unsafe { sys::obs_register_output_s(&info, size) };
}

/// Registers the two tap output types (at module load).
pub fn register() {
    register_one(TAP_VIDEO_ID, sys::OBS_OUTPUT_VIDEO);
    register_one(TAP_AUDIO_ID, sys::OBS_OUTPUT_AUDIO);
}

/// One tap of ours. Dropping it ends its capture and destroys it (waiting for libobs's end-of-capture thread, a few
/// milliseconds): after the drop it delivers no packet.
struct RawTap(NonNull<sys::obs_output_t>);
// SAFETY: the libobs calls made on a tap (begin/end_data_capture, release) lock internally and may come from any
// thread.
unsafe impl Send for RawTap {}

impl Drop for RawTap {
    fn drop(&mut self) {
        // SAFETY: we own one reference; end_data_capture is a no-op on an inactive output, and release destroys it
        // after joining the end-of-capture thread.
        unsafe {
            sys::obs_output_end_data_capture(self.0.as_ptr());
            sys::obs_output_release(self.0.as_ptr());
        }
    }
}

/// Open taps on one output's encoders; dropping it closes them.
pub struct EncoderTaps {
    taps: Vec<RawTap>,
}

static TAP_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Makes one tap of `kind` with `encoder` attached (not yet begun).
///
/// # Safety
/// `encoder` is a live encoder of that kind.
unsafe fn make_tap(
    kind: MediaKind,
    encoder: *mut sys::obs_encoder_t,
    deliver: &Deliver,
) -> Result<RawTap, String> {
    let (id, what) = match kind {
        MediaKind::Video => (TAP_VIDEO_ID, "video"),
        MediaKind::Audio => (TAP_AUDIO_ID, "audio"),
    };
    let name = CString::new(format!(
        "rtc-studio-tap-{what}-{}",
        TAP_SERIAL.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("no NUL");
    PENDING.with(|p| *p.borrow_mut() = Some(deliver.clone()));
    // SAFETY: a registered type id and a fresh name; our `create` takes PENDING on this thread.
    let raw = unsafe {
        sys::obs_output_create(
            id.as_ptr(),
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    PENDING.with(|p| p.borrow_mut().take());
    let tap =
        RawTap(NonNull::new(raw).ok_or_else(|| format!("libobs could not create the {what} tap"))?);
    let o = tap.0.as_ptr();
    // SAFETY: `o` is our live tap; the encoder is live (caller).
    unsafe {
        match kind {
            MediaKind::Video => sys::obs_output_set_video_encoder(o, encoder),
            MediaKind::Audio => sys::obs_output_set_audio_encoder(o, encoder, 0),
        }
    }
    Ok(tap)
}

impl RawTap {
    /// Starts the tap's capture (and with it, its encoders).
    fn begin(&self) -> Result<(), String> {
        // SAFETY: our live tap, its encoder attached.
        match unsafe { sys::obs_output_begin_data_capture(self.0.as_ptr(), 0) } {
            true => Ok(()),
            false => Err("libobs refused to start an encoder tap".into()),
        }
    }
}

/// Opens one tap of `kind` on `encoder`.
///
/// # Safety
/// `encoder` is a live, initialised encoder of that kind.
unsafe fn open_one(
    kind: MediaKind,
    encoder: *mut sys::obs_encoder_t,
    deliver: &Deliver,
) -> Result<RawTap, String> {
    // SAFETY: as the caller promises. On error the tap drops: never begun, release destroys it at once.
    let tap = unsafe { make_tap(kind, encoder, deliver) }?;
    tap.begin()?;
    Ok(tap)
}

/// A tap on a simulcast layer's encoder: made (and the encoder initialised — its codec configuration exists only
/// then) ahead of the stream, begun once the stream has somewhere to put packets. Its packets carry the layer.
/// Drop it before its encoder.
pub struct LayerTap {
    tap: RawTap,
    /// Where packets go, once begun (set once; read on the encoder's thread for every packet, without a lock).
    target: Arc<std::sync::OnceLock<Deliver>>,
}

impl LayerTap {
    /// Makes the tap for video layer `layer`, and initialises `encoder` through it when `initialise` (an encoder
    /// OBS attached to the output was initialised with the output's own).
    pub fn prepare(
        encoder: &super::encoder::OwnedEncoder,
        layer: u8,
        initialise: bool,
    ) -> Result<LayerTap, String> {
        let target: Arc<std::sync::OnceLock<Deliver>> = Arc::default();
        let to = target.clone();
        let deliver: Deliver = Arc::new(move |mut p: EncodedPacket| {
            p.layer = layer;
            if let Some(d) = to.get() {
                d(p);
            }
        });
        // SAFETY: a live video encoder of ours.
        let tap = unsafe { make_tap(MediaKind::Video, encoder.as_ptr(), &deliver) }?;
        // SAFETY: our live tap with the encoder attached.
        if initialise && !unsafe { sys::obs_output_initialize_encoders(tap.0.as_ptr(), 0) } {
            return Err(format!(
                "libobs could not initialise the {} encoder of simulcast layer {layer}",
                encoder.id()
            ));
        }
        Ok(LayerTap { tap, target })
    }

    /// Starts the encoder; its packets go to `deliver` (a tap is begun once).
    pub fn begin(&self, deliver: Deliver) -> Result<(), String> {
        self.target
            .set(deliver)
            .map_err(|_| "a simulcast layer's tap was begun twice".to_string())?;
        self.tap.begin()
    }
}

/// Taps the video encoder and the first audio encoder of `output` (a live output whose encoders are initialised,
/// normally just after its own `obs_output_begin_data_capture`). Packets go to `deliver` from the encoders' threads.
///
/// # Safety
/// `output` is alive for this call.
pub(super) unsafe fn open(
    output: *mut sys::obs_output_t,
    deliver: Deliver,
) -> Result<EncoderTaps, String> {
    let mut taps = EncoderTaps { taps: Vec::new() };
    // SAFETY: the encoders are borrowed from the live output for this call.
    let video = unsafe { sys::obs_output_get_video_encoder(output) };
    let audio = unsafe { sys::obs_output_get_audio_encoder(output, 0) };
    if video.is_null() || audio.is_null() {
        return Err("the output lacks a video or audio encoder".into());
    }
    for (kind, encoder) in [(MediaKind::Video, video), (MediaKind::Audio, audio)] {
        // SAFETY: live encoders of the output (above). On error `taps` drops, closing what was opened.
        taps.taps
            .push(unsafe { open_one(kind, encoder, &deliver) }?);
    }
    Ok(taps)
}
