//! The container, read from the Docker Engine API with bollard: whether it exists, its state,
//! health, image, start time and the labels comfyprov puts on what it creates.
//!
//! The daemon is found like the docker CLI finds it (`DOCKER_HOST`, else the local socket) and
//! the API version is negotiated. When it cannot be reached, the state says why in one line:
//! `plan` still shows the workspace.

use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;

use crate::error::ObserveError;
pub use comfyprov_core::observed::ContainerInfo;
pub use comfyprov_core::render::{LABEL_PROJECT, LABEL_SPEC};

/// How long to wait for the daemon before calling it unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to the daemon and negotiate the API version.
///
/// On a unix socket the daemon's version comes from `GET /_ping`'s `API-Version` header: bollard
/// negotiates with `GET /version`, which makes the daemon ask containerd and runc for their
/// versions and costs ~7 ms of its CPU on every run of `plan`.
pub async fn connect() -> Result<Docker, ObserveError> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_owned());
    if let Some(path) = host.strip_prefix("unix://") {
        let server = ping_api_version(path).map_err(|e| unreachable(&host, &e.to_string()))?;
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
        return Docker::connect_with_unix(&host, TIMEOUT.as_secs(), &version)
            .map(|d| d.with_timeout(TIMEOUT))
            .map_err(|e| describe(&e));
    }
    let docker = Docker::connect_with_defaults()
        .map_err(|e| describe(&e))?
        .with_timeout(TIMEOUT);
    docker.negotiate_version().await.map_err(|e| describe(&e))
}

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

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

fn unreachable(host: &str, cause: &str) -> ObserveError {
    ObserveError::Daemon {
        host: host.to_owned(),
        cause: cause.to_owned(),
    }
}

/// Why the daemon could not be used.
pub fn describe(e: &bollard::errors::Error) -> ObserveError {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_HOST.to_owned());
    unreachable(&host, &innermost_cause(e))
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

/// Inspect the container named `name`: `Ok(None)` when there is none.
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<ContainerInfo>, ObserveError> {
    let info = match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(e) => return Err(describe(&e)),
    };
    let state = info.state.unwrap_or_default();
    let labels = info
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let id = info.id.unwrap_or_default();
    Ok(Some(ContainerInfo {
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
        image: info.config.and_then(|c| c.image).unwrap_or_default(),
        image_id: info.image.unwrap_or_default(),
        started_ns: state
            .started_at
            .as_deref()
            .filter(|s| !s.starts_with("0001-01-01"))
            .and_then(crate::fsutil::parse_rfc3339_ns),
        finished_ns: state
            .finished_at
            .as_deref()
            .filter(|s| !s.starts_with("0001-01-01"))
            .and_then(crate::fsutil::parse_rfc3339_ns),
        started_at: state.started_at.filter(|s| !s.starts_with("0001-01-01")),
        project_label: labels.get(LABEL_PROJECT).cloned(),
        spec: labels.get(LABEL_SPEC).cloned(),
    }))
}

/// A small single-threaded runtime for one command's Docker and HTTP calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, ObserveError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ObserveError::Runtime(e.to_string()))
}

/// Observe the container named `name`, or say why it could not be.
pub fn observe(name: &str) -> super::ContainerState {
    let not_observed = |e: ObserveError| super::ContainerState::NotObserved {
        reason: e.to_string(),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return not_observed(e),
    };
    rt.block_on(async {
        let docker = match connect().await {
            Ok(d) => d,
            Err(e) => return not_observed(e),
        };
        match inspect(&docker, name).await {
            Ok(Some(info)) => super::ContainerState::Present(Box::new(info)),
            Ok(None) => super::ContainerState::Missing,
            Err(e) => not_observed(e),
        }
    })
}
