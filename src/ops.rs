//! The pipeline, once: load → observe → plan → apply → observe again → verify. The CLI parses
//! arguments and prints what these return; tests call them directly.

use std::path::Path;
use std::time::Duration;

use crate::apply::{self, Env, Report};
use crate::manifest::{AuthSpec, Desired, LoadError};
use crate::observe::login::{HashState, PasswordFile};
use crate::observe::{ContainerState, Observed};
use crate::plan::{Options, Plan};
use crate::report::Reporter;
use crate::secret::Secret;
use crate::verify::{Target, Verification};

/// A manifest as loaded: what it declares, and the digest of the exact text validated.
pub struct Loaded {
    pub desired: Desired,
    pub sha256: String,
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let _span = tracing::info_span!("load", manifest = %path.display()).entered();
    crate::manifest::load_with_digest(path).map(|(desired, sha256)| Loaded { desired, sha256 })
}

/// What `plan` shows: what was observed and the plan made from it.
pub struct Planned {
    pub observed: Observed,
    pub plan: Plan,
}

/// Observe reality once and compare it with the manifest.
pub fn plan(desired: &Desired, opts: &Options) -> Planned {
    let observed = crate::observe::observe(desired);
    let plan = {
        let _span = tracing::info_span!("plan").entered();
        crate::plan::plan(desired, &observed, opts)
    };
    tracing::info!(
        steps = plan.steps.len(),
        changes = plan.has_changes(),
        "planned"
    );
    Planned { observed, plan }
}

/// What `apply` did and where it left reality.
pub struct Applied {
    pub report: Report,
    /// Observed again after the steps ran.
    pub observed: Observed,
    /// The plan from that observation: empty when reality matches the manifest.
    pub after: Plan,
    /// The container should be there but could not be observed afterwards: whether the server
    /// runs what the steps made is unknown.
    pub unobserved: Option<String>,
}

impl Applied {
    /// Every step done or already done, nothing left, and reality matches.
    pub fn converged(&self) -> bool {
        self.report.failed().next().is_none()
            && self.report.left().next().is_none()
            && !self.after.has_changes()
            && self.unobserved.is_none()
    }
}

/// Run `planned.plan` (made with `opts`), then look again: the result says whether reality now
/// matches, not whether steps ran. Call with the workspace lock held.
pub fn apply(
    desired: &Desired,
    planned: &Planned,
    opts: &Options,
    apply_opts: &apply::Options,
    reporter: &dyn Reporter,
) -> Applied {
    let env = Env::new(desired, &planned.observed, reporter);
    let report = apply::apply(&env, &planned.plan, apply_opts);
    let observed = crate::observe::observe(desired);
    let after = crate::plan::plan(
        desired,
        &observed,
        &Options {
            force: false,
            ..*opts
        },
    );
    let unobserved = match &observed.container {
        ContainerState::NotObserved { reason } if !opts.workspace_only => Some(reason.clone()),
        _ => None,
    };
    Applied {
        report,
        observed,
        after,
        unobserved,
    }
}

/// Why there is no token to give a client.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TokenError {
    #[error("auth.mode is none: the server takes no token")]
    #[diagnostic(help("set `mode = \"login\"` in [auth] to protect ComfyUI with ComfyUI-Login"))]
    NoAuth,
    #[error("login/PASSWORD does not exist")]
    #[diagnostic(help("run `comfyprov apply` to write it"))]
    Missing,
    #[error("login/PASSWORD cannot be read: {0}")]
    Unreadable(String),
    #[error("login/PASSWORD cannot be checked against the secret: {0}")]
    #[diagnostic(help("see `comfyprov plan`"))]
    Unchecked(String),
    #[error("login/PASSWORD does not match the secret: its token is stale")]
    #[diagnostic(help("run `comfyprov apply` to write it"))]
    Stale,
}

