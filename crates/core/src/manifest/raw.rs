//! The raw manifest: `comfy.toml` as serde reads it.
//!
//! These types are the single source of truth for the manifest's shape: the JSON Schema in
//! `schema/comfy.schema.json` is generated from them (doc comments become descriptions), and the
//! structural checker in `check.rs` walks that schema. Nothing here is validated beyond its type;
//! `validate.rs` turns a `Manifest` into a checked `Desired`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// A ComfyUI deployment, declared. Paths are relative to the folder holding this file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "comfy.toml")]
pub struct Manifest {
    /// What this deployment is called.
    pub project: Project,
    /// The host folder that holds `ComfyUI/`.
    pub workspace: Workspace,
    /// Provision ComfyUI itself from git, like a node. Without it, `ComfyUI/` must already exist.
    pub comfyui: Option<ComfyUi>,
    /// The Docker container that runs ComfyUI. Without it, only the workspace is managed (ComfyUI
    /// runs elsewhere, e.g. on the host) and no compose file is rendered.
    pub container: Option<Container>,
    /// The Python environment ComfyUI and the nodes run in: resolved once for ComfyUI and every
    /// node into `comfy.lock`, built by comfyprov inside the container's image. Without it the
    /// interpreter named by `container.python` is the user's to provide.
    pub python: Option<Python>,
    /// GPU access for the container.
    #[serde(default)]
    pub gpu: Gpu,
    /// Password protection through the ComfyUI-Login custom node.
    pub auth: Auth,
    /// Custom nodes, each a git checkout under `ComfyUI/custom_nodes/<name>`.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// What to do with things the manifest does not mention.
    #[serde(default)]
    pub policy: Policy,
    /// Workflows that prove the server renders: `verify` runs every one, `apply` those with
    /// `on_apply = true` after it converges.
    #[serde(default)]
    pub checks: Vec<WorkflowCheck>,
    /// Model files under `ComfyUI/models/`, downloaded once, checked by SHA-256, shared between
    /// workspaces through a content-addressed cache.
    #[serde(default)]
    pub models: Vec<Model>,
}

/// A model file ComfyUI loads (a checkpoint, diffusion model, text encoder, VAE, LoRA…).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Where to download it: `https://…`, `http://…` or `file:///absolute/path`. No credentials
    /// in the URL: gated downloads take `token_env` or `token_file`.
    pub url: String,
    /// Where ComfyUI finds it, under `ComfyUI/models/`: a model folder and a file name, e.g.
    /// `diffusion_models/qwen_image_fp8_e4m3fn.safetensors`.
    pub path: String,
    /// Its SHA-256 (64 hex digits). Optional: without it the first download's hash is recorded
    /// in `comfy.lock` and enforced from then on (`--locked` requires one or the other).
    pub sha256: Option<String>,
    /// Its size in bytes, so that `plan` can check free space before the lock knows it.
    #[schemars(range(min = 1))]
    pub size: Option<u64>,
    /// An environment variable holding a bearer token for this download (e.g. `HF_TOKEN` for a
    /// gated Hugging Face repository). Sent only to the URL's host, never after a redirect to
    /// another; never printed.
    pub token_env: Option<String>,
    /// A file (relative to this manifest) whose first line is that token.
    pub token_file: Option<String>,
}

/// A workflow check: an API-format workflow (exported with "Save (API)") submitted with the
/// token and followed to completion.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCheck {
    /// How reports name it. Default: the workflow file's name.
    pub name: Option<String>,
    /// The workflow file, relative to this manifest, e.g. `checks/smoke.json`.
    pub workflow: String,
    /// Seconds the workflow may take, submit to last output.
    #[serde(default = "default_check_timeout")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout: u64,
    /// Also run it at the end of `apply` (after the server verified). Default: only `verify`.
    #[serde(default)]
    pub on_apply: bool,
}

fn default_check_timeout() -> u64 {
    120
}

/// What this deployment is called.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Container name and compose project name: lowercase letters, digits, `-` and `_`,
    /// starting with a letter or digit.
    pub name: String,
}

/// The host folder that holds `ComfyUI/`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Folder that holds (or will hold) `ComfyUI/`; bind-mounted into the container as
    /// `/workspace/ComfyUI`.
    pub path: String,
}

/// ComfyUI itself, checked out from git into `<workspace>/ComfyUI`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComfyUi {
    /// Git URL: `https://`, `ssh://`, `git://`, `file://` or scp-like `user@host:path`.
    pub git: String,
    /// Commit (preferred: 7 to 40 hex digits), tag or branch.
    pub rev: String,
}

