//! Executors for the container, through the Docker Engine API (bollard): create, start,
//! recreate, restart, replace.
//!
//! Before the server is started in any way, two gates: in login mode `login/PASSWORD` must verify
//! the secret (ComfyUI-Login without it takes an empty token and lets the first visitor choose
//! the password), and with `gpu.mode = "nvidia"` the daemon must have the NVIDIA runtime. The
//! container is made from the step's [`Container`], the run spec the compose file renders too.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HealthConfig, HostConfig, Mount, MountTypeEnum,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, RemoveContainerOptions, RenameContainerOptions,
    RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};

use super::{Env, Exec, StepError};
use crate::manifest::{AuthSpec, RestartPolicy as Restart};
use crate::observe::container::{connect, describe, inspect};
use crate::observe::login::{HashState, PasswordFile};
use crate::observed::Liveness;
use crate::plan::Guard;
use crate::render::Container;
use crate::render::spec::{
    HEALTH_INTERVAL, HEALTH_RETRIES, HEALTH_START_PERIOD, HEALTH_TIMEOUT, container_port,
};
use crate::report::{Outcome, Progress, StepId};

/// Seconds ComfyUI gets to stop before it is killed.
const STOP_TIMEOUT: i32 = 10;

/// Run an async body on a small runtime of its own.
pub(super) fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    crate::observe::container::runtime()
        .map_err(|e| StepError::new(e.to_string()))?
        .block_on(f)
}

/// How long a request may take when changing things: stops and restarts wait up to
/// `STOP_TIMEOUT` for ComfyUI, and creating may pull an image, so more than observation's.
pub(super) const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection for changes, whose requests may take up to `timeout`.
pub(super) async fn docker(timeout: Duration) -> Result<Docker, StepError> {
    connect()
        .await
        .map(|d| d.with_timeout(timeout))
        .map_err(|why| {
            StepError::new(why.to_string())
                .help("start the Docker daemon, or fix DOCKER_HOST or the docker context, then run apply again")
        })
}

pub(super) fn api(e: &bollard::errors::Error) -> StepError {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            StepError::new(message.trim().to_owned())
        }
        e => StepError::new(describe(e).to_string()),
    }
}

/// In login mode, refuse to start a server whose `login/PASSWORD` does not verify the secret.
fn password_gate(env: &Env, guard: &Guard) -> Result<(), StepError> {
    let Some(login) = &guard.login else {
        return Ok(());
    };
    let (_, pw) = crate::observe::login::observe(&AuthSpec::Login(login.clone()), &env.workspace);
    match pw.file {
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        } => Ok(()),
        _ => Err(StepError::new(
            "login/PASSWORD does not verify the secret: ComfyUI-Login would accept an empty token, so the server is not started",
        )
        .help("fix the password step above, then run apply again")),
    }
}

/// The image must be present; where a registry is reachable it is pulled, with progress.
async fn ensure_image(
    env: &Env<'_>,
    id: StepId,
    docker: &Docker,
    image: &str,
) -> Result<(), StepError> {
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
            StepError::new(format!(
                "image `{image}` is not present locally and cannot be pulled: {}",
                api(&e).cause()
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
        env.reporter.on_progress(
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
async fn gpu_preflight(docker: &Docker, guard: &Guard) -> Result<(), StepError> {
    if !guard.gpu {
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
    Err(StepError::new(
        "gpu.mode is \"nvidia\", but the Docker daemon has no NVIDIA runtime",
    )
    .help("install the NVIDIA Container Toolkit and restart dockerd, or set `mode = \"none\"` in [gpu]"))
}

/// Seconds as the API's nanoseconds.
fn secs(s: u64) -> i64 {
    (s * 1_000_000_000) as i64
}

/// The Docker API's rendering of the run spec (the compose file is the other one).
fn create_body(container: &Container) -> ContainerCreateBody {
    let spec = &container.spec;
    let port = container_port();
    let restart = match spec.restart {
        Restart::No => RestartPolicyNameEnum::NO,
        Restart::Always => RestartPolicyNameEnum::ALWAYS,
        Restart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.clone()),
        working_dir: Some(spec.working_dir.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            container
                .labels()
                .into_iter()
                .chain(container.compose_labels())
                .collect(),
        ),
        exposed_ports: Some(HashMap::from([(port.clone(), HashMap::new())])),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                port,
                Some(vec![PortBinding {
                    host_ip: Some(spec.listen.clone()),
                    host_port: Some(spec.port.to_string()),
                }]),
            )])),
            mounts: Some(
                std::iter::once(Mount {
                    target: Some(spec.working_dir.clone()),
                    source: Some(spec.mount.clone()),
                    typ: Some(MountTypeEnum::BIND),
                    ..Default::default()
                })
                .chain(spec.mounts.iter().map(|m| Mount {
                    target: Some(m.target.clone()),
                    source: Some(m.source.clone()),
                    typ: Some(MountTypeEnum::BIND),
                    read_only: m.read_only.then_some(true),
                    ..Default::default()
                }))
                .collect(),
            ),
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
    env: &Env<'_>,
    id: StepId,
    docker: &Docker,
    container: &Container,
    guard: &Guard,
) -> Result<(), StepError> {
    // Docker would create a missing bind source as an empty root-owned folder.
    if !std::path::Path::new(&container.spec.mount).is_dir() {
        return Err(
            StepError::new(format!("{} does not exist", container.spec.mount))
                .help("provision ComfyUI first (see the steps above)"),
        );
    }
    ensure_image(env, id, docker, &container.spec.image).await?;
    gpu_preflight(docker, guard).await?;
    password_gate(env, guard)
}

/// Create the container (not started) under `name`; call [`preflight`] first.
async fn create_as(
    docker: &Docker,
    container: &Container,
    name: &str,
) -> Result<String, StepError> {
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            create_body(container),
        )
        .await
        .map_err(|e| api(&e))?;
    Ok(created.id.chars().take(12).collect())
}

