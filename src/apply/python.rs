//! Executors for the Python environment.
//!
//! - lock: resolve ComfyUI's and the nodes' requirements, torch and the extras at once with uv on
//!   the host, for the container's Python and platform (`uv pip compile --python-version
//!   --python-platform`), into `comfy.lock`. A conflict stops here, before anything is installed,
//!   naming the requirement lines on each side and the files they come from.
//! - sync: in a one-off container from the deployment's own image, with the workspace mounted as
//!   the server sees it and host networking, create the environment when needed (`uv venv`; uv
//!   installs a standalone CPython into the workspace when the image has none) and sync it
//!   exactly to the lock (`uv pip sync`: extras removed, hashes checked). The environment lives
//!   in the workspace, so it survives a recreated container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptions, RemoveContainerOptions, StartContainerOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;

use comfyprov_core::lock::{self, Inputs, Lock, LockedGit, Package, normalize};
use comfyprov_core::observed::{ENV_MARKER, EnvMarker, EnvState, LockState};

use super::container::{api, block_on, docker};
use super::{Env, Exec, StepError};
use crate::manifest::{FindLinks, PythonSpec};
use crate::observe::python::{env_state, input_files, lock_state};
use crate::plan::Target;
use crate::render::CONTAINER_ROOT;
use crate::report::Outcome;
use crate::uv::{self, Uv};

/// A resolution may download metadata for minutes; a sync may download gigabytes (torch).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1800);
const SYNC_TIMEOUT: Duration = Duration::from_secs(3600);
/// Lines of uv's output shown when it fails.
const TAIL: usize = 20;
/// Where the workspace's `.comfyprov/` is mounted in the sync container.
const STATE_MOUNT: &str = "/comfyprov";

/// The lock step.
pub(super) fn lock(
    env: &Env,
    spec: &PythonSpec,
    files: &[String],
    git: &[(Target, String)],
    locked: bool,
) -> Exec {
    let comfy = env.comfyui();
    let inputs = Inputs::new(spec, input_files(&comfy, files));
    let pins = pins_now(env, git);
    let current = match lock_state(&spec.lock_file.path, None) {
        LockState::Present(l) => Some(*l),
        _ => None,
    };
    let same_inputs = current.as_ref().is_some_and(|l| l.resolved_from == inputs);
    if let Some(l) = current.as_ref().filter(|_| same_inputs) {
        if l.git == pins {
            return Ok(Outcome::AlreadyDone {
                why: format!("{} matches its inputs", spec.lock_file.shown),
            });
        }
        if !locked {
            // Same requirements: only the recorded commits move; nothing is resolved.
            let lock = Lock {
                git: pins,
                ..l.clone()
            };
            write_lock(spec, &lock)?;
            return Ok(Outcome::Done {
                detail: Some("recorded the checkouts' commits (requirements unchanged)".to_owned()),
            });
        }
    }
    if locked {
        let why = match &current {
            Some(l) if same_inputs => git_change(&l.git, &pins),
            Some(l) => l.resolved_from.differences(&inputs).join("; "),
            None => "it is missing or unreadable".to_owned(),
        };
        return Err(StepError::new(format!(
            "{} does not match the manifest and the requirements (--locked): {why}",
            spec.lock_file.shown
        ))
        .help(format!(
            "run `comfyprov lock` and commit {}, or run without --locked",
            spec.lock_file.shown
        )));
    }
    let uv = uv::find()?;
    let packages = resolve(env, &uv, spec, &inputs)?;
    let lock = Lock::new(inputs, pins, packages);
    let wrote = write_lock(spec, &lock)?;
    let torch = lock
        .packages
        .iter()
        .find(|p| p.name == "torch")
        .map(|p| format!(", torch {}", p.version))
        .unwrap_or_default();
    Ok(Outcome::Done {
        detail: Some(format!(
            "{} packages{torch}{}",
            lock.packages.len(),
            if wrote {
                ""
            } else {
                " (the file already held them)"
            }
        )),
    })
}

/// Each pin with the commit its checkout is at now.
fn pins_now(env: &Env, git: &[(Target, String)]) -> Vec<LockedGit> {
    git.iter()
        .map(|(target, rev)| {
            let commit = crate::observe::workspace::open_repo(&env.path_of(target))
                .ok()
                .and_then(|r| {
                    r.head()
                        .ok()?
                        .peel_to_commit()
                        .ok()
                        .map(|c| c.id().to_string())
                })
                .unwrap_or_default();
            LockedGit {
                name: target.name().to_owned(),
                rev: rev.clone(),
                commit,
            }
        })
        .collect()
}

