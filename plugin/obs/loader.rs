//! Functions looked up at run time in libraries already in the process: the OBS frontend API (only the `obs`
//! program has it) and libobs functions that some supported versions lack. Linux asks libc's dynamic loader
//! (`dlopen` with `RTLD_NOLOAD`, `dlsym`), Windows asks kernel32 (`GetModuleHandleA`, `GetProcAddress`); neither
//! ever loads a library.
use std::ffi::{c_void, CStr};

/// A library that is in the process for good (OBS never unloads libobs or its frontend API while plugins live).
pub struct Library(*mut c_void);

#[cfg(windows)]
#[link(name = "kernel32")]
extern "system" {
    fn GetModuleHandleA(name: *const std::ffi::c_char) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const std::ffi::c_char) -> *mut c_void;
}

impl Library {
    /// The library if it is already loaded: `linux` is its SONAME, `windows` its DLL name.
    pub fn loaded(linux: &CStr, windows: &CStr) -> Option<Library> {
        #[cfg(windows)]
        let handle = {
            let _ = linux;
            // SAFETY: a NUL-terminated name; returns the module if it is loaded, without loading it or taking a
            // reference.
            unsafe { GetModuleHandleA(windows.as_ptr()) }
        };
        #[cfg(not(windows))]
        let handle = {
            let _ = windows;
            // SAFETY: RTLD_NOLOAD only returns a handle if the library is already loaded; it loads nothing. The
            // handle's reference keeps it loaded, and it is in the process for good anyway.
            unsafe {
                super::sys::dlopen(
                    linux.as_ptr(),
                    (super::sys::RTLD_LAZY | super::sys::RTLD_NOLOAD) as i32,
                )
            }
        };
        (!handle.is_null()).then_some(Library(handle))
    }

    /// libobs, which the plugin links and so is always loaded.
    pub fn libobs() -> Library {
        #[cfg(windows)]
        {
            Library::loaded(c"libobs.so.0", c"obs.dll").expect("obs.dll is linked, so loaded")
        }
        #[cfg(not(windows))]
        {
            // RTLD_DEFAULT: the process's global scope, where libobs is.
            Library(std::ptr::null_mut())
        }
    }

    /// The address of `name`, or null if the library does not export it.
    pub fn symbol(&self, name: &CStr) -> *mut c_void {
        // SAFETY: a handle from `loaded`/`libobs` (or RTLD_DEFAULT) and a NUL-terminated name.
        unsafe {
            #[cfg(windows)]
            {
                GetProcAddress(self.0, name.as_ptr())
            }
            #[cfg(not(windows))]
            {
                super::sys::dlsym(self.0, name.as_ptr())
            }
        }
    }
}
