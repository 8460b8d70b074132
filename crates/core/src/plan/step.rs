//! The plan's vocabulary: typed steps with everything their executors need, why each exists
//! ([`Reason`]), what apply cannot do on its own ([`Blocker`]), and notes. Reasons and blockers
//! are turned into text only by their `Display`/`subject`/`help`, which the display layer calls.
//! (One module: a restart's reason names the step that caused it, a blocker the step it holds.)

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::lock::{Package, PackageChange};
use crate::manifest::{LoginSpec, ManifestPath, ModelSpec, PythonSpec, Rev, SecretSource};
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
        /// Finish a checkout an earlier apply began: the working tree's differences are that
        /// apply's, so the checkout overwrites them.
        #[serde(default)]
        resume: bool,
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
    FixPasswordMode {
        #[serde(with = "octal")]
        mode: u32,
    },
    /// Write `content` to the compose file; the file it replaces is kept as `<file>.bak`.
    RenderCompose {
        file: ManifestPath,
        exists: bool,
        content: String,
        /// What the file holds now (no secret is ever in it), for the diff `plan` shows.
        #[serde(default)]
        previous: Option<String>,
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
    /// Resolve ComfyUI's and the nodes' requirements (read when the step runs: a checkout
    /// before it may change them) with torch and the extras, for the container's Python and
    /// platform, into `comfy.lock`. With `locked`, only check that the lock still matches.
    LockPython {
        spec: Box<PythonSpec>,
        /// Requirements files relative to `ComfyUI/`, in resolution order (missing ones are
        /// skipped).
        files: Vec<String>,
        /// The git pins recorded with their commits.
        git: Vec<(Target, String)>,
        locked: bool,
    },
    /// Build the environment in a one-off container from `image` (created first when `create`),
    /// then sync it exactly to the lock's packages (extras removed).
    SyncPython {
        spec: Box<PythonSpec>,
        image: String,
        /// No environment, or one made with another Python: make it afresh.
        create: bool,
        /// The packages to install: the lock's; `None` when the lock step before it writes them.
        packages: Option<Vec<Package>>,
        /// What changes in the environment, as observed (empty when `packages` is `None`).
        changes: Vec<PackageChange>,
    },
    /// Put a model file in place: from the cache (a hard link, or a copy across filesystems),
    /// or downloaded into the cache first (resumed after an interruption, hashed while it
    /// streams, kept only when it matches).
    PlaceModel {
        model: Box<ModelSpec>,
        /// `ComfyUI/models/<path>` on this machine.
        target: String,
        /// The hash it must have (the manifest's or the lock's); `None` on a first download,
        /// whose hash is then recorded in the lock.
        sha256: Option<String>,
        /// Its size when known (manifest or lock).
        size: Option<u64>,
        /// The cache already holds it: nothing is downloaded.
        from_cache: bool,
        /// The cache folder.
        cache: String,
        /// `comfy.lock`, where a first download's hash is recorded.
        lock_file: String,
        /// A wrong file is at the path and is replaced.
        replace: bool,
    },
    /// Record the hash of a model file found in place (not downloaded by comfyprov) in
    /// `comfy.lock`, which enforces it from then on.
    RecordModel {
        path: String,
        url: String,
        sha256: String,
        size: u64,
        lock_file: String,
    },
}

/// Why a model file cannot be put in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ModelProblem {
    /// Writing it would go through a symbolic link.
    Linked {
        why: String,
    },
    /// Something that is not a file is at its path.
    NotAFile,
    Unreadable {
        error: String,
    },
    /// `--locked`, and neither the manifest nor the lock has its hash.
    Unpinned,
    /// The downloads do not fit.
    NoSpace {
        need: u64,
        free: u64,
        at: String,
    },
    /// `comfy.lock`'s model entries cannot be read.
    LockUnreadable {
        error: String,
    },
}

