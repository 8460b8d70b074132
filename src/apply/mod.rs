//! Apply: run a [`Plan`]'s steps, one executor per step kind.
//!
//! Each executor looks again at the one thing it changes before changing it (the world may have
//! moved since observation), so a rerun converges and a step whose work is already done says so
//! instead of failing. Steps that touch different node directories run in parallel; everything
//! else runs in order: the workspace, then `ComfyUI/`, then the nodes, then the password, then
//! the compose file. A failed step stops only the steps that depend on it.
//!
//! Nothing here decides *what* to do: that is the planner's job, and the plan `apply` prints is
//! the plan it runs.

mod compose;
mod container;
mod fetch;
mod git;
pub mod lock;
mod password;
mod requirements;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::manifest::{Desired, GitSource};
use crate::observe::Observed;
use crate::plan::{Action, Plan, Step, Target};
use crate::report::{Outcome, Reporter, StepId};

/// Choices for one apply.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How many node steps may run at once (clones and fetches are mostly waiting on I/O).
    pub jobs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { jobs: 8 }
    }
}

/// Why a step failed: the cause, and what the user can do about it.
#[derive(Debug)]
pub struct Failure {
    pub cause: String,
    pub help: Option<String>,
}

impl Failure {
    pub fn new(cause: impl Into<String>) -> Self {
        Failure {
            cause: cause.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        let help = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                Some("check the owner and permissions of the workspace".to_owned())
            }
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                Some("free some disk space and run apply again".to_owned())
            }
            _ => None,
        };
        Failure {
            cause: e.to_string(),
            help,
        }
    }
}

/// What an executor returns.
type Exec = Result<Outcome, Failure>;

/// How one step ended, kept for the summary.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub step: Step,
    pub outcome: Outcome,
}

/// Everything `apply` did and did not do.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In plan order.
    pub results: Vec<StepResult>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &StepResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
    }

    pub fn left(&self) -> impl Iterator<Item = &StepResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Left { .. }))
    }

    pub fn done(&self) -> impl Iterator<Item = &StepResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Done { .. }))
    }

    /// What a running ComfyUI must restart to pick up: the steps that changed something it
    /// reads at start.
    pub fn restart_reasons(&self) -> Vec<String> {
        self.done()
            .filter(|r| r.step.action.needs_restart())
            .map(|r| r.step.action.describe())
            .collect()
    }
}

/// What the executors share.
struct Ctx<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    reporter: &'a dyn Reporter,
    /// One instant for the whole run: every directory moved aside gets the same timestamp.
    now: SystemTime,
}

impl Ctx<'_> {
    fn comfyui(&self) -> PathBuf {
        self.desired.workspace.path.join("ComfyUI")
    }

    fn custom_nodes(&self) -> PathBuf {
        self.comfyui().join("custom_nodes")
    }

    fn path_of(&self, target: &Target) -> PathBuf {
        match target {
            Target::ComfyUi => self.comfyui(),
            Target::Node(n) => self.custom_nodes().join(n),
        }
    }

    fn source_of(&self, target: &Target) -> Option<&GitSource> {
        match target {
            Target::ComfyUi => self.desired.comfyui.as_ref(),
            Target::Node(n) => self
                .desired
                .nodes
                .iter()
                .find(|s| &s.name == n)
                .map(|s| &s.source),
        }
    }
}

/// Remove temp clones left by an apply that was killed. Call with the lock held: then no other
/// apply can be using them.
pub fn sweep_leftovers(desired: &Desired) -> Vec<String> {
    let ws = &desired.workspace.path;
    let mut swept = Vec::new();
    for dir in [ws.clone(), ws.join("ComfyUI").join("custom_nodes")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::fsutil::is_temp_name(&name) && std::fs::remove_dir_all(e.path()).is_ok() {
                swept.push(shown_path(desired, &e.path()));
            }
        }
    }
    swept
}

/// A path relative to the workspace, for messages.
fn shown_path(desired: &Desired, path: &Path) -> String {
    let rel = path
        .strip_prefix(&desired.workspace.path)
        .unwrap_or(path)
        .display()
        .to_string();
    format!("{}/{rel}", desired.workspace.shown.trim_end_matches('/'))
}

