//! The plan's vocabulary: typed steps, each with the reasons it exists, and notes.

use serde::{Deserialize, Serialize};

pub use super::reason::{Blocker, Reason};
use crate::manifest::{LoginSpec, ManifestPath, Rev};
use crate::render::Container;

/// What a git step acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Target {
    /// `<workspace>/ComfyUI`.
    ComfyUi,
    /// `custom_nodes/<name>`.
    Node(String),
}

impl Target {
    /// The target's path relative to the workspace's `ComfyUI/`, for messages.
    pub fn shown(&self) -> String {
        match self {
            Target::ComfyUi => "ComfyUI/".to_owned(),
            Target::Node(n) => format!("custom_nodes/{n}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::ComfyUi => "ComfyUI",
            Target::Node(n) => n,
        }
    }
}

/// Why a checkout cannot simply be moved to its pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Obstacle {
    /// Local changes would be lost.
    Dirty { count: usize, sample: Vec<String> },
    /// The directory is not a git checkout.
    NotGit,
    /// The checkout's `origin` is another repository.
    ForeignOrigin { found: Option<String> },
}

/// One action `apply` would take, with everything its executor needs: the executor receives the
/// step and an execution environment (the workspace's paths, the reporter, the clock), never the
/// manifest, so what `plan` shows is what runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Create the workspace folder.
    CreateWorkspace { path: String },
    /// Clone a repository at its pin (into a temp dir, renamed into place).
    Clone {
        target: Target,
        url: String,
        rev: Rev,
    },
    /// Rename `<name>.disabled` back to `<name>`.
    Enable { node: String, from: String },
    /// Move an existing checkout to its pin, fetching from `url` if needed.
    Checkout {
        target: Target,
        url: String,
        /// Commit it is at now (abbreviated), if any.
        from: Option<String>,
        rev: Rev,
        /// The commit the rev names locally, if known.
        resolved: Option<String>,
    },
    /// `--force`: move the directory aside to `<dir>.<timestamp>.disabled`, then clone.
    Replace {
        target: Target,
        url: String,
        rev: Rev,
        obstacle: Obstacle,
    },
    /// Leave the directory alone: changing it would lose work or trust. `--force` replaces it.
    Refuse { target: Target, obstacle: Obstacle },
    /// Rename a `custom_nodes/` directory to `<dir>.disabled`.
    Disable { dir: String },
    /// Generate a random password into the password file (mode 0600).
    GeneratePassword { file: ManifestPath },
    /// Write `login/PASSWORD` (hash line and username line, mode 0600) from `login`'s secret.
    /// With `new_hash`, clients need the new token; without it, the existing hash is kept and
    /// only the username changes.
    WritePassword {
        new_hash: bool,
        exists: bool,
        login: LoginSpec,
    },
    /// Move the legacy `ComfyUI/PASSWORD` to `login/PASSWORD` (its hash, the token, is kept).
    MoveLegacyPassword,
    /// Remove the legacy `ComfyUI/PASSWORD`.
    RemoveLegacyPassword,
    /// Set `login/PASSWORD` to mode 0600.
    FixPasswordMode { mode: u32 },
    /// Write `content` to the compose file.
    RenderCompose {
        file: ManifestPath,
        exists: bool,
        content: String,
    },
    /// Something apply cannot do on its own; the user must act.
    Blocked { blocker: Blocker },
    /// Create the container from its run spec, and start it.
    CreateContainer {
        container: Box<Container>,
        guard: Guard,
    },
    /// Start the stopped container.
    StartContainer {
        name: String,
        status: String,
        guard: Guard,
    },
    /// Remove the container and create it again from its run spec.
    RecreateContainer {
        container: Box<Container>,
        cause: Recreate,
        guard: Guard,
    },
    /// Restart the running container, once, last, with every reason.
    RestartContainer { name: String, guard: Guard },
    /// `<python> -m pip install -r custom_nodes/<node>/requirements.txt` in the running
    /// container, recorded per node; before the restart.
    InstallRequirements {
        node: String,
        container: String,
        python: String,
    },
}

