//! `comfyprov status`: what is deployed, as observed, one line per part (ComfyUI, each node,
//! the password, the Python environment, the compose file, the container), each with what
//! `apply` would still do to it. Read-only: it observes and plans, nothing else.

use miette::IntoDiagnostic;
use serde::Serialize;

use super::{Cli, EXIT_CHANGES, EXIT_ERROR, EXIT_OK, emit};
use crate::observed::{
    ContainerState, DirState, EnvState, FileState, HashState, LockState, PasswordFile,
};
use crate::plan::{Options, Phase, short};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON (`format_version`, `converged`, `parts`).
    #[arg(long)]
    pub json: bool,
}

/// One part of the deployment.
#[derive(Debug, Serialize)]
struct Part {
    /// `comfyui`, `node:<name>`, `password`, `python`, `model:<path>`, `compose`, `container`.
    id: String,
    /// What was observed, for people.
    state: String,
    /// What `apply` would do to it (empty when it matches the manifest).
    pending: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Status {
    format_version: u32,
    project: String,
    manifest: String,
    converged: bool,
    parts: Vec<Part>,
}

fn checkout(state: &DirState) -> String {
    match state {
        DirState::Missing => "missing".to_owned(),
        DirState::NotGit => "not a git checkout".to_owned(),
        DirState::Unreadable { error } => format!("cannot be inspected: {error}"),
        DirState::Git(c) => {
            let mut s = match &c.head {
                Some(h) => format!("at {}", short(h)),
                None => "no commit".to_owned(),
            };
            if let Some(d) = c.dirty.as_ref().filter(|d| d.count > 0) {
                s.push_str(&format!(
                    ", {} local change{}",
                    d.count,
                    if d.count == 1 { "" } else { "s" }
                ));
            }
            s
        }
    }
}

pub fn run(cli: &Cli, args: &StatusArgs) -> miette::Result<u8> {
    let d = super::load(cli)?;
    let crate::ops::Planned { observed: o, plan } = crate::ops::plan(&d, &Options::default());
    let pending = |f: &dyn Fn(Phase<'_>) -> bool| -> Vec<String> {
        plan.steps
            .iter()
            .filter(|s| f(s.action.phase()))
            .map(|s| s.action.describe())
            .collect()
    };
    let mut parts = Vec::new();
    if let Some(src) = &d.comfyui {
        parts.push(Part {
            id: "comfyui".to_owned(),
            state: format!("ComfyUI @ {}: {}", src.rev, checkout(&o.comfyui)),
            pending: pending(&|p| p == Phase::ComfyUi || p == Phase::Workspace),
        });
    }
    for n in &d.nodes {
        let state = match o.node_dir(&n.name).and_then(|nd| nd.state.as_ref()) {
            Some(s) => checkout(s),
            None if o.node_dir(&format!("{}.disabled", n.name)).is_some() => "disabled".to_owned(),
            None => "missing".to_owned(),
        };
        parts.push(Part {
            id: format!("node:{}", n.name),
            state: format!("{} @ {}: {state}", n.name, n.source.rev.short()),
            pending: pending(&|p| p == Phase::Node(n.name.as_str())),
        });
    }
    let unmanaged: Vec<&str> = o
        .custom_nodes
        .iter()
        .filter(|nd| nd.state.is_none() && !nd.is_disabled())
        .map(|nd| nd.dir.as_str())
        .filter(|dir| !d.nodes.iter().any(|n| n.name == *dir))
        .collect();
    if !unmanaged.is_empty() {
        parts.push(Part {
            id: "unmanaged".to_owned(),
            state: format!(
                "not in the manifest, loaded by ComfyUI: {}",
                unmanaged.join(", ")
            ),
            pending: pending(&|p| matches!(p, Phase::Node(dir) if unmanaged.contains(&dir))),
        });
    }
    if matches!(d.auth, crate::manifest::AuthSpec::Login(_)) {
        let state = match &o.password.file {
            PasswordFile::Missing => "login/PASSWORD is missing".to_owned(),
            PasswordFile::Unreadable { error } => format!("login/PASSWORD cannot be read: {error}"),
            PasswordFile::Present { hash, mode, .. } => format!(
                "login/PASSWORD {} (mode {mode:04o})",
                match hash {
                    HashState::Verified => "verifies the secret".to_owned(),
                    HashState::Mismatch => "does not match the secret".to_owned(),
                    HashState::Malformed => "has no bcrypt hash on line 1".to_owned(),
                    HashState::Unchecked { reason } => format!("is unchecked: {reason}"),
                }
            ),
        };
        parts.push(Part {
            id: "password".to_owned(),
            state,
            pending: pending(&|p| p == Phase::Password),
        });
    }
    if let (Some(spec), Some(py)) = (&d.python, &o.python) {
        let env = match &py.env {
            EnvState::Missing => format!("{}/ has no environment", spec.env),
            EnvState::Unreadable { error } => format!("{}/ cannot be read: {error}", spec.env),
            EnvState::Present {
                python,
                built_for,
                packages,
            } => format!(
                "{}/: Python {}, {} packages, {}",
                spec.env,
                python.as_deref().unwrap_or("?"),
                packages.len(),
                built_for
                    .as_deref()
                    .map_or("not built by comfyprov".to_owned(), |i| format!(
                        "built in {i}"
                    ))
            ),
        };
        let lock = match &py.lock {
            LockState::Missing => format!("{} is missing", spec.lock_file.shown),
            LockState::Unreadable { error } => {
                format!("{} cannot be used: {error}", spec.lock_file.shown)
            }
            LockState::Present(l) => format!(
                "{} holds {} packages",
                spec.lock_file.shown,
                l.packages.len()
            ),
        };
        parts.push(Part {
            id: "python".to_owned(),
            state: format!("{env}; {lock}"),
            pending: pending(&|p| p == Phase::Python),
        });
    }
    if let Some(seen) = &o.models {
        use comfyprov_core::observed::ModelFile;
        use comfyprov_core::plan::{Action, Blocker};
        for m in &seen.files {
            let state = match &m.file {
                ModelFile::Missing if m.cached => "missing (in the cache)".to_owned(),
                ModelFile::Missing => "missing".to_owned(),
                ModelFile::Present {
                    size,
                    sha256: Some(h),
                } => format!("{} bytes, SHA-256 {}…", size, &h[..h.len().min(12)]),
                ModelFile::Present { size, sha256: None } => format!("{size} bytes"),
                ModelFile::Linked { why } => format!("not written through: {why}"),
                ModelFile::NotAFile => "not a file".to_owned(),
                ModelFile::Unreadable { error } => format!("cannot be read: {error}"),
            };
            let pending = plan
                .steps
                .iter()
                .filter(|s| match &s.action {
                    Action::PlaceModel { model, .. } => model.path == m.path,
                    Action::RecordModel { path, .. } => *path == m.path,
                    Action::Blocked {
                        blocker: Blocker::Model { path, .. },
                    } => *path == m.path,
                    _ => false,
                })
                .map(|s| s.action.describe())
                .collect();
            parts.push(Part {
                id: format!("model:{}", m.path),
                state: format!("models/{}: {state}", m.path),
                pending,
            });
        }
    }
    if let (Some(c), Some(file)) = (&d.container, &o.compose) {
        let state = match file {
            FileState::Missing => "missing".to_owned(),
            FileState::Present { .. } => "present".to_owned(),
            FileState::Unreadable { error } => format!("cannot be read: {error}"),
            FileState::Linked { why } => format!("not written through: {why}"),
        };
        parts.push(Part {
            id: "compose".to_owned(),
            state: format!("{}: {state}", c.compose_file.shown),
            pending: pending(&|p| p == Phase::Compose),
        });
    }
    if let Some(c) = &d.container {
        let state = match &o.container {
            ContainerState::NotManaged => "not managed".to_owned(),
            ContainerState::NotObserved { reason } => format!("not observed: {reason}"),
            ContainerState::Missing => format!("no container is named {}", d.project),
            ContainerState::Present(info) => {
                let mut s = format!("{} {}", d.project, info.status);
                if let Some(h) = &info.health {
                    s.push_str(&format!(" ({h})"));
                }
                if let Some(t) = info
                    .started_at
                    .as_deref()
                    .filter(|_| info.status == "running")
                {
                    s.push_str(&format!(", started {}", t.split('.').next().unwrap_or(t)));
                }
                s.push_str(&format!(
                    ", image {}, published on {}:{}",
                    info.image, c.listen, c.port
                ));
                s
            }
        };
        parts.push(Part {
            id: "container".to_owned(),
            state,
            pending: pending(&|p| p == Phase::Container),
        });
    }
    let unknown = plan.unobserved().is_some();
    let status = Status {
        format_version: 1,
        project: d.project.clone(),
        manifest: cli.manifest.display().to_string(),
        converged: !plan.has_changes() && !unknown,
        parts,
    };
    if args.json {
        emit(&(serde_json::to_string_pretty(&status).into_diagnostic()? + "\n"))?;
    } else {
        let mut out = format!("{} ({})\n", status.project, status.manifest);
        for p in &status.parts {
            let mark = if p.pending.is_empty() { "ok  " } else { "todo" };
            out.push_str(&format!("  {mark}  {}\n", p.state));
            for s in &p.pending {
                out.push_str(&format!("          apply would: {s}\n"));
            }
        }
        out.push_str(&if status.converged {
            "Converged: what is deployed matches the manifest.\n".to_owned()
        } else if unknown {
            "Unknown: the container could not be observed.\n".to_owned()
        } else {
            format!(
                "Not converged: {} step{} pending (`comfyprov plan` says why).\n",
                plan.steps.len(),
                if plan.steps.len() == 1 { "" } else { "s" }
            )
        });
        emit(&out)?;
    }
    Ok(if status.converged {
        EXIT_OK
    } else if unknown {
        EXIT_ERROR
    } else {
        EXIT_CHANGES
    })
}
