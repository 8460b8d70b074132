//! What observation found: plain data, filled by the binary's `observe` module (git2, bollard,
//! bcrypt and the filesystem live there) and read by the planner. Nothing here reads the world.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::digest::hex;
use crate::lock::{Inputs, Lock};

/// Everything `plan` needs to know about reality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Whether the workspace folder exists.
    pub workspace_exists: bool,
    /// `<workspace>/ComfyUI`.
    pub comfyui: DirState,
    /// What ComfyUI loads from `ComfyUI/custom_nodes/` (directories, links and single `.py`
    /// files) and what declared nodes' names hold, sorted by name, `.disabled` ones included.
    pub custom_nodes: Vec<NodeDir>,
    /// Entries of `custom_nodes/` whose names are not UTF-8 (shown lossily): ComfyUI may load
    /// them, and comfyprov cannot name them in a manifest.
    pub odd_names: Vec<String>,
    /// The secret source (never its content).
    pub secret: SecretState,
    /// `login/PASSWORD` and the legacy `ComfyUI/PASSWORD`.
    pub password: PasswordState,
    /// The compose file, when the manifest has a container.
    pub compose: Option<FileState>,
    /// The container.
    pub container: ContainerState,
    /// When something a running ComfyUI reads only at start last changed (nanoseconds since the
    /// epoch, from ctimes): a node's checked-out commit (`.git/HEAD`), a node disabled, or
    /// `login/PASSWORD`. Compared with the container's start time to find a pending restart.
    pub inputs_changed_ns: Option<i128>,
    /// The Python environment and `comfy.lock`, when the manifest has `[python]`.
    pub python: Option<PythonObserved>,
    /// Whether the host port the manifest publishes on can be taken, when the manifest has a
    /// container and ours does not hold it already.
    pub port: PortState,
    /// The model files, when the manifest declares any.
    pub models: Option<ModelsObserved>,
}

/// The manifest's host port (on its listen address).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PortState {
    /// Free, or published by our own container, or not checked (no container declared).
    #[default]
    Free,
    /// Held by something else: a container (named) or another process.
    Taken { holder: String },
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
    /// An apply's checkout of this directory was interrupted (its in-progress marker is still
    /// there): the working tree may be half moved, by comfyprov, not by a person.
    #[serde(default)]
    pub interrupted: bool,
}

/// Summary of local changes in a checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dirty {
    pub count: usize,
    /// How many of them change tracked files (modified, deleted, staged): those make the
    /// checkout differ from its pin. The rest are untracked files, which nodes write at run time.
    #[serde(default)]
    pub tracked: usize,
    /// Up to three changed paths, for messages.
    pub sample: Vec<String>,
}

/// An entry of `custom_nodes/`: a directory (a node package) or a single `.py` file (a node
/// module, which ComfyUI imports too).
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
    Present {
        sha256: String,
        /// The content as text (lossy), for showing what a rewrite changes. Never a secret:
        /// only the compose file is observed this way.
        #[serde(skip)]
        text: String,
    },
    Unreadable {
        error: String,
    },
    /// Writing it would go through a symbolic link (a link at it, or on a folder on its way).
    Linked {
        why: String,
    },
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
    Present(Box<ContainerInfo>),
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

/// `login/PASSWORD` and the legacy `ComfyUI/PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasswordState {
    pub file: PasswordFile,
    pub legacy: PasswordFile,
    /// Digest of `login/PASSWORD`'s content: part of the plan fingerprint, never printed.
    #[serde(skip)]
    pub digest: String,
    #[serde(skip)]
    pub legacy_digest: String,
}

/// One PASSWORD file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PasswordFile {
    Missing,
    Unreadable {
        error: String,
    },
    Present {
        hash: HashState,
        /// Line 2, if present.
        username: Option<String>,
        /// Permission bits.
        mode: u32,
    },
}

/// Whether line 1 of a PASSWORD file matches the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum HashState {
    /// The hash verifies the password (or equals the ready hash).
    Verified,
    /// It does not.
    Mismatch,
    /// Line 1 is not a bcrypt hash.
    Malformed,
    /// Not compared, and why (no secret to compare with).
    Unchecked { reason: String },
}

