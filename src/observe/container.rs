//! The container, read from the Docker Engine API with bollard: whether it exists, its state,
//! health, image, start time and the labels comfyprov puts on what it creates.
//!
//! The daemon is found like the docker CLI finds it (`DOCKER_HOST`, the docker context, else the
//! local socket: see [`super::endpoint`]) and
//! the API version is negotiated. When it cannot be reached, the state says why in one line:
//! `plan` still shows the workspace.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, RestartPolicyNameEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use comfyprov_core::manifest::RestartPolicy;
use comfyprov_core::observed::PortState;
use comfyprov_core::render::RunSpec;
use comfyprov_core::render::spec::{BindMount, CONTAINER_ROOT, GpuRequest, container_port};

use crate::error::ObserveError;
pub use comfyprov_core::observed::ContainerInfo;
pub use comfyprov_core::render::{LABEL_PROJECT, LABEL_SPEC};

/// How long to wait for the daemon before calling it unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to the daemon the docker CLI would use (see [`super::endpoint`]) and negotiate the
/// API version.
///
/// On a unix socket the daemon's version comes from `GET /_ping`'s `API-Version` header: bollard
/// negotiates with `GET /version`, which makes the daemon ask containerd and runc for their
/// versions and costs ~7 ms of its CPU on every run of `plan`.
pub async fn connect() -> Result<Docker, ObserveError> {
    connect_to(&super::endpoint::resolve()?).await
}

/// [`connect`] to an endpoint already resolved.
async fn connect_to(endpoint: &super::endpoint::Endpoint) -> Result<Docker, ObserveError> {
    let host = endpoint.host.as_str();
    tracing::debug!(target: "comfyprov::observe", docker = %endpoint, "connecting");
    if let Some(path) = host.strip_prefix("unix://") {
        let server = ping_api_version(path).map_err(|e| unreachable(&e.to_string()))?;
        let default = bollard::API_DEFAULT_VERSION;
        let version = match server {
            Some(v)
                if (v.major_version, v.minor_version)
                    < (default.major_version, default.minor_version) =>
            {
                v
            }
            _ => *default,
        };
        return Docker::connect_with_unix(host, TIMEOUT.as_secs(), &version)
            .map(|d| d.with_timeout(TIMEOUT))
            .map_err(|e| describe(&e));
    }
    let docker = if let Some(rest) = host.strip_prefix("ssh://") {
        let target = super::endpoint::SshTarget::parse(rest).map_err(|e| unreachable(&e))?;
        Docker::connect_with_custom_transport(
            super::endpoint::ssh_transport(target),
            Some("http://docker"),
            TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)
    } else {
        return Err(unreachable(
            "comfyprov speaks unix://, tcp:// (without TLS) and ssh://",
        ));
    }
    .map_err(|e| describe(&e))?
    .with_timeout(TIMEOUT);
    docker.negotiate_version().await.map_err(|e| describe(&e))
}

/// `GET /_ping` on a unix socket: the daemon's API version, if it says.
fn ping_api_version(path: &str) -> std::io::Result<Option<bollard::ClientVersion>> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(16 * 1024).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let version = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("api-version"))
        .and_then(|(_, v)| {
            let (major, minor) = v.trim().split_once('.')?;
            Some(bollard::ClientVersion {
                major_version: major.parse().ok()?,
                minor_version: minor.parse().ok()?,
            })
        });
    Ok(version)
}

fn unreachable(cause: &str) -> ObserveError {
    // Resolved again: cheap, and the same answer `connect` got.
    let host = super::endpoint::resolve()
        .map(|e| e.to_string())
        .unwrap_or_else(|_| super::endpoint::DEFAULT_HOST.to_owned());
    ObserveError::Daemon {
        host,
        cause: cause.to_owned(),
    }
}

/// Why the daemon could not be used.
pub fn describe(e: &bollard::errors::Error) -> ObserveError {
    unreachable(&innermost_cause(e))
}

