//! Observation: the one step that reads the world. `observe(&Desired)` looks at the workspace,
//! the ComfyUI-Login password, the secret and the compose file once, and returns plain data.
//! Nothing here decides what to do about what it sees; that is `plan`'s job.

pub mod container;
pub mod endpoint;
pub mod login;
pub mod models;
pub mod python;
pub mod workspace;

pub use comfyprov_core::digest::{hex, sha256_hex};
pub use comfyprov_core::observed::{
    Checkout, ContainerState, DirState, Dirty, FileState, NodeDir, Observed, PortState, SecretState,
};

use crate::manifest::Desired;

/// Observe everything the manifest talks about.
pub fn observe(desired: &Desired) -> Observed {
    let span = tracing::info_span!("observe");
    let _entered = span.enter();
    // The daemon answers while the workspace is read.
    std::thread::scope(|s| {
        let container = desired.container.as_ref().map(|c| {
            let env: Vec<String> = c.env.keys().cloned().collect();
            let listen = c.listen.to_string();
            let span = tracing::info_span!(parent: &span, "container", name = %desired.project);
            s.spawn(move || {
                let _span = span.entered();
                let seen = container::observe(&desired.project, &env, &listen, c.port);
                tracing::debug!(container = %summary(&seen.0), port = ?seen.1, "seen");
                seen
            })
        });
        let mut observed = observe_workspace(desired);
        if let Some(handle) = container {
            (observed.container, observed.port) = handle.join().unwrap_or((
                ContainerState::NotObserved {
                    reason: "observing the container failed".to_owned(),
                },
                PortState::Free,
            ));
        }
        observed
    })
}

/// One line for `-v` about the container.
fn summary(state: &ContainerState) -> String {
    match state {
        ContainerState::Present(info) => format!(
            "{} {:?} (image {}, started {})",
            info.status,
            info.health,
            info.image,
            info.started_at.as_deref().unwrap_or("never")
        ),
        other => format!("{other:?}"),
    }
}

/// Everything but the container (left `NotManaged`).
fn observe_workspace(desired: &Desired) -> Observed {
    let ws = &desired.workspace.path;
    let comfy = ws.join("ComfyUI");
    let workspace_exists = ws.is_dir();
    let span = tracing::info_span!("workspace", path = %ws.display()).entered();
    let comfyui = workspace::observe_comfyui(&comfy, desired.comfyui.as_ref());
    // Origin URLs may carry credentials: masked like everywhere else.
    let masked =
        |d: &dyn std::fmt::Debug| comfyprov_core::manifest::mask_url_credentials(&format!("{d:?}"));
    tracing::debug!(state = %masked(&comfyui), "ComfyUI/");
    let (custom_nodes, odd_names) =
        workspace::observe_custom_nodes(&comfy.join("custom_nodes"), &desired.nodes);
    for node in &custom_nodes {
        tracing::debug!(node = %masked(node), "custom_nodes/");
    }
    drop(span);
    let span = tracing::info_span!("login").entered();
    let (secret, password) = login::observe(&desired.auth, ws);
    // Their JSON form: the digests of PASSWORD's content are left out of it.
    tracing::debug!(
        secret = %serde_json::to_string(&secret).unwrap_or_default(),
        password = %serde_json::to_string(&password).unwrap_or_default(),
        "seen"
    );
    drop(span);
    let compose = desired
        .container
        .as_ref()
        .map(|c| file_state(&c.compose_file.path));
    let inputs_changed_ns = inputs_changed(&comfy, &custom_nodes);
    Observed {
        workspace_exists,
        comfyui,
        custom_nodes,
        odd_names,
        secret,
        password,
        compose,
        container: ContainerState::NotManaged,
        inputs_changed_ns,
        python: {
            let _span = tracing::info_span!("python").entered();
            let python = python::observe(desired);
            if let Some(p) = python
                .as_ref()
                .filter(|_| tracing::enabled!(tracing::Level::DEBUG))
            {
                let lock = match &p.lock {
                    comfyprov_core::observed::LockState::Present(l) => {
                        format!("{} packages", l.packages.len())
                    }
                    other => format!("{other:?}"),
                };
                let env = match &p.env {
                    comfyprov_core::observed::EnvState::Present {
                        python,
                        built_for,
                        packages,
                    } => format!(
                        "Python {python:?}, built for {built_for:?}, {} packages",
                        packages.len()
                    ),
                    other => format!("{other:?}"),
                };
                tracing::debug!(lock, env, "seen");
            }
            python
        },
        port: PortState::Free,
        models: {
            let _span = tracing::info_span!("models").entered();
            models::observe(desired)
        },
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

/// The compose file as comfyprov will write it: a link at it, or a folder on its way that is a
/// link (its folder's real path differs from the spelled one), is reported, never written through.
fn file_state(path: &std::path::Path) -> FileState {
    if let Some(why) = crate::fsutil::linked_write_target(path) {
        return FileState::Linked { why };
    }
    match crate::fsutil::read_regular_nofollow(path) {
        Ok(bytes) => FileState::Present {
            sha256: sha256_hex(&bytes),
            text: String::from_utf8_lossy(&bytes).into_owned(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
        Err(e) => FileState::Unreadable {
            error: e.to_string(),
        },
    }
}
