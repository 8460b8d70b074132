//! The integration tests: one binary, one shared support module (`support.rs`: real git
//! repositories and daemons, real Docker images and containers, a project folder that runs the
//! real `comfyprov` binary, a recording reporter).
//!
//! Tests that need Docker skip with a message when no engine answers, except with `CI=true`,
//! where they fail.

mod apply;
mod cli;
mod container;
mod fuzz;
mod layout;
mod manifests;
mod models;
mod observe;
mod plan_scenarios;
mod pyindex;
mod python;
mod schema;
mod support;