/// The innermost cause of an error (`Connection refused`, `No such file`), which says the most;
/// the error itself when it has none.
pub fn innermost_cause(e: &dyn std::error::Error) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// Inspect the container named `name`: `Ok(None)` when there is none. Its state and labels;
/// [`observe`] also reads what it really is (`actual`).
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<ContainerInfo>, ObserveError> {
    Ok(inspect_raw(docker, name).await?.map(info))
}

async fn inspect_raw(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, ObserveError> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => Ok(Some(i)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(describe(&e)),
    }
}

fn info(raw: ContainerInspectResponse) -> ContainerInfo {
    let state = raw.state.unwrap_or_default();
    let labels = raw
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let id = raw.id.unwrap_or_default();
    let not_zero = |s: &Option<String>| s.clone().filter(|s| !s.starts_with("0001-01-01"));
    ContainerInfo {
        id: id.chars().take(12).collect(),
        status: state
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".to_owned()),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        image: raw.config.and_then(|c| c.image).unwrap_or_default(),
        image_id: raw.image.unwrap_or_default(),
        started_ns: not_zero(&state.started_at)
            .as_deref()
            .and_then(crate::fsutil::parse_rfc3339_ns),
        finished_ns: not_zero(&state.finished_at)
            .as_deref()
            .and_then(crate::fsutil::parse_rfc3339_ns),
        started_at: not_zero(&state.started_at),
        project_label: labels.get(LABEL_PROJECT).cloned(),
        spec: labels.get(LABEL_SPEC).cloned(),
        actual: None,
    }
}

/// What the container really is, in the run spec's terms. Its environment and entrypoint are
/// told apart from its image's (inspected too): a variable the image sets is not the
/// container's, unless the manifest names it.
async fn actual(
    docker: &Docker,
    raw: &ContainerInspectResponse,
    declared_env: &[String],
) -> Result<RunSpec, ObserveError> {
    let config = raw.config.clone().unwrap_or_default();
    let host = raw.host_config.clone().unwrap_or_default();
    let image = match raw.image.as_deref() {
        Some(id) => docker
            .inspect_image(id)
            .await
            .map_err(|e| describe(&e))?
            .config
            .unwrap_or_default(),
        None => Default::default(),
    };
    let image_env = image.env.unwrap_or_default();
    let env = config
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let declared = declared_env.iter().any(|d| d == k);
            (declared || !image_env.contains(&kv)).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let bindings = host
        .port_bindings
        .unwrap_or_default()
        .remove(&container_port())
        .flatten()
        .unwrap_or_default();
    let (listen, port) = match bindings.as_slice() {
        [b] => (
            b.host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".to_owned()),
            b.host_port
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
        ),
        other => (format!("{} bindings", other.len()), 0),
    };
    let mut binds: Vec<BindMount> = raw
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ == Some(bollard::models::MountPointTypeEnum::BIND))
        .map(|m| BindMount {
            source: m.source.unwrap_or_default(),
            target: m.destination.unwrap_or_default(),
            read_only: m.rw == Some(false),
        })
        .collect();
    binds.sort();
    // The workspace's mount, and the others; two at the workspace's place read as a mismatch.
    let at_root: Vec<&BindMount> = binds
        .iter()
        .filter(|b| b.target == CONTAINER_ROOT)
        .collect();
    let mount = match at_root.as_slice() {
        [one] => one.source.clone(),
        other => other
            .iter()
            .map(|b| b.source.clone())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut mounts: Vec<BindMount> = binds
        .into_iter()
        .filter(|b| b.target != CONTAINER_ROOT)
        .collect();
    // In the manifest's order: by container path.
    mounts.sort_by(|a, b| a.target.cmp(&b.target));
    let gpu = host
        .device_requests
        .unwrap_or_default()
        .into_iter()
        .find(|r| {
            r.driver.as_deref() == Some("nvidia")
                || r.capabilities
                    .iter()
                    .flatten()
                    .any(|c| c.iter().any(|c| c == "gpu"))
        })
        .map(|r| GpuRequest {
            device_ids: r.device_ids.unwrap_or_default(),
            count: r.count.filter(|c| *c != 0),
        });
    let restart = match host.restart_policy.and_then(|r| r.name) {
        Some(RestartPolicyNameEnum::ALWAYS) => RestartPolicy::Always,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => RestartPolicy::UnlessStopped,
        Some(RestartPolicyNameEnum::ON_FAILURE) => RestartPolicy::OnFailure,
        _ => RestartPolicy::No,
    };
    Ok(RunSpec {
        image: config.image.unwrap_or_default(),
        command: config.cmd.unwrap_or_default(),
        working_dir: config.working_dir.unwrap_or_default(),
        listen,
        port,
        mount,
        gpu,
        env,
        restart,
        healthcheck: config.healthcheck.and_then(|h| h.test).unwrap_or_default(),
        init: host.init == Some(true),
        mounts,
        entrypoint: (config.entrypoint != image.entrypoint)
            .then(|| config.entrypoint.unwrap_or_default()),
    })
}

