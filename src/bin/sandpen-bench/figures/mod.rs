//! One file per figure. Each returns its rows, or why it could not be measured.

pub mod checkouts;
pub mod footprint;
pub mod gateway;
pub mod image_cache;
pub mod lifecycle;
pub mod logs;
pub mod many;
pub mod plan;
pub mod real_cli;
pub mod speedup;
pub mod throughput;
pub mod warm;