/// Line 1 of `login/PASSWORD`, the API token, when it verifies against the secret; else why not.
pub fn verified_token(desired: &Desired) -> Result<Secret, TokenError> {
    if !matches!(desired.auth, AuthSpec::Login(_)) {
        return Err(TokenError::NoAuth);
    }
    let ws = &desired.workspace.path;
    let (_, password) = crate::observe::login::observe(&desired.auth, ws);
    match password.file {
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        } => {}
        PasswordFile::Missing => return Err(TokenError::Missing),
        PasswordFile::Unreadable { error } => return Err(TokenError::Unreadable(error)),
        PasswordFile::Present {
            hash: HashState::Unchecked { reason },
            ..
        } => return Err(TokenError::Unchecked(reason)),
        PasswordFile::Present { .. } => return Err(TokenError::Stale),
    }
    let path = ws.join("ComfyUI").join("login").join("PASSWORD");
    let bytes =
        crate::fsutil::read_regular(&path).map_err(|e| TokenError::Unreadable(e.to_string()))?;
    Ok(Secret::new(crate::secret::hash_line(&bytes).to_vec()))
}

/// Why `verify` could not probe the server at all.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VerifyError {
    #[error("the manifest has no [container]: there is no server to verify")]
    #[diagnostic(help("verify probes the container comfyprov runs; add a [container] table"))]
    NoContainer,
    #[error("cannot verify: {0}")]
    #[diagnostic(help("start the Docker daemon, or fix DOCKER_HOST or the docker context"))]
    Daemon(crate::error::ObserveError),
    #[error("cannot verify: {reason}")]
    #[diagnostic(help(
        "`comfyprov plan` shows what differs; `docker logs {container}` shows the server's output"
    ))]
    NotReady {
        container: String,
        reason: crate::verify::NotReady,
    },
    #[error("cannot read the workflow `{}`: {why}", path.display())]
    #[diagnostic(help(
        "a workflow check is an API-format workflow: in ComfyUI, \"Save (API)\" (or \"Export (API)\")"
    ))]
    Workflow {
        path: std::path::PathBuf,
        why: String,
    },
}

/// Which workflow checks a verify runs.
pub enum Checks<'a> {
    /// Every `[[checks]]` entry and these files (`verify --workflow`).
    All(&'a [std::path::PathBuf]),
    /// The `[[checks]]` entries with `on_apply = true` (the verify at the end of `apply`).
    OnApply,
}

/// Read the workflow checks to run.
fn workflows(
    desired: &Desired,
    which: &Checks<'_>,
) -> Result<Vec<crate::verify::workflow::Workflow>, VerifyError> {
    use crate::verify::workflow::{Workflow, prompt_of};
    let read = |path: &std::path::Path, name: String, timeout: u64| {
        let bytes = crate::fsutil::read_regular(path).map_err(|e| VerifyError::Workflow {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| VerifyError::Workflow {
                path: path.to_owned(),
                why: format!("not JSON: {e}"),
            })?;
        prompt_of(&json).map_err(|why| VerifyError::Workflow {
            path: path.to_owned(),
            why,
        })?;
        Ok(Workflow {
            name,
            json,
            timeout: Duration::from_secs(timeout),
        })
    };
    let mut out = Vec::new();
    for c in &desired.checks {
        if matches!(which, Checks::All(_)) || c.on_apply {
            out.push(read(&c.workflow.path, c.name.clone(), c.timeout_s)?);
        }
    }
    if let Checks::All(files) = which {
        for f in *files {
            out.push(read(f, f.display().to_string(), 120)?);
        }
    }
    Ok(out)
}

/// Wait for the manifest's server (up to `timeout`) and run every check, the workflow checks
/// `which` names included.
pub fn verify(
    desired: &Desired,
    timeout: Duration,
    which: Checks<'_>,
) -> Result<Verification, VerifyError> {
    let workflows = workflows(desired, &which)?;
    let token = verified_token(desired).map_err(|e| e.to_string());
    let target = Target::new(desired, token).ok_or(VerifyError::NoContainer)?;
    let rt = crate::observe::container::runtime().map_err(VerifyError::Daemon)?;
    rt.block_on(async {
        let docker = crate::observe::container::connect()
            .await
            .map_err(VerifyError::Daemon)?;
        crate::verify::verify(&docker, &target, timeout, &workflows)
            .await
            .map_err(|reason| VerifyError::NotReady {
                container: target.container.clone(),
                reason,
            })
    })
}

/// Why `down` or `logs` could not act on the container.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DownError {
    #[error("the manifest has no [container]: comfyprov runs no container for it")]
    NoContainer,
    #[error("cannot reach the container: {0}")]
    #[diagnostic(help("start the Docker daemon, or fix DOCKER_HOST or the docker context"))]
    Daemon(crate::error::ObserveError),
    #[error("container {name} is not comfyprov's (no `comfyprov.project` label): left as it is")]
    #[diagnostic(help("remove it with `docker rm -f {name}` if it is yours to remove"))]
    NotOurs { name: String },
    #[error("container {name}: {message}")]
    Api { name: String, message: String },
}

