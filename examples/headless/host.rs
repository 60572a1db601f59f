//! Hosting libobs ourselves (the headless runner, which the tests and benchmarks run): start-up on an X11/EGL
//! display, modules opened one by one (never `obs_load_all_modules`, whose frontend modules abort a non-Qt host),
//! and owned handles for the sources, encoders, services and outputs we create. Everything is released before
//! `obs_shutdown`. Test tooling, not part of the plugin: it calls libobs through the plugin's bindings
//! (`rtc_studio::obs::sys`), and its `unsafe` stays out of the shipped `.so`.
use rtc_studio::obs::data::Data;
use rtc_studio::obs::sys;
use std::ffi::{c_void, CStr, CString};
use std::ptr;

fn c(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("text contains NUL: {s:?}"))
}

/// A running libobs. Only one may exist per process; `shutdown` ends it and reports leaked allocations.
pub struct ObsHost {
    display: *mut c_void,
}

/// Video mixing settings for `obs_reset_video`.
#[derive(Clone, Copy, Debug)]
pub struct VideoMix {
    pub width: u32,
    pub height: u32,
    pub fps_num: u32,
    pub fps_den: u32,
}

impl ObsHost {
    /// Opens the X display named by `$DISPLAY` and starts libobs on it.
    pub fn start() -> Result<ObsHost, String> {
        // SAFETY: null means "$DISPLAY"; we own the connection until shutdown.
        let display = unsafe { sys::XOpenDisplay(ptr::null()) };
        if display.is_null() {
            return Err("cannot open an X display: run under `xvfb-run -a`".into());
        }
        // SAFETY: must precede obs_startup; the display outlives libobs (closed after obs_shutdown).
        unsafe {
            sys::obs_set_nix_platform(sys::OBS_NIX_PLATFORM_X11_EGL);
            sys::obs_set_nix_platform_display(display);
        }
        // SAFETY: plain start-up with the default module config path and no profiler.
        if !unsafe { sys::obs_startup(c"en-US".as_ptr(), ptr::null(), ptr::null_mut()) } {
            unsafe { sys::XCloseDisplay(display) };
            return Err("obs_startup failed".into());
        }
        Ok(ObsHost { display })
    }

    pub fn version(&self) -> String {
        rtc_studio::obs::module::libobs_version_string()
    }

    pub fn reset_video(&self, mix: VideoMix) -> Result<(), String> {
        let mut ovi = sys::obs_video_info {
            graphics_module: c"libobs-opengl".as_ptr(),
            fps_num: mix.fps_num,
            fps_den: mix.fps_den,
            base_width: mix.width,
            base_height: mix.height,
            output_width: mix.width,
            output_height: mix.height,
            output_format: sys::VIDEO_FORMAT_NV12,
            adapter: 0,
            gpu_conversion: true,
            colorspace: sys::VIDEO_CS_709,
            range: sys::VIDEO_RANGE_PARTIAL,
            scale_type: sys::OBS_SCALE_BICUBIC,
        };
        // SAFETY: ovi is fully initialised; libobs copies it.
        let rc = unsafe { sys::obs_reset_video(&mut ovi) };
        if rc == sys::OBS_VIDEO_SUCCESS as i32 {
            Ok(())
        } else {
            Err(format!("obs_reset_video failed with code {rc}"))
        }
    }

    pub fn reset_audio(&self, sample_rate: u32, stereo: bool) -> Result<(), String> {
        let oai = sys::obs_audio_info {
            samples_per_sec: sample_rate,
            speakers: if stereo {
                sys::SPEAKERS_STEREO
            } else {
                sys::SPEAKERS_MONO
            },
        };
        // SAFETY: oai is fully initialised; libobs copies it.
        if unsafe { sys::obs_reset_audio(&oai) } {
            Ok(())
        } else {
            Err("obs_reset_audio failed".into())
        }
    }

    /// Opens and initialises one module from `binary` with its data directory.
    pub fn load_module(&self, binary: &str, data_dir: &str) -> Result<(), String> {
        let (b, d) = (c(binary)?, c(data_dir)?);
        let mut module: *mut sys::obs_module_t = ptr::null_mut();
        // SAFETY: valid strings; libobs fills `module` on success.
        let rc = unsafe { sys::obs_open_module(&mut module, b.as_ptr(), d.as_ptr()) };
        if rc != sys::MODULE_SUCCESS as i32 || module.is_null() {
            return Err(format!("obs_open_module({binary}) failed with code {rc}"));
        }
        // SAFETY: module was just opened.
        if !unsafe { sys::obs_init_module(module) } {
            return Err(format!(
                "obs_init_module({binary}) failed (see the log above)"
            ));
        }
        Ok(())
    }

    pub fn post_load_modules(&self) {
        // SAFETY: after all modules are opened.
        unsafe { sys::obs_post_load_modules() }
    }

