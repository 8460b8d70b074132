//! Progress as plain data. `apply` tells a [`Reporter`] what it starts, how a transfer advances
//! and how each step ends; it never draws anything itself. The command line implements the trait
//! with indicatif bars on a terminal and plain lines elsewhere; tests record the events.

use crate::plan::Step;

/// Index of a step in the plan being applied.
pub type StepId = usize;

/// How far a long step has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Objects and bytes received by a clone or fetch.
    Transfer {
        received_objects: usize,
        total_objects: usize,
        received_bytes: usize,
    },
    /// Files written by a checkout.
    Checkout { done: usize, total: usize },
    /// An image pull: layers complete, and bytes downloaded of the layers' known sizes.
    Pull {
        layers_done: usize,
        layers: usize,
        bytes_done: u64,
        bytes_total: u64,
    },
    /// A model download: bytes on disk (a resumed one starts above 0), of `total` when the
    /// server said; bytes per second over the last interval.
    Download {
        done: u64,
        total: Option<u64>,
        rate: u64,
    },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; `detail` says what was found or made (e.g. the commit a tag resolved to).
    Done { detail: Option<String> },
    /// Nothing to do any more: the world already matched when the executor looked again.
    AlreadyDone { why: String },
    /// Not attempted, and why (refused, blocked, or something it depends on failed).
    Left { why: String },
    /// Failed; the message names the step, the object and the cause.
    Failed { error: String },
}

/// Receives progress events. Called from several threads at once during parallel clones.
pub trait Reporter: Sync {
    fn on_step_start(&self, id: StepId, step: &Step);
    fn on_progress(&self, id: StepId, progress: Progress);
    fn on_step_finish(&self, id: StepId, step: &Step, outcome: &Outcome);
    /// Something worth saying that is not a step (e.g. a leftover from an interrupted apply).
    fn on_message(&self, message: &str);
}

/// A reporter that says nothing.
pub struct Silent;

impl Reporter for Silent {
    fn on_step_start(&self, _: StepId, _: &Step) {}
    fn on_progress(&self, _: StepId, _: Progress) {}
    fn on_step_finish(&self, _: StepId, _: &Step, _: &Outcome) {}
    fn on_message(&self, _: &str) {}
}