/// Run `f` with a connection to the daemon, for a manifest that has a container.
fn with_daemon<T>(
    desired: &Desired,
    f: impl AsyncFnOnce(bollard::Docker, String) -> Result<T, DownError>,
) -> Result<T, DownError> {
    if desired.container.is_none() {
        return Err(DownError::NoContainer);
    }
    let rt = crate::observe::container::runtime().map_err(DownError::Daemon)?;
    rt.block_on(async {
        let docker = crate::observe::container::connect()
            .await
            .map_err(DownError::Daemon)?;
        f(docker, desired.project.clone()).await
    })
}

/// Stop and remove the manifest's container, if there is one and comfyprov made it. Never the
/// workspace. `Ok(false)` when there was none.
pub fn down(desired: &Desired) -> Result<bool, DownError> {
    with_daemon(desired, async |docker, name| {
        let Some(info) = crate::observe::container::inspect(&docker, &name)
            .await
            .map_err(DownError::Daemon)?
        else {
            return Ok(false);
        };
        if info.project_label.as_deref() != Some(name.as_str()) {
            return Err(DownError::NotOurs { name });
        }
        crate::apply::remove_container(&docker, &name)
            .await
            .map_err(|e| DownError::Api {
                name: name.clone(),
                message: e.to_string(),
            })?;
        Ok(true)
    })
}

/// The container's log, every token masked (ComfyUI-Login logs the token at start). `tail`
/// limits it to the last lines.
pub fn logs(desired: &Desired, tail: Option<usize>) -> Result<String, DownError> {
    with_daemon(desired, async |docker, name| {
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..Default::default()
        };
        let mut out = String::new();
        crate::verify::for_each_frame(&docker, &name, options, |frame| out.push_str(frame))
            .await
            .map_err(|message| DownError::Api {
                name: name.clone(),
                message,
            })?;
        Ok(crate::secret::mask_tokens(&out))
    })
}

/// Why `init` wrote nothing (or not everything).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    #[error("`{}` exists already: init never overwrites a manifest", path.display())]
    #[diagnostic(help("edit it (`comfyprov validate` checks it), or move it away to start over"))]
    Exists { path: std::path::PathBuf },
    #[error("the manifest these choices make is not valid")]
    #[diagnostic(help("fix the flag the problem points at (e.g. --project), then run init again"))]
    Invalid {
        #[related]
        problems: Vec<crate::manifest::Problem>,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Write(#[from] crate::error::StepError),
}

/// What `init` did, file by file, for the summary.
pub struct Inited {
    pub done: Vec<String>,
}

/// Write a commented manifest at `manifest` (never over an existing one), the schema beside it,
/// the `.gitignore` lines for secrets and the workspace, and with `password` a generated
/// password (0600).
pub fn init(
    manifest: &Path,
    choices: &crate::manifest::template::Choices,
    password: bool,
) -> Result<Inited, InitError> {
    use crate::error::StepError;
    use crate::manifest::template::{GITIGNORE, PASSWORD_FILE, SCHEMA_FILE, manifest as text};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match manifest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut done = Vec::new();
    let content = text(choices);
    // Checked before anything is written: init never leaves a manifest that does not validate.
    crate::manifest::parse(&manifest.display().to_string(), content.clone(), &dir)
        .map_err(|problems| InitError::Invalid { problems })?;
    // Created exclusively: an existing manifest (or a link planted there) is never written.
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(manifest)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(InitError::Exists {
                path: manifest.to_owned(),
            });
        }
        Err(e) => return Err(StepError::io("cannot create", manifest, e).into()),
    };
    f.write_all(content.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| StepError::io("cannot write", manifest, e))?;
    done.push(format!("wrote {}", manifest.display()));

    let schema = dir.join(SCHEMA_FILE);
    if std::fs::symlink_metadata(&schema).is_err() {
        let json = serde_json::to_string_pretty(&crate::manifest::raw::schema())
            .map_err(|e| StepError::new(format!("cannot serialise the schema: {e}")))?;
        crate::fsutil::write_atomic(&schema, format!("{json}\n").as_bytes(), 0o644)
            .map_err(|e| StepError::io("cannot write", &schema, e))?;
        done.push(format!(
            "wrote {} (editors read it through `#:schema`)",
            schema.display()
        ));
    }

    let ignore = dir.join(".gitignore");
    let current = match crate::fsutil::read_regular_nofollow(&ignore) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StepError::io("cannot read", &ignore, e).into()),
    };
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .copied()
        .filter(|l| !current.lines().any(|c| c.trim() == *l))
        .collect();
    if !missing.is_empty() {
        let mut next = current.clone();
        if !next.is_empty() && !next.ends_with('\n') {
            next.push('\n');
        }
        for l in &missing {
            next.push_str(l);
            next.push('\n');
        }
        crate::fsutil::write_atomic(&ignore, next.as_bytes(), 0o644)
            .map_err(|e| StepError::io("cannot write", &ignore, e))?;
        done.push(format!(
            "added {} to {}",
            missing.join(", "),
            ignore.display()
        ));
    }

    if password && choices.login {
        let file = crate::manifest::ManifestPath {
            shown: PASSWORD_FILE.to_owned(),
            path: dir.join(PASSWORD_FILE),
        };
        let outcome = crate::apply::generate_password(&file)?;
        done.push(match outcome {
            crate::report::Outcome::Done { .. } => {
                format!("generated a password into {PASSWORD_FILE} (mode 0600)")
            }
            _ => format!("kept the password in {PASSWORD_FILE}"),
        });
    }
    Ok(Inited { done })
}

