//! `Desired`: the manifest after validation. Plain data with types where the raw model had
//! strings; every value here has been checked, so observe and plan never re-validate.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use super::raw::{RestartPolicy, UnmanagedNodes};

/// A path from the manifest: as the user wrote it (for messages) and resolved against the
/// manifest's folder (for use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPath {
    pub shown: String,
    pub path: PathBuf,
}

/// The deployment the manifest declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// Container name and compose project name.
    pub project: String,
    /// Host folder that holds `ComfyUI/`.
    pub workspace: ManifestPath,
    /// ComfyUI itself from git, when the manifest provisions it.
    pub comfyui: Option<GitSource>,
    /// The container, when ComfyUI runs in Docker.
    pub container: Option<ContainerSpec>,
    /// The Python environment comfyprov builds, when the manifest has `[python]`.
    pub python: Option<PythonSpec>,
    pub gpu: GpuSpec,
    pub auth: AuthSpec,
    /// Declared custom nodes, in manifest order, names unique.
    pub nodes: Vec<NodeSpec>,
    pub policy: PolicySpec,
    /// Workflow checks, names unique.
    pub checks: Vec<CheckSpec>,
    /// Model files, paths unique.
    pub models: Vec<ModelSpec>,
    /// `comfy.lock`, beside the manifest: the Python resolution and the model hashes.
    pub lock_file: ManifestPath,
}

/// A model file under `ComfyUI/models/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The URL, without credentials.
    pub url: String,
    /// Relative to `ComfyUI/models/`, `/`-separated, every part a plain name.
    pub path: String,
    /// Lowercase hex, when the manifest gives it.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// Where the bearer token comes from (never the token).
    pub token: Option<TokenSource>,
}

impl ModelSpec {
    /// The model folder ComfyUI lists it in (`diffusion_models`), and its name there
    /// (`sub/x.safetensors` for a file in a subfolder).
    pub fn folder_and_name(&self) -> (&str, &str) {
        self.path.split_once('/').unwrap_or(("", &self.path))
    }
}

/// Where a download's bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", content = "name", rename_all = "snake_case")]
pub enum TokenSource {
    Env(String),
    File(ManifestPath),
}

/// A workflow check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckSpec {
    pub name: String,
    pub workflow: ManifestPath,
    pub timeout_s: u64,
    pub on_apply: bool,
}

/// A git repository pinned to a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitSource {
    pub url: String,
    pub rev: Rev,
}

/// A pinned revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Rev {
    /// A commit id or an unambiguous prefix of one (7 to 64 lowercase hex digits).
    Commit(String),
    /// A tag or branch name; it resolves to a commit in the checkout.
    Named(String),
}

impl Rev {
    pub fn as_str(&self) -> &str {
        match self {
            Rev::Commit(s) | Rev::Named(s) => s,
        }
    }

    /// For messages: a commit abbreviated to 7 digits, a name as is.
    pub fn short(&self) -> &str {
        match self {
            Rev::Commit(c) => &c[..c.len().min(7)],
            Rev::Named(n) => n,
        }
    }

    /// Whether the commit `oid` (full hex) is what this rev names, given what the rev resolved
    /// to in the checkout (for named revs).
    pub fn matches(&self, oid: &str, resolved: Option<&str>) -> bool {
        match self {
            // A commit, or an annotated tag's object id (what `git ls-remote` shows for one),
            // which observation peels to its commit.
            Rev::Commit(prefix) => oid.starts_with(prefix.as_str()) || resolved == Some(oid),
            Rev::Named(_) => resolved == Some(oid),
        }
    }
}

impl std::fmt::Display for Rev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declared custom node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    /// Directory name under `custom_nodes/`.
    pub name: String,
    pub source: GitSource,
    /// Install `requirements.txt` in the container's Python.
    pub requirements: bool,
}

