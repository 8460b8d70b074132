//! Rendering: the manifest's container → its run spec ([`spec`]) → the compose file
//! ([`compose`]). Pure functions with deterministic output.

pub mod compose;
pub mod spec;

pub use spec::{CONTAINER_PORT, CONTAINER_ROOT, Container, LABEL_PROJECT, LABEL_SPEC, RunSpec};
