//! Helpers shared by the integration tests.
#![allow(dead_code)]
pub mod ant_media;
pub mod bad_janus;
pub mod bad_whip;
pub mod browser;
pub mod janus;
pub mod netns;
pub mod obs_frontend;
pub mod obs_run;
pub mod procfs;
pub mod receiver;
pub mod replay;
pub mod turn;
pub mod whip_front;

/// target/bench, where benchmarks leave their plots and logs (made if missing).
pub fn bench_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    dir
}

/// A loopback port nothing listens on now (the kernel's pick, released again), and never handed out before in this
/// process: tests run in parallel threads, and two servers started at once must not be given the same port (one
/// would fail to listen while the other answers in its place).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Held listeners keep the kernel from picking the same port twice in this loop.
    let mut held = Vec::new();
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
        held.push(listener);
        assert!(
            held.len() < 1000,
            "no loopback port left that was not handed out"
        );
    }
}
