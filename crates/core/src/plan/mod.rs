//! The planner: `plan(&Desired, &Observed, &Options) -> Plan`, a pure function.
//!
//! No filesystem, no git, no Docker, no clock, no environment: everything it needs is in its
//! arguments, so the same inputs always give the same plan, and the plan `plan` prints is the plan
//! `apply` runs. The compiler holds that line: this crate links no I/O crate, and clippy bans the
//! std I/O APIs here (`crates/core/clippy.toml`).

pub mod display;
pub mod step;

use serde::Serialize;

pub use step::{
    Action, Blocker, Guard, Kind, ModelProblem, Note, Obstacle, Phase, Reason, Recreate, Step,
    Target, bytes, short,
};

use crate::digest::sha256_hex;
use crate::lock::{Lock, LockedGit};
use crate::manifest::{AuthSpec, Desired, GitSource, LoginSpec, Rev, SecretSource, UnmanagedNodes};
use crate::observed::{
    Checkout, ContainerInfo, ContainerState, DirState, EnvState, FileState, HashState, Liveness,
    LockState, Observed, PasswordFile, PortState, SecretState,
};
use crate::render::Container;

/// Choices the user makes on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace dirty, non-git and foreign checkouts (the old directory is kept aside).
    pub force: bool,
    /// Plan the workspace only: no container steps (the restart is left to the user).
    pub workspace_only: bool,
    /// `--locked`: refuse a `comfy.lock` that no longer matches; never rewrite it.
    pub locked: bool,
}

/// What `apply` would do, in order, and what is worth knowing besides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub notes: Vec<Note>,
}

impl Plan {
    /// Whether anything differs from the manifest.
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Why the container could not be observed, if it could not: then the plan cannot say that
    /// reality matches, and `plan` exits 1.
    pub fn unobserved(&self) -> Option<&str> {
        self.notes.iter().find_map(|n| match n {
            Note::ContainerNotObserved { reason } => Some(reason.as_str()),
            _ => None,
        })
    }

    /// Number of steps of each kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action.kind() == kind)
            .count()
    }

    fn push(&mut self, action: Action, reason: Reason) {
        self.steps.push(Step {
            action,
            reasons: vec![reason],
        });
    }
}

/// Compare the manifest with what was observed.
pub fn plan(desired: &Desired, observed: &Observed, opts: &Options) -> Plan {
    let mut plan = Plan::default();

    if !observed.workspace_exists {
        plan.push(
            Action::CreateWorkspace {
                path: desired.workspace.shown.clone(),
            },
            Reason::WorkspaceMissing {
                path: desired.workspace.shown.clone(),
            },
        );
    }

    match (&desired.comfyui, &observed.comfyui) {
        (Some(src), state) => plan_checkout(&mut plan, Target::ComfyUi, src, state, None, opts),
        (None, DirState::Missing) => plan.push(
            Action::Blocked {
                blocker: Blocker::ComfyUiNotInstalled,
            },
            Reason::ComfyUiAbsent {
                workspace: desired.workspace.shown.clone(),
            },
        ),
        (None, _) => {}
    }

    plan_nodes(&mut plan, desired, observed, opts);

    if let AuthSpec::Login(login) = &desired.auth {
        plan_password(&mut plan, login, observed);
    }

    plan_python(&mut plan, desired, observed, opts);

    plan_models(&mut plan, desired, observed, opts);

    let container = Container::new(desired);
    if let (Some(c), Some(container), Some(file)) =
        (&desired.container, &container, &observed.compose)
    {
        let content = crate::render::compose::render_container(container, &c.compose_file.shown);
        let path = c.compose_file.shown.clone();
        let reason = match file {
            FileState::Missing => Some(Reason::ComposeMissing { path }),
            FileState::Present { sha256, .. } if *sha256 != sha256_hex(content.as_bytes()) => {
                Some(Reason::ComposeDiffers { path })
            }
            FileState::Present { .. } => None,
            FileState::Unreadable { error } => Some(Reason::ComposeUnreadable {
                path,
                error: error.clone(),
            }),
            FileState::Linked { why } => {
                // Never written through: the user must replace the link.
                plan.push(
                    Action::Blocked {
                        blocker: Blocker::Linked { path: path.clone() },
                    },
                    Reason::ComposeUnreadable {
                        path,
                        error: why.clone(),
                    },
                );
                None
            }
        };
        if let Some(reason) = reason {
            plan.push(
                Action::RenderCompose {
                    file: c.compose_file.clone(),
                    exists: !matches!(file, FileState::Missing),
                    previous: match file {
                        FileState::Present { text, .. } => Some(text.clone()),
                        _ => None,
                    },
                    content,
                },
                reason,
            );
        }
    }

    let restart: Vec<Reason> = plan
        .steps
        .iter()
        .filter(|s| s.action.needs_restart())
        .map(|s| Reason::ChangedBy {
            action: Box::new(s.action.clone()),
        })
        .collect();
    if matches!(desired.auth, AuthSpec::Login(_)) && desired.container.is_some() {
        plan.notes.push(Note::TokenInLog {
            name: desired.project.clone(),
        });
    }
    let planned = match container {
        Some(container) if !opts.workspace_only => {
            plan_container(&mut plan, desired, observed, opts, container, &restart)
        }
        _ => false,
    };
    if !planned && !restart.is_empty() {
        plan.notes.push(Note::RestartNeeded {
            reasons: restart.iter().map(ToString::to_string).collect(),
        });
    }
    plan
}