    pub fn create_source(&self, id: &str, name: &str, settings: &Data) -> Result<Source, String> {
        let (i, n) = (c(id)?, c(name)?);
        // SAFETY: valid strings and settings; returns a new reference or null.
        let raw = unsafe {
            sys::obs_source_create(i.as_ptr(), n.as_ptr(), settings.as_ptr(), ptr::null_mut())
        };
        if raw.is_null() {
            Err(format!("cannot create source {id} (is its module loaded?)"))
        } else {
            Ok(Source { raw })
        }
    }

    pub fn create_scene(&self, name: &str) -> Result<Scene, String> {
        let n = c(name)?;
        // SAFETY: valid name; returns a new scene reference.
        let raw = unsafe { sys::obs_scene_create(n.as_ptr()) };
        if raw.is_null() {
            Err("cannot create scene".into())
        } else {
            Ok(Scene { raw })
        }
    }

    /// Shows `scene` on output channel 0 (what encoders see).
    pub fn set_program(&self, scene: &Scene) {
        // SAFETY: the scene's source is borrowed; libobs takes its own reference.
        unsafe { sys::obs_set_output_source(0, sys::obs_scene_get_source(scene.raw)) }
    }

    pub fn clear_program(&self) {
        // SAFETY: null clears the channel.
        unsafe { sys::obs_set_output_source(0, ptr::null_mut()) }
    }

    pub fn create_video_encoder(
        &self,
        id: &str,
        name: &str,
        settings: &Data,
    ) -> Result<Encoder, String> {
        let (i, n) = (c(id)?, c(name)?);
        // SAFETY: valid strings/settings; returns a new reference or null.
        let raw = unsafe {
            sys::obs_video_encoder_create(
                i.as_ptr(),
                n.as_ptr(),
                settings.as_ptr(),
                ptr::null_mut(),
            )
        };
        if raw.is_null() {
            return Err(format!("cannot create video encoder {id}"));
        }
        // SAFETY: raw is live; the main video output exists after reset_video.
        unsafe { sys::obs_encoder_set_video(raw, sys::obs_get_video()) };
        Ok(Encoder { raw })
    }

    pub fn create_audio_encoder(
        &self,
        id: &str,
        name: &str,
        settings: &Data,
    ) -> Result<Encoder, String> {
        let (i, n) = (c(id)?, c(name)?);
        // SAFETY: as above, mixer 0.
        let raw = unsafe {
            sys::obs_audio_encoder_create(
                i.as_ptr(),
                n.as_ptr(),
                settings.as_ptr(),
                0,
                ptr::null_mut(),
            )
        };
        if raw.is_null() {
            return Err(format!("cannot create audio encoder {id}"));
        }
        // SAFETY: raw is live; the main audio output exists after reset_audio.
        unsafe { sys::obs_encoder_set_audio(raw, sys::obs_get_audio()) };
        Ok(Encoder { raw })
    }

    pub fn create_service(&self, id: &str, name: &str, settings: &Data) -> Result<Service, String> {
        let (i, n) = (c(id)?, c(name)?);
        // SAFETY: as above.
        let raw = unsafe {
            sys::obs_service_create(i.as_ptr(), n.as_ptr(), settings.as_ptr(), ptr::null_mut())
        };
        if raw.is_null() {
            Err(format!(
                "cannot create service {id} (is its module loaded?)"
            ))
        } else {
            Ok(Service { raw })
        }
    }

    pub fn create_output(&self, id: &str, name: &str, settings: &Data) -> Result<Output, String> {
        let (i, n) = (c(id)?, c(name)?);
        // SAFETY: as above.
        let raw = unsafe {
            sys::obs_output_create(i.as_ptr(), n.as_ptr(), settings.as_ptr(), ptr::null_mut())
        };
        if raw.is_null() {
            return Err(format!("cannot create output {id} (is its module loaded?)"));
        }
        let stop_code = Box::new(std::sync::atomic::AtomicI64::new(NOT_STOPPED));
        // SAFETY: the slot lives in the Output and is disconnected in its Drop.
        unsafe {
            let handler = sys::obs_output_get_signal_handler(raw);
            let slot = &*stop_code as *const _ as *mut c_void;
            sys::signal_handler_connect(handler, c"stop".as_ptr(), Some(on_stop), slot);
        }
        Ok(Output { raw, stop_code })
    }

    /// Shuts libobs down and returns the number of libobs allocations still outstanding (0 = no leaks).
    pub fn shutdown(self) -> i64 {
        // SAFETY: every object we created was released by its owner's Drop before this consumes the host.
        unsafe {
            sys::obs_shutdown();
            sys::XCloseDisplay(self.display);
            sys::bnum_allocs() as i64
        }
    }
}

macro_rules! owned {
    ($name:ident, $raw:ty, $release:ident) => {
        pub struct $name {
            raw: *mut $raw,
        }
        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own one reference, released once.
                unsafe { sys::$release(self.raw) }
            }
        }
    };
}
owned!(Source, sys::obs_source_t, obs_source_release);
owned!(Scene, sys::obs_scene_t, obs_scene_release);
owned!(Encoder, sys::obs_encoder_t, obs_encoder_release);
owned!(Service, sys::obs_service_t, obs_service_release);

