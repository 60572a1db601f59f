//! Video encoders the plugin owns: the smaller copies of the stream's encoder that simulcast layers come from.
use super::data::Data;
use super::output::{encoder_extra_data, OutputHandle};
use super::sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// One reference to a video encoder we created, released on drop.
pub struct OwnedEncoder {
    raw: NonNull<sys::obs_encoder_t>,
    id: String,
}

// SAFETY: the libobs calls made through it (update, settings, extra data, release) lock the encoder internally and
// may come from any thread.
unsafe impl Send for OwnedEncoder {}
unsafe impl Sync for OwnedEncoder {}

impl OwnedEncoder {
    /// A new encoder of the same type and settings as `output`'s video encoder, at `kbps`, fed OBS's main video
    /// scaled by libobs to `width`×`height`. Not yet initialised (an output initialises it).
    pub fn scaled_copy(
        output: &OutputHandle,
        name: &str,
        (width, height): (u32, u32),
        kbps: u32,
    ) -> Result<OwnedEncoder, String> {
        let (id, settings) = output
            .video_encoder_settings()
            .ok_or("the output has no video encoder")?;
        let mut settings = settings.copy();
        settings.set_int("bitrate", i64::from(kbps));
        let (c_id, c_name) = (
            CString::new(id.as_str()).map_err(|_| "bad encoder id")?,
            CString::new(name).map_err(|_| "bad encoder name")?,
        );
        // SAFETY: valid strings and settings; libobs takes its own reference to the settings.
        let raw = unsafe {
            sys::obs_video_encoder_create(
                c_id.as_ptr(),
                c_name.as_ptr(),
                settings.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        let raw =
            NonNull::new(raw).ok_or_else(|| format!("libobs could not create a {id} encoder"))?;
        // SAFETY: a fresh, inactive encoder of ours; the main video lives as long as libobs.
        unsafe {
            sys::obs_encoder_set_scaled_size(raw.as_ptr(), width, height);
            sys::obs_encoder_set_video(raw.as_ptr(), sys::obs_get_video());
        }
        Ok(OwnedEncoder { raw, id })
    }

    /// A reference of our own to `raw`, an encoder libobs lent us (None for null, or one being destroyed).
    ///
    /// # Safety
    /// `raw` is null or a live encoder for this call.
    pub unsafe fn from_borrowed(raw: *mut sys::obs_encoder_t) -> Option<OwnedEncoder> {
        if raw.is_null() {
            return None;
        }
        // SAFETY: live (caller); get_ref adds a strong reference, or returns null once it is being destroyed.
        let raw = NonNull::new(unsafe { sys::obs_encoder_get_ref(raw) })?;
        let id = super::output::cstr_to_string(unsafe { sys::obs_encoder_get_id(raw.as_ptr()) });
        Some(OwnedEncoder { raw, id })
    }

    /// Its picture size (after libobs's scaling).
    pub fn size(&self) -> (u32, u32) {
        // SAFETY: live encoder.
        unsafe {
            (
                sys::obs_encoder_get_width(self.raw.as_ptr()),
                sys::obs_encoder_get_height(self.raw.as_ptr()),
            )
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of its settings.
    pub fn settings(&self) -> Option<Data> {
        // SAFETY: live encoder; get_settings adds a reference we own.
        let raw = unsafe { sys::obs_encoder_get_settings(self.raw.as_ptr()) };
        (!raw.is_null()).then(|| unsafe { Data::from_owned(raw) })
    }

    /// Merges `settings` into its own; libobs applies them on its encode thread at the next frame.
    pub fn update(&self, settings: &Data) {
        // SAFETY: live encoder; libobs copies the values.
        unsafe { sys::obs_encoder_update(self.raw.as_ptr(), settings.as_ptr()) };
    }

    /// Its codec configuration (H.264: SPS and PPS), once initialised.
    pub fn extra_data(&self) -> Vec<u8> {
        encoder_extra_data(self.raw.as_ptr())
    }

    pub(super) fn as_ptr(&self) -> *mut sys::obs_encoder_t {
        self.raw.as_ptr()
    }
}

impl Drop for OwnedEncoder {
    fn drop(&mut self) {
        // SAFETY: we own one reference; libobs destroys the encoder once no output uses it.
        unsafe { sys::obs_encoder_release(self.raw.as_ptr()) };
    }
}