fn git_change(before: &[LockedGit], now: &[LockedGit]) -> String {
    now.iter()
        .filter(|p| !before.contains(p))
        .map(|p| {
            format!(
                "{} is at {}",
                p.name,
                comfyprov_core::plan::short(&p.commit)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Write the lock unless the file already holds these bytes; whether it wrote.
fn write_lock(spec: &PythonSpec, lock: &Lock) -> Result<bool, StepError> {
    let path = &spec.lock_file.path;
    let old = crate::fsutil::read_regular_nofollow(path).ok();
    // The model entries after the resolution are kept as they are.
    let models = old
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(comfyprov_core::lock::parse_models)
        .and_then(Result::ok)
        .unwrap_or_default();
    let text = comfyprov_core::lock::join_models(&lock.render(), &models);
    if old.is_some_and(|b| b == text.as_bytes()) {
        return Ok(false);
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| StepError::io("cannot write", path, e))?;
    Ok(true)
}

/// Packages served by torch's own wheel index, which gives no upload dates: exempt from
/// `exclude_newer` (uv drops a file without a date otherwise). They are pinned by torch's version.
const TORCH_INDEX_PACKAGES: [&str; 5] = [
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "pytorch-triton",
];

/// The index options, for resolving on the host (`in_container` false: find-links folders as
/// they are) or syncing in the one-off container (find-links folders where they are mounted; no
/// date cut-off, the pins are exact).
fn index_args(spec: &PythonSpec, in_container: bool) -> Vec<String> {
    let mut args = Vec::new();
    if spec.offline {
        args.push("--no-index".to_owned());
    }
    if let Some(i) = &spec.index_url {
        args.extend(["--index-url".to_owned(), i.clone()]);
    }
    // Earlier extra indexes are searched first: torch's own index before the others.
    let torch_index = spec.torch.as_ref().and_then(|t| t.index.clone());
    for i in torch_index.iter().chain(&spec.extra_index_urls) {
        args.extend(["--extra-index-url".to_owned(), i.clone()]);
    }
    if torch_index.is_some() {
        // torch's index also mirrors numpy, pillow, the nvidia-* libraries…, without dates:
        // take each package's best version across the indexes (torch's own index is trusted,
        // and torch itself is pinned) instead of stopping at the first index that names it.
        args.extend([
            "--index-strategy".to_owned(),
            "unsafe-best-match".to_owned(),
        ]);
    }
    for (n, f) in spec.find_links.iter().enumerate() {
        let at = match f {
            FindLinks::Url(u) => u.clone(),
            FindLinks::Dir(_) if in_container => find_links_mount(n),
            FindLinks::Dir(d) => absolute(&d.path).display().to_string(),
        };
        args.extend(["--find-links".to_owned(), at]);
    }
    if let Some(d) = spec.exclude_newer.as_ref().filter(|_| !in_container) {
        args.extend(["--exclude-newer".to_owned(), d.clone()]);
        if torch_index.is_some() {
            for p in TORCH_INDEX_PACKAGES {
                args.extend(["--exclude-newer-package".to_owned(), format!("{p}=false")]);
            }
        }
    }
    args
}

fn find_links_mount(n: usize) -> String {
    format!("/comfyprov-find-links/{n}")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// `uv pip compile` of every input at once; the packages, or the conflict explained.
fn resolve(
    env: &Env,
    uv: &Uv,
    spec: &PythonSpec,
    inputs: &Inputs,
) -> Result<Vec<Package>, StepError> {
    let comfy = env.comfyui();
    let work = state_dir(env, "python")?;
    // The manifest's own requirements: torch (pinned: a node asking for another is a
    // conflict, never an upgrade) and the extra packages; the constraints beside them.
    let mut extras = String::new();
    let mut constraints = String::new();
    if let Some(t) = &spec.torch {
        extras.push_str(&format!("torch=={}\n", t.version));
        constraints.push_str(&format!("torch=={}\n", t.version));
    }
    for p in &spec.packages {
        extras.push_str(&format!("{p}\n"));
    }
    for c in &spec.constraints {
        constraints.push_str(&format!("{c}\n"));
    }
    let extras_file = work.join("manifest.in");
    let constraints_file = work.join("constraints.txt");
    for (path, text) in [(&extras_file, &extras), (&constraints_file, &constraints)] {
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
            .map_err(|e| StepError::io("cannot write", path, e))?;
    }
    let mut cmd = std::process::Command::new(&uv.path);
    cmd.args([
        "pip",
        "compile",
        "--no-config",
        "--quiet",
        "--generate-hashes",
        "--no-header",
        "--no-annotate",
        "--python-version",
        &spec.version,
        "--python-platform",
        &spec.platform,
    ]);
    for f in &inputs.files {
        cmd.arg(comfy.join(&f.path));
    }
    cmd.arg(&extras_file)
        .arg("--constraint")
        .arg(&constraints_file);
    cmd.args(index_args(spec, false));
    let out = uv::run(&mut cmd, RESOLVE_TIMEOUT)
        .map_err(|e| StepError::new(format!("`uv pip compile` did not finish: {e}")))?;
    if !out.success {
        return Err(conflict(env, spec, inputs, &out.stderr));
    }
    lock::parse_compiled(&out.stdout).map_err(|e| {
        StepError::new(format!("uv's resolution cannot be locked: {e}"))
            .help("pin that requirement to a released version from an index")
    })
}

/// uv's failure, with the requirement lines it involves and where each comes from.
fn conflict(env: &Env, spec: &PythonSpec, inputs: &Inputs, stderr: &str) -> StepError {
    let explanation: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("warning:"))
        .collect();
    let text = explanation.join("\n").to_lowercase();
    let words: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|w| !w.is_empty())
        .map(normalize)
        .collect();
    let named = |line: &str| lock::requirement_name(line).filter(|n| words.contains(n));
    // Every requirement line that names a package uv's explanation names.
    let mut sides: Vec<String> = Vec::new();
    let comfy = env.comfyui();
    for f in &inputs.files {
        let Ok(bytes) = crate::fsutil::read_regular(&comfy.join(&f.path)) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            if named(line).is_some() {
                sides.push(format!("{}: {}", f.label(), line.trim()));
            }
        }
    }
    if let Some(t) = &spec.torch
        && words.iter().any(|w| w == "torch")
    {
        sides.push(format!(
            "comfy.toml [python] torch: torch=={} (protected: never replaced for a node)",
            t.version
        ));
    }
    for (key, list) in [
        ("packages", &spec.packages),
        ("constraints", &spec.constraints),
    ] {
        for r in list.iter().filter(|r| named(r).is_some()) {
            sides.push(format!("comfy.toml [python] {key}: {r}"));
        }
    }
    let unsatisfiable = text.contains("no solution found") || text.contains("unsatisfiable");
    let tail = &explanation[explanation.len().saturating_sub(TAIL)..];
    let uv_says = crate::secret::mask_tokens(&tail.join("\n    "));
    if unsatisfiable {
        let sides = if sides.is_empty() {
            String::new()
        } else {
            format!("\n    {}", sides.join("\n    "))
        };
        StepError::new(format!(
            "the Python requirements conflict; nothing was installed and the running server is untouched:{sides}\n  uv explains:\n    {uv_says}"
        ))
        .help("pin a version both sides accept (`[python] constraints`), change the node's rev, or remove the node; then run apply again")
    } else {
        StepError::new(format!(
            "resolving the Python requirements failed; nothing was installed and the running server is untouched:\n    {uv_says}"
        ))
        .help("check the index settings in [python] (and the network), then run apply again")
    }
}

/// The sync step.
pub(super) fn sync(
    env: &Env,
    spec: &PythonSpec,
    image: &str,
    packages: Option<&[Package]>,
) -> Exec {
    let packages: Vec<Package> = match packages {
        Some(p) => p.to_vec(),
        None => match lock_state(&spec.lock_file.path, None) {
            LockState::Present(l) => l.packages,
            LockState::Missing => {
                return Err(StepError::new(format!(
                    "{} is missing: the lock step before it did not write it",
                    spec.lock_file.shown
                )));
            }
            LockState::Unreadable { error } => {
                return Err(StepError::new(format!(
                    "{} cannot be read: {error}",
                    spec.lock_file.shown
                )));
            }
        },
    };
    let wanted = Lock::new(Inputs::new(spec, Vec::new()), Vec::new(), packages);
    let env_dir = env.comfyui().join(&spec.env);
    let (create, before) = env_now(&env_dir, spec, image)?;
    if !create && lock::changes(&before, &wanted).is_empty() {
        return Ok(Outcome::AlreadyDone {
            why: format!("{}/ matches {}", spec.env, spec.lock_file.shown),
        });
    }
    let uv = uv::find()?;
    let placed = uv::place(&uv, &env.workspace)?;
    let req = state_dir(env, "python")?.join("sync.txt");
    crate::fsutil::write_atomic(&req, wanted.requirements().as_bytes(), 0o644)
        .map_err(|e| StepError::io("cannot write", &req, e))?;
    // uv's download cache: the workspace's own, or one shared by workspaces (and CI runs) when
    // COMFYPROV_UV_CACHE names a folder.
    let cache = match std::env::var_os("COMFYPROV_UV_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = absolute(Path::new(&dir));
            std::fs::create_dir_all(&dir).map_err(|e| StepError::io("cannot create", &dir, e))?;
            dir
        }
        None => state_dir(env, "cache/uv")?,
    };
    // The container gets uv and the requirements read-only and only uv's cache writable under
    // `.comfyprov/`: nothing it plants there is on a path comfyprov writes.
    let uv_in = format!("{STATE_MOUNT}/uv");
    let req_in = format!("{STATE_MOUNT}/sync.txt");
    let env_in = format!("{CONTAINER_ROOT}/{}", spec.env);
    let mut mounts = vec![
        bind(&env.comfyui(), CONTAINER_ROOT, false),
        bind(&placed, &uv_in, true),
        bind(&req, &req_in, true),
        bind(&cache, &format!("{STATE_MOUNT}/cache"), false),
    ];
    for (n, f) in spec.find_links.iter().enumerate() {
        if let FindLinks::Dir(d) = f {
            mounts.push(bind(&absolute(&d.path), &find_links_mount(n), true));
        }
    }
    let name = sync_container_name(&env.workspace);
    let mut runs: Vec<Vec<String>> = Vec::new();
    if create {
        runs.push(vec![
            uv_in.clone(),
            "venv".into(),
            "--no-config".into(),
            "--clear".into(),
            "--python".into(),
            spec.version.clone(),
            env_in.clone(),
        ]);
    }
    let mut sync = vec![
        uv_in,
        "pip".into(),
        "sync".into(),
        "--no-config".into(),
        "--python".into(),
        format!("{env_in}/bin/python"),
    ];
    if wanted.packages.iter().all(|p| !p.hashes.is_empty()) {
        sync.push("--require-hashes".into());
    }
    sync.extend(index_args(spec, true));
    sync.push(req_in);
    runs.push(sync);
    let mut env_vars = vec![
        format!("UV_CACHE_DIR={STATE_MOUNT}/cache"),
        // The cache and the environment are different mounts: hard links cannot cross them.
        "UV_LINK_MODE=copy".to_owned(),
        // A standalone CPython, when the image has no Python of this version, goes into the
        // workspace beside the environment, where the server's container finds it too.
        format!("UV_PYTHON_INSTALL_DIR={CONTAINER_ROOT}/.python"),
        "UV_NO_PROGRESS=1".to_owned(),
    ];
    host_network_settings(&mut env_vars, &mut mounts);
    block_on(async {
        let docker = docker(SYNC_TIMEOUT).await?;
        if docker.inspect_image(image).await.is_err() {
            return Err(StepError::new(format!(
                "image `{image}` is not present locally: the environment is built inside it"
            ))
            .help(format!(
                "pull or build it first (`docker pull {image}`), then run apply again"
            )));
        }
        for cmd in runs {
            run_oneoff(&docker, &name, image, cmd, env_vars.clone(), mounts.clone()).await?;
        }
        Ok(())
    })?;
    // The environment is in the container-writable `ComfyUI/`: never written through a link.
    let marker = crate::fsutil::real_dir(&env.comfyui(), Path::new(&spec.env))
        .map_err(|e| StepError::io("cannot write into", &env_dir, e))?
        .join(ENV_MARKER);
    let bytes = serde_json::to_vec(&EnvMarker {
        image: image.to_owned(),
    })
    .map_err(|e| StepError::new(e.to_string()))?;
    crate::fsutil::write_atomic(&marker, &bytes, 0o644)
        .map_err(|e| StepError::io("cannot write", &marker, e))?;
    let (still_create, after) = env_now(&env_dir, spec, image)?;
    let left = lock::changes(&after, &wanted);
    if still_create || !left.is_empty() {
        return Err(StepError::new(format!(
            "uv finished, but {}/ still differs from the lock: {}",
            spec.env,
            left.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let done = lock::changes(&before, &wanted);
    let shown: Vec<String> = done.iter().take(8).map(ToString::to_string).collect();
    let more = done.len().saturating_sub(shown.len());
    Ok(Outcome::Done {
        detail: Some(format!(
            "{}{} change{}{}{}",
            if create { "created; " } else { "" },
            done.len(),
            if done.len() == 1 { "" } else { "s" },
            if shown.is_empty() {
                String::new()
            } else {
                format!(": {}", shown.join(", "))
            },
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )),
    })
}

/// Where the host reaches indexes through a TLS-inspecting proxy, it trusts an extra CA
/// (`SSL_CERT_FILE`): the sync container gets that bundle (read-only) and uv is pointed at it, as
/// uv on the host is. Proxy variables are passed on when they carry no credentials (the
/// container's configuration must not hold a secret).
fn host_network_settings(env: &mut Vec<String>, mounts: &mut Vec<Mount>) {
    if let Some(bundle) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from)
        && crate::fsutil::read_regular(&bundle).is_ok()
    {
        mounts.push(bind(&absolute(&bundle), CA_MOUNT, true));
        env.push(format!("SSL_CERT_FILE={CA_MOUNT}"));
    }
    for key in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        if let Ok(v) = std::env::var(key)
            && comfyprov_core::manifest::validate::credentials(&v).is_none()
        {
            env.push(format!("{key}={v}"));
        }
    }
}

/// Where the host's CA bundle is mounted in the sync container.
const CA_MOUNT: &str = "/comfyprov-ca-certificates.pem";

/// Whether the environment must be made afresh, and what it holds now.
fn env_now(
    env_dir: &Path,
    spec: &PythonSpec,
    image: &str,
) -> Result<(bool, BTreeMap<String, String>), StepError> {
    match env_state(env_dir, spec) {
        EnvState::Missing => Ok((true, BTreeMap::new())),
        EnvState::Unreadable { error } => Err(StepError::new(format!(
            "the environment cannot be read: {error}"
        ))),
        EnvState::Present {
            python,
            built_for,
            packages,
        } => {
            let same = built_for.as_deref() == Some(image) && spec.made_with(python.as_deref());
            Ok((!same, if same { packages } else { BTreeMap::new() }))
        }
    }
}

/// `<workspace>/.comfyprov/<rel>`, a real folder (see [`crate::fsutil::real_dir`]).
fn state_dir(env: &Env, rel: &str) -> Result<PathBuf, StepError> {
    let path = Path::new(".comfyprov").join(rel);
    crate::fsutil::real_dir(&env.workspace, &path)
        .map_err(|e| StepError::io("cannot create", &env.workspace.join(&path), e))
}

/// One name per workspace, so that a leftover from a killed run is found and removed.
fn sync_container_name(workspace: &Path) -> String {
    let digest = crate::observe::sha256_hex(absolute(workspace).as_os_str().as_encoded_bytes());
    format!("comfyprov-python-sync-{}", &digest[..12])
}

fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        source: Some(source.display().to_string()),
        target: Some(target.to_owned()),
        typ: Some(MountTypeEnum::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// Run `cmd` in a one-off container and remove it; its output's tail in the error when it
/// fails. A container of that name left by a killed run is removed first.
async fn run_oneoff(
    docker: &bollard::Docker,
    name: &str,
    image: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    mounts: Vec<Mount>,
) -> Result<(), StepError> {
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_container(name, Some(remove.clone())).await;
    let shown = format!("uv {}", cmd[1..3].join(" "));
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                entrypoint: Some(vec![cmd[0].clone()]),
                cmd: Some(cmd[1..].to_vec()),
                env: Some(env),
                working_dir: Some(CONTAINER_ROOT.to_owned()),
                labels: Some([("comfyprov.python-sync".to_owned(), "1".to_owned())].into()),
                host_config: Some(HostConfig {
                    mounts: Some(mounts),
                    // The index may be on the host's loopback (a mirror, a wheelhouse server).
                    network_mode: Some("host".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| api(&e))?;
    let result = async {
        docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| api(&e))?;
        let mut wait = docker.wait_container(name, None::<WaitContainerOptions>);
        let mut code = None;
        while let Some(r) = wait.next().await {
            match r {
                Ok(w) => code = Some(w.status_code),
                // A non-zero exit arrives as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                    code = Some(c);
                }
                Err(e) => return Err(api(&e)),
            }
        }
        if code == Some(0) {
            return Ok(());
        }
        let mut log = String::new();
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: TAIL.to_string(),
            ..Default::default()
        };
        let _ = crate::verify::for_each_frame(docker, name, options, |f| log.push_str(f)).await;
        let log = crate::secret::mask_tokens(log.trim_end());
        Err(StepError::new(format!(
            "`{shown}` in a one-off container from {image} exited with {}; its last lines:\n    {}",
            code.map_or_else(|| "no code".to_owned(), |c| c.to_string()),
            log.lines().collect::<Vec<_>>().join("\n    ")
        ))
        .help("fix the cause (an index that cannot be reached, a package without a wheel for this platform), then run apply again: the sync starts over and converges"))
    }
    .await;
    let _ = docker.remove_container(name, Some(remove)).await;
    result
}