/// The container's lifecycle step, at most one.
enum Lifecycle {
    /// Running as the manifest says: only a restart may be due, with this pending reason.
    Running(Option<Reason>),
    Step(Action, Reason),
}

/// The container: create, start, recreate or restart it, at most one of them, last. `false`
/// when the container could not be planned (not observed), so the restart is the user's.
fn plan_container(
    plan: &mut Plan,
    desired: &Desired,
    observed: &Observed,
    opts: &Options,
    container: Container,
    restart: &[Reason],
) -> bool {
    let name = container.name.clone();
    let guard = Guard {
        login: match &desired.auth {
            AuthSpec::Login(l) => Some(l.clone()),
            AuthSpec::None { .. } => None,
        },
        gpu: container.spec.gpu.is_some(),
    };
    let lifecycle = match &observed.container {
        ContainerState::NotManaged => return false,
        ContainerState::NotObserved { reason } => {
            plan.notes.push(Note::ContainerNotObserved {
                reason: reason.clone(),
            });
            return false;
        }
        ContainerState::Missing => Lifecycle::Step(
            Action::CreateContainer {
                container: Box::new(container),
                guard: guard.clone(),
            },
            Reason::NoContainer { name: name.clone() },
        ),
        ContainerState::Present(info) => {
            plan.notes.push(Note::ContainerStatus {
                name: name.clone(),
                status: info.status.clone(),
                health: info.health.clone(),
                started_at: info.started_at.clone(),
            });
            critical_note(plan, desired, observed, info);
            let changes = if info.project_label.as_deref() == Some(name.as_str()) {
                Vec::new()
            } else {
                adoption_changes(info, &container.spec)
            };
            match lifecycle(info, container, &guard, observed, opts) {
                Some(l) => l,
                None => {
                    plan.push(
                        Action::Blocked {
                            blocker: Blocker::ForeignContainer { name: name.clone() },
                        },
                        Reason::ForeignContainer {
                            name,
                            forced: false,
                            changes,
                        },
                    );
                    return true;
                }
            }
        }
    };
    // A server started on a port something else holds would fail after the old one is gone:
    // blocked here, with what holds it.
    if let (Lifecycle::Step(action, why), PortState::Taken { holder }) =
        (&lifecycle, &observed.port)
    {
        let c = desired.container.as_ref().map(|c| (c.listen, c.port));
        if let Some((listen, port)) = c {
            plan.steps.push(Step {
                action: Action::Blocked {
                    blocker: Blocker::PortTaken {
                        action: Box::new(action.clone()),
                        listen: listen.to_string(),
                        port,
                        holder: holder.clone(),
                    },
                },
                reasons: vec![why.clone()],
            });
            return true;
        }
    }
    let gate = login_gate(plan, desired, observed);
    let push = |plan: &mut Plan, action: Action, reasons: Vec<Reason>| {
        let action = match gate {
            true => Action::Blocked {
                blocker: Blocker::PasswordInvalid {
                    action: Box::new(action),
                },
            },
            false => action,
        };
        plan.steps.push(Step { action, reasons });
    };
    // A start (or create) picks up the workspace; a running server must restart for it.
    let mut reasons = Vec::new();
    match lifecycle {
        Lifecycle::Step(action, why) => push(plan, action, vec![why]),
        Lifecycle::Running(pending) => {
            reasons.extend(restart.iter().cloned());
            reasons.extend(pending);
        }
    }
    if !reasons.is_empty() {
        push(plan, Action::RestartContainer { name, guard }, reasons);
    }
    true
}

