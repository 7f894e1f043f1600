//! opsdeck: a terminal dashboard for TestOps exports, Swarm releases and logs.
//!
//! Services (`export`, `schedule`) are plain async Rust usable without a screen; the CLI and the
//! headless daemon (`cli`) are front ends over them. See ARCHITECTURE.md.

pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod events;
pub mod export;
pub mod health;
pub mod logging;
pub mod logs;
pub mod notify;
pub mod paths;
pub mod private;
pub mod release;
pub mod sanitize;
pub mod schedule;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod sqlite;
pub mod storage;
pub mod testops;
pub mod testops_sim;
pub mod tui;
