//! Every `extern "C"` entry runs its body through [`guard`]: a panic never unwinds into OBS.
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`; if it panics, logs the panic as an error naming `entry` and returns `fallback`.
pub fn guard<R>(entry: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            crate::obs::log::error(&format!(
                "internal error in {entry}: {}",
                panic_message(&*payload)
            ));
            fallback
        }
    }
}

/// The text a panic carried, if it was a string.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