impl Service {
    /// The video codecs the service says it takes (`obs_service_get_supported_video_codecs`), as OBS's Output
    /// settings ask before listing encoders.
    pub fn supported_video_codecs(&self) -> Vec<String> {
        let mut codecs = Vec::new();
        // SAFETY: live service; a NULL-terminated list of C strings it owns, read before anything changes it.
        unsafe {
            let mut at = sys::obs_service_get_supported_video_codecs(self.raw);
            while !at.is_null() && !(*at).is_null() {
                codecs.push(CStr::from_ptr(*at).to_string_lossy().into_owned());
                at = at.add(1);
            }
        }
        codecs
    }
}

impl Encoder {
    /// The bitrate in the encoder's settings now (kbit/s): what it encodes at, as the plugin changes it.
    pub fn bitrate(&self) -> i64 {
        // SAFETY: live encoder; get_settings returns a new reference, owned (and released) by Data.
        let settings = unsafe { Data::from_owned(sys::obs_encoder_get_settings(self.raw)) };
        settings.as_settings().int("bitrate")
    }
}

/// An output we created; watches its "stop" signal for the stop code.
pub struct Output {
    raw: *mut sys::obs_output_t,
    stop_code: Box<std::sync::atomic::AtomicI64>,
}

/// No "stop" signal seen yet.
pub const NOT_STOPPED: i64 = i64::MIN;

unsafe extern "C" fn on_stop(data: *mut c_void, cd: *mut sys::calldata_t) {
    let _ = std::panic::catch_unwind(|| {
        let mut code: std::os::raw::c_longlong = 0;
        // SAFETY: libobs passes the calldata of its "stop" signal, which holds an integer "code".
        if unsafe {
            sys::calldata_get_data(cd, c"code".as_ptr(), &mut code as *mut _ as *mut c_void, 8)
        } {
            // SAFETY: data is the AtomicI64 owned by the Output, which disconnects before freeing it.
            let slot = unsafe { &*(data as *const std::sync::atomic::AtomicI64) };
            slot.store(code, std::sync::atomic::Ordering::SeqCst);
        }
    });
}

impl Drop for Output {
    fn drop(&mut self) {
        // SAFETY: disconnect before the slot is freed, then release our reference.
        unsafe {
            let handler = sys::obs_output_get_signal_handler(self.raw);
            let slot = &*self.stop_code as *const _ as *mut c_void;
            sys::signal_handler_disconnect(handler, c"stop".as_ptr(), Some(on_stop), slot);
            sys::obs_output_release(self.raw);
        }
    }
}

impl Scene {
    pub fn add(&self, source: &Source) {
        // SAFETY: both are live; the scene takes its own reference to the source.
        unsafe { sys::obs_scene_add(self.raw, source.raw) };
    }
}

impl Output {
    pub fn set_encoders(&self, video: &Encoder, audio: &Encoder) {
        // SAFETY: live objects; the output takes its own references.
        unsafe {
            sys::obs_output_set_video_encoder(self.raw, video.raw);
            sys::obs_output_set_audio_encoder(self.raw, audio.raw, 0);
        }
    }

    pub fn set_service(&self, service: &Service) {
        // SAFETY: live objects; the output takes its own reference.
        unsafe { sys::obs_output_set_service(self.raw, service.raw) }
    }

    pub fn start(&self) -> bool {
        // SAFETY: live output.
        unsafe { sys::obs_output_start(self.raw) }
    }

    pub fn stop(&self) {
        // SAFETY: live output.
        unsafe { sys::obs_output_stop(self.raw) }
    }

    /// What OBS offers to stop an output that is not active yet (still connecting): `obs_output_stop` ignores it.
    pub fn force_stop(&self) {
        // SAFETY: live output.
        unsafe { sys::obs_output_force_stop(self.raw) }
    }

    pub fn active(&self) -> bool {
        // SAFETY: live output.
        unsafe { sys::obs_output_active(self.raw) }
    }

    pub fn total_bytes(&self) -> u64 {
        // SAFETY: live output.
        unsafe { sys::obs_output_get_total_bytes(self.raw) }
    }

    pub fn total_frames(&self) -> i32 {
        // SAFETY: live output.
        unsafe { sys::obs_output_get_total_frames(self.raw) }
    }

    pub fn frames_dropped(&self) -> i32 {
        // SAFETY: live output.
        unsafe { sys::obs_output_get_frames_dropped(self.raw) }
    }

    /// What OBS's status bar shows as the congestion square, 0..1.
    pub fn congestion(&self) -> f32 {
        // SAFETY: live output.
        unsafe { sys::obs_output_get_congestion(self.raw) }
    }

    /// The code of the last "stop" signal (`OBS_OUTPUT_*`), or [`NOT_STOPPED`].
    pub fn stop_code(&self) -> i64 {
        self.stop_code.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn last_error(&self) -> Option<String> {
        // SAFETY: live output; the string belongs to it and is copied at once.
        let p = unsafe { sys::obs_output_get_last_error(self.raw) };
        if p.is_null() {
            None
        } else {
            Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        }
    }
}
