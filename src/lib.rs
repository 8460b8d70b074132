//! comfyprov: declarative provisioning for ComfyUI deployments.
//!
//! The flow is observe → plan → apply: `manifest` turns `comfy.toml` into `Desired`, `observe`
//! reads reality once into `Observed`, `plan::plan` compares the two without any I/O, and the CLI
//! prints or saves the resulting `Plan`.

pub mod apply;
pub mod cli;
pub mod fsutil;
pub mod manifest;
pub mod observe;
pub mod plan;
pub mod render;
pub mod report;
pub mod secret;
pub mod verify;
