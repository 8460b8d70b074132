//! The container's run spec: the one mapping from the manifest to how ComfyUI runs (command,
//! port, listen address, mount, GPU, environment, restart policy, healthcheck). The compose file
//! ([`super::compose`]) and the container `apply` creates through the Docker API both render this
//! value; neither looks at the manifest, so the two cannot disagree.
//!
//! It is recorded on the container as the `comfyprov.spec` label (compact JSON, no secret in it),
//! so a later `plan` can say which fields changed and whether the container must be recreated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::{ContainerSpec, Desired, GpuSelect, GpuSpec, RestartPolicy};

/// Label naming the comfyprov project a container belongs to.
pub const LABEL_PROJECT: &str = "comfyprov.project";
/// Label holding the spec the container was created from (compact JSON, no secret).
pub const LABEL_SPEC: &str = "comfyprov.spec";

/// Where ComfyUI lives inside the container.
pub const CONTAINER_ROOT: &str = "/workspace/ComfyUI";
/// The port ComfyUI listens on inside the container.
pub const CONTAINER_PORT: u16 = 8188;

/// Healthcheck timing, in seconds: every 30 s, 10 s to answer, unhealthy after 3 failures, and
/// 5 minutes' grace at start (ComfyUI imports every node before it listens).
pub const HEALTH_INTERVAL: u64 = 30;
pub const HEALTH_TIMEOUT: u64 = 10;
pub const HEALTH_RETRIES: u64 = 3;
pub const HEALTH_START_PERIOD: u64 = 300;

/// NVIDIA GPUs to reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuRequest {
    /// Device ids (`["0", "1"]`), or empty with `count`.
    pub device_ids: Vec<String>,
    /// How many; `-1` means all.
    pub count: Option<i64>,
}

/// Everything the container is created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub image: String,
    /// The full command line (python, main.py, managed flags, user args).
    pub command: Vec<String>,
    pub working_dir: String,
    /// Host address and port published for the container's port 8188.
    pub listen: String,
    pub port: u16,
    /// Absolute host path bind-mounted at `/workspace/ComfyUI`.
    pub mount: String,
    pub gpu: Option<GpuRequest>,
    pub env: BTreeMap<String, String>,
    pub restart: RestartPolicy,
    /// The healthcheck command (`["CMD", python, "-c", …]`); timing is fixed (`HEALTH_*`).
    pub healthcheck: Vec<String>,
    /// An init process as PID 1 (it passes SIGTERM on to Python).
    #[serde(default)]
    pub init: bool,
    /// An entrypoint other than the image's; `None` keeps the image's.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Bind mounts besides the workspace's, sorted by target.
    #[serde(default)]
    pub mounts: Vec<BindMount>,
}

/// A bind mount: an absolute host path at a container path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BindMount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// The container the manifest declares: its name, its run spec, and how the compose file names
/// the bind source (relative to the compose file's folder when the manifest's path was).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub spec: RunSpec,
    pub compose_source: String,
    /// The compose file (absolute), which the API-created container names in Compose's labels
    /// so that `docker-compose -p <project> -f <file> ps`, `logs` and `down` see it.
    pub compose_file: PathBuf,
}

/// The service name in the compose file.
pub const COMPOSE_SERVICE: &str = "comfyui";

/// ComfyUI's command line inside the container.
fn command(desired: &Desired, c: &ContainerSpec) -> Vec<String> {
    let mut cmd = vec![
        c.python.clone(),
        "main.py".to_owned(),
        "--listen".to_owned(),
        "0.0.0.0".to_owned(),
        "--port".to_owned(),
        CONTAINER_PORT.to_string(),
    ];
    if desired.gpu == GpuSpec::None {
        cmd.push("--cpu".to_owned());
    }
    cmd.extend(c.args.iter().cloned());
    cmd
}

/// The healthcheck: the container's own interpreter opens a TCP connection to ComfyUI's port.
/// Not an HTTP request: in login mode every path but `/login` answers 401, and without auth
/// `/login` is 404; a connection says "listening" either way, and needs no curl in the image.
fn healthcheck(c: &ContainerSpec) -> Vec<String> {
    vec![
        "CMD".to_owned(),
        c.python.clone(),
        "-c".to_owned(),
        format!(
            "import socket; socket.create_connection((\"127.0.0.1\", {CONTAINER_PORT}), 5).close()"
        ),
    ]
}

/// The host side of the ComfyUI bind mount as the compose file writes it. Compose resolves a
/// relative source against the compose file's folder, so a relative workspace is written
/// relative to that folder (`deploy/docker-compose.yml` mounts `../workspace/ComfyUI`); an
/// absolute one stays absolute.
fn compose_source(shown: &str, workspace: &Path, compose_dir: &Path) -> String {
    if shown.starts_with('/') {
        return format!("{}/ComfyUI", shown.trim_end_matches('/'));
    }
    let rel = relative(&normal(compose_dir), &normal(workspace));
    match rel.as_str() {
        "" => "./ComfyUI".to_owned(),
        r if r == ".." || r.starts_with("../") => format!("{r}/ComfyUI"),
        r => format!("./{r}/ComfyUI"),
    }
}

/// `path` with `.` dropped and `..` applied, without touching the disk.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `to` as a path relative to the folder `from` (both absolute and normal), `/`-separated.
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// `path` with `.` components dropped (`/srv/comfy/./workspace` → `/srv/comfy/workspace`).
fn tidy(path: &Path) -> PathBuf {
    path.components().collect()
}