/// A container that exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// Abbreviated id.
    pub id: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    /// `starting`, `healthy` or `unhealthy`, when the container has a healthcheck.
    pub health: Option<String>,
    /// The image it was created from, as named.
    pub image: String,
    /// The image's id.
    pub image_id: String,
    /// When it last started (RFC 3339), if ever.
    pub started_at: Option<String>,
    /// The same, in nanoseconds since the epoch.
    pub started_ns: Option<i128>,
    /// When its previous run ended (ns since the epoch), if it ever stopped: the log lines
    /// after it belong to the current run.
    #[serde(skip)]
    pub finished_ns: Option<i128>,
    /// `comfyprov.project`: set when comfyprov (or its compose file) created it.
    pub project_label: Option<String>,
    /// `comfyprov.spec`: the spec it was created from (JSON). A record, not the truth.
    pub spec: Option<String>,
    /// What the container really is, read from its configuration (image, command, entrypoint,
    /// working dir, environment, published port, mounts, GPUs, restart policy, init,
    /// healthcheck), in the run spec's terms: what `plan` compares with the manifest.
    pub actual: Option<crate::render::RunSpec>,
}

/// Whether a container's server is up: the one reading of Docker's status, for plan and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// `running`: the server process is up (it may still be starting).
    Running,
    /// `restarting`: ComfyUI keeps exiting and Docker keeps starting it again. It will not
    /// answer, but it is not stopped either: a start would change nothing.
    CrashLooping,
    /// Anything else (`created`, `exited`, `paused`, `dead`, …): a start is needed.
    Stopped,
}

impl ContainerInfo {
    pub fn liveness(&self) -> Liveness {
        match self.status.as_str() {
            "running" => Liveness::Running,
            "restarting" => Liveness::CrashLooping,
            _ => Liveness::Stopped,
        }
    }
}

/// The Python environment and its lock, when the manifest has `[python]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PythonObserved {
    /// `comfy.lock`.
    pub lock: LockState,
    /// The resolution's inputs as they are on disk now.
    pub inputs: Inputs,
    /// The environment folder, read from the host.
    pub env: EnvState,
}

/// The marker comfyprov writes into an environment it built: `<env>/comfyprov-env.json`.
pub const ENV_MARKER: &str = "comfyprov-env.json";

/// The marker's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EnvMarker {
    /// The image the environment was built in (its interpreter is that image's, or a
    /// standalone CPython in the workspace).
    pub image: String,
}

/// `comfy.lock` as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockState {
    Missing,
    Present(Box<Lock>),
    /// Unreadable, not a regular file, or not a lock this comfyprov reads.
    Unreadable {
        error: String,
    },
}

/// The environment folder (`pyvenv.cfg` and the `*.dist-info` folders of site-packages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EnvState {
    /// No `pyvenv.cfg`.
    Missing,
    Present {
        /// The Python it was made with (`3.11.2`), from `pyvenv.cfg`.
        python: Option<String>,
        /// The image comfyprov built it in (its marker file); `None` for an environment
        /// comfyprov did not build (one made on the host links to the host's interpreter,
        /// which the container does not have).
        built_for: Option<String>,
        /// Installed distributions: normalised name → version.
        packages: BTreeMap<String, String>,
    },
    Unreadable {
        error: String,
    },
}

/// The declared model files, the lock's entries for them, the cache and the free space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelsObserved {
    /// One per `[[models]]` entry, in manifest order.
    pub files: Vec<ModelObserved>,
    /// The model entries of `comfy.lock` (none when it has none or does not exist).
    pub lock: Result<Vec<crate::lock::LockedModel>, String>,
    /// Free bytes (for this user) on the filesystem that holds `ComfyUI/models/` (or the
    /// nearest folder above it that exists), and that folder.
    pub free: Option<u64>,
    pub free_at: String,
    /// The same for the download cache, when it is on another filesystem.
    pub cache_free: Option<(u64, String)>,
    /// The cache's folder.
    pub cache: String,
}

/// One declared model file as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelObserved {
    pub path: String,
    pub file: ModelFile,
    /// The cache holds a verified file with the hash the model must have.
    pub cached: bool,
}

/// The file at a model's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelFile {
    Missing,
    /// A regular file; `sha256` when it was hashed (not when its size already differs).
    Present {
        size: u64,
        sha256: Option<String>,
    },
    /// A link at the path or on a folder on its way: never written through.
    Linked {
        why: String,
    },
    /// Something that is not a regular file (a folder).
    NotAFile,
    Unreadable {
        error: String,
    },
}