/// The Docker container that runs ComfyUI.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Image to run, e.g. `nvidia/cuda:12.4.0-devel-ubuntu22.04`. Must exist locally or be
    /// pullable.
    pub image: String,
    /// Host address the port is published on. `0.0.0.0` exposes ComfyUI to the network
    /// (needs `auth.mode = "login"` or `policy.allow_public_without_auth`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Host port ComfyUI is published on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Python interpreter inside the container, relative to `/workspace/ComfyUI`.
    #[serde(default = "default_python")]
    pub python: String,
    /// Extra arguments for `main.py` (comfyprov sets `--listen`, `--port` and `--cpu` itself).
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables for the container. Not for secrets: they end up in the compose file.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Extra bind mounts, `HOST:CONTAINER` or `HOST:CONTAINER:ro`, e.g. a models folder kept
    /// elsewhere: `"/srv/models:/workspace/ComfyUI/models"`. `HOST` may be relative to this
    /// manifest; `CONTAINER` is an absolute path other than `/workspace/ComfyUI` itself.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Compose file to render, relative to this manifest. Default:
    /// `docker-compose-with-auth.yml` or `docker-compose-no-auth.yml` by auth mode.
    pub compose_file: Option<String>,
    /// Docker restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
}

fn default_listen() -> String {
    "127.0.0.1".to_owned()
}

fn default_port() -> u16 {
    8188
}

fn default_python() -> String {
    "venv/bin/python3".to_owned()
}

/// The Python environment, resolved with uv for the container's platform and built inside the
/// container's image into the folder `container.python` lives in (e.g. `venv/`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Python {
    /// Python version, `3.N`. The image's interpreter is used when it has this version;
    /// otherwise uv installs a standalone CPython into the workspace.
    #[serde(default = "default_python_version")]
    pub version: String,
    /// Platform the packages are resolved for, as uv's `--python-platform` (the container's,
    /// not the host's), e.g. `x86_64-manylinux_2_28` or `aarch64-manylinux_2_28`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// torch, pinned and protected: a node that needs another torch is a conflict, never an
    /// upgrade.
    pub torch: Option<Torch>,
    /// The package index (default: PyPI), e.g. a mirror.
    pub index_url: Option<String>,
    /// More indexes, searched before `index_url` (uv's first-index strategy: a package comes
    /// from the first index that has it).
    #[serde(default)]
    pub extra_index_urls: Vec<String>,
    /// Folders (relative to this manifest) or URLs of wheels, as pip's `--find-links`.
    #[serde(default)]
    pub find_links: Vec<String>,
    /// No index at all: every package comes from `find_links` (a local wheelhouse for
    /// air-gapped machines).
    #[serde(default)]
    pub offline: bool,
    /// Extra requirements, in pip's syntax, e.g. `"onnxruntime==1.19.0"`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Constraints, in pip's syntax, e.g. `"numpy<2"`: they limit versions without adding
    /// packages.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Resolve as the index stood at this date (`YYYY-MM-DD`) or time (RFC 3339), as uv's
    /// `--exclude-newer`: an old ComfyUI resolved with today's packages may not start.
    pub exclude_newer: Option<String>,
}

fn default_python_version() -> String {
    "3.12".to_owned()
}

fn default_platform() -> String {
    "x86_64-manylinux_2_28".to_owned()
}

/// torch, pinned and protected, from its own wheel index.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Torch {
    /// torch's version, e.g. `"2.5.1"` (matches local builds such as `2.5.1+cu124`).
    pub version: String,
    /// The wheel index of the build to use, e.g. `https://download.pytorch.org/whl/cu124`;
    /// searched first.
    pub index: Option<String>,
}

/// Docker restart policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Restart unless stopped by hand.
    #[default]
    UnlessStopped,
    /// Always restart.
    Always,
    /// Restart after a crash only.
    OnFailure,
    /// Never restart.
    No,
}

/// GPU access for the container.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// `none` runs ComfyUI with `--cpu`; `nvidia` reserves NVIDIA GPUs.
    #[serde(default)]
    pub mode: GpuMode,
    /// GPU device ids to reserve, e.g. `["0"]`. Give `devices` or `count`, not both.
    pub devices: Option<Vec<String>>,
    /// How many GPUs to reserve: a number or `"all"` (the default with `mode = "nvidia"`).
    pub count: Option<GpuCount>,
}