/// What recreating a container comfyprov did not make changes besides its labels (the fields
/// of its real configuration that differ from the manifest's), when that could be read.
fn adoption_changes(info: &ContainerInfo, spec: &crate::render::RunSpec) -> Vec<String> {
    info.actual
        .as_ref()
        .map(|actual| spec.differences(actual))
        .unwrap_or_default()
}

/// What an existing container needs; `None` when comfyprov did not create it and `--force` was
/// not given (blocked).
fn lifecycle(
    info: &ContainerInfo,
    container: Container,
    guard: &Guard,
    observed: &Observed,
    opts: &Options,
) -> Option<Lifecycle> {
    let name = container.name.clone();
    if info.project_label.as_deref() != Some(name.as_str()) {
        return opts.force.then(|| {
            let changes = adoption_changes(info, &container.spec);
            Lifecycle::Step(
                Action::RecreateContainer {
                    container: Box::new(container),
                    cause: Recreate::NotOurs,
                    guard: guard.clone(),
                },
                Reason::ForeignContainer {
                    name,
                    forced: true,
                    changes,
                },
            )
        });
    }
    // The container as it is, not as its label says: a container started by hand (or from an
    // edited copy of the compose file) with the same labels is caught by what differs.
    let changed = match &info.actual {
        Some(actual) => container.spec.differences(actual),
        None => container.spec.changed_fields(info.spec.as_deref()),
    };
    if !changed.is_empty() {
        let why = if info.actual.is_none() && info.spec.is_none() {
            Reason::NoSpecLabel
        } else {
            Reason::SpecChanged {
                fields: changed.clone(),
            }
        };
        return Some(Lifecycle::Step(
            Action::RecreateContainer {
                container: Box::new(container),
                cause: Recreate::Changed { fields: changed },
                guard: guard.clone(),
            },
            why,
        ));
    }
    if info.liveness() == Liveness::Stopped {
        return Some(Lifecycle::Step(
            Action::StartContainer {
                name: name.clone(),
                status: info.status.clone(),
                guard: guard.clone(),
            },
            Reason::ContainerStopped {
                name,
                status: info.status.clone(),
            },
        ));
    }
    let pending = match (observed.inputs_changed_ns, info.started_ns) {
        (Some(changed), Some(started)) if changed > started => Some(Reason::PendingRestart {
            started_at: info.started_at.clone(),
        }),
        _ => None,
    };
    Some(Lifecycle::Running(pending))
}