/// Create the container and start it; call [`preflight`] first.
async fn create_and_start(docker: &Docker, container: &Container) -> Result<String, StepError> {
    let id = create_as(docker, container, &container.name).await?;
    docker
        .start_container(&container.name, None::<StartContainerOptions>)
        .await
        .map_err(|e| api(&e))?;
    Ok(id)
}

/// Stop `name`, letting ComfyUI exit cleanly; one already stopped (or gone) is fine.
async fn stop(docker: &Docker, name: &str) {
    let _ = docker
        .stop_container(
            name,
            Some(StopContainerOptions {
                t: Some(STOP_TIMEOUT),
                ..Default::default()
            }),
        )
        .await;
}

/// Stop (cleanly, up to the stop timeout) and remove the container `name`.
pub(crate) async fn remove(docker: &Docker, name: &str) -> Result<(), StepError> {
    stop(docker, name).await;
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

pub(super) fn create(env: &Env, id: StepId, container: &Container, guard: &Guard) -> Exec {
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        // The plan saw none; one that appeared since is not ours to replace unasked.
        if inspect(&docker, &container.name)
            .await
            .map_err(|e| StepError::new(e.to_string()))?
            .is_some()
        {
            return Err(StepError::new(format!(
                "container {} appeared after the plan was made",
                container.name
            ))
            .help("run `comfyprov plan` again to see what it is"));
        }
        preflight(env, id, &docker, container, guard).await?;
        let id = create_and_start(&docker, container).await?;
        Ok(Outcome::Done {
            detail: Some(format!("id {id}")),
        })
    })
}

pub(super) fn start(env: &Env, name: &str, guard: &Guard) -> Exec {
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        gpu_preflight(&docker, guard).await?;
        password_gate(env, guard)?;
        docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(|e| api(&e))?;
        Ok(Outcome::Done { detail: None })
    })
}

/// Replace the container with one made from the step's spec: its spec changed, or (`--force`)
/// comfyprov did not create it. The new one is created under a temporary name first and started
/// only once the old one is stopped; if it does not start (a port taken since the plan, say), it
/// is removed and the old one is started again, so a failed recreate leaves the server as it was.
pub(super) fn recreate(env: &Env, id: StepId, container: &Container, guard: &Guard) -> Exec {
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        preflight(env, id, &docker, container, guard).await?;
        let name = &container.name;
        let temp = format!("{name}-comfyprov-new");
        // A leftover of a recreate that was killed midway.
        let _ = remove(&docker, &temp).await;
        let new_id = create_as(&docker, container, &temp).await?;
        let was_running = inspect(&docker, name)
            .await
            .ok()
            .flatten()
            .is_some_and(|i| i.liveness() != Liveness::Stopped);
        stop(&docker, name).await;
        if let Err(e) = docker
            .start_container(&temp, None::<StartContainerOptions>)
            .await
        {
            let _ = remove(&docker, &temp).await;
            let back = if was_running {
                match docker
                    .start_container(name, None::<StartContainerOptions>)
                    .await
                {
                    Ok(()) => "the old container was started again",
                    Err(_) => "the old container could not be started again",
                }
            } else {
                "the old container is left as it was (stopped)"
            };
            return Err(StepError::new(format!(
                "the new container did not start ({}); {back}",
                api(&e).cause()
            ))
            .help("run `comfyprov plan` to see what holds it back, then apply again"));
        }
        remove(&docker, name).await?;
        docker
            .rename_container(&temp, RenameContainerOptions { name: name.clone() })
            .await
            .map_err(|e| api(&e))?;
        Ok(Outcome::Done {
            detail: Some(format!("id {new_id}")),
        })
    })
}

pub(super) fn restart(env: &Env, name: &str, guard: &Guard) -> Exec {
    block_on(async {
        let docker = docker(CHANGE_TIMEOUT).await?;
        password_gate(env, guard)?;
        docker
            .restart_container(
                name,
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
