//! Node requirements: which `requirements.txt` contents were installed in the container's
//! interpreter, recorded per node in `<workspace>/.comfyprov/requirements.json`.
//!
//! An install is tied to where it went. With the interpreter inside the bind-mounted ComfyUI
//! folder (a venv, the usual layout) the packages live in the workspace and survive a recreated
//! container; with an interpreter from the image (`/usr/bin/python3`) they live in the
//! container, so the record holds only for the container it was made in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::Desired;
use crate::render::compose::CONTAINER_ROOT;

/// The record's path.
pub fn record_path(workspace: &Path) -> PathBuf {
    workspace.join(".comfyprov").join("requirements.json")
}

/// One node's last successful install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// SHA-256 of the `requirements.txt` that was installed.
    pub sha256: String,
    /// The interpreter it was installed with.
    pub python: String,
    /// The container it was installed in (abbreviated id).
    pub container: String,
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub nodes: BTreeMap<String, Installed>,
}

impl Record {
    /// The record, or an empty one when it is missing or unreadable (everything is then
    /// installed again, which pip makes cheap and harmless).
    pub fn load(workspace: &Path) -> Record {
        std::fs::read(record_path(workspace))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Whether `sha256` for `node` is installed for this interpreter and container.
    pub fn holds(&self, node: &str, sha256: &str, python: &str, container: Option<&str>) -> bool {
        self.nodes.get(node).is_some_and(|i| {
            i.sha256 == sha256
                && i.python == python
                && (in_workspace(python) || container == Some(i.container.as_str()))
        })
    }
}

/// Whether the interpreter is inside the bind-mounted ComfyUI folder.
pub fn in_workspace(python: &str) -> bool {
    !python.starts_with('/') || Path::new(python).starts_with(CONTAINER_ROOT)
}

/// A node's requirements as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Requirements {
    /// The node has no `requirements.txt`.
    NoFile,
    /// This content is installed.
    Installed,
    /// Not installed; `changed` when another content was installed before.
    Pending { changed: bool },
}

/// For every declared node with `requirements = true` whose directory exists.
pub fn observe(desired: &Desired, container: Option<&str>) -> BTreeMap<String, Requirements> {
    let Some(c) = &desired.container else {
        return BTreeMap::new();
    };
    let nodes = desired.workspace.path.join("ComfyUI").join("custom_nodes");
    let mut record = None;
    let mut out = BTreeMap::new();
    for n in desired.nodes.iter().filter(|n| n.requirements) {
        let dir = nodes.join(&n.name);
        if !dir.is_dir() {
            continue;
        }
        let state = match std::fs::read(dir.join("requirements.txt")) {
            Err(_) => Requirements::NoFile,
            Ok(bytes) => {
                let sha = super::sha256_hex(&bytes);
                let record = record.get_or_insert_with(|| Record::load(&desired.workspace.path));
                if record.holds(&n.name, &sha, &c.python, container) {
                    Requirements::Installed
                } else {
                    Requirements::Pending {
                        changed: record.nodes.get(&n.name).is_some_and(|i| i.sha256 != sha),
                    }
                }
            }
        };
        out.insert(n.name.clone(), state);
    }
    out
}
