//! The only network code: the driver of the sans-IO session, an HTTP client for signalling and a WebRTC peer
//! connection, on tokio runtimes the plugin owns: each session's on its stream worker's thread
//! ([`session_runtime`]), the metrics endpoint's on a shared one ([`runtime`]).
//! OBS's threads never enter here; the stream worker does, and module unload shuts the shared runtime down.
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

/// A handle to the plugin's shared runtime (the metrics endpoint's), started on first use (two worker threads named
/// `rtc-studio-net`).
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

/// A runtime for one session, run by the thread that calls [`SessionRuntime::block_on`] (the stream worker): the
/// session's timers, its sockets, the WebRTC stack's tasks and the packets OBS hands over all meet on that one
/// thread. With the session on a shared multi-threaded runtime instead, every RTP packet crossed threads twice
/// (worker → runtime → the WebRTC stack's task) and every pacer timer woke two threads: 45 % more CPU in the replay
/// benchmark. Tasks it still holds when it is dropped are dropped with it.
pub fn session_runtime() -> std::io::Result<SessionRuntime> {
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(SessionRuntime(Some(r)))
}

/// How long dropping a session's runtime waits for its blocking work (name lookups) to end.
const SESSION_RUNTIME_DROP: Duration = Duration::from_secs(1);

/// A session's runtime. Dropped, it waits at most [`SESSION_RUNTIME_DROP`] for blocking work still running (a
/// runtime's own drop would wait for a hung name lookup as long as it takes).
pub struct SessionRuntime(Option<tokio::runtime::Runtime>);

impl SessionRuntime {
    pub fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.0
            .as_ref()
            .expect("runtime until dropped")
            .block_on(work)
    }
}

impl Drop for SessionRuntime {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.shutdown_timeout(SESSION_RUNTIME_DROP);
        }
    }
}

/// Stops the shared runtime and its threads, waiting at most `deadline` for tasks to finish.
pub fn shutdown(deadline: Duration) {
    let rt = RUNTIME.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(r) = rt {
        r.shutdown_timeout(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_session_runtime_runs_its_tasks_on_the_calling_thread_and_its_drop_does_not_wait_for_a_hung_lookup(
    ) {
        let rt = session_runtime().unwrap();
        let caller = std::thread::current().id();
        let ran_on =
            rt.block_on(async { tokio::spawn(async { std::thread::current().id() }).await });
        assert_eq!(ran_on.unwrap(), caller);
        // A name lookup that hangs, as getaddrinfo does behind a dead DNS server.
        let (started_tx, started) = std::sync::mpsc::channel();
        rt.block_on(async {
            tokio::task::spawn_blocking(move || {
                let _ = started_tx.send(());
                std::thread::sleep(Duration::from_secs(30));
            });
        });
        started.recv().unwrap();
        let t = Instant::now();
        drop(rt);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the drop waited {:?}",
            t.elapsed()
        );
    }
}