/// How the container runs ComfyUI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    pub image: String,
    /// Host address the port is published on.
    pub listen: IpAddr,
    /// Host port.
    pub port: u16,
    /// Interpreter, relative to `/workspace/ComfyUI`.
    pub python: String,
    /// Extra `main.py` arguments.
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Extra bind mounts, sorted by target.
    pub mounts: Vec<ExtraMount>,
    /// Compose file to render.
    pub compose_file: ManifestPath,
    pub restart: RestartPolicy,
}

/// The Python environment: what is resolved, for which Python and platform, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonSpec {
    /// `3.N`.
    pub version: String,
    /// uv's `--python-platform`.
    pub platform: String,
    pub torch: Option<TorchSpec>,
    pub index_url: Option<String>,
    pub extra_index_urls: Vec<String>,
    pub find_links: Vec<FindLinks>,
    pub offline: bool,
    pub packages: Vec<String>,
    pub constraints: Vec<String>,
    pub exclude_newer: Option<String>,
    /// The environment's folder relative to `ComfyUI/` (`venv` for `venv/bin/python3`).
    pub env: String,
    /// `comfy.lock`, beside the manifest.
    pub lock_file: ManifestPath,
}

impl PythonSpec {
    /// Whether an environment made with Python `found` (`3.11.2`, from `pyvenv.cfg`) is of
    /// this spec's `3.N`.
    pub fn made_with(&self, found: Option<&str>) -> bool {
        found.is_some_and(|v| {
            v.strip_prefix(self.version.as_str())
                .is_some_and(|r| r.is_empty() || r.starts_with('.'))
        })
    }
}

/// torch, pinned and protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorchSpec {
    pub version: String,
    pub index: Option<String>,
}

/// Where `--find-links` points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "at", rename_all = "snake_case")]
pub enum FindLinks {
    Url(String),
    /// A local folder (mounted read-only into the sync container).
    Dir(ManifestPath),
}

/// A bind mount besides the workspace's `ComfyUI/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraMount {
    pub source: ManifestPath,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// GPU reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum GpuSpec {
    /// No GPU: ComfyUI runs with `--cpu`.
    None,
    /// NVIDIA GPUs.
    Nvidia { select: GpuSelect },
}

/// Which NVIDIA GPUs to reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSelect {
    Devices(Vec<String>),
    Count(u32),
    All,
}

/// Password protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AuthSpec {
    /// No password; the login node (by this directory name) must not be loaded.
    None { login_node: String },
    /// ComfyUI-Login with `login/PASSWORD`.
    Login(LoginSpec),
}

impl AuthSpec {
    pub fn login_node(&self) -> &str {
        match self {
            AuthSpec::None { login_node } => login_node,
            AuthSpec::Login(l) => &l.login_node,
        }
    }
}

/// ComfyUI-Login settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSpec {
    pub username: String,
    pub secret: SecretSource,
    /// Generate the password file when it is missing.
    pub generate: bool,
    pub bcrypt_cost: u32,
    /// Directory name of the ComfyUI-Login node.
    pub login_node: String,
}

/// Where the password (or its ready hash) comes from. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "from", rename_all = "snake_case")]
pub enum SecretSource {
    /// A file holding the plaintext password.
    PasswordFile(ManifestPath),
    /// A file holding a ready bcrypt hash.
    HashFile(ManifestPath),
    /// An environment variable holding the plaintext password.
    PasswordEnv(String),
}

impl SecretSource {
    /// How to name the source in messages: a path or `$VAR`.
    pub fn shown(&self) -> String {
        match self {
            SecretSource::PasswordFile(p) | SecretSource::HashFile(p) => p.shown.clone(),
            SecretSource::PasswordEnv(v) => format!("${v}"),
        }
    }
}

/// Policies for what the manifest does not mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySpec {
    pub unmanaged_nodes: UnmanagedNodes,
    pub allow_public_without_auth: bool,
}

impl serde::Serialize for UnmanagedNodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            UnmanagedNodes::Keep => "keep",
            UnmanagedNodes::Disable => "disable",
        })
    }
}

impl serde::Serialize for RestartPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl RestartPolicy {
    /// The Docker/compose spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::No => "no",
        }
    }
}
