//! The only network code: the driver of the sans-IO session, an HTTP client for signalling and a WebRTC peer
//! connection, on a tokio runtime the plugin owns.
//! OBS's threads never enter here; the stream worker does, and module unload shuts the runtime down.
pub mod ant_media;
pub mod driver;
pub mod feedback;
pub mod http;
pub mod janus;
pub mod peer;
pub mod rtx;
pub mod signalling;
pub mod turn_bridge;
pub mod websocket;

use std::sync::Mutex;
use std::time::Duration;

/// A task on the runtime that ends when this is dropped.
pub struct Task(tokio::task::JoinHandle<()>);

impl Task {
    pub fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) -> Task {
        Task(tokio::spawn(work))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

static RUNTIME: Mutex<Option<tokio::runtime::Runtime>> = Mutex::new(None);

/// A handle to the plugin's runtime, started on first use (two worker threads named `rtc-studio-net`).
pub fn runtime() -> std::io::Result<tokio::runtime::Handle> {
    let mut rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = rt.as_ref() {
        return Ok(r.handle().clone());
    }
    let r = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rtc-studio-net")
        .enable_all()
        .build()?;
    let handle = r.handle().clone();
    *rt = Some(r);
    Ok(handle)
}

/// Stops the runtime and its threads, waiting at most `deadline` for tasks to finish.
pub fn shutdown(deadline: Duration) {
    let rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = rt {
        r.shutdown_timeout(deadline);
    }
}
