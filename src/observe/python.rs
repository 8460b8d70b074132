//! The Python environment, read from the host without running anything: `comfy.lock`, the
//! requirements files the lock is resolved from, and the environment's `pyvenv.cfg` and
//! `*.dist-info` folders. A no-op plan reads a few small files and lists one directory.

use std::collections::BTreeMap;
use std::path::Path;

use comfyprov_core::lock::{Inputs, Lock, SourceFile, normalize};
use comfyprov_core::observed::{ENV_MARKER, EnvMarker, EnvState, LockState, PythonObserved};

use crate::manifest::{Desired, PythonSpec};

/// Observe the environment `[python]` declares; `None` without `[python]`.
pub fn observe(desired: &Desired) -> Option<PythonObserved> {
    let spec = desired.python.as_ref()?;
    let comfy = desired.workspace.path.join("ComfyUI");
    let inputs = Inputs::new(spec, input_files(&comfy, &input_paths(desired)));
    Some(PythonObserved {
        lock: lock_state(&spec.lock_file.path, Some(&inputs)),
        inputs,
        env: env_state(&comfy.join(&spec.env), spec),
    })
}

/// The requirements files a resolution reads, relative to `ComfyUI/`: ComfyUI's, then each
/// `requirements = true` node's, in manifest order.
pub fn input_paths(desired: &Desired) -> Vec<String> {
    std::iter::once("requirements.txt".to_owned())
        .chain(
            desired
                .nodes
                .iter()
                .filter(|n| n.requirements)
                .map(|n| format!("custom_nodes/{}/requirements.txt", n.name)),
        )
        .collect()
}

/// Those of `paths` that exist under `comfy`, with their digests. One that cannot be read gets
/// a digest that matches nothing, so the lock is resolved again and the resolution says why.
pub fn input_files(comfy: &Path, paths: &[String]) -> Vec<SourceFile> {
    paths
        .iter()
        .filter_map(|p| {
            let sha256 = match crate::fsutil::read_regular(&comfy.join(p)) {
                Ok(bytes) => super::sha256_hex(&bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
                Err(e) => format!("unreadable ({e})"),
            };
            Some(SourceFile {
                path: p.clone(),
                sha256,
            })
        })
        .collect()
}

/// `comfy.lock` as found; with today's inputs, read the quick way when it was resolved from them
/// (see [`Lock::parse_against`]).
pub fn lock_state(path: &Path, now: Option<&Inputs>) -> LockState {
    match crate::fsutil::read_regular_nofollow(path) {
        Ok(bytes) => {
            // The model entries that follow the resolution are not the Python lock's; a lock
            // with only model entries has no resolution yet.
            let text = std::str::from_utf8(&bytes).map(|t| comfyprov_core::lock::split_models(t).0);
            match text {
                Ok(t) if !t.contains("resolved_from") => LockState::Missing,
                Ok(t) => match now {
                    Some(now) => Lock::parse_against(t, now),
                    None => Lock::parse(t),
                }
                .map_or_else(
                    |error| LockState::Unreadable { error },
                    |lock| LockState::Present(Box::new(lock)),
                ),
                Err(e) => LockState::Unreadable {
                    error: e.to_string(),
                },
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockState::Missing,
        Err(e) => LockState::Unreadable {
            error: e.to_string(),
        },
    }
}

/// The Python an environment was made with (`3.11.2`), from its `pyvenv.cfg` text.
pub fn pyvenv_python(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        matches!(k.trim(), "version_info" | "version").then(|| v.trim().to_owned())
    })
}

/// `3.11` of `3.11.2`.
pub fn minor_of(version: &str) -> Option<String> {
    let parts: Vec<&str> = version.split('.').take(2).collect();
    (parts.len() == 2).then(|| parts.join("."))
}

/// The environment at `env`: the Python in `pyvenv.cfg` and the distributions in its
/// site-packages.
pub fn env_state(env: &Path, spec: &PythonSpec) -> EnvState {
    let cfg = match crate::fsutil::read_regular(&env.join("pyvenv.cfg")) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return EnvState::Missing,
        Err(e) => {
            return EnvState::Unreadable {
                error: format!("{}: {e}", env.join("pyvenv.cfg").display()),
            };
        }
    };
    let python = pyvenv_python(&cfg);
    // site-packages of the Python it was made with; a fresh environment may have none yet.
    let minor = python
        .as_deref()
        .and_then(minor_of)
        .unwrap_or_else(|| spec.version.clone());
    let site = env
        .join("lib")
        .join(format!("python{minor}"))
        .join("site-packages");
    let built_for = crate::fsutil::read_regular_nofollow(&env.join(ENV_MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<EnvMarker>(&b).ok())
        .map(|m| m.image);
    match dist_infos(&site) {
        Ok(packages) => EnvState::Present {
            python,
            built_for,
            packages,
        },
        Err(e) => EnvState::Unreadable {
            error: format!("{}: {e}", site.display()),
        },
    }
}

/// Normalised name → version of every `<name>-<version>.dist-info` folder in `site`.
pub fn dist_infos(site: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let entries = match std::fs::read_dir(site) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for e in entries {
        let name = e?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".dist-info")) else {
            continue;
        };
        if let Some((name, version)) = stem.split_once('-') {
            out.insert(normalize(name), version.to_owned());
        }
    }
    Ok(out)
}
