//! The sans-IO media core: pure functions and state machines over encoded packets. No OBS, no sockets, no
//! clocks read here (time is always an argument), so every piece is unit-tested on its own.
pub mod av1;
pub mod av1_rtp;
pub mod capture;
pub mod clock;
pub mod h264;
pub mod h264_rtp;
pub mod hevc_rtp;
pub mod latency;
pub mod opus;
pub mod packet;
pub mod reassembly;
pub mod video;