/// Bytes for people: `335.0 MB`, `20.43 GB` (powers of 1000, as download pages show them).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
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
    /// The lock, then the environment: after every checkout (they change what is resolved).
    Python,
    /// Model files, in parallel: before the server starts, so it lists them.
    Models,
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
            | Action::PlaceModel { replace: false, .. }
            | Action::RecordModel { .. }
            | Action::LockPython { .. } => Kind::Create,
            Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::WritePassword { .. }
            | Action::MoveLegacyPassword
            | Action::FixPasswordMode { .. }
            | Action::RenderCompose { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. }
            | Action::RestartContainer { .. }
            | Action::PlaceModel { .. }
            | Action::SyncPython { .. } => Kind::Change,
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
                rev,
                resolved,
                resume: true,
                ..
            } => format!(
                "finish the interrupted checkout of {} → {}",
                target.name(),
                rev_shown(rev, resolved.as_deref())
            ),
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
            Action::LockPython {
                spec, locked: true, ..
            } => format!(
                "check {} against the new checkouts (--locked)",
                spec.lock_file.shown
            ),
            Action::LockPython { spec, .. } => format!(
                "resolve the Python requirements into {}",
                spec.lock_file.shown
            ),
            Action::SyncPython {
                spec,
                create,
                packages,
                changes,
                ..
            } => {
                let what = match (create, packages) {
                    (true, _) => format!(
                        "create the Python {} environment {}/ and sync it",
                        spec.version, spec.env
                    ),
                    (false, _) => format!("sync the Python environment {}/", spec.env),
                };
                match packages {
                    None => format!("{what} to the new {}", spec.lock_file.shown),
                    Some(p) if *create => format!("{what} ({} packages)", p.len()),
                    Some(_) => {
                        format!("{what} ({} change{})", changes.len(), plural(changes.len()))
                    }
                }
            }
            Action::PlaceModel {
                model,
                size,
                from_cache,
                replace,
                ..
            } => {
                let verb = if *replace { "replace" } else { "download" };
                match (from_cache, size) {
                    (true, _) if *replace => format!("replace model {} from the cache", model.path),
                    (true, _) => format!("place model {} from the cache", model.path),
                    (false, Some(n)) => format!("{verb} model {} ({})", model.path, bytes(*n)),
                    (false, None) => format!("{verb} model {} (size not known yet)", model.path),
                }
            }
            Action::RecordModel {
                path, lock_file, ..
            } => format!("record the SHA-256 of model {path} in {lock_file}"),
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
            | Action::RestartContainer { .. } => Phase::Container,
            Action::LockPython { .. } | Action::SyncPython { .. } => Phase::Python,
            Action::PlaceModel { .. } | Action::RecordModel { .. } => Phase::Models,
            Action::Blocked { blocker } => match blocker {
                Blocker::Model { .. } => Phase::Models,
                Blocker::ComfyUiNotInstalled => Phase::ComfyUi,
                Blocker::Uninspectable { target } => target.phase(),
                Blocker::SecretMissing { .. }
                | Blocker::SecretUnusable { .. }
                | Blocker::PasswordUnreadable => Phase::Password,
                Blocker::Linked { .. } => Phase::Compose,
                Blocker::LockStale { .. } | Blocker::PythonUnobservable { .. } => Phase::Python,
                Blocker::ForeignContainer { .. }
                | Blocker::PasswordInvalid { .. }
                | Blocker::PortTaken { .. } => Phase::Container,
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
            | Action::LockPython { .. }
            | Action::PlaceModel { .. }
            | Action::RecordModel { .. }
            | Action::SyncPython { .. } => false,
        }
    }

    /// Whether the step reports transfer progress (a bar on a terminal).
    pub fn transfers(&self) -> bool {
        match self {
            Action::Clone { .. }
            | Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::PlaceModel { .. } => true,
            Action::CreateWorkspace { .. }
            | Action::Refuse { .. }
            | Action::Enable { .. }
            | Action::Disable { .. }
            | Action::GeneratePassword { .. }
            | Action::WritePassword { .. }
            | Action::MoveLegacyPassword
            | Action::RemoveLegacyPassword
            | Action::FixPasswordMode { .. }
            | Action::RenderCompose { .. }
            | Action::Blocked { .. }
            | Action::CreateContainer { .. }
            | Action::StartContainer { .. }
            | Action::RecreateContainer { .. }
            | Action::RestartContainer { .. }
            | Action::LockPython { .. }
            | Action::RecordModel { .. }
            | Action::SyncPython { .. } => false,
        }
    }

    /// Whether ComfyUI must restart to see the result (it reads nodes and PASSWORD at start).
    pub fn needs_restart(&self) -> bool {
        match self {
            Action::Clone { .. }
            | Action::Enable { .. }
            | Action::Checkout { .. }
            | Action::Replace { .. }
            | Action::Disable { .. }
            | Action::SyncPython { .. } => true,
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
            // ComfyUI lists a model folder on each request (its cache is keyed on the folders'
            // mtimes), so a placed model is seen without a restart.
            | Action::PlaceModel { .. }
            | Action::RecordModel { .. }
            | Action::LockPython { .. } => false,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    SecretReadableByOthers {
        path: String,
        #[serde(with = "octal")]
        mode: u32,
    },
    /// What a running ComfyUI must restart to pick up.
    RestartNeeded { reasons: Vec<String> },
    /// What the model downloads need against the free space where they go.
    ModelSpace {
        need: u64,
        free: u64,
        at: String,
        /// Downloads whose size is not known before they start (checked then).
        unknown: usize,
    },
    /// ComfyUI-Login writes the token into the container's log at every start.
    TokenInLog { name: String },
    /// An entry of `custom_nodes/` whose name is not UTF-8: comfyprov can neither declare nor
    /// disable it.
    OddName { shown: String },
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
            Note::TokenInLog { name } => format!(
                "ComfyUI-Login logs the token at INFO level at every start (`For direct API calls, use token=…`): whoever can run `docker logs {name}` (the docker group is root-equivalent) or fetch `/internal/logs` with the token has it; `comfyprov logs` and `verify` mask it. Keep the Docker socket to admins, and rotate the password if a log left the machine"
            ),
            Note::OddName { shown } => format!(
                "custom_nodes/{shown} has a name that is not UTF-8 (shown with replacement characters): ComfyUI may load it, comfyprov cannot manage it; rename it"
            ),
            Note::RestartNeeded { reasons } => {
                format!(
                    "a running ComfyUI must restart to pick up: {}",
                    reasons.join("; ")
                )
            }
            Note::ModelSpace {
                need,
                free,
                at,
                unknown,
            } => {
                let sized = (*need > 0).then(|| format!("{} to fetch", bytes(*need)));
                let unknown_size = (*unknown > 0).then(|| {
                    format!(
                        "{unknown} of a size not known yet (checked against the free space when {} start{})",
                        if *unknown == 1 { "it" } else { "they" },
                        if *unknown == 1 { "s" } else { "" }
                    )
                });
                let what: Vec<String> = sized.into_iter().chain(unknown_size).collect();
                format!(
                    "model downloads: {}; {} free on {at}",
                    what.join(", "),
                    bytes(*free)
                )
            }
        }
    }
}

