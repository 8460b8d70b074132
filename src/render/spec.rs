//! The container's run spec: one value from which both the compose file and the container that
//! `apply` creates through the Docker API are made, so the two cannot disagree.
//!
//! It is recorded on the container as the `comfyprov.spec` label (compact JSON, no secret in it),
//! so a later `plan` can say which fields changed and whether the container must be recreated.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::compose::{CONTAINER_PORT, CONTAINER_ROOT, command};
use crate::manifest::{Desired, GpuSelect, GpuSpec};

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
    pub restart: String,
    /// The healthcheck command (`["CMD", python, "-c", …]`); timing is fixed (see compose).
    pub healthcheck: Vec<String>,
}

impl RunSpec {
    /// The spec for the manifest's container; `None` without `[container]`. `workspace` is the
    /// workspace's absolute path.
    pub fn new(desired: &Desired, workspace: &Path) -> Option<RunSpec> {
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
        Some(RunSpec {
            image: c.image.clone(),
            command: command(desired, c),
            working_dir: CONTAINER_ROOT.to_owned(),
            listen: c.listen.to_string(),
            port: c.port,
            // `components()` drops the `.` in `/srv/comfy/./workspace`.
            mount: workspace
                .join("ComfyUI")
                .components()
                .collect::<std::path::PathBuf>()
                .display()
                .to_string(),
            gpu,
            env: c.env.clone(),
            restart: c.restart.as_str().to_owned(),
            healthcheck: super::compose::healthcheck(c),
        })
    }

    /// The `comfyprov.spec` label's value.
    pub fn label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The fields that differ from the spec recorded in a container's label, by name; every
    /// field when the label is missing or unreadable.
    pub fn changed_fields(&self, label: Option<&str>) -> Vec<String> {
        let now = serde_json::to_value(self).unwrap_or_default();
        let then: serde_json::Value = label
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        let Some(now) = now.as_object() else {
            return Vec::new();
        };
        now.iter()
            .filter(|(k, v)| then.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The container's labels: the project and the spec.
pub fn labels(desired: &Desired, spec: &RunSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            crate::observe::container::LABEL_PROJECT.to_owned(),
            desired.project.clone(),
        ),
        (
            crate::observe::container::LABEL_SPEC.to_owned(),
            spec.label(),
        ),
    ])
}

/// The published port as a string, e.g. `8188/tcp`.
pub fn container_port() -> String {
    format!("{CONTAINER_PORT}/tcp")
}
