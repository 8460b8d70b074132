//! Node requirements: which `requirements.txt` contents were installed in the container's
//! interpreter, recorded per node in `<workspace>/.comfyprov/requirements.json`.
//!
//! An install is tied to where it went. With the interpreter inside the bind-mounted ComfyUI
//! folder (a venv, the usual layout) the packages live in the workspace and survive a recreated
//! container; with an interpreter from the image (`/usr/bin/python3`) they live in the
//! container, so the record holds only for the container it was made in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use comfyprov_core::observed::{Installed, Record, Requirements, in_workspace};

use crate::manifest::Desired;

/// The record's path.
pub fn record_path(workspace: &Path) -> PathBuf {
    workspace.join(".comfyprov").join("requirements.json")
}

/// The record, or an empty one when it is missing or unreadable (everything is then installed
/// again, which pip makes cheap and harmless).
pub fn load_record(workspace: &Path) -> Record {
    crate::fsutil::read_regular(&record_path(workspace))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
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
        let state = match crate::fsutil::read_regular(&dir.join("requirements.txt")) {
            Err(_) => Requirements::NoFile,
            Ok(bytes) => {
                let sha = super::sha256_hex(&bytes);
                let record = record.get_or_insert_with(|| load_record(&desired.workspace.path));
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