impl Container {
    /// The manifest's container; `None` without `[container]`.
    pub fn new(desired: &Desired) -> Option<Container> {
        let c = desired.container.as_ref()?;
        let gpu = match &desired.gpu {
            GpuSpec::None => None,
            GpuSpec::Nvidia { select } => Some(match select {
                GpuSelect::Devices(ids) => GpuRequest {
                    device_ids: ids.clone(),
                    count: None,
                },
                GpuSelect::Count(n) => GpuRequest {
                    device_ids: Vec::new(),
                    count: Some(i64::from(*n)),
                },
                GpuSelect::All => GpuRequest {
                    device_ids: Vec::new(),
                    count: Some(-1),
                },
            }),
        };
        let spec = RunSpec {
            image: c.image.clone(),
            command: command(desired, c),
            working_dir: CONTAINER_ROOT.to_owned(),
            listen: c.listen.to_string(),
            port: c.port,
            mount: tidy(&desired.workspace.path.join("ComfyUI"))
                .display()
                .to_string(),
            gpu,
            env: c.env.clone(),
            restart: c.restart,
            healthcheck: healthcheck(c),
            init: true,
            entrypoint: None,
            mounts: c
                .mounts
                .iter()
                .map(|m| BindMount {
                    source: tidy(&m.source.path).display().to_string(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                })
                .collect(),
        };
        Some(Container {
            name: desired.project.clone(),
            spec,
            compose_source: compose_source(
                &desired.workspace.shown,
                &desired.workspace.path,
                c.compose_file.path.parent().unwrap_or(Path::new("/")),
            ),
            compose_file: c.compose_file.path.clone(),
        })
    }

    /// The labels Compose itself puts on a service's container, so that the container the API
    /// creates is a member of the compose project (`ps`, `logs`, `down` and `up` find it).
    pub fn compose_labels(&self) -> BTreeMap<String, String> {
        let file = tidy(&self.compose_file);
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        BTreeMap::from([
            ("com.docker.compose.project".to_owned(), self.name.clone()),
            (
                "com.docker.compose.service".to_owned(),
                COMPOSE_SERVICE.to_owned(),
            ),
            (
                "com.docker.compose.container-number".to_owned(),
                "1".to_owned(),
            ),
            ("com.docker.compose.oneoff".to_owned(), "False".to_owned()),
            // Compose v1 reads the version of whoever made a container (and fails without it);
            // v2 lists only containers with a config hash. Ours is the spec's digest: not
            // Compose's, so its `up` recreates the container from the same file.
            ("com.docker.compose.version".to_owned(), "2.0.0".to_owned()),
            (
                "com.docker.compose.config-hash".to_owned(),
                crate::digest::sha256_hex(self.spec.label().as_bytes()),
            ),
            (
                "com.docker.compose.project.config_files".to_owned(),
                file.display().to_string(),
            ),
            (
                "com.docker.compose.project.working_dir".to_owned(),
                dir.display().to_string(),
            ),
        ])
    }

    /// The container's labels: the project and the spec.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_PROJECT.to_owned(), self.name.clone()),
            (LABEL_SPEC.to_owned(), self.spec.label()),
        ])
    }
}

impl RunSpec {
    /// The `comfyprov.spec` label's value.
    pub fn label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `argv` as ComfyUI reports it in `/system_stats`: the command without the interpreter.
    pub fn argv(&self) -> Vec<String> {
        self.command.iter().skip(1).cloned().collect()
    }

    /// The interpreter (the command's first word).
    pub fn python(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }

    /// The fields that differ from the spec recorded in a container's label, by name; every
    /// field when the label is missing or unreadable.
    pub fn changed_fields(&self, label: Option<&str>) -> Vec<String> {
        let then: serde_json::Value = label
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        self.fields_differing_from(&then)
    }

    /// The fields in which `actual` (a container as it is) differs from this spec, by name.
    pub fn differences(&self, actual: &RunSpec) -> Vec<String> {
        self.fields_differing_from(&serde_json::to_value(actual).unwrap_or_default())
    }

    fn fields_differing_from(&self, then: &serde_json::Value) -> Vec<String> {
        let now = serde_json::to_value(self).unwrap_or_default();
        let Some(now) = now.as_object() else {
            return Vec::new();
        };
        now.iter()
            .filter(|(k, v)| then.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The published port as the API names it, e.g. `8188/tcp`.
pub fn container_port() -> String {
    format!("{CONTAINER_PORT}/tcp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_workspace_paths_stay_relative_to_the_compose_file() {
        let p = Path::new("/p");
        let src =
            |shown: &str, ws: &str, dir: &str| compose_source(shown, Path::new(ws), Path::new(dir));
        assert_eq!(
            src("./workspace", "/p/./workspace", "/p"),
            "./workspace/ComfyUI"
        );
        assert_eq!(
            src("workspace/", "/p/workspace/", "/p"),
            "./workspace/ComfyUI"
        );
        assert_eq!(src("/srv/comfy", "/srv/comfy", "/p"), "/srv/comfy/ComfyUI");
        assert_eq!(src("../ws", "/p/../ws", "/p"), "../ws/ComfyUI");
        assert_eq!(src(".", "/p/.", p.to_str().unwrap()), "./ComfyUI");
        // A compose file in a subfolder mounts the workspace beside it, not inside it.
        assert_eq!(
            src("./workspace", "/p/workspace", "/p/deploy"),
            "../workspace/ComfyUI"
        );
        assert_eq!(
            src("workspace", "/p/workspace", "/p/a/b"),
            "../../workspace/ComfyUI"
        );
    }
}
