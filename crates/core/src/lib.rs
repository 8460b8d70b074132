//! comfyprov's pure core: everything that decides, nothing that acts.
//!
//! `manifest` turns `comfy.toml`'s text into `Desired`; `observed` holds the plain data the
//! binary's observation fills in; `plan::plan` compares the two; `render` turns the desired
//! container into its run spec and compose file; `report` is the vocabulary of progress.
//!
//! This crate does no I/O: its `Cargo.toml` has no git, Docker, bcrypt, async or libc crate, and
//! `clippy.toml` bans the std file, process, environment and clock APIs. What validation must
//! look at (a secret file's length) reaches it through [`manifest::Lookup`].

pub mod digest;
pub mod lock;
pub mod manifest;
pub mod observed;
pub mod plan;
pub mod render;
pub mod report;
pub mod secret;