/// Why a container is recreated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Recreate {
    /// Its run spec differs from the manifest's in these fields.
    Changed { fields: Vec<String> },
    /// comfyprov did not create it (`--force`).
    NotOurs,
}

/// What must hold before the server is started in any way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    /// Login mode: `login/PASSWORD` must verify this secret (ComfyUI-Login without it takes an
    /// empty token and lets the first visitor choose the password).
    pub login: Option<LoginSpec>,
    /// NVIDIA GPUs are requested: the daemon must have the NVIDIA runtime.
    pub gpu: bool,
}

/// Where a step runs in apply's order. Phases run one after the other; the node directories'
/// steps run in parallel, one directory's in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase<'a> {
    Workspace,
    ComfyUi,
    Node(&'a str),
    Password,
    Compose,
    Container,
}

/// How a step is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `+` something new.
    Create,
    /// `~` something changed in place.
    Change,
    /// `-` something disabled or removed.
    Remove,
    /// `!` refused or blocked: apply will not do it.
    Refuse,
}

impl Kind {
    pub fn symbol(self) -> char {
        match self {
            Kind::Create => '+',
            Kind::Change => '~',
            Kind::Remove => '-',
            Kind::Refuse => '!',
        }
    }
}

/// A step: an action and every reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    /// Typed; `plan --json` also gives them as text, under `reasons`.
    #[serde(rename = "causes")]
    pub reasons: Vec<Reason>,
}

/// A commit id abbreviated to 7 digits, for messages.
pub fn short(oid: &str) -> &str {
    &oid[..oid.len().min(7)]
}

/// How to show a rev with what it resolved to: `v1.0 (a1b2c3d)`.
fn rev_shown(rev: &Rev, resolved: Option<&str>) -> String {
    match (rev, resolved) {
        (Rev::Named(n), Some(c)) => format!("{n} ({})", short(c)),
        (Rev::Commit(c), _) => short(c).to_owned(),
        (Rev::Named(n), None) => n.clone(),
    }
}

impl Action {
    pub fn kind(&self) -> Kind {
        match self {
            Action::CreateWorkspace { .. }
            | Action::Clone { .. }
            | Action::GeneratePassword { .. }
            | Action::Enable { .. }
            | Action::WritePassword { exists: false, .. }
            | Action::RenderCompose { exists: false, .. }
            | Action::CreateContainer { .. }
            | Action::InstallRequirements { .. } => Kind::Create,
            Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::WritePassword { .. }
            | Action::MoveLegacyPassword
            | Action::FixPasswordMode { .. }
            | Action::RenderCompose { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. }
            | Action::RestartContainer { .. } => Kind::Change,
            Action::Disable { .. } | Action::RemoveLegacyPassword => Kind::Remove,
            Action::Refuse { .. } | Action::Blocked { .. } => Kind::Refuse,
        }
    }

