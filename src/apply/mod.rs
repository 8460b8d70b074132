//! Apply: run a [`Plan`]'s steps, one executor per step kind.
//!
//! Each executor looks again at the one thing it changes before changing it (the world may have
//! moved since observation), so a rerun converges and a step whose work is already done says so
//! instead of failing. Steps that touch different node directories run in parallel; everything
//! else runs in order: the workspace, then `ComfyUI/`, then the nodes, then the password, then
//! the compose file, then the container. A failed step stops only the steps that depend on it.
//!
//! Nothing here decides *what* to do: that is the planner's job, and the plan `apply` prints is
//! the plan it runs.

mod compose;
mod container;
mod fetch;
mod git;
pub mod lock;
mod models;
mod password;
mod python;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use crate::manifest::Desired;
use crate::observe::Observed;
use crate::plan::{Action, Phase, Plan, Step, Target};
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

pub use crate::error::{ApplyError, StepError};
pub(crate) use container::remove as remove_container;
pub(crate) use password::generate as generate_password;

/// What an executor returns.
type Exec = Result<Outcome, StepError>;

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

/// What the executors act on besides their step: where the workspace is, what observation saw
/// that an executor must re-check, where progress goes, and one clock reading for the run.
/// Never the manifest: a step carries everything else its executor needs.
pub struct Env<'a> {
    /// The workspace folder (absolute).
    pub workspace: PathBuf,
    /// The digest of `login/PASSWORD` when the plan was made (empty when it was missing): the
    /// password executor re-checks a file that changed since instead of trusting the plan.
    pub seen_password: String,
    pub reporter: &'a dyn Reporter,
    /// One instant for the whole run: every directory moved aside gets the same timestamp.
    pub now: SystemTime,
}

