//! Executors for the container, through the Docker Engine API (bollard): create, start,
//! recreate, restart, replace.
//!
//! Before the server is started in any way, two gates: in login mode `login/PASSWORD` must verify
//! the secret (ComfyUI-Login without it takes an empty token and lets the first visitor choose
//! the password), and with `gpu.mode = "nvidia"` the daemon must have the NVIDIA runtime. The
//! container is made from the same [`RunSpec`] as the compose file.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HealthConfig, HostConfig, Mount, MountTypeEnum,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};

use super::{Ctx, Exec, Failure};
use crate::manifest::AuthSpec;
use crate::observe::container::{connect, describe};
use crate::observe::login::{HashState, PasswordFile};
use crate::render::compose::{
    HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD, HEALTH_TIMEOUT,
};
use crate::render::spec::{RunSpec, container_port, labels};
use crate::report::{Outcome, Progress, StepId};

/// Seconds ComfyUI gets to stop before it is killed.
const STOP_TIMEOUT: i32 = 10;

fn spec(ctx: &Ctx) -> Result<RunSpec, Failure> {
    RunSpec::new(ctx.desired, &ctx.desired.workspace.path)
        .ok_or_else(|| Failure::new("the manifest has no [container]"))
}

/// Run an async body on a small runtime of its own.
pub(super) fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    crate::observe::container::runtime()
        .map_err(Failure::new)?
        .block_on(f)
}

/// How long a request may take when changing things: stops and restarts wait up to
/// `STOP_TIMEOUT` for ComfyUI, and creating may pull an image, so more than observation's.
pub(super) const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection for changes, whose requests may take up to `timeout`.
pub(super) async fn docker(timeout: Duration) -> Result<Docker, Failure> {
    connect()
        .await
        .map(|d| d.with_timeout(timeout))
        .map_err(|why| {
            Failure::new(why)
                .help("start the Docker daemon or fix DOCKER_HOST, then run apply again")
        })
}

pub(super) fn api(e: &bollard::errors::Error) -> Failure {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            Failure::new(message.trim().to_owned())
        }
        e => Failure::new(describe(e)),
    }
}

/// In login mode, refuse to start a server whose `login/PASSWORD` does not verify the secret.
fn password_gate(ctx: &Ctx) -> Result<(), Failure> {
    if !matches!(ctx.desired.auth, AuthSpec::Login(_)) {
        return Ok(());
    }
    let (_, pw) = crate::observe::login::observe(ctx.desired, &ctx.comfyui());
    match pw.file {
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        } => Ok(()),
        _ => Err(Failure::new(
            "login/PASSWORD does not verify the secret: ComfyUI-Login would accept an empty token, so the server is not started",
        )
        .help("fix the password step above, then run apply again")),
    }
}

/// The image must be present; where a registry is reachable it is pulled, with progress.
async fn ensure_image(
    ctx: &Ctx<'_>,
    id: StepId,
    docker: &Docker,
    image: &str,
) -> Result<(), Failure> {
    use futures_util::StreamExt;
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => return Err(api(&e)),
    }
    let mut pull = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    // Per layer: bytes downloaded, its size, and whether it is complete.
    let mut layers: HashMap<String, (u64, u64, bool)> = HashMap::new();
    while let Some(item) = pull.next().await {
        let info = item.map_err(|e| {
            Failure::new(format!(
                "image `{image}` is not present locally and cannot be pulled: {}",
                api(&e).cause
            ))
            .help(format!(
                "build or load it on this host (`docker build -t {image} .`, `docker load`), or check the registry"
            ))
        })?;
        let (Some(layer), Some(status)) = (info.id, info.status) else {
            continue;
        };
        // `Pulling from library/x` also carries an id (the tag): not a layer.
        if status.starts_with("Pulling from") {
            continue;
        }
        let entry = layers.entry(layer).or_default();
        if let Some(d) = info.progress_detail.filter(|_| status == "Downloading") {
            entry.0 = d
                .current
                .and_then(|c| u64::try_from(c).ok())
                .unwrap_or(entry.0);
            entry.1 = d
                .total
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(entry.1);
        }
        if matches!(status.as_str(), "Pull complete" | "Already exists") {
            entry.0 = entry.1;
            entry.2 = true;
        }
        ctx.reporter.on_progress(
            id,
            Progress::Pull {
                layers_done: layers.values().filter(|l| l.2).count(),
                layers: layers.len(),
                bytes_done: layers.values().map(|l| l.0).sum(),
                bytes_total: layers.values().map(|l| l.1).sum(),
            },
        );
    }
    Ok(())
}

/// NVIDIA GPUs requested: the daemon must have the NVIDIA runtime.
async fn gpu_preflight(docker: &Docker, spec: &RunSpec) -> Result<(), Failure> {
    if spec.gpu.is_none() {
        return Ok(());
    }
    let info = docker.info().await.map_err(|e| api(&e))?;
    let nvidia = info
        .runtimes
        .as_ref()
        .is_some_and(|r| r.keys().any(|k| k.contains("nvidia")));
    if nvidia {
        return Ok(());
    }
    Err(Failure::new(
        "gpu.mode is \"nvidia\", but the Docker daemon has no NVIDIA runtime",
    )
    .help("install the NVIDIA Container Toolkit and restart dockerd, or set `mode = \"none\"` in [gpu]"))
}

