//! The planner: `plan(&Desired, &Observed, &Options) -> Plan`, a pure function.
//!
//! No filesystem, no git, no Docker, no clock, no environment: everything it needs is in its
//! arguments, so the same inputs always give the same plan, and the plan `plan` prints is the plan
//! `apply` runs. A test in this module keeps I/O imports out of `src/plan/`.

pub mod display;
pub mod step;

use serde::Serialize;

use step::short;
pub use step::{Action, Kind, Note, Obstacle, Step, Target};

use crate::manifest::{AuthSpec, Desired, GitSource, LoginSpec, Rev, SecretSource, UnmanagedNodes};
use crate::observe::container::ContainerInfo;
use crate::observe::login::{HashState, PasswordFile};
use crate::observe::{
    Checkout, ContainerState, DirState, FileState, Observed, SecretState, sha256_hex,
};
use crate::render::spec::RunSpec;

/// Choices the user makes on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace dirty, non-git and foreign checkouts (the old directory is kept aside).
    pub force: bool,
    /// Plan the workspace only: no container steps (the restart is left to the user).
    pub workspace_only: bool,
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

    /// Number of steps of each kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.steps
            .iter()
            .filter(|s| s.action.kind() == kind)
            .count()
    }

    fn push(&mut self, action: Action, reason: impl Into<String>) {
        self.steps.push(Step {
            action,
            reasons: vec![reason.into()],
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
            format!("{} does not exist", desired.workspace.shown),
        );
    }

    match (&desired.comfyui, &observed.comfyui) {
        (Some(src), state) => plan_checkout(&mut plan, Target::ComfyUi, src, state, None, opts),
        (None, DirState::Missing) => plan.push(
            Action::Blocked {
                subject: "ComfyUI is not installed".to_owned(),
                help: "add a `[comfyui]` table with `git` and `rev`, or install ComfyUI into the workspace".to_owned(),
            },
            format!("{}/ComfyUI does not exist and the manifest has no [comfyui]", desired.workspace.shown),
        ),
        (None, _) => {}
    }

    plan_nodes(&mut plan, desired, observed, opts);

    if let AuthSpec::Login(login) = &desired.auth {
        plan_password(&mut plan, login, observed);
    }

    if let (Some(c), Some(file)) = (&desired.container, &observed.compose) {
        let rendered = crate::render::compose::render(desired).unwrap_or_default();
        let reason = match file {
            FileState::Missing => Some(format!("{} does not exist", c.compose_file.shown)),
            FileState::Present { sha256 } if *sha256 != sha256_hex(rendered.as_bytes()) => {
                Some(format!(
                    "{} differs from what the manifest renders (edited by hand, or the manifest changed)",
                    c.compose_file.shown
                ))
            }
            FileState::Present { .. } => None,
            FileState::Unreadable { error } => {
                Some(format!("{} cannot be read: {error}", c.compose_file.shown))
            }
        };
        if let Some(reason) = reason {
            plan.push(
                Action::RenderCompose {
                    path: c.compose_file.shown.clone(),
                    exists: !matches!(file, FileState::Missing),
                },
                reason,
            );
        }
    }

    plan_container(&mut plan, desired, observed, opts);
    plan
}