/// The Python environment: `comfy.lock` (re)resolved when it is missing or no longer matches
/// its inputs, or when a checkout in this plan changes one; then the environment synced to it
/// when it differs (or when the lock is rewritten, to the new lock). With `--locked` a lock that
/// does not match is refused, never rewritten.
fn plan_python(plan: &mut Plan, desired: &Desired, observed: &Observed, opts: &Options) {
    let (Some(spec), Some(obs), Some(c)) = (&desired.python, &observed.python, &desired.container)
    else {
        return;
    };
    let file = spec.lock_file.shown.clone();
    let requirement_nodes: Vec<&str> = desired
        .nodes
        .iter()
        .filter(|n| n.requirements)
        .map(|n| n.name.as_str())
        .collect();
    let mut changing: Vec<Target> = Vec::new();
    for s in plan.steps.iter().filter(|s| s.action.needs_restart()) {
        let target = match s.action.phase() {
            Phase::ComfyUi => Target::ComfyUi,
            Phase::Node(n) if requirement_nodes.contains(&n) => Target::Node(n.to_owned()),
            _ => continue,
        };
        if !changing.contains(&target) {
            changing.push(target);
        }
    }
    let pins = pin_targets(desired);
    let mut stale = Vec::new();
    let lock: Option<&Lock> = match &obs.lock {
        LockState::Missing => {
            stale.push(Reason::LockMissing { file: file.clone() });
            None
        }
        LockState::Unreadable { error } => {
            stale.push(Reason::LockUnreadable {
                file: file.clone(),
                error: error.clone(),
            });
            None
        }
        LockState::Present(lock) => {
            let differences = lock.resolved_from.differences(&obs.inputs);
            if !differences.is_empty() {
                stale.push(Reason::LockStale {
                    file: file.clone(),
                    differences,
                });
            }
            let differences = git_differences(&lock.git, &pins);
            if !differences.is_empty() {
                stale.push(Reason::LockGitDiffers {
                    file: file.clone(),
                    differences,
                });
            }
            Some(lock)
        }
    };
    let relock = !stale.is_empty();
    if opts.locked && relock {
        plan.push(
            Action::Blocked {
                blocker: Blocker::LockStale {
                    file: file.clone(),
                    why: display::joined(&stale),
                },
            },
            stale.swap_remove(0),
        );
        return;
    }
    // A checkout in this plan may change what is resolved: the lock step compares again after
    // it, and (unless --locked) the sync follows whatever lock that leaves.
    let mut reasons = stale;
    if !relock {
        reasons.extend(
            changing
                .into_iter()
                .map(|target| Reason::InputsChange { target }),
        );
    }
    let relock = relock || (!reasons.is_empty() && !opts.locked);
    if !reasons.is_empty() {
        let files = std::iter::once("requirements.txt".to_owned())
            .chain(
                requirement_nodes
                    .iter()
                    .map(|n| format!("custom_nodes/{n}/requirements.txt")),
            )
            .collect();
        plan.steps.push(Step {
            action: Action::LockPython {
                spec: Box::new(spec.clone()),
                files,
                git: pins,
                locked: opts.locked,
            },
            reasons,
        });
    }
    let env = spec.env.clone();
    let (create, why) = match &obs.env {
        EnvState::Missing => (true, Some(Reason::EnvMissing { env: env.clone() })),
        EnvState::Unreadable { error } => {
            plan.push(
                Action::Blocked {
                    blocker: Blocker::PythonUnobservable {
                        what: format!("the environment {env}/"),
                        error: error.clone(),
                    },
                },
                Reason::Uninspectable {
                    error: error.clone(),
                },
            );
            return;
        }
        EnvState::Present { python, .. } if !spec.made_with(python.as_deref()) => (
            true,
            Some(Reason::EnvOtherPython {
                env: env.clone(),
                found: python.clone(),
                want: spec.version.clone(),
            }),
        ),
        EnvState::Present { built_for, .. } if built_for.as_deref() != Some(c.image.as_str()) => (
            true,
            Some(Reason::EnvNotBuiltHere {
                env: env.clone(),
                found: built_for.clone(),
                image: c.image.clone(),
            }),
        ),
        EnvState::Present { .. } => (false, None),
    };
    let sync = |packages, changes| Action::SyncPython {
        spec: Box::new(spec.clone()),
        image: c.image.clone(),
        create,
        packages,
        changes,
    };
    match lock {
        Some(lock) if !relock => {
            let changes = match &obs.env {
                EnvState::Present { packages, .. } if !create => {
                    crate::lock::changes(packages, lock)
                }
                _ => Vec::new(),
            };
            let why = why.or_else(|| {
                (!changes.is_empty()).then(|| Reason::EnvDiffers {
                    env: env.clone(),
                    count: changes.len(),
                })
            });
            if let Some(why) = why {
                plan.push(sync(Some(lock.packages.clone()), changes), why);
            }
        }
        _ => plan.push(
            sync(None, Vec::new()),
            why.unwrap_or(Reason::LockRewritten { file }),
        ),
    }
}

/// The checkouts whose commits a lock records, with their revs.
pub fn pin_targets(desired: &Desired) -> Vec<(Target, String)> {
    let comfyui = desired
        .comfyui
        .iter()
        .map(|s| (Target::ComfyUi, s.rev.as_str().to_owned()));
    let nodes = desired.nodes.iter().map(|n| {
        (
            Target::Node(n.name.clone()),
            n.source.rev.as_str().to_owned(),
        )
    });
    comfyui.chain(nodes).collect()
}

/// How the lock's git pins differ from the manifest's (commits aside).
fn git_differences(locked: &[LockedGit], pins: &[(Target, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (target, rev) in pins {
        let name = target.name();
        match locked.iter().find(|l| l.name == name) {
            None => out.push(format!("{name} is not in the lock")),
            Some(l) if &l.rev != rev => out.push(format!("{name} {} → {rev}", l.rev)),
            Some(_) => {}
        }
    }
    for l in locked
        .iter()
        .filter(|l| !pins.iter().any(|(t, _)| t.name() == l.name))
    {
        out.push(format!("{} is no longer declared", l.name));
    }
    out
}

/// In login mode, whether the server must not be started: `login/PASSWORD` will not verify the
/// secret after this plan (ComfyUI-Login then takes an empty token and lets the first visitor
/// choose the password).
fn login_gate(plan: &Plan, desired: &Desired, observed: &Observed) -> bool {
    if !matches!(desired.auth, AuthSpec::Login(_)) {
        return false;
    }
    let fixed = plan.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::WritePassword { new_hash: true, .. } | Action::MoveLegacyPassword
        )
    });
    let blocked = plan.steps.iter().any(
        |s| matches!(&s.action, Action::Blocked { blocker } if blocker.leaves_password_invalid()),
    );
    blocked || !(fixed || verified(&observed.password.file))
}