/// One reason for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// A declared model file is not there.
    ModelMissing {
        path: String,
    },
    /// A model file whose size is not the one it must have.
    ModelSizeDiffers {
        path: String,
        size: u64,
        expected: u64,
    },
    /// A model file whose SHA-256 is not the one it must have.
    ModelHashDiffers {
        path: String,
        found: String,
        expected: String,
    },
    /// A model file found in place with no hash in the manifest or the lock.
    ModelUnrecorded {
        path: String,
    },
    /// The lock's hash is for another URL than the manifest's.
    ModelUrlChanged {
        path: String,
    },
    /// Something at a model's path that comfyprov does not touch.
    ModelInTheWay {
        path: String,
    },
    WorkspaceMissing {
        path: String,
    },
    /// `<workspace>/ComfyUI` is missing and the manifest has no `[comfyui]`.
    ComfyUiAbsent {
        workspace: String,
    },
    ComposeMissing {
        path: String,
    },
    ComposeDiffers {
        path: String,
    },
    ComposeUnreadable {
        path: String,
        error: String,
    },
    NoContainer {
        name: String,
    },
    /// A container with the project's name that comfyprov did not create; `forced` with `--force`.
    ForeignContainer {
        name: String,
        forced: bool,
        /// What recreating it from the manifest changes besides comfyprov's labels, when its
        /// configuration could be read.
        #[serde(default)]
        changes: Vec<String>,
    },
    /// The container has no `comfyprov.spec` label.
    NoSpecLabel,
    /// The manifest's run spec differs in these fields.
    SpecChanged {
        fields: Vec<String>,
    },
    ContainerStopped {
        name: String,
        status: String,
    },
    /// Something the server reads at start changed after it started.
    PendingRestart {
        started_at: Option<String>,
    },
    /// A step of this plan changes what the running server read at start.
    ChangedBy {
        action: Box<Action>,
    },
    LockMissing {
        file: String,
    },
    LockUnreadable {
        file: String,
        error: String,
    },
    /// What the lock was resolved from differs from today's inputs.
    LockStale {
        file: String,
        differences: Vec<String>,
    },
    /// The lock's git pins are not the manifest's.
    LockGitDiffers {
        file: String,
        differences: Vec<String>,
    },
    /// A checkout in this plan changes a requirements file the lock is made from.
    InputsChange {
        target: Target,
    },
    EnvMissing {
        env: String,
    },
    EnvOtherPython {
        env: String,
        found: Option<String>,
        want: String,
    },
    EnvDiffers {
        env: String,
        count: usize,
    },
    /// The environment was not built by comfyprov in this image.
    EnvNotBuiltHere {
        env: String,
        found: Option<String>,
        image: String,
    },
    /// The lock step before it writes a new lock.
    LockRewritten {
        file: String,
    },
    Missing {
        target: Target,
    },
    /// The node is missing, but `<node>.disabled` is a clean checkout of it.
    DisabledTwin {
        target: Target,
        from: String,
    },
    NotGit {
        target: Target,
    },
    ForeignOrigin {
        target: Target,
        found: Option<String>,
        url: String,
    },
    Dirty {
        target: Target,
        count: usize,
        sample: Vec<String>,
        /// The rev it must move to, when it is not at its pin.
        move_to: Option<String>,
    },
    /// A checkout in the way, and what happens to it: `forced` keeps it aside and clones afresh.
    Obstructed {
        why: Box<Reason>,
        forced: bool,
    },
    Uninspectable {
        error: String,
    },
    NoCommit {
        target: Target,
    },
    /// At `head`; the named rev is not in the checkout yet.
    NotFetched {
        target: Target,
        head: String,
        rev: String,
    },
    OtherCommit {
        target: Target,
        head: String,
        rev: String,
    },
    /// An earlier apply's checkout of it was interrupted.
    Interrupted {
        target: Target,
    },
    LoginNodeWithoutAuth {
        node: String,
    },
    UnmanagedDisabled {
        dir: String,
    },
    GenerateSecret {
        path: String,
    },
    NewPasswordGenerated,
    LegacyHoldsReplacedHash,
    SecretNeeded,
    SecretUnusable {
        error: String,
    },
    LegacyStillMatches,
    PasswordMissing,
    LegacyMismatch {
        source: String,
    },
    PasswordUnreadable {
        error: String,
    },
    PasswordMismatch {
        source: String,
    },
    HashMalformed,
    LegacyBeside,
    PasswordReadable {
        #[serde(with = "octal")]
        mode: u32,
    },
    UsernameDiffers {
        found: String,
        want: String,
    },
    NoUsername,
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WorkspaceMissing { path } => write!(f, "{path} does not exist"),
            Reason::ModelMissing { path } => write!(f, "models/{path} does not exist"),
            Reason::ModelSizeDiffers {
                path,
                size,
                expected,
            } => write!(
                f,
                "models/{path} has {size} bytes, it must have {expected} (a download that stopped halfway?)"
            ),
            Reason::ModelHashDiffers {
                path,
                found,
                expected,
            } => write!(
                f,
                "models/{path} has SHA-256 {}…, it must have {}…",
                &found[..found.len().min(12)],
                &expected[..expected.len().min(12)]
            ),
            Reason::ModelUnrecorded { path } => write!(
                f,
                "models/{path} is there, but neither the manifest nor comfy.lock says what it must hash to"
            ),
            Reason::ModelUrlChanged { path } => write!(
                f,
                "the manifest's URL for models/{path} is not the one comfy.lock recorded its hash for, and the manifest gives no sha256"
            ),
            Reason::ModelInTheWay { path } => write!(f, "models/{path} cannot be used as it is"),
            Reason::ComfyUiAbsent { workspace } => write!(
                f,
                "{workspace}/ComfyUI does not exist and the manifest has no [comfyui]"
            ),
            Reason::ComposeMissing { path } => write!(f, "{path} does not exist"),
            Reason::ComposeDiffers { path } => write!(
                f,
                "{path} differs from what the manifest renders (edited by hand, or the manifest changed)"
            ),
            Reason::ComposeUnreadable { path, error } => {
                write!(f, "{path} cannot be read: {error}")
            }
            Reason::NoContainer { name } => write!(f, "no container is named {name}"),
            Reason::ForeignContainer {
                name,
                forced,
                changes,
            } => {
                write!(
                    f,
                    "a container named {name} exists, but comfyprov did not create it (no `comfyprov.project` label)"
                )?;
                if changes.is_empty() {
                    f.write_str("; adopting it changes nothing but comfyprov's labels")?;
                } else {
                    write!(f, "; adopting it also changes: {}", changes.join(", "))?;
                }
                if *forced {
                    f.write_str("; --force removes it")?;
                }
                Ok(())
            }
            Reason::NoSpecLabel => f.write_str("it was created without comfyprov's spec label"),
            Reason::SpecChanged { fields } => write!(
                f,
                "the container's {} differ{} from what the manifest says",
                fields.join(", "),
                if fields.len() == 1 { "s" } else { "" }
            ),
            Reason::ContainerStopped { name, status } => {
                write!(f, "container {name} is {status}")
            }
            Reason::PendingRestart { started_at } => write!(
                f,
                "custom nodes or login/PASSWORD changed after the container started at {} (pending restart)",
                started_at.as_deref().unwrap_or("?")
            ),
            Reason::ChangedBy { action } => f.write_str(&action.describe()),
            Reason::LockMissing { file } => write!(f, "{file} does not exist"),
            Reason::LockUnreadable { file, error } => write!(f, "{file} cannot be used: {error}"),
            Reason::LockStale { file, differences } => write!(
                f,
                "{file} was resolved from other inputs: {}",
                differences.join("; ")
            ),
            Reason::LockGitDiffers { file, differences } => write!(
                f,
                "{file} records other git pins: {}",
                differences.join("; ")
            ),
            Reason::InputsChange { target } => write!(
                f,
                "{} changes in this apply; the lock is checked against its requirements afterwards",
                target.shown()
            ),
            Reason::EnvMissing { env } => write!(f, "{env}/ has no environment (no pyvenv.cfg)"),
            Reason::EnvOtherPython { env, found, want } => write!(
                f,
                "{env}/ was made with Python {}, the manifest says {want}",
                found.as_deref().unwrap_or("(unknown)")
            ),
            Reason::EnvDiffers { env, count } => write!(
                f,
                "{env}/ differs from the lock in {count} package{}",
                plural(*count)
            ),
            Reason::EnvNotBuiltHere { env, found: None, image } => write!(
                f,
                "{env}/ has no build record from comfyprov (made on the host, whose interpreter the container lacks, or a build was interrupted); it is built afresh in {image}"
            ),
            Reason::EnvNotBuiltHere {
                env,
                found: Some(other),
                image,
            } => write!(f, "{env}/ was built in {other}; it is built afresh in {image}"),
            Reason::LockRewritten { file } => {
                write!(f, "{file} is resolved again by the step before")
            }
            Reason::Missing { target } => write!(f, "{} is missing", target.shown()),
            Reason::DisabledTwin { target, from } => write!(
                f,
                "{} is missing but custom_nodes/{from} is a clean checkout of it",
                target.shown()
            ),
            Reason::NotGit { target } => {
                write!(f, "{} exists but is not a git checkout", target.shown())
            }
            Reason::ForeignOrigin { target, found, url } => match found {
                Some(o) => write!(f, "{} is a checkout of {o}, not {url}", target.shown()),
                None => write!(f, "{} has no `origin` remote", target.shown()),
            },
            Reason::Dirty {
                target,
                count,
                sample,
                move_to,
            } => {
                write!(
                    f,
                    "{} has {count} local change{} ({})",
                    target.shown(),
                    plural(*count),
                    sample.join(", ")
                )?;
                if let Some(rev) = move_to {
                    write!(f, " and must move to {rev}")?;
                }
                Ok(())
            }
            Reason::Obstructed { why, forced: true } => {
                write!(f, "{why}; --force keeps it aside and clones afresh")
            }
            Reason::Obstructed { why, forced: false } => write!(
                f,
                "{why}; commit, move or delete it, or rerun with --force to keep it aside and re-clone"
            ),
            Reason::Uninspectable { error }
            | Reason::SecretUnusable { error }
            | Reason::PasswordUnreadable { error } => f.write_str(error),
            Reason::NoCommit { target } => {
                write!(f, "{} has no commit checked out", target.shown())
            }
            Reason::NotFetched { target, head, rev } => write!(
                f,
                "{} is at {}; `{rev}` is not in the checkout yet (apply fetches it)",
                target.shown(),
                short(head)
            ),
            Reason::OtherCommit { target, head, rev } => write!(
                f,
                "{} is at {}, the manifest pins {rev}",
                target.shown(),
                short(head)
            ),
            Reason::Interrupted { target } => write!(
                f,
                "an earlier apply's checkout of {} was interrupted; its half-moved files are comfyprov's, not local changes",
                target.shown()
            ),
            Reason::LoginNodeWithoutAuth { node } => write!(
                f,
                "auth.mode is none, but {node} would still ask for a password"
            ),
            Reason::UnmanagedDisabled { dir } => write!(
                f,
                "custom_nodes/{dir} is not in the manifest (policy.unmanaged_nodes = \"disable\")"
            ),
            Reason::GenerateSecret { path } => {
                write!(f, "{path} does not exist and auth.generate = true")
            }
            Reason::NewPasswordGenerated => f.write_str(
                "a new password is generated; clients need the new token (line 1 of login/PASSWORD)",
            ),
            Reason::LegacyHoldsReplacedHash => {
                f.write_str("the legacy ComfyUI/PASSWORD holds a replaced hash")
            }
            Reason::SecretNeeded => {
                f.write_str("login/PASSWORD cannot be checked or written without it")
            }
            Reason::LegacyStillMatches => f.write_str(
                "login/PASSWORD is missing; the legacy ComfyUI/PASSWORD still matches the secret (token kept)",
            ),
            Reason::PasswordMissing => f.write_str("login/PASSWORD is missing"),
            Reason::LegacyMismatch { source } => {
                write!(f, "the legacy ComfyUI/PASSWORD does not match {source}")
            }
            Reason::PasswordMismatch { source } => write!(
                f,
                "login/PASSWORD does not match the password in {source}; clients need the new token"
            ),
            Reason::HashMalformed => f.write_str("line 1 of login/PASSWORD is not a bcrypt hash"),
            Reason::LegacyBeside => f.write_str(
                "a legacy ComfyUI/PASSWORD sits beside login/PASSWORD; ComfyUI-Login would move it over login/PASSWORD at start",
            ),
            Reason::PasswordReadable { mode } => write!(
                f,
                "login/PASSWORD is readable by other users (mode {mode:04o})"
            ),
            Reason::UsernameDiffers { found, want } => write!(
                f,
                "the username line is `{found}`, the manifest says `{want}`"
            ),
            Reason::NoUsername => f.write_str("login/PASSWORD has no username line"),
        }
    }
}