/// The container: create, start, recreate or restart it, at most one of them, last.
fn plan_container(plan: &mut Plan, desired: &Desired, observed: &Observed, opts: &Options) {
    let restart: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action.needs_restart())
        .map(|s| s.action.describe())
        .collect();
    let restart_note = |plan: &mut Plan| {
        if !restart.is_empty() {
            plan.notes.push(Note::RestartNeeded {
                reasons: restart.clone(),
            });
        }
    };
    let (Some(_), Some(spec)) = (
        &desired.container,
        RunSpec::new(desired, &desired.workspace.path),
    ) else {
        restart_note(plan);
        return;
    };
    if opts.workspace_only {
        restart_note(plan);
        return;
    }
    let name = desired.project.clone();
    let gate = login_gate(plan, desired, observed);
    let push = |plan: &mut Plan, action: Action, reasons: Vec<String>| {
        let step = match &gate {
            Some(why) => Step {
                action: Action::Blocked {
                    subject: format!("{} (login/PASSWORD would not be valid)", action.describe()),
                    help: why.clone(),
                },
                reasons,
            },
            None => Step { action, reasons },
        };
        plan.steps.push(step);
    };
    // The lifecycle step (at most one), or, for a running container, why it must restart.
    let (lifecycle, pending) = match &observed.container {
        ContainerState::NotManaged => {
            restart_note(plan);
            return;
        }
        ContainerState::NotObserved { reason } => {
            plan.notes.push(Note::ContainerNotObserved {
                reason: reason.clone(),
            });
            restart_note(plan);
            return;
        }
        ContainerState::Missing => (
            Some((
                Action::CreateContainer { name: name.clone() },
                vec![format!("no container is named {name}")],
            )),
            None,
        ),
        ContainerState::Present(info) => {
            plan.notes.push(Note::ContainerStatus {
                name: name.clone(),
                status: info.status.clone(),
                health: info.health.clone(),
                started_at: info.started_at.clone(),
            });
            critical_note(plan, desired, observed, info);
            let changed = spec.changed_fields(info.spec.as_deref());
            if info.project_label.as_deref() != Some(desired.project.as_str()) {
                let why = format!(
                    "a container named {name} exists, but comfyprov did not create it (no `comfyprov.project` label)"
                );
                if !opts.force {
                    plan.push(
                        Action::Blocked {
                            subject: format!("container {name} is not comfyprov's"),
                            help: "remove or rename it, or rerun with --force to replace it"
                                .to_owned(),
                        },
                        why,
                    );
                    return;
                }
                (
                    Some((
                        Action::ReplaceContainer { name: name.clone() },
                        vec![format!("{why}; --force removes it")],
                    )),
                    None,
                )
            } else if !changed.is_empty() {
                let why = if info.spec.is_none() {
                    "it was created without comfyprov's spec label".to_owned()
                } else {
                    format!("the manifest changed its {}", changed.join(", "))
                };
                (
                    Some((
                        Action::RecreateContainer {
                            name: name.clone(),
                            changed,
                        },
                        vec![why],
                    )),
                    None,
                )
            } else if !info.running() {
                (
                    Some((
                        Action::StartContainer {
                            name: name.clone(),
                            status: info.status.clone(),
                        },
                        vec![format!("container {name} is {}", info.status)],
                    )),
                    None,
                )
            } else {
                let pending = match (observed.inputs_changed_ns, info.started_ns) {
                    (Some(changed), Some(started)) if changed > started => Some(format!(
                        "custom nodes or login/PASSWORD changed after the container started at {} (pending restart)",
                        info.started_at.as_deref().unwrap_or("?")
                    )),
                    _ => None,
                };
                (None, pending)
            }
        }
    };
    let fresh = matches!(
        lifecycle,
        Some((
            Action::CreateContainer { .. }
                | Action::RecreateContainer { .. }
                | Action::ReplaceContainer { .. },
            _
        ))
    );
    let installs = requirement_steps(plan, desired, observed, fresh);
    // A start (or create) picks up the workspace; a running server must restart for it.
    let mut reasons = Vec::new();
    match lifecycle {
        Some((action, why)) => push(plan, action, why),
        None => {
            reasons.extend(restart.iter().cloned());
            reasons.extend(pending);
        }
    }
    for (node, why) in &installs {
        push(
            plan,
            Action::InstallRequirements { node: node.clone() },
            vec![why.clone()],
        );
    }
    if !installs.is_empty() {
        let names: Vec<&str> = installs.iter().map(|(n, _)| n.as_str()).collect();
        reasons.push(format!(
            "requirements installed for {}: ComfyUI imports nodes only at start",
            names.join(", ")
        ));
    }
    if !reasons.is_empty() {
        push(plan, Action::RestartContainer { name }, reasons);
    }
}