    /// One-line description: verb and object.
    pub fn describe(&self) -> String {
        match self {
            Action::CreateWorkspace { path } => format!("create workspace {path}"),
            Action::Clone { target, rev, .. } => {
                format!("clone {} @ {}", target.name(), rev_shown(rev, None))
            }
            Action::Enable { node, from } => format!("enable {node} (rename {from})"),
            Action::Checkout {
                target,
                from,
                rev,
                resolved,
                ..
            } => {
                let from = from.as_deref().map(short).unwrap_or("no commit");
                format!(
                    "checkout {} {from} → {}",
                    target.name(),
                    rev_shown(rev, resolved.as_deref())
                )
            }
            Action::Replace { target, rev, .. } => {
                format!(
                    "replace {} with a clone @ {} (old dir kept aside)",
                    target.name(),
                    rev_shown(rev, None)
                )
            }
            Action::Refuse { target, .. } => format!("refuse {}", target.shown()),
            Action::Disable { dir } => format!("disable custom_nodes/{dir}"),
            Action::GeneratePassword { file } => format!("generate password {}", file.shown),
            Action::WritePassword { new_hash: true, .. } => "write login/PASSWORD".to_owned(),
            Action::WritePassword {
                new_hash: false, ..
            } => "write login/PASSWORD username line (hash kept)".to_owned(),
            Action::MoveLegacyPassword => "move ComfyUI/PASSWORD → login/PASSWORD".to_owned(),
            Action::RemoveLegacyPassword => "remove legacy ComfyUI/PASSWORD".to_owned(),
            Action::FixPasswordMode { mode } => format!("chmod login/PASSWORD {mode:04o} → 0600"),
            Action::RenderCompose { file, .. } => format!("render {}", file.shown),
            Action::Blocked { blocker } => format!("blocked: {}", blocker.subject()),
            Action::CreateContainer { container, .. } => {
                format!("create and start container {}", container.name)
            }
            Action::StartContainer { name, status, .. } => {
                format!("start container {name} ({status})")
            }
            Action::RecreateContainer {
                container,
                cause: Recreate::Changed { fields },
                ..
            } => format!(
                "recreate container {} ({} changed)",
                container.name,
                fields.join(", ")
            ),
            Action::RecreateContainer {
                container,
                cause: Recreate::NotOurs,
                ..
            } => format!(
                "replace container {} (not created by comfyprov)",
                container.name
            ),
            Action::RestartContainer { name, .. } => format!("restart container {name}"),
            Action::InstallRequirements { node, .. } => {
                format!("install {node}/requirements.txt in the container")
            }
        }
    }

    /// When apply runs this step. Every kind is named: a new kind does not compile until it
    /// has a phase.
    pub fn phase(&self) -> Phase<'_> {
        match self {
            Action::CreateWorkspace { .. } => Phase::Workspace,
            Action::Clone { target, .. }
            | Action::Checkout { target, .. }
            | Action::Replace { target, .. }
            | Action::Refuse { target, .. } => target.phase(),
            Action::Enable { node: dir, .. } | Action::Disable { dir } => Phase::Node(dir),
            Action::GeneratePassword { .. }
            | Action::WritePassword { .. }
            | Action::MoveLegacyPassword
            | Action::RemoveLegacyPassword
            | Action::FixPasswordMode { .. } => Phase::Password,
            Action::RenderCompose { .. } => Phase::Compose,
            Action::CreateContainer { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. }
            | Action::RestartContainer { .. }
            | Action::InstallRequirements { .. } => Phase::Container,
            Action::Blocked { blocker } => match blocker {
                Blocker::ComfyUiNotInstalled => Phase::ComfyUi,
                Blocker::Uninspectable { target } => target.phase(),
                Blocker::SecretMissing { .. }
                | Blocker::SecretUnusable { .. }
                | Blocker::PasswordUnreadable => Phase::Password,
                Blocker::ForeignContainer { .. } | Blocker::PasswordInvalid { .. } => {
                    Phase::Container
                }
            },
        }
    }

    /// The `custom_nodes/` directory a node step acts on, if any.
    pub fn node_dir(&self) -> Option<&str> {
        match self.phase() {
            Phase::Node(dir) => Some(dir),
            _ => None,
        }
    }

    /// Whether this step creates, starts or replaces the server: the container steps after it
    /// have nothing to act on when it fails.
    pub fn starts_server(&self) -> bool {
        match self {
            Action::CreateContainer { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. } => true,
            Action::CreateWorkspace { .. }
            | Action::Clone { .. }
            | Action::Enable { .. }
            | Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::Refuse { .. }
            | Action::Disable { .. }
            | Action::GeneratePassword { .. }
            | Action::WritePassword { .. }
            | Action::MoveLegacyPassword
            | Action::RemoveLegacyPassword
            | Action::FixPasswordMode { .. }
            | Action::RenderCompose { .. }
            | Action::Blocked { .. }
            | Action::RestartContainer { .. }
            | Action::InstallRequirements { .. } => false,
        }
    }

    /// Whether ComfyUI must restart to see the result (it reads nodes and PASSWORD at start).
    pub fn needs_restart(&self) -> bool {
        match self {
            Action::Clone { .. }
            | Action::Enable { .. }
            | Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::Disable { .. } => true,
            Action::WritePassword { new_hash, .. } => *new_hash,
            Action::CreateWorkspace { .. }
            | Action::Refuse { .. }
            | Action::GeneratePassword { .. }
            | Action::MoveLegacyPassword
            | Action::RemoveLegacyPassword
            | Action::FixPasswordMode { .. }
            | Action::RenderCompose { .. }
            | Action::Blocked { .. }
            | Action::CreateContainer { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. }
            | Action::RestartContainer { .. }
            | Action::InstallRequirements { .. } => false,
        }
    }
}