/// Why `comfyprov lock` wrote nothing.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error("the manifest has no [python]: there is nothing to lock")]
    #[diagnostic(help("add a `[python]` section (see `comfyprov init` or the README)"))]
    NoPython,
    #[error("`{}` is not there: the requirements to lock come from the checkouts", path.display())]
    #[diagnostic(help(
        "run `comfyprov apply --workspace-only` first: it clones ComfyUI and the nodes"
    ))]
    NoCheckout { path: std::path::PathBuf },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] crate::apply::lock::LockError),
    #[error("resolving failed: {0}")]
    #[diagnostic(transparent)]
    Step(#[from] crate::apply::StepError),
}

/// `comfyprov lock`: the lock step alone, on the checkouts as they are.
pub fn lock(desired: &Desired) -> Result<crate::report::Outcome, LockError> {
    let Some(spec) = &desired.python else {
        return Err(LockError::NoPython);
    };
    let comfy = desired.workspace.path.join("ComfyUI");
    if !comfy.is_dir() {
        return Err(LockError::NoCheckout { path: comfy });
    }
    let _held = crate::apply::lock::acquire(
        &desired.workspace.path,
        std::time::Duration::from_secs(10),
        |_| {},
    )?;
    let reporter = crate::report::Silent;
    let env = crate::apply::Env {
        workspace: desired.workspace.path.clone(),
        seen_password: String::new(),
        reporter: &reporter,
        now: std::time::SystemTime::now(),
    };
    let files = crate::observe::python::input_paths(desired);
    let git = comfyprov_core::plan::pin_targets(desired);
    Ok(crate::apply::lock_python(&env, spec, &files, &git)?)
}

/// Why `import` wrote nothing.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    #[error("nothing to import from")]
    #[diagnostic(help("name a source: --workspace DIR, --container NAME or --snapshot FILE"))]
    NoSource,
    #[error("`{}` holds no ComfyUI/", path.display())]
    #[diagnostic(help("--workspace names the folder that holds ComfyUI/"))]
    NoWorkspace { path: std::path::PathBuf },
    #[error("cannot read the snapshot `{}`: {why}", path.display())]
    #[diagnostic(help(
        "a ComfyUI-Manager snapshot, JSON or YAML (Manager → Snapshot Manager → Save snapshot)"
    ))]
    Snapshot {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot import the compose file `{}`: {why}", path.display())]
    #[diagnostic(help(
        "name the compose file that runs ComfyUI, and its service with --service when it has several"
    ))]
    Compose {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot import the container {name}: {why}")]
    #[diagnostic(help(
        "name a container that exists (`docker ps -a`), and check that the Docker daemon answers"
    ))]
    Container { name: String, why: String },
    #[error("the imported manifest does not validate")]
    #[diagnostic(help(
        "this is a bug in comfyprov import: please report it with the problems below"
    ))]
    Invalid {
        #[related]
        problems: Vec<crate::manifest::Problem>,
    },
}

