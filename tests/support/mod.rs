//! Helpers shared by the integration tests.
#![allow(dead_code)]
pub mod bad_whip;
pub mod browser;
pub mod janus;
pub mod netns;
pub mod obs_frontend;
pub mod obs_run;
pub mod receiver;
pub mod turn;
pub mod whip_front;