/// Compare with the text people read (for tests and for finding a reason in a list).
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        let text = self.to_string();
        text.as_str() == *other
    }
}

/// Something apply cannot do on its own; the user must act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "blocker", rename_all = "snake_case")]
pub enum Blocker {
    ComfyUiNotInstalled,
    Uninspectable {
        target: Target,
    },
    SecretMissing {
        source: SecretSource,
    },
    SecretUnusable {
        source: String,
        error: String,
    },
    PasswordUnreadable,
    ForeignContainer {
        name: String,
    },
    /// Writing `path` would go through a symbolic link.
    Linked {
        path: String,
    },
    /// A step that would publish the server on a host port something else holds.
    PortTaken {
        action: Box<Action>,
        listen: String,
        port: u16,
        holder: String,
    },
    /// A step that would start the server while `login/PASSWORD` would not be valid.
    PasswordInvalid {
        action: Box<Action>,
    },
    /// `--locked`, and the lock does not match the manifest and the requirements.
    LockStale {
        file: String,
        why: String,
    },
    /// The lock or the environment could not be read: nothing can be compared.
    PythonUnobservable {
        what: String,
        error: String,
    },
    /// A model file cannot be put in place.
    Model {
        path: String,
        problem: ModelProblem,
    },
}

impl Blocker {
    /// What is blocked.
    pub fn subject(&self) -> String {
        match self {
            Blocker::ComfyUiNotInstalled => "ComfyUI is not installed".to_owned(),
            Blocker::Uninspectable { target } => {
                format!("{} cannot be inspected", target.shown())
            }
            Blocker::SecretMissing { source } => {
                format!("the secret {} is missing", source.shown())
            }
            Blocker::SecretUnusable { source, .. } => format!("the secret {source} is unusable"),
            Blocker::PasswordUnreadable => "login/PASSWORD cannot be read".to_owned(),
            Blocker::ForeignContainer { name } => format!("container {name} is not comfyprov's"),
            Blocker::Linked { path } => format!("{path} would be written through a symbolic link"),
            Blocker::PortTaken {
                action,
                listen,
                port,
                ..
            } => format!("{} ({listen}:{port} is taken)", action.describe()),
            Blocker::PasswordInvalid { action } => {
                format!("{} (login/PASSWORD would not be valid)", action.describe())
            }
            Blocker::LockStale { file, .. } => format!("{file} is not current (--locked)"),
            Blocker::PythonUnobservable { what, error } => {
                format!("{what} cannot be read: {error}")
            }
            Blocker::Model { path, problem } => match problem {
                ModelProblem::Linked { .. } => {
                    format!("models/{path} would be written through a symbolic link")
                }
                ModelProblem::NotAFile => format!("models/{path} is not a file"),
                ModelProblem::Unreadable { error } => {
                    format!("models/{path} cannot be read: {error}")
                }
                ModelProblem::Unpinned => format!("models/{path} has no SHA-256 (--locked)"),
                ModelProblem::NoSpace { need, free, at } => format!(
                    "download model {path}: the downloads need {}, {at} has {} free",
                    bytes(*need),
                    bytes(*free)
                ),
                ModelProblem::LockUnreadable { error } => {
                    format!("the model entries of {path} cannot be read: {error}")
                }
            },
        }
    }