/// Seconds as the API's nanoseconds.
fn secs(s: u64) -> i64 {
    (s * 1_000_000_000) as i64
}

fn create_body(ctx: &Ctx, spec: &RunSpec) -> ContainerCreateBody {
    let port = container_port();
    let restart = match spec.restart.as_str() {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.clone()),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels(ctx.desired, spec).into_iter().collect()),
        exposed_ports: Some(HashMap::from([(port.clone(), HashMap::new())])),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                port,
                Some(vec![PortBinding {
                    host_ip: Some(spec.listen.clone()),
                    host_port: Some(spec.port.to_string()),
                }]),
            )])),
            mounts: Some(vec![Mount {
                target: Some(spec.working_dir.clone()),
                source: Some(spec.mount.clone()),
                typ: Some(MountTypeEnum::BIND),
                ..Default::default()
            }]),
            device_requests: spec.gpu.as_ref().map(|g| {
                vec![DeviceRequest {
                    driver: Some("nvidia".to_owned()),
                    count: g.count,
                    device_ids: (!g.device_ids.is_empty()).then(|| g.device_ids.clone()),
                    capabilities: Some(vec![vec!["gpu".to_owned()]]),
                    options: None,
                }]
            }),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            // An init process as PID 1 passes SIGTERM on to Python, which as PID 1 would
            // ignore it: stops and restarts then take seconds instead of the full timeout.
            init: Some(true),
            ..Default::default()
        }),
        healthcheck: Some(HealthConfig {
            test: Some(spec.healthcheck.clone()),
            interval: Some(secs(HEALTH_INTERVAL)),
            timeout: Some(secs(HEALTH_TIMEOUT)),
            retries: Some(HEALTH_RETRIES as i64),
            start_period: Some(secs(HEALTH_START_PERIOD)),
            start_interval: None,
        }),
        ..Default::default()
    }
}

/// Everything that must hold before a container is created: checked before anything is
/// removed or created, so a failing gate leaves the old container in place.
async fn preflight(
    ctx: &Ctx<'_>,
    id: StepId,
    docker: &Docker,
    spec: &RunSpec,
) -> Result<(), Failure> {
    // Docker would create a missing bind source as an empty root-owned folder.
    if !ctx.comfyui().is_dir() {
        return Err(Failure::new(format!("{} does not exist", spec.mount))
            .help("provision ComfyUI first (see the steps above)"));
    }
    ensure_image(ctx, id, docker, &spec.image).await?;
    gpu_preflight(docker, spec).await?;
    password_gate(ctx)
}

/// Create the container and start it; call [`preflight`] first.
async fn create_and_start(
    ctx: &Ctx<'_>,
    docker: &Docker,
    spec: &RunSpec,
) -> Result<String, Failure> {
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(ctx.desired.project.clone()),
                ..Default::default()
            }),
            create_body(ctx, spec),
        )
        .await
        .map_err(|e| api(&e))?;
    docker
        .start_container(&ctx.desired.project, None::<StartContainerOptions>)
        .await
        .map_err(|e| api(&e))?;
    Ok(created.id.chars().take(12).collect())
}

async fn remove(ctx: &Ctx<'_>, docker: &Docker) -> Result<(), Failure> {
    let name = &ctx.desired.project;
    // A stop first lets ComfyUI exit cleanly; a container already stopped is fine.
    let _ = docker
        .stop_container(
            name,
            Some(StopContainerOptions {
                t: Some(STOP_TIMEOUT),
                ..Default::default()
            }),
        )
        .await;
    docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| api(&e))
}

pub(super) fn create(ctx: &Ctx, id: StepId) -> Exec {
    let spec = spec(ctx)?;
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        preflight(ctx, id, &docker, &spec).await?;
        let id = create_and_start(ctx, &docker, &spec).await?;
        Ok(Outcome::Done {
            detail: Some(format!("id {id}")),
        })
    })
}

pub(super) fn start(ctx: &Ctx) -> Exec {
    let spec = spec(ctx)?;
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        gpu_preflight(&docker, &spec).await?;
        password_gate(ctx)?;
        docker
            .start_container(&ctx.desired.project, None::<StartContainerOptions>)
            .await
            .map_err(|e| api(&e))?;
        Ok(Outcome::Done { detail: None })
    })
}

pub(super) fn recreate(ctx: &Ctx, id: StepId) -> Exec {
    let spec = spec(ctx)?;
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        preflight(ctx, id, &docker, &spec).await?;
        remove(ctx, &docker).await?;
        let id = create_and_start(ctx, &docker, &spec).await?;
        Ok(Outcome::Done {
            detail: Some(format!("id {id}")),
        })
    })
}

/// `--force`: the container in the way was not made by comfyprov.
pub(super) fn replace(ctx: &Ctx, id: StepId) -> Exec {
    recreate(ctx, id)
}

pub(super) fn restart(ctx: &Ctx) -> Exec {
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        password_gate(ctx)?;
        docker
            .restart_container(
                &ctx.desired.project,
                Some(RestartContainerOptions {
                    t: Some(STOP_TIMEOUT),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| api(&e))?;
        Ok(Outcome::Done { detail: None })
    })
}