/// Whether a PASSWORD file's hash verifies the secret.
fn verified(f: &PasswordFile) -> bool {
    matches!(
        f,
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        }
    )
}

/// CRITICAL: a login-mode server running without a PASSWORD that verifies.
fn critical_note(plan: &mut Plan, desired: &Desired, observed: &Observed, info: &ContainerInfo) {
    if !matches!(desired.auth, AuthSpec::Login(_)) || info.liveness() == Liveness::Stopped {
        return;
    }
    let pw = &observed.password;
    let why = match (&pw.file, &pw.legacy) {
        (PasswordFile::Missing, PasswordFile::Missing) => {
            "login/PASSWORD is missing: if it went missing after the server started, the server keeps the token it read (the empty token gets 401); if the server started without it, `?token=` (empty) is let in; either way the first visitor to `POST /login` sets the password, and ComfyUI-Login then writes login/PASSWORD with mode 0644"
        }
        (f, l) if verified(f) || (matches!(f, PasswordFile::Missing) && verified(l)) => return,
        _ => {
            "login/PASSWORD does not match the secret: the server runs with a password nobody configured"
        }
    };
    plan.notes.push(Note::UnprotectedServer {
        name: desired.project.clone(),
        why: why.to_owned(),
    });
}

/// The same repository, ignoring a trailing `/` or `.git`.
pub fn same_repo(a: &str, b: &str) -> bool {
    fn norm(u: &str) -> &str {
        let u = u.trim().trim_end_matches('/');
        u.strip_suffix(".git").unwrap_or(u)
    }
    norm(a) == norm(b)
}

/// Plan one checkout (ComfyUI or a node). `twin` is the `<name>.disabled` directory, if any.
fn plan_checkout(
    plan: &mut Plan,
    target: Target,
    src: &GitSource,
    state: &DirState,
    twin: Option<&DirState>,
    opts: &Options,
) {
    let obstruct = |plan: &mut Plan, obstacle: Obstacle, why: Reason| {
        let reason = Reason::Obstructed {
            why: Box::new(why),
            forced: opts.force,
        };
        let action = if opts.force {
            Action::Replace {
                target: target.clone(),
                url: src.url.clone(),
                rev: src.rev.clone(),
                obstacle,
            }
        } else {
            Action::Refuse {
                target: target.clone(),
                obstacle,
            }
        };
        plan.push(action, reason);
    };

    match state {
        DirState::Missing => {
            if let (Target::Node(name), Some(DirState::Git(c))) = (&target, twin)
                && c.origin.as_deref().is_some_and(|o| same_repo(o, &src.url))
                && c.dirty.is_none()
            {
                let from = format!("{name}.disabled");
                plan.push(
                    Action::Enable {
                        node: name.clone(),
                        from: from.clone(),
                    },
                    Reason::DisabledTwin {
                        target: target.clone(),
                        from,
                    },
                );
                checkout_if_needed(plan, &target, src, c);
                return;
            }
            plan.push(
                Action::Clone {
                    target: target.clone(),
                    url: src.url.clone(),
                    rev: src.rev.clone(),
                },
                Reason::Missing {
                    target: target.clone(),
                },
            );
        }
        DirState::NotGit => obstruct(
            plan,
            Obstacle::NotGit,
            Reason::NotGit {
                target: target.clone(),
            },
        ),
        DirState::Unreadable { error } => plan.push(
            Action::Blocked {
                blocker: Blocker::Uninspectable {
                    target: target.clone(),
                },
            },
            Reason::Uninspectable {
                error: error.clone(),
            },
        ),
        DirState::Git(c) => {
            if !c.origin.as_deref().is_some_and(|o| same_repo(o, &src.url)) {
                obstruct(
                    plan,
                    Obstacle::ForeignOrigin {
                        found: c.origin.clone(),
                    },
                    Reason::ForeignOrigin {
                        target: target.clone(),
                        found: c.origin.clone(),
                        url: src.url.clone(),
                    },
                );
                return;
            }
            if c.interrupted {
                plan.push(
                    checkout_action(&target, src, c, true),
                    Reason::Interrupted {
                        target: target.clone(),
                    },
                );
                return;
            }
            let at_pin = c
                .head
                .as_deref()
                .is_some_and(|h| src.rev.matches(h, c.resolved.as_deref()));
            if let Some(d) = &c.dirty {
                // At its pin, only untracked files (what nodes write at run time) are a note;
                // a changed tracked file makes the checkout differ from the manifest.
                if at_pin && d.tracked == 0 && !opts.force {
                    plan.notes.push(Note::DirtyAtPin {
                        target: target.clone(),
                        count: d.count,
                        sample: d.sample.clone(),
                    });
                } else {
                    let why = Reason::Dirty {
                        target: target.clone(),
                        count: d.count,
                        sample: d.sample.clone(),
                        move_to: (!at_pin).then(|| src.rev.short().to_owned()),
                    };
                    obstruct(
                        plan,
                        Obstacle::Dirty {
                            count: d.count,
                            sample: d.sample.clone(),
                        },
                        why,
                    );
                }
                return;
            }
            checkout_if_needed(plan, &target, src, c);
        }
    }
}