/// Nodes whose `requirements.txt` must be installed, and why: it is not installed (or changed),
/// or the node itself changes in this plan (the executor then installs only a new content), or
/// the container is new and its interpreter came with the image.
fn requirement_steps(
    plan: &Plan,
    desired: &Desired,
    observed: &Observed,
    fresh_container: bool,
) -> Vec<(String, String)> {
    use crate::observe::requirements::{Requirements, in_workspace};
    let image_python = desired
        .container
        .as_ref()
        .is_some_and(|c| !in_workspace(&c.python));
    desired
        .nodes
        .iter()
        .filter(|n| n.requirements)
        .filter_map(|n| {
            let changes = plan
                .steps
                .iter()
                .any(|s| s.action.needs_restart() && s.action.node_dir() == Some(n.name.as_str()));
            let state = observed.requirements.get(&n.name);
            let why = if changes {
                format!("custom_nodes/{} changes in this apply", n.name)
            } else {
                match state {
                    Some(Requirements::Pending { changed: true }) => {
                        format!("{}/requirements.txt changed since it was installed", n.name)
                    }
                    Some(Requirements::Pending { changed: false }) => {
                        format!("{}/requirements.txt is not installed", n.name)
                    }
                    Some(Requirements::Installed) if fresh_container && image_python => format!(
                        "the new container's interpreter comes from the image, without {}'s requirements",
                        n.name
                    ),
                    _ => return None,
                }
            };
            Some((n.name.clone(), why))
        })
        .collect()
}

