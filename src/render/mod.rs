//! Rendering: `Desired` → files. Pure functions with deterministic output.

pub mod compose;
pub mod spec;