impl Target {
    fn phase(&self) -> Phase<'_> {
        match self {
            Target::ComfyUi => Phase::ComfyUi,
            Target::Node(n) => Phase::Node(n),
        }
    }
}

/// Something worth knowing that is not a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    /// The container could not be looked at.
    ContainerNotObserved { reason: String },
    /// The container's state.
    ContainerStatus {
        name: String,
        status: String,
        health: Option<String>,
        started_at: Option<String>,
    },
    /// A container with the project's name that comfyprov's compose file did not create.
    ForeignContainer { name: String },
    /// Critical: a login-mode server runs without a PASSWORD that matches the secret.
    UnprotectedServer { name: String, why: String },
    /// An unmanaged node directory kept by `policy.unmanaged_nodes = "keep"`.
    KeptUnmanaged { dir: String },
    /// A checkout at its pin but with local changes (apply leaves it; `--force` replaces it).
    DirtyAtPin {
        target: Target,
        count: usize,
        sample: Vec<String>,
    },
    /// The secret file can be read by other users.
    SecretReadableByOthers { path: String, mode: u32 },
    /// What a running ComfyUI must restart to pick up.
    RestartNeeded { reasons: Vec<String> },
}

impl Note {
    pub fn message(&self) -> String {
        match self {
            Note::ContainerNotObserved { reason } => format!("container not observed: {reason}"),
            Note::ContainerStatus {
                name,
                status,
                health,
                started_at,
            } => {
                let mut s = format!("container `{name}` is {status}");
                if let Some(h) = health {
                    s.push_str(&format!(" ({h})"));
                }
                if let Some(t) = started_at.as_deref().filter(|_| status == "running") {
                    s.push_str(&format!(", started {}", t.split('.').next().unwrap_or(t)));
                }
                if status == "restarting" {
                    s.push_str(&format!(
                        ": ComfyUI keeps exiting at start and Docker keeps restarting it; `docker logs {name}` shows why"
                    ));
                }
                s
            }
            Note::ForeignContainer { name } => format!(
                "container `{name}` was not created from comfyprov's compose file (no `comfyprov.project` label)"
            ),
            Note::UnprotectedServer { name, why } => {
                format!("CRITICAL: container `{name}` is running in login mode, but {why}")
            }
            Note::KeptUnmanaged { dir } => format!(
                "custom_nodes/{dir} is not in the manifest; kept (policy.unmanaged_nodes = \"keep\"), ComfyUI loads it"
            ),
            Note::DirtyAtPin {
                target,
                count,
                sample,
            } => format!(
                "{} is at its pin but has {count} local change{} ({}); left as is, `--force` replaces it",
                target.shown(),
                if *count == 1 { "" } else { "s" },
                sample.join(", ")
            ),
            Note::SecretReadableByOthers { path, mode } => {
                format!(
                    "{path} is readable by other users (mode {mode:04o}); run `chmod 600 {path}`"
                )
            }
            Note::RestartNeeded { reasons } => {
                format!(
                    "a running ComfyUI must restart to pick up: {}",
                    reasons.join("; ")
                )
            }
        }
    }
}