/// `none` runs ComfyUI with `--cpu`; `nvidia` reserves NVIDIA GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// No GPU: ComfyUI runs with `--cpu`.
    #[default]
    None,
    /// NVIDIA GPUs reserved through the NVIDIA container runtime.
    Nvidia,
}

/// How many GPUs to reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum GpuCount {
    /// This many GPUs.
    Count(#[schemars(range(min = 1))] u32),
    /// Every GPU.
    All(AllGpus),
}

/// Every GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllGpus {
    /// Every GPU.
    All,
}

/// Password protection through the ComfyUI-Login custom node.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `login` protects ComfyUI with ComfyUI-Login (declare it in `[[nodes]]`); `none` keeps that
    /// node disabled.
    pub mode: AuthMode,
    /// Username written on line 2 of `login/PASSWORD`.
    #[serde(default = "default_username")]
    pub username: String,
    /// File holding the plaintext password (at most 72 bytes; one trailing newline is ignored).
    pub password_file: Option<String>,
    /// File holding a ready bcrypt hash (`$2b$12$…`), copied to `login/PASSWORD` as is.
    pub hash_file: Option<String>,
    /// Environment variable holding the plaintext password.
    pub password_env: Option<String>,
    /// Generate a strong random password into `password_file` (mode 0600) when it is missing.
    #[serde(default)]
    pub generate: bool,
    /// bcrypt cost used when hashing a plaintext password.
    #[serde(default = "default_cost")]
    #[schemars(range(min = 10, max = 15))]
    pub bcrypt_cost: u32,
    /// Directory name of the ComfyUI-Login node under `custom_nodes/`.
    #[serde(default = "default_login_node")]
    pub login_node: String,
}

fn default_username() -> String {
    "admin".to_owned()
}

fn default_cost() -> u32 {
    12
}

fn default_login_node() -> String {
    "ComfyUI-Login".to_owned()
}

/// `login` protects ComfyUI with ComfyUI-Login; `none` keeps that node disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No password: the ComfyUI-Login node must be absent or disabled.
    None,
    /// Password protection by ComfyUI-Login (`login/PASSWORD`).
    Login,
}

/// A custom node: a git checkout under `ComfyUI/custom_nodes/<name>`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Directory name under `custom_nodes/` (a plain name: no `/`, no `..`, no `.disabled`).
    pub name: String,
    /// Git URL: `https://`, `ssh://`, `git://`, `file://` or scp-like `user@host:path`.
    pub git: String,
    /// Commit (preferred: 7 to 40 hex digits), tag or branch.
    pub rev: String,
    /// Resolve the node's `requirements.txt` with ComfyUI's and every other node's into
    /// `comfy.lock` (needs `[python]`).
    #[serde(default)]
    pub requirements: bool,
}

/// What to do with things the manifest does not mention.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Directories in `custom_nodes/` that no `[[nodes]]` entry names: `keep` them (reported) or
    /// `disable` them (renamed to `<dir>.disabled`, never deleted).
    #[serde(default)]
    pub unmanaged_nodes: UnmanagedNodes,
    /// Allow `auth.mode = "none"` with a non-loopback `container.listen`.
    #[serde(default)]
    pub allow_public_without_auth: bool,
}

/// What to do with directories in `custom_nodes/` that the manifest does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnmanagedNodes {
    /// Leave them alone; `plan` lists them.
    #[default]
    Keep,
    /// Rename them to `<dir>.disabled` so ComfyUI skips them.
    Disable,
}

/// The JSON Schema of `comfy.toml`, as committed in `schema/comfy.schema.json`.
pub fn schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Manifest);
    let mut value = schema.to_value();
    without_null(&mut value);
    value
}

/// TOML has no null: an optional key is one that is absent. schemars writes `Option<T>` as
/// `anyOf: [T, {type: null}]` (or `type: [T, "null"]`), which makes editors such as Taplo
/// answer a wrong type with "does not match any of the allowed schemas" instead of naming the
/// type it wants. Each is replaced by `T` alone.
fn without_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t.as_str() != Some("null"));
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_owned(), only);
                }
            }
            let single = match map.get("anyOf") {
                Some(Value::Array(any)) if any.len() == 2 && any.iter().any(is_null) => {
                    any.iter().find(|s| !is_null(s)).cloned()
                }
                _ => None,
            };
            if let Some(Value::Object(inner)) = single {
                map.remove("anyOf");
                for (k, val) in inner {
                    map.entry(k).or_insert(val);
                }
            }
            for val in map.values_mut() {
                without_null(val);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
}