impl<'a> Env<'a> {
    /// The environment for applying a plan made from `desired` and `observed`.
    pub fn new(desired: &Desired, observed: &Observed, reporter: &'a dyn Reporter) -> Env<'a> {
        Env {
            workspace: desired.workspace.path.clone(),
            seen_password: observed.password.digest.clone(),
            reporter,
            now: SystemTime::now(),
        }
    }

    fn comfyui(&self) -> PathBuf {
        self.workspace.join("ComfyUI")
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

/// Run the plan's steps in phase order (see [`Action::phase`]): the workspace, `ComfyUI/`, the
/// node directories (in parallel, each in order), the password, the compose file, the container.
pub fn apply(env: &Env, plan: &Plan, opts: &Options) -> Report {
    let reporter = env.reporter;
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
        let _span = tracing::info_span!("step", step = %step.action.describe()).entered();
        let outcome = match execute(env, id, step) {
            Ok(o) => o,
            Err(cause) => Outcome::Failed {
                error: ApplyError::new(step, cause).message(),
            },
        };
        record(id, outcome);
    };

    // Indices into plan.steps, per phase, in plan order.
    let mut workspace = Vec::new();
    let mut comfyui = Vec::new();
    let mut groups: Vec<(&str, Vec<StepId>)> = Vec::new();
    let mut password = Vec::new();
    let mut python = Vec::new();
    let mut models = Vec::new();
    let mut compose = Vec::new();
    let mut container = Vec::new();
    for (id, step) in plan.steps.iter().enumerate() {
        match step.action.phase() {
            Phase::Workspace => workspace.push(id),
            Phase::ComfyUi => comfyui.push(id),
            Phase::Node(dir) => match groups.iter_mut().find(|(k, _)| *k == dir) {
                Some((_, v)) => v.push(id),
                None => groups.push((dir, vec![id])),
            },
            Phase::Password => password.push(id),
            Phase::Python => python.push(id),
            Phase::Models => models.push(id),
            Phase::Compose => compose.push(id),
            Phase::Container => container.push(id),
        }
    }

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
    let why_not = if no_workspace {
        Some("the workspace could not be created")
    } else if !env.comfyui().is_dir() {
        Some("ComfyUI/ is not there")
    } else {
        None
    };

    // Node steps grouped by directory: one directory's steps in order, directories in parallel.
    if !groups.is_empty() && why_not.is_none() {
        let _ = std::fs::create_dir_all(env.custom_nodes());
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
    let mut stop: Option<String> = why_not.map(str::to_owned);
    for &id in &password {
        run_one(id, stop.as_deref());
        if stop.is_none() && failed(id) {
            stop = Some("the password step before it failed".to_owned());
        }
    }
    // The lock, then the sync to it. A failure (a conflict, an index out of reach) leaves
    // the server as it is: no container step runs on an environment that is not the lock's.
    let mut stop: Option<String> = why_not.map(str::to_owned);
    for &id in &python {
        run_one(id, stop.as_deref());
        if stop.is_none() && failed(id) {
            stop = Some(format!("`{}` failed", plan.steps[id].action.describe()));
        }
    }
    let python_failed = python.iter().any(|&i| failed(i));
    // Model files in parallel, at most 4 at a time (each download is one connection; more
    // rarely helps and shares the disk).
    let next = AtomicUsize::new(0);
    let workers = opts.jobs.clamp(1, 4).min(models.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(&id) = models.get(next.fetch_add(1, Ordering::Relaxed)) {
                    run_one(id, why_not);
                }
            });
        }
    });
    for &id in &compose {
        run_one(id, None);
    }
    // The container steps check PASSWORD themselves before starting anything; those after a
    // failed create, start or recreate have no server to act on.
    let mut no_server: Option<String> = python_failed
        .then(|| "the Python environment is not in sync with comfy.lock (see above)".to_owned());
    for &id in &container {
        let action = &plan.steps[id].action;
        if let Action::RestartContainer { .. } = action
            && let Some(why) = nothing_changed(plan, id, &outcomes)
        {
            record(id, Outcome::AlreadyDone { why });
            continue;
        }
        run_one(id, no_server.as_deref());
        if action.starts_server() && failed(id) {
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

/// The lock step on its own, for `comfyprov lock`.
pub fn lock_python(
    env: &Env,
    spec: &crate::manifest::PythonSpec,
    files: &[String],
    git: &[(Target, String)],
) -> Exec {
    python::lock(env, spec, files, git, false)
}

/// A restart is for what the steps it names changed; when each of them found its work already
/// done (a sync with nothing to install), the server has nothing new to pick up.
fn nothing_changed(
    plan: &Plan,
    restart: StepId,
    outcomes: &[Mutex<Option<Outcome>>],
) -> Option<String> {
    let mut causes = Vec::new();
    for reason in &plan.steps[restart].reasons {
        let crate::plan::Reason::ChangedBy { action } = reason else {
            return None;
        };
        let id = plan
            .steps
            .iter()
            .position(|s| &s.action == action.as_ref())?;
        causes.push(id);
    }
    let all_done = !causes.is_empty()
        && causes.iter().all(|&id| {
            outcomes[id]
                .lock()
                .is_ok_and(|o| matches!(*o, Some(Outcome::AlreadyDone { .. })))
        });
    all_done.then(|| "every step it was for found nothing to change".to_owned())
}

/// The one place that maps a step kind to its executor. Each executor gets the step's own
/// payload and the environment, nothing else.
fn execute(env: &Env, id: StepId, step: &Step) -> Exec {
    match &step.action {
        Action::CreateWorkspace { .. } => {
            std::fs::create_dir_all(&env.workspace)
                .map_err(|e| StepError::io("cannot create", &env.workspace, e))?;
            Ok(Outcome::Done { detail: None })
        }
        Action::Clone { target, url, rev } => git::clone(env, id, target, url, rev),
        Action::Checkout {
            target,
            url,
            rev,
            resume,
            ..
        } => git::checkout(env, id, target, url, rev, *resume),
        Action::Replace {
            target, url, rev, ..
        } => git::replace(env, id, target, url, rev),
        Action::Enable { node, from } => git::enable(env, node, from),
        Action::Disable { dir } => git::disable(env, dir),
        Action::GeneratePassword { file } => password::generate(file),
        Action::WritePassword {
            new_hash, login, ..
        } => password::write(env, *new_hash, login),
        Action::MoveLegacyPassword => password::move_legacy(env),
        Action::RemoveLegacyPassword => password::remove_legacy(env),
        Action::FixPasswordMode { .. } => password::fix_mode(env),
        Action::RenderCompose { file, content, .. } => compose::write(file, content),
        Action::PlaceModel {
            model,
            target,
            sha256,
            size,
            cache,
            lock_file,
            from_cache,
            ..
        } => models::place(
            env,
            id,
            &models::Place {
                model,
                target,
                sha256: sha256.as_deref(),
                size: *size,
                cache,
                lock_file,
                from_cache: *from_cache,
            },
        ),
        Action::RecordModel {
            path,
            url,
            sha256,
            size,
            lock_file,
        } => models::record_found(path, url, sha256, *size, lock_file),
        Action::Refuse { .. } => Ok(Outcome::Left {
            why: crate::plan::display::joined(&step.reasons),
        }),
        Action::Blocked { blocker } => Ok(Outcome::Left {
            why: blocker.help(),
        }),
        Action::CreateContainer { container, guard } => {
            container::create(env, id, container, guard)
        }
        Action::StartContainer { name, guard, .. } => container::start(env, name, guard),
        Action::RecreateContainer {
            container, guard, ..
        } => container::recreate(env, id, container, guard),
        Action::RestartContainer { name, guard } => container::restart(env, name, guard),
        Action::LockPython {
            spec,
            files,
            git,
            locked,
        } => python::lock(env, spec, files, git, *locked),
        Action::SyncPython {
            spec,
            image,
            packages,
            ..
        } => python::sync(env, spec, image, packages.as_deref()),
    }
}