    /// What the user can do.
    pub fn help(&self) -> String {
        match self {
            Blocker::ComfyUiNotInstalled => "add a `[comfyui]` table with `git` and `rev`, or install ComfyUI into the workspace".to_owned(),
            Blocker::Uninspectable { .. } => {
                "check its permissions and that it is a healthy git checkout".to_owned()
            }
            Blocker::SecretMissing { source } => match source {
                SecretSource::PasswordFile(f) => format!(
                    "write the password into {} (mode 0600), or set `generate = true` in [auth] to create one",
                    f.shown
                ),
                SecretSource::HashFile(f) => format!("write a bcrypt hash into {}", f.shown),
                SecretSource::PasswordEnv(v) => format!("export {v}=… before running comfyprov"),
            },
            Blocker::SecretUnusable { source, error } => format!("fix {source}: {error}"),
            Blocker::PasswordUnreadable => "check the file's owner and permissions".to_owned(),
            Blocker::ForeignContainer { .. } => {
                "remove or rename it, or rerun with --force to replace it".to_owned()
            }
            Blocker::Linked { .. } => "replace the link with a plain file or folder: comfyprov never writes through links, which the container could plant".to_owned(),
            Blocker::PortTaken { port, holder, .. } => format!(
                "{holder} holds port {port}: stop it, or choose another `container.port`; the running server is left as it is"
            ),
            Blocker::PasswordInvalid { .. } => "make login/PASSWORD valid first (see the blocked password step): without it ComfyUI-Login accepts an empty token".to_owned(),
            Blocker::LockStale { file, .. } => format!(
                "run `comfyprov lock` and commit {file}, or run without --locked to let apply rewrite it"
            ),
            Blocker::PythonUnobservable { .. } => {
                "check its owner and permissions; move it aside to have apply make it afresh"
                    .to_owned()
            }
            Blocker::Model { problem, .. } => match problem {
                ModelProblem::Linked { why } => format!("{why}: replace the link with a plain file or folder; comfyprov never writes through links"),
                ModelProblem::NotAFile => "move it aside: comfyprov does not remove what it did not make".to_owned(),
                ModelProblem::Unreadable { .. } => "check its owner and permissions".to_owned(),
                ModelProblem::Unpinned => "give `sha256` in the manifest, or run apply without --locked once and commit comfy.lock".to_owned(),
                ModelProblem::NoSpace { .. } => "free some space, or set COMFYPROV_MODEL_CACHE to a cache folder on a bigger disk; nothing was downloaded".to_owned(),
                ModelProblem::LockUnreadable { .. } => "fix or restore comfy.lock (git checkout comfy.lock)".to_owned(),
            },
        }
    }

    /// Whether this leaves `login/PASSWORD` unverified, so the server must not start.
    pub fn leaves_password_invalid(&self) -> bool {
        match self {
            Blocker::SecretMissing { .. }
            | Blocker::SecretUnusable { .. }
            | Blocker::PasswordUnreadable => true,
            Blocker::ComfyUiNotInstalled
            | Blocker::Uninspectable { .. }
            | Blocker::ForeignContainer { .. }
            | Blocker::Linked { .. }
            | Blocker::PortTaken { .. }
            | Blocker::PasswordInvalid { .. }
            | Blocker::LockStale { .. }
            | Blocker::Model { .. }
            | Blocker::PythonUnobservable { .. } => false,
        }
    }
}

/// File modes in JSON as octal strings (`"0644"`), as people write them, not decimal numbers.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8).map_err(serde::de::Error::custom)
    }
}