fn checkout_if_needed(plan: &mut Plan, target: &Target, src: &GitSource, c: &Checkout) {
    if c.head
        .as_deref()
        .is_some_and(|h| src.rev.matches(h, c.resolved.as_deref()))
    {
        return;
    }
    let target_ = target.clone();
    let reason = match (&c.head, &src.rev, &c.resolved) {
        (None, _, _) => Reason::NoCommit { target: target_ },
        (Some(h), Rev::Named(n), None) => Reason::NotFetched {
            target: target_,
            head: h.clone(),
            rev: n.clone(),
        },
        (Some(h), rev, _) => Reason::OtherCommit {
            target: target_,
            head: h.clone(),
            rev: rev.short().to_owned(),
        },
    };
    plan.push(checkout_action(target, src, c, false), reason);
}

/// Move checkout `c` of `target` to `src`'s pin; `resume` finishes an interrupted one.
fn checkout_action(target: &Target, src: &GitSource, c: &Checkout, resume: bool) -> Action {
    Action::Checkout {
        target: target.clone(),
        url: src.url.clone(),
        from: c.head.as_deref().map(|h| short(h).to_owned()),
        rev: src.rev.clone(),
        resolved: c.resolved.clone(),
        resume,
    }
}

fn plan_nodes(plan: &mut Plan, desired: &Desired, observed: &Observed, opts: &Options) {
    for node in &desired.nodes {
        let state = observed
            .node_dir(&node.name)
            .and_then(|d| d.state.clone())
            .unwrap_or(DirState::Missing);
        let twin = observed
            .node_dir(&format!("{}.disabled", node.name))
            .and_then(|d| d.state.as_ref());
        plan_checkout(
            plan,
            Target::Node(node.name.clone()),
            &node.source,
            &state,
            twin,
            opts,
        );
    }

    for d in observed
        .custom_nodes
        .iter()
        .filter(|d| !d.is_disabled() && !d.dir.starts_with('.'))
    {
        if desired.nodes.iter().any(|n| n.name == d.dir) {
            continue;
        }
        if let AuthSpec::None { login_node } = &desired.auth
            && *login_node == d.dir
        {
            plan.push(
                Action::Disable { dir: d.dir.clone() },
                Reason::LoginNodeWithoutAuth {
                    node: login_node.clone(),
                },
            );
            continue;
        }
        match desired.policy.unmanaged_nodes {
            UnmanagedNodes::Disable => plan.push(
                Action::Disable { dir: d.dir.clone() },
                Reason::UnmanagedDisabled { dir: d.dir.clone() },
            ),
            UnmanagedNodes::Keep => plan.notes.push(Note::KeptUnmanaged { dir: d.dir.clone() }),
        }
    }
    for shown in &observed.odd_names {
        plan.notes.push(Note::OddName {
            shown: shown.clone(),
        });
    }
}

