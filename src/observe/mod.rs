//! Observation: the one step that reads the world. `observe(&Desired)` looks at the workspace,
//! the ComfyUI-Login password, the secret and the compose file once, and returns plain data.
//! Nothing here decides what to do about what it sees; that is `plan`'s job.

pub mod container;
pub mod login;
pub mod requirements;
pub mod workspace;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifest::Desired;

/// Everything `plan` needs to know about reality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Whether the workspace folder exists.
    pub workspace_exists: bool,
    /// `<workspace>/ComfyUI`.
    pub comfyui: DirState,
    /// Directories in `ComfyUI/custom_nodes/`, sorted by name, `.disabled` ones included.
    pub custom_nodes: Vec<NodeDir>,
    /// The secret source (never its content).
    pub secret: SecretState,
    /// `login/PASSWORD` and the legacy `ComfyUI/PASSWORD`.
    pub password: login::PasswordState,
    /// The compose file, when the manifest has a container.
    pub compose: Option<FileState>,
    /// The container.
    pub container: ContainerState,
    /// When something a running ComfyUI reads only at start last changed (nanoseconds since the
    /// epoch, from ctimes): a node's checked-out commit (`.git/HEAD`), a node disabled, or
    /// `login/PASSWORD`. Compared with the container's start time to find a pending restart.
    pub inputs_changed_ns: Option<i128>,
    /// Nodes with `requirements = true` whose directory exists: is their `requirements.txt`
    /// installed in the container's interpreter?
    pub requirements: std::collections::BTreeMap<String, requirements::Requirements>,
}

/// A directory that should be a git checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DirState {
    Missing,
    /// A directory that is not a git checkout (or not a directory at all).
    NotGit,
    /// A git checkout.
    Git(Checkout),
    /// The directory could not be inspected.
    Unreadable {
        error: String,
    },
}

/// What a git checkout is at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checkout {
    /// Commit checked out (full hex); `None` for a repository without commits.
    pub head: Option<String>,
    /// URL of the `origin` remote.
    pub origin: Option<String>,
    /// Local changes: modified tracked files and untracked files not ignored by `.gitignore`.
    pub dirty: Option<Dirty>,
    /// The commit the desired rev names in this checkout, when it can be resolved locally.
    pub resolved: Option<String>,
}

/// Summary of local changes in a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dirty {
    pub count: usize,
    /// Up to three changed paths, for messages.
    pub sample: Vec<String>,
}

/// A directory under `custom_nodes/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDir {
    /// Directory name, including any `.disabled` suffix.
    pub dir: String,
    /// Inspected only for declared nodes (and their `.disabled` twins); `None` otherwise.
    pub state: Option<DirState>,
}

impl NodeDir {
    pub fn is_disabled(&self) -> bool {
        self.dir.ends_with(".disabled")
    }
}

/// The secret source named by `auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SecretState {
    /// `auth.mode = "none"`: no secret is used.
    NotUsed,
    /// The file does not exist (or the variable is unset).
    Missing,
    /// The secret could not be read, or is not usable.
    Unusable { error: String },
    /// The secret is there; `mode` is the file's permission bits (files only).
    Present { mode: Option<u32> },
}

/// A file compared by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileState {
    Missing,
    Present { sha256: String },
    Unreadable { error: String },
}

/// What is known about the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContainerState {
    /// The manifest has no `[container]`.
    NotManaged,
    /// Could not be looked at, and why (the daemon is unreachable).
    NotObserved { reason: String },
    /// No container has the project's name.
    Missing,
    /// The container with the project's name.
    Present(Box<container::ContainerInfo>),
}

impl Observed {
    /// A digest of everything observed: a saved plan is valid only while this stays the same.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(&json);
        h.update(self.password.digest.as_bytes());
        h.update(self.password.legacy_digest.as_bytes());
        hex(&h.finalize())
    }

    /// The directory named `dir` in `custom_nodes/`, if present.
    pub fn node_dir(&self, dir: &str) -> Option<&NodeDir> {
        self.custom_nodes
            .binary_search_by(|n| n.dir.as_str().cmp(dir))
            .ok()
            .map(|i| &self.custom_nodes[i])
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Observe everything the manifest talks about.
pub fn observe(desired: &Desired) -> Observed {
    // The daemon answers while the workspace is read.
    std::thread::scope(|s| {
        let container = desired
            .container
            .as_ref()
            .map(|_| s.spawn(|| container::observe(&desired.project)));
        let mut observed = observe_workspace(desired);
        if let Some(handle) = container {
            observed.container = handle.join().unwrap_or(ContainerState::NotObserved {
                reason: "observing the container failed".to_owned(),
            });
        }
        let id = match &observed.container {
            ContainerState::Present(info) => Some(info.id.as_str()),
            _ => None,
        };
        observed.requirements = requirements::observe(desired, id);
        observed
    })
}

/// Everything but the container (left `NotManaged`).
fn observe_workspace(desired: &Desired) -> Observed {
    let ws = &desired.workspace.path;
    let comfy = ws.join("ComfyUI");
    let workspace_exists = ws.is_dir();
    let comfyui = workspace::observe_comfyui(&comfy, desired.comfyui.as_ref());
    let custom_nodes = workspace::observe_custom_nodes(&comfy.join("custom_nodes"), &desired.nodes);
    let (secret, password) = login::observe(desired, &comfy);
    let compose = desired
        .container
        .as_ref()
        .map(|c| file_state(&c.compose_file.path));
    let inputs_changed_ns = inputs_changed(&comfy, &custom_nodes);
    Observed {
        workspace_exists,
        comfyui,
        custom_nodes,
        secret,
        password,
        compose,
        container: ContainerState::NotManaged,
        inputs_changed_ns,
        requirements: std::collections::BTreeMap::new(),
    }
}

/// The newest ctime among what ComfyUI reads at start. Directory times are not used for enabled
/// nodes: Python writes `__pycache__` into them while ComfyUI starts.
fn inputs_changed(comfy: &std::path::Path, nodes: &[NodeDir]) -> Option<i128> {
    use std::os::unix::fs::MetadataExt;
    let ctime = |p: &std::path::Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .map(|m| i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()))
    };
    let dir = comfy.join("custom_nodes");
    nodes
        .iter()
        .filter(|n| !n.dir.starts_with('.'))
        .filter_map(|n| {
            if n.is_disabled() {
                ctime(&dir.join(&n.dir))
            } else {
                ctime(&dir.join(&n.dir).join(".git").join("HEAD"))
            }
        })
        .chain(ctime(&comfy.join("login").join("PASSWORD")))
        .max()
}

fn file_state(path: &std::path::Path) -> FileState {
    match std::fs::read(path) {
        Ok(bytes) => FileState::Present {
            sha256: sha256_hex(&bytes),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
        Err(e) => FileState::Unreadable {
            error: e.to_string(),
        },
    }
}