/// `comfyprov import`: the manifest text for what exists, validated as if written into `dir`.
pub fn import(
    mut sources: crate::import::Sources,
    container: Option<&str>,
    snapshot: Option<&Path>,
    compose: Option<(&Path, Option<&str>)>,
    dir: &Path,
) -> Result<(String, Vec<String>), ImportError> {
    if sources.workspace.is_none() && container.is_none() && snapshot.is_none() && compose.is_none()
    {
        return Err(ImportError::NoSource);
    }
    if let Some((file, service)) = compose {
        let why = |why: String| ImportError::Compose {
            path: file.to_owned(),
            why,
        };
        let bytes = crate::fsutil::read_regular(file).map_err(|e| why(e.to_string()))?;
        let doc: serde_json::Value =
            serde_norway::from_slice(&bytes).map_err(|e| why(format!("not YAML: {e}")))?;
        let base = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| std::path::PathBuf::from("."), Path::to_path_buf);
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let (name, spec, dangers) =
            crate::import::from_compose(&doc, service, &base).map_err(why)?;
        if sources.workspace.is_none()
            && let Some(ws) = Path::new(&spec.mount)
                .parent()
                .filter(|w| w.join("ComfyUI").is_dir())
        {
            sources.workspace_shown = ws.display().to_string();
            sources.workspace = Some(ws.to_path_buf());
        }
        sources.compose = Some(file.display().to_string());
        sources.dangers.extend(dangers);
        sources.container = Some((name, spec));
    }
    if let Some(ws) = &sources.workspace
        && !ws.join("ComfyUI").is_dir()
    {
        return Err(ImportError::NoWorkspace { path: ws.clone() });
    }
    if let Some(path) = snapshot {
        let why = |why: String| ImportError::Snapshot {
            path: path.to_owned(),
            why,
        };
        let bytes = crate::fsutil::read_regular(path).map_err(|e| why(e.to_string()))?;
        // ComfyUI-Manager saves snapshots as JSON and (newer versions) YAML; YAML is a
        // superset of JSON, so one parser reads both.
        let json: serde_json::Value = serde_norway::from_slice(&bytes)
            .map_err(|e| why(format!("neither JSON nor YAML: {e}")))?;
        if !json.is_object() || json.get("git_custom_nodes").is_none() {
            return Err(why(
                "no `git_custom_nodes`: not a ComfyUI-Manager snapshot".to_owned()
            ));
        }
        sources.snapshot = Some((path.display().to_string(), json));
    }
    if let Some(name) = container {
        let err = |why: String| ImportError::Container {
            name: name.to_owned(),
            why,
        };
        // Observed as plan observes ours: what it really is, in the run spec's terms.
        let info = match crate::observe::container::observe(name, &[], "127.0.0.1", 0).0 {
            ContainerState::Present(info) => info,
            ContainerState::Missing => return Err(err("no container has that name".to_owned())),
            ContainerState::NotObserved { reason } => return Err(err(reason)),
            ContainerState::NotManaged => return Err(err("not observed".to_owned())),
        };
        let spec = info
            .actual
            .ok_or_else(|| err("its configuration cannot be read as a ComfyUI run".to_owned()))?;
        if sources.workspace.is_none() {
            // The folder mounted as ComfyUI/ is in the workspace.
            let ws = Path::new(&spec.mount).parent().map(Path::to_path_buf);
            if let Some(ws) = ws.filter(|w| w.join("ComfyUI").is_dir()) {
                sources.workspace_shown = ws.display().to_string();
                sources.workspace = Some(ws);
            }
        }
        sources.container = Some((name.to_owned(), spec));
    }
    let (text, mut left_out) = crate::import::manifest(&sources);
    left_out.extend(sources.dangers.iter().map(|d| format!("DANGER: {d}")));
    crate::manifest::parse("imported comfy.toml", text.clone(), dir)
        .map_err(|problems| ImportError::Invalid { problems })?;
    Ok((text, left_out))
}