fn plan_password(plan: &mut Plan, login: &LoginSpec, observed: &Observed) {
    let src = login.secret.shown();
    let write = |new_hash: bool, exists: bool| Action::WritePassword {
        new_hash,
        exists,
        login: login.clone(),
    };
    match &observed.secret {
        SecretState::Missing => {
            if let (true, SecretSource::PasswordFile(f)) = (login.generate, &login.secret) {
                plan.push(
                    Action::GeneratePassword { file: f.clone() },
                    Reason::GenerateSecret {
                        path: f.shown.clone(),
                    },
                );
                plan.push(
                    write(
                        true,
                        !matches!(observed.password.file, PasswordFile::Missing),
                    ),
                    Reason::NewPasswordGenerated,
                );
                if !matches!(observed.password.legacy, PasswordFile::Missing) {
                    plan.push(
                        Action::RemoveLegacyPassword,
                        Reason::LegacyHoldsReplacedHash,
                    );
                }
                return;
            }
            plan.push(
                Action::Blocked {
                    blocker: Blocker::SecretMissing {
                        source: login.secret.clone(),
                    },
                },
                Reason::SecretNeeded,
            );
            return;
        }
        SecretState::Unusable { error } => {
            plan.push(
                Action::Blocked {
                    blocker: Blocker::SecretUnusable {
                        source: src.clone(),
                        error: error.clone(),
                    },
                },
                Reason::SecretUnusable {
                    error: error.clone(),
                },
            );
            return;
        }
        SecretState::Present { mode: Some(mode) } if mode & 0o077 != 0 => {
            plan.notes.push(Note::SecretReadableByOthers {
                path: src.clone(),
                mode: *mode,
            });
        }
        SecretState::Present { .. } | SecretState::NotUsed => {}
    }

    let pw = &observed.password;
    match (&pw.file, &pw.legacy) {
        // Only the legacy file: keep its hash (the clients' token) when it still verifies.
        (
            PasswordFile::Missing,
            PasswordFile::Present {
                hash: HashState::Verified,
                username,
                mode,
            },
        ) => {
            plan.push(Action::MoveLegacyPassword, Reason::LegacyStillMatches);
            fix_username_and_mode(plan, login, username.as_deref(), *mode);
        }
        (PasswordFile::Missing, legacy) => {
            plan.push(write(true, false), Reason::PasswordMissing);
            if !matches!(legacy, PasswordFile::Missing) {
                plan.push(
                    Action::RemoveLegacyPassword,
                    Reason::LegacyMismatch { source: src },
                );
            }
        }
        (PasswordFile::Unreadable { error }, _) => plan.push(
            Action::Blocked {
                blocker: Blocker::PasswordUnreadable,
            },
            Reason::PasswordUnreadable {
                error: error.clone(),
            },
        ),
        (
            PasswordFile::Present {
                hash,
                username,
                mode,
            },
            legacy,
        ) => {
            match hash {
                HashState::Verified => {
                    fix_username_and_mode(plan, login, username.as_deref(), *mode)
                }
                HashState::Mismatch => {
                    plan.push(write(true, true), Reason::PasswordMismatch { source: src })
                }
                HashState::Malformed => plan.push(write(true, true), Reason::HashMalformed),
                HashState::Unchecked { .. } => {}
            }
            if !matches!(legacy, PasswordFile::Missing) {
                plan.push(Action::RemoveLegacyPassword, Reason::LegacyBeside);
            }
        }
    }
}

fn fix_username_and_mode(plan: &mut Plan, login: &LoginSpec, username: Option<&str>, mode: u32) {
    let write = || Action::WritePassword {
        new_hash: false,
        exists: true,
        login: login.clone(),
    };
    match username {
        Some(u) if u == login.username => {
            if mode & 0o077 != 0 {
                plan.push(
                    Action::FixPasswordMode { mode },
                    Reason::PasswordReadable { mode },
                );
            }
        }
        Some(u) => plan.push(
            write(),
            Reason::UsernameDiffers {
                found: u.to_owned(),
                want: login.username.clone(),
            },
        ),
        None => plan.push(write(), Reason::NoUsername),
    }
}