/// In login mode, why the server must not be started: `login/PASSWORD` will not verify the
/// secret after this plan (ComfyUI-Login then takes an empty token and lets the first visitor
/// choose the password).
fn login_gate(plan: &Plan, desired: &Desired, observed: &Observed) -> Option<String> {
    if !matches!(desired.auth, AuthSpec::Login(_)) {
        return None;
    }
    let pw = &observed.password;
    let fixed = plan.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::WritePassword { new_hash: true, .. } | Action::MoveLegacyPassword
        )
    });
    let blocked = plan.steps.iter().any(|s| {
        matches!(&s.action, Action::Blocked { subject, .. }
            if subject.contains("secret") || subject.contains("PASSWORD"))
    });
    if !blocked && (fixed || verified(&pw.file)) {
        return None;
    }
    Some(
        "make login/PASSWORD valid first (see the blocked password step): without it ComfyUI-Login accepts an empty token"
            .to_owned(),
    )
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
    if !matches!(desired.auth, AuthSpec::Login(_)) || !info.running() {
        return;
    }
    let pw = &observed.password;
    let why = match (&pw.file, &pw.legacy) {
        (PasswordFile::Missing, PasswordFile::Missing) => {
            "login/PASSWORD is missing: ComfyUI-Login accepts an empty token and lets the first visitor choose the password"
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
pub(crate) fn same_repo(a: &str, b: &str) -> bool {
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
    let shown = target.shown();
    let obstruct = |plan: &mut Plan, obstacle: Obstacle, why: String| {
        if opts.force {
            plan.push(
                Action::Replace {
                    target: target.clone(),
                    url: src.url.clone(),
                    rev: src.rev.clone(),
                    obstacle,
                },
                format!("{why}; --force keeps it aside and clones afresh"),
            );
        } else {
            plan.push(
                Action::Refuse {
                    target: target.clone(),
                    obstacle,
                },
                format!("{why}; commit, move or delete it, or rerun with --force to keep it aside and re-clone"),
            );
        }
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
                    format!("{shown} is missing but custom_nodes/{from} is a clean checkout of it"),
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
                format!("{shown} is missing"),
            );
        }
        DirState::NotGit => obstruct(
            plan,
            Obstacle::NotGit,
            format!("{shown} exists but is not a git checkout"),
        ),
        DirState::Unreadable { error } => plan.push(
            Action::Blocked {
                subject: format!("{shown} cannot be inspected"),
                help: "check its permissions and that it is a healthy git checkout".to_owned(),
            },
            error.clone(),
        ),
        DirState::Git(c) => {
            if !c.origin.as_deref().is_some_and(|o| same_repo(o, &src.url)) {
                let why = match &c.origin {
                    Some(o) => format!("{shown} is a checkout of {o}, not {}", src.url),
                    None => format!("{shown} has no `origin` remote"),
                };
                obstruct(
                    plan,
                    Obstacle::ForeignOrigin {
                        found: c.origin.clone(),
                    },
                    why,
                );
                return;
            }
            let at_pin = c
                .head
                .as_deref()
                .is_some_and(|h| src.rev.matches(h, c.resolved.as_deref()));
            if let Some(d) = &c.dirty {
                let why = format!(
                    "{shown} has {} local change{} ({})",
                    d.count,
                    if d.count == 1 { "" } else { "s" },
                    d.sample.join(", ")
                );
                if at_pin && !opts.force {
                    plan.notes.push(Note::DirtyAtPin {
                        target: target.clone(),
                        count: d.count,
                        sample: d.sample.clone(),
                    });
                } else {
                    let why = if at_pin {
                        why
                    } else {
                        format!("{why} and must move to {}", src.rev.short())
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
    let shown = target.shown();
    if c.head
        .as_deref()
        .is_some_and(|h| src.rev.matches(h, c.resolved.as_deref()))
    {
        return;
    }
    let reason = match (&c.head, &src.rev, &c.resolved) {
        (None, _, _) => format!("{shown} has no commit checked out"),
        (Some(h), Rev::Named(n), None) => {
            format!(
                "{shown} is at {}; `{n}` is not in the checkout yet (apply fetches it)",
                short(h)
            )
        }
        (Some(h), rev, _) => format!(
            "{shown} is at {}, the manifest pins {}",
            short(h),
            rev.short()
        ),
    };
    plan.push(
        Action::Checkout {
            target: target.clone(),
            from: c.head.as_deref().map(|h| short(h).to_owned()),
            rev: src.rev.clone(),
            resolved: c.resolved.clone(),
        },
        reason,
    );
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
                format!("auth.mode is none, but {login_node} would still ask for a password"),
            );
            continue;
        }
        match desired.policy.unmanaged_nodes {
            UnmanagedNodes::Disable => plan.push(
                Action::Disable { dir: d.dir.clone() },
                format!(
                    "custom_nodes/{} is not in the manifest (policy.unmanaged_nodes = \"disable\")",
                    d.dir
                ),
            ),
            UnmanagedNodes::Keep => plan.notes.push(Note::KeptUnmanaged { dir: d.dir.clone() }),
        }
    }
}

fn plan_password(plan: &mut Plan, login: &LoginSpec, observed: &Observed) {
    let src = login.secret.shown();
    match &observed.secret {
        SecretState::Missing => {
            if let (true, SecretSource::PasswordFile(f)) = (login.generate, &login.secret) {
                plan.push(
                    Action::GeneratePassword {
                        path: f.shown.clone(),
                    },
                    format!("{} does not exist and auth.generate = true", f.shown),
                );
                plan.push(
                    Action::WritePassword {
                        new_hash: true,
                        exists: !matches!(observed.password.file, PasswordFile::Missing),
                    },
                    "a new password is generated; clients need the new token (line 1 of login/PASSWORD)",
                );
                if !matches!(observed.password.legacy, PasswordFile::Missing) {
                    plan.push(
                        Action::RemoveLegacyPassword,
                        "the legacy ComfyUI/PASSWORD holds a replaced hash",
                    );
                }
                return;
            }
            let help = match &login.secret {
                SecretSource::PasswordFile(f) => format!(
                    "write the password into {} (mode 0600), or set `generate = true` in [auth] to create one",
                    f.shown
                ),
                SecretSource::HashFile(f) => format!("write a bcrypt hash into {}", f.shown),
                SecretSource::PasswordEnv(v) => format!("export {v}=… before running comfyprov"),
            };
            plan.push(
                Action::Blocked {
                    subject: format!("the secret {src} is missing"),
                    help,
                },
                "login/PASSWORD cannot be checked or written without it",
            );
            return;
        }
        SecretState::Unusable { error } => {
            plan.push(
                Action::Blocked {
                    subject: format!("the secret {src} is unusable"),
                    help: format!("fix {src}: {error}"),
                },
                error.clone(),
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
            plan.push(
                Action::MoveLegacyPassword,
                "login/PASSWORD is missing; the legacy ComfyUI/PASSWORD still matches the secret (token kept)",
            );
            fix_username_and_mode(plan, login, username.as_deref(), *mode);
        }
        (PasswordFile::Missing, legacy) => {
            plan.push(
                Action::WritePassword {
                    new_hash: true,
                    exists: false,
                },
                "login/PASSWORD is missing",
            );
            if !matches!(legacy, PasswordFile::Missing) {
                plan.push(
                    Action::RemoveLegacyPassword,
                    format!("the legacy ComfyUI/PASSWORD does not match {src}"),
                );
            }
        }
        (PasswordFile::Unreadable { error }, _) => plan.push(
            Action::Blocked {
                subject: "login/PASSWORD cannot be read".to_owned(),
                help: "check the file's owner and permissions".to_owned(),
            },
            error.clone(),
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
                HashState::Verified => fix_username_and_mode(plan, login, username.as_deref(), *mode),
                HashState::Mismatch => plan.push(
                    Action::WritePassword {
                        new_hash: true,
                        exists: true,
                    },
                    format!("login/PASSWORD does not match the password in {src}; clients need the new token"),
                ),
                HashState::Malformed => plan.push(
                    Action::WritePassword {
                        new_hash: true,
                        exists: true,
                    },
                    "line 1 of login/PASSWORD is not a bcrypt hash",
                ),
                HashState::Unchecked { .. } => {}
            }
            if !matches!(legacy, PasswordFile::Missing) {
                plan.push(
                    Action::RemoveLegacyPassword,
                    "a legacy ComfyUI/PASSWORD sits beside login/PASSWORD; ComfyUI-Login would move it over login/PASSWORD at start",
                );
            }
        }
    }
}

fn fix_username_and_mode(plan: &mut Plan, login: &LoginSpec, username: Option<&str>, mode: u32) {
    match username {
        Some(u) if u == login.username => {
            if mode & 0o077 != 0 {
                plan.push(
                    Action::FixPasswordMode { mode },
                    format!("login/PASSWORD is readable by other users (mode {mode:04o})"),
                );
            }
        }
        Some(u) => plan.push(
            Action::WritePassword {
                new_hash: false,
                exists: true,
            },
            format!(
                "the username line is `{u}`, the manifest says `{}`",
                login.username
            ),
        ),
        None => plan.push(
            Action::WritePassword {
                new_hash: false,
                exists: true,
            },
            "login/PASSWORD has no username line",
        ),
    }
}

#[cfg(test)]
mod tests {
    /// The planner must stay pure: no module under `src/plan/` may reach for I/O.
    #[test]
    fn plan_module_does_no_io() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plan");
        // Module paths, not type names: every file or process API lives under one of these.
        let forbidden = [
            "std::fs",
            "std::io",
            "std::net",
            "std::process",
            "std::env",
            "std::time",
            "std::thread",
            "git2::",
            "bollard::",
            "tokio::",
            "bcrypt::",
        ];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{} uses `{f}`: the planner must do no I/O",
                    path.display()
                );
            }
        }
    }
}