/// A small single-threaded runtime for one command's Docker and HTTP calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, ObserveError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ObserveError::Runtime(e.to_string()))
}

/// Whether `listen:port` on this host can be published: free, or held by our own container
/// (`ours`); else who holds it (a container, by name, or another process).
/// `local`: the daemon runs on this machine (see [`super::endpoint::Endpoint::is_local`]).
async fn port_state(
    docker: &Docker,
    local: bool,
    listen: &str,
    port: u16,
    ours: bool,
) -> PortState {
    if ours {
        return PortState::Free;
    }
    let Ok(ip) = listen.parse::<std::net::IpAddr>() else {
        return PortState::Free;
    };
    // A remote daemon's ports are not this machine's: only its containers can be asked about.
    let bound = if local {
        std::net::TcpListener::bind((ip, port)).map(drop)
    } else {
        Err(std::io::ErrorKind::AddrInUse.into())
    };
    match bound {
        Ok(()) => PortState::Free,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let filters =
                std::collections::HashMap::from([("publish".to_owned(), vec![port.to_string()])]);
            let holder = docker
                .list_containers(Some(ListContainersOptions {
                    all: false,
                    filters: Some(filters),
                    ..Default::default()
                }))
                .await
                .ok()
                .and_then(|cs| cs.into_iter().next())
                .and_then(|c| c.names)
                .and_then(|n| n.into_iter().next())
                .map(|n| format!("container `{}`", n.trim_start_matches('/')));
            match holder {
                Some(holder) => PortState::Taken { holder },
                None if !local => PortState::Free,
                None => PortState::Taken {
                    holder: "another process on this host".to_owned(),
                },
            }
        }
        // Permission (a low port for a non-root user) and the rest: the daemon decides.
        Err(_) => PortState::Free,
    }
}

/// Observe the container named `name` (what it is included), or say why it could not be, and
/// whether the manifest's `listen:port` can be published. `declared_env` names the variables
/// the manifest sets.
pub fn observe(
    name: &str,
    declared_env: &[String],
    listen: &str,
    port: u16,
) -> (super::ContainerState, PortState) {
    let not_observed = |e: ObserveError| {
        (
            super::ContainerState::NotObserved {
                reason: e.to_string(),
            },
            PortState::Free,
        )
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return not_observed(e),
    };
    rt.block_on(async {
        let endpoint = match super::endpoint::resolve() {
            Ok(e) => e,
            Err(e) => return not_observed(e),
        };
        let local = endpoint.is_local();
        let docker = match connect_to(&endpoint).await {
            Ok(d) => d,
            Err(e) => return not_observed(e),
        };
        let raw = match inspect_raw(&docker, name).await {
            Ok(raw) => raw,
            Err(e) => return not_observed(e),
        };
        let Some(raw) = raw else {
            let port = port_state(&docker, local, listen, port, false).await;
            return (super::ContainerState::Missing, port);
        };
        let actual = match actual(&docker, &raw, declared_env).await {
            Ok(a) => a,
            Err(e) => return not_observed(e),
        };
        let mut info = info(raw);
        // Ours holds the port while it runs with it published there.
        let ours = info.liveness() != comfyprov_core::observed::Liveness::Stopped
            && actual.port == port
            && actual.listen == listen;
        info.actual = Some(actual);
        let port = port_state(&docker, local, listen, port, ours).await;
        (super::ContainerState::Present(Box::new(info)), port)
    })
}