/// Model files: each present with the hash it must have, or placed (from the cache, or
/// downloaded into it); the downloads checked against the free space where they land.
fn plan_models(plan: &mut Plan, desired: &Desired, observed: &Observed, opts: &Options) {
    use crate::observed::ModelFile;

    let Some(seen) = &observed.models else {
        return;
    };
    let lock_file = desired.lock_file.shown.clone();
    let locked = match &seen.lock {
        Ok(l) => l,
        Err(error) => {
            plan.push(
                Action::Blocked {
                    blocker: Blocker::Model {
                        path: lock_file.clone(),
                        problem: ModelProblem::LockUnreadable {
                            error: error.clone(),
                        },
                    },
                },
                Reason::ModelInTheWay {
                    path: lock_file.clone(),
                },
            );
            return;
        }
    };
    let blocked = |plan: &mut Plan, path: &str, problem: ModelProblem, reason: Reason| {
        plan.push(
            Action::Blocked {
                blocker: Blocker::Model {
                    path: path.to_owned(),
                    problem,
                },
            },
            reason,
        );
    };
    // Downloads, for the free-space check: (step index, bytes if known).
    let mut downloads: Vec<(usize, Option<u64>)> = Vec::new();
    let mut from_cache_bytes = 0u64;
    for (spec, file) in desired.models.iter().zip(&seen.files) {
        let path = spec.path.as_str();
        let entry = locked.iter().find(|l| l.path == spec.path);
        let same_url = entry.filter(|l| l.url == spec.url);
        let expected = spec
            .sha256
            .clone()
            .or_else(|| same_url.map(|l| l.sha256.clone()));
        let size = spec.size.or_else(|| same_url.map(|l| l.size));
        let mut place = |plan: &mut Plan, replace: bool, reason: Reason| {
            if expected.is_none() && opts.locked {
                blocked(plan, path, ModelProblem::Unpinned, reason);
                return;
            }
            if file.cached {
                from_cache_bytes += size.unwrap_or(0);
            } else {
                downloads.push((plan.steps.len(), size));
            }
            plan.push(
                Action::PlaceModel {
                    model: Box::new(spec.clone()),
                    target: format!("{}/ComfyUI/models/{path}", desired.workspace.path.display()),
                    sha256: expected.clone(),
                    size,
                    from_cache: file.cached,
                    cache: seen.cache.clone(),
                    lock_file: lock_file.clone(),
                    replace,
                },
                reason,
            );
        };
        let path_owned = path.to_owned();
        match &file.file {
            ModelFile::Missing => place(plan, false, Reason::ModelMissing { path: path_owned }),
            ModelFile::Present {
                size: found,
                sha256,
            } => match (sha256, &expected) {
                (Some(h), Some(e)) if h == e => {}
                (Some(h), Some(e)) => place(
                    plan,
                    true,
                    Reason::ModelHashDiffers {
                        path: path_owned,
                        found: h.clone(),
                        expected: e.clone(),
                    },
                ),
                (Some(_), None) if entry.is_some() => {
                    place(plan, true, Reason::ModelUrlChanged { path: path_owned })
                }
                (Some(h), None) => {
                    if opts.locked {
                        blocked(
                            plan,
                            path,
                            ModelProblem::Unpinned,
                            Reason::ModelUnrecorded { path: path_owned },
                        );
                    } else {
                        plan.push(
                            Action::RecordModel {
                                path: path_owned.clone(),
                                url: spec.url.clone(),
                                sha256: h.clone(),
                                size: *found,
                                lock_file: lock_file.clone(),
                            },
                            Reason::ModelUnrecorded { path: path_owned },
                        );
                    }
                }
                // Not hashed: its size already differs from the one it must have.
                (None, _) => place(
                    plan,
                    true,
                    Reason::ModelSizeDiffers {
                        path: path_owned,
                        size: *found,
                        expected: size.unwrap_or(0),
                    },
                ),
            },
            ModelFile::Linked { why } => blocked(
                plan,
                path,
                ModelProblem::Linked { why: why.clone() },
                Reason::ModelInTheWay { path: path_owned },
            ),
            ModelFile::NotAFile => blocked(
                plan,
                path,
                ModelProblem::NotAFile,
                Reason::ModelInTheWay { path: path_owned },
            ),
            ModelFile::Unreadable { error } => blocked(
                plan,
                path,
                ModelProblem::Unreadable {
                    error: error.clone(),
                },
                Reason::ModelInTheWay { path: path_owned },
            ),
        }
    }
    if downloads.is_empty() {
        return;
    }
    let need: u64 = downloads.iter().filter_map(|(_, n)| *n).sum();
    let unknown = downloads.iter().filter(|(_, n)| n.is_none()).count();
    // Downloads land in the cache, then are linked into models/ (same filesystem) or copied
    // (another one): each filesystem must hold what lands on it.
    let (need_models, cache_check) = match &seen.cache_free {
        Some((free, at)) => (need + from_cache_bytes, Some((need, *free, at.clone()))),
        None => (need, None),
    };
    let short = [
        seen.free
            .filter(|&free| need_models > free)
            .map(|free| (need_models, free, seen.free_at.clone())),
        cache_check.filter(|(n, free, _)| n > free),
    ]
    .into_iter()
    .flatten()
    .next();
    if let Some(free) = seen.free {
        plan.notes.push(Note::ModelSpace {
            need: need_models,
            free,
            at: seen.free_at.clone(),
            unknown,
        });
    }
    if let Some((need, free, at)) = short {
        for (i, _) in downloads {
            let step = &mut plan.steps[i];
            if let Action::PlaceModel { model, .. } = &step.action {
                step.action = Action::Blocked {
                    blocker: Blocker::Model {
                        path: model.path.clone(),
                        problem: ModelProblem::NoSpace {
                            need,
                            free,
                            at: at.clone(),
                        },
                    },
                };
            }
        }
    }
}
