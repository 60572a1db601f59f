//! Helpers shared by the integration tests.
#![allow(dead_code)]
pub mod bad_janus;
pub mod bad_whip;
pub mod browser;
pub mod janus;
pub mod netns;
pub mod obs_frontend;
pub mod obs_run;
pub mod receiver;
pub mod turn;
pub mod whip_front;

/// target/bench, where benchmarks leave their plots and logs (made if missing).
pub fn bench_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    dir
}

/// A loopback port nothing listens on now (the kernel's pick, released again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
