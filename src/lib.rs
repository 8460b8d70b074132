//! comfyprov: declarative provisioning for ComfyUI deployments.
//!
//! The flow is observe → plan → apply. The pure half lives in the `comfyprov-core` crate
//! (`crates/core`): the manifest, the observed-state types, the planner, the steps, rendering and
//! progress events. This crate is the half that touches the world: `observe` reads the workspace
//! (git2), the password (bcrypt) and the container (bollard) into the core's `Observed`; `apply`
//! runs one executor per step kind; `verify` probes the server; `ops` strings them together; the
//! CLI parses arguments and prints.

pub use comfyprov_core::{digest, lock, observed, plan, render, report, secret};

pub mod apply;
pub mod cli;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod import;
pub mod manifest;
pub mod observe;
pub mod ops;
pub mod uv;
pub mod verify;