/// Run the plan's steps. `observed` is what the plan was made from.
pub fn apply(
    desired: &Desired,
    observed: &Observed,
    plan: &Plan,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Report {
    let ctx = Ctx {
        desired,
        observed,
        reporter,
        now: SystemTime::now(),
    };
    let outcomes: Vec<Mutex<Option<Outcome>>> =
        plan.steps.iter().map(|_| Mutex::new(None)).collect();
    let record = |id: StepId, outcome: Outcome| {
        reporter.on_step_finish(id, &plan.steps[id], &outcome);
        if let Ok(mut slot) = outcomes[id].lock() {
            *slot = Some(outcome);
        }
    };
    let failed = |id: StepId| {
        outcomes[id]
            .lock()
            .map(|o| matches!(*o, Some(Outcome::Failed { .. })))
            .unwrap_or(true)
    };

    // Phases, in order. Indices into plan.steps.
    let ids = |f: &dyn Fn(&Action) -> bool| -> Vec<StepId> {
        (0..plan.steps.len())
            .filter(|&i| f(&plan.steps[i].action))
            .collect()
    };
    let workspace = ids(&|a| matches!(a, Action::CreateWorkspace { .. }));
    let comfyui = ids(&|a| a.git_target() == Some(&Target::ComfyUi));
    let nodes = ids(&|a| a.node_dir().is_some());
    let rest = ids(&|a| {
        !matches!(a, Action::CreateWorkspace { .. })
            && a.git_target().is_none()
            && a.node_dir().is_none()
    });

    let run_one = |id: StepId, blocked_by: Option<&str>| {
        let step = &plan.steps[id];
        if let Some(why) = blocked_by {
            record(
                id,
                Outcome::Left {
                    why: why.to_owned(),
                },
            );
            return;
        }
        reporter.on_step_start(id, step);
        let outcome = match execute(&ctx, id, step) {
            Ok(o) => o,
            Err(f) => Outcome::Failed {
                error: failure_message(step, &f),
            },
        };
        record(id, outcome);
    };

    for &id in &workspace {
        run_one(id, None);
    }
    let no_workspace = workspace.iter().any(|&i| failed(i));
    for &id in &comfyui {
        run_one(
            id,
            no_workspace.then_some("the workspace could not be created"),
        );
    }
    let comfyui_missing = !ctx.comfyui().is_dir();
    let why_not = if no_workspace {
        Some("the workspace could not be created")
    } else if comfyui_missing {
        Some("ComfyUI/ is not there")
    } else {
        None
    };

    // Node steps grouped by directory: one directory's steps in order, directories in parallel.
    let mut groups: Vec<(String, Vec<StepId>)> = Vec::new();
    for &id in &nodes {
        let key = plan.steps[id]
            .action
            .node_dir()
            .unwrap_or_default()
            .to_owned();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(id),
            None => groups.push((key, vec![id])),
        }
    }
    if !groups.is_empty() && why_not.is_none() {
        let _ = std::fs::create_dir_all(ctx.custom_nodes());
    }
    let next = AtomicUsize::new(0);
    let workers = opts.jobs.max(1).min(groups.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let g = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, ids)) = groups.get(g) else { break };
                    let mut stop: Option<String> = why_not.map(str::to_owned);
                    for &id in ids {
                        run_one(id, stop.as_deref());
                        if stop.is_none() && failed(id) {
                            stop = Some("the step before it failed".to_owned());
                        }
                    }
                }
            });
        }
    });

    // The password steps build on each other (generate, write, move, chmod): stop at a failure.
    // The container step comes last and checks PASSWORD itself before starting anything.
    // The container steps after a failed create, start or recreate have no server to act on.
    let mut stop: Option<String> = why_not.map(str::to_owned);
    let mut no_server: Option<String> = None;
    for &id in &rest {
        let action = &plan.steps[id].action;
        let is_password = !matches!(action, Action::RenderCompose { .. }) && !action.is_container();
        let lifecycle = action.is_container()
            && !matches!(
                action,
                Action::InstallRequirements { .. } | Action::RestartContainer { .. }
            );
        let gate = if is_password {
            stop.as_deref()
        } else if action.is_container() {
            no_server.as_deref()
        } else {
            None
        };
        run_one(id, gate);
        if is_password && stop.is_none() && failed(id) {
            stop = Some("the password step before it failed".to_owned());
        }
        if lifecycle && failed(id) {
            no_server = Some(format!("`{}` failed", action.describe()));
        }
    }

    let results = plan
        .steps
        .iter()
        .zip(outcomes)
        .map(|(step, slot)| StepResult {
            step: step.clone(),
            outcome: slot.into_inner().ok().flatten().unwrap_or(Outcome::Left {
                why: "not run".to_owned(),
            }),
        })
        .collect();
    Report { results }
}

/// `failed to clone ComfyUI-Login @ 6910925: <cause>` with the help on its own line.
fn failure_message(step: &Step, f: &Failure) -> String {
    let mut msg = format!(
        "failed to {}\n  caused by: {}",
        step.action.describe(),
        f.cause
    );
    if let Some(h) = &f.help {
        msg.push_str("\n  help: ");
        msg.push_str(h);
    }
    msg
}

/// The one place that maps a step kind to its executor.
fn execute(ctx: &Ctx, id: StepId, step: &Step) -> Exec {
    match &step.action {
        Action::CreateWorkspace { .. } => {
            std::fs::create_dir_all(&ctx.desired.workspace.path)?;
            Ok(Outcome::Done { detail: None })
        }
        Action::Clone { target, url, rev } => git::clone(ctx, id, target, url, rev),
        Action::Checkout { target, rev, .. } => git::checkout(ctx, id, target, rev),
        Action::Replace {
            target, url, rev, ..
        } => git::replace(ctx, id, target, url, rev),
        Action::Enable { node, from } => git::enable(ctx, node, from),
        Action::Disable { dir } => git::disable(ctx, dir),
        Action::GeneratePassword { .. } => password::generate(ctx),
        Action::WritePassword { new_hash, .. } => password::write(ctx, *new_hash),
        Action::MoveLegacyPassword => password::move_legacy(ctx),
        Action::RemoveLegacyPassword => password::remove_legacy(ctx),
        Action::FixPasswordMode { .. } => password::fix_mode(ctx),
        Action::RenderCompose { .. } => compose::render(ctx),
        Action::Refuse { .. } => Ok(Outcome::Left {
            why: step.reasons.join("; "),
        }),
        Action::Blocked { help, .. } => Ok(Outcome::Left { why: help.clone() }),
        Action::CreateContainer { .. } => container::create(ctx, id),
        Action::StartContainer { .. } => container::start(ctx),
        Action::RecreateContainer { .. } => container::recreate(ctx, id),
        Action::RestartContainer { .. } => container::restart(ctx),
        Action::ReplaceContainer { .. } => container::replace(ctx, id),
        Action::InstallRequirements { node } => requirements::install(ctx, node),
    }
}
