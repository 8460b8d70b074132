//! Which Docker daemon to talk to, decided the way the docker CLI decides it, so that
//! `DOCKER_HOST` and `docker context use` mean the same for comfyprov as for `docker`:
//!
//! 1. `DOCKER_HOST`, when set;
//! 2. else the context named by `DOCKER_CONTEXT`;
//! 3. else the `currentContext` of `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`);
//! 4. else the local socket.
//!
//! A context's endpoint is read from its metadata file,
//! `$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json` (the docker CLI's
//! `store.MetadataStore` layout), `Endpoints.docker.Host`.
//!
//! `ssh://[user@]host[:port]` endpoints are reached like the docker CLI reaches them: each
//! connection runs `ssh … -- host docker system dial-stdio` and speaks HTTP over its stdin and
//! stdout (see [`ssh_transport`]).

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ObserveError;

/// The local socket, when nothing says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Where the daemon is and what said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub from: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `DOCKER_HOST`.
    Env,
    /// A docker context; `by` says what chose it.
    Context { name: String, by: &'static str },
    /// Nothing was set: the local socket.
    Default,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = comfyprov_core::manifest::mask_url_credentials(&self.host);
        match &self.from {
            Source::Env => write!(f, "{host} (DOCKER_HOST)"),
            Source::Context { name, by } => write!(f, "{host} (docker context `{name}`, {by})"),
            Source::Default => write!(f, "{host}"),
        }
    }
}

impl Endpoint {
    /// Whether the daemon runs on this machine, so that its published ports are this machine's.
    pub fn is_local(&self) -> bool {
        let h = self.host.as_str();
        h.starts_with("unix://")
            || [
                "tcp://127.",
                "tcp://localhost",
                "tcp://[::1]",
                "http://127.",
                "http://localhost",
            ]
            .iter()
            .any(|p| h.starts_with(p))
    }
}

/// Decide which daemon to use. Errors name the context and the file that could not be used.
pub fn resolve() -> Result<Endpoint, ObserveError> {
    resolve_with(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn resolve_with(env: impl Fn(&str) -> Option<String>) -> Result<Endpoint, ObserveError> {
    if let Some(host) = env("DOCKER_HOST") {
        return Ok(Endpoint {
            host,
            from: Source::Env,
        });
    }
    let config_dir = env("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".docker")));
    let (name, by) = match env("DOCKER_CONTEXT") {
        Some(name) => (name, "DOCKER_CONTEXT"),
        None => match config_dir.as_ref().and_then(|d| current_context(d)) {
            Some(name) => (name, "docker context use"),
            None => {
                return Ok(Endpoint {
                    host: DEFAULT_HOST.to_owned(),
                    from: Source::Default,
                });
            }
        },
    };
    if name == "default" {
        return Ok(Endpoint {
            host: DEFAULT_HOST.to_owned(),
            from: Source::Context { name, by },
        });
    }
    let bad = |cause: String| ObserveError::Context {
        name: name.clone(),
        by,
        cause,
    };
    let Some(dir) = config_dir else {
        return Err(bad("neither DOCKER_CONFIG nor HOME is set".to_owned()));
    };
    let hash = comfyprov_core::digest::sha256_hex(name.as_bytes());
    let meta = dir.join("contexts/meta").join(&hash).join("meta.json");
    let text =
        crate::fsutil::read_regular(&meta).map_err(|e| bad(format!("{}: {e}", meta.display())))?;
    let host = context_host(&text)
        .ok_or_else(|| bad(format!("{} has no Endpoints.docker.Host", meta.display())))?;
    if dir.join("contexts/tls").join(&hash).join("docker").exists() {
        return Err(bad(
            "it uses TLS client certificates, which comfyprov does not speak; use an ssh:// or unix:// context".to_owned(),
        ));
    }
    Ok(Endpoint {
        host,
        from: Source::Context { name, by },
    })
}

fn current_context(config_dir: &std::path::Path) -> Option<String> {
    let text = crate::fsutil::read_regular(&config_dir.join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&text).ok()?;
    json.get("currentContext")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn context_host(meta: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(meta).ok()?;
    json.pointer("/Endpoints/docker/Host")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An `ssh://[user@]host[:port]` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// Parse the part after `ssh://`. A path or a password in the URL is refused, as by the
    /// docker CLI.
    pub fn parse(rest: &str) -> Result<SshTarget, String> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err("an ssh:// endpoint takes no path".to_owned());
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((user, h)) => {
                if user.contains(':') {
                    return Err(
                        "an ssh:// endpoint takes no password: use a key or ssh-agent".to_owned(),
                    );
                }
                (Some(user.to_owned()), h)
            }
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            // `[::1]:22`, `host:22`; a bare IPv6 address has more than one colon.
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("`{p}` is not a port"))?,
                ),
            ),
            _ => (hostport, None),
        };
        if host.is_empty() || host.starts_with('-') {
            return Err("an ssh:// endpoint needs a host".to_owned());
        }
        Ok(SshTarget {
            user,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// The ssh arguments, as the docker CLI's connection helper builds them.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            // Nothing to type: comfyprov runs unattended; a prompt would block forever.
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
            "-o".to_owned(),
            format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()),
        ];
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(str::to_owned));
        args
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Response = hyper::Response<hyper::body::Incoming>;

/// A bollard transport that runs `ssh … docker system dial-stdio` for each request and speaks
/// HTTP/1.1 over its pipes. One ssh per request keeps it simple and correct for streaming
/// answers; comfyprov makes a handful of requests per run.
pub fn ssh_transport(
    target: SshTarget,
) -> impl Fn(
    bollard::BollardRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, bollard::errors::Error>> + Send>,
> + Send
+ Sync {
    move |mut req: bollard::BollardRequest| {
        let target = target.clone();
        // hyper's connection API sends the URI as given and adds no Host: the daemon wants an
        // origin-form target and an HTTP/1.1 Host header.
        if let Some(pq) = req.uri().path_and_query().cloned() {
            *req.uri_mut() = hyper::Uri::from(pq);
        }
        req.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        Box::pin(async move {
            let (io, stderr) = dial(&target).map_err(io_err)?;
            let io = hyper_util::rt::TokioIo::new(io);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| ssh_failed(&target, &stderr, &e))?;
            tokio::spawn(conn);
            send.send_request(req)
                .await
                .map_err(|e| ssh_failed(&target, &stderr, &e))
        })
    }
}

fn io_err(err: std::io::Error) -> bollard::errors::Error {
    bollard::errors::Error::IOError { err }
}

fn ssh_failed(
    target: &SshTarget,
    stderr: &Arc<Mutex<Vec<u8>>>,
    e: &dyn std::error::Error,
) -> bollard::errors::Error {
    // Let ssh finish writing why it gave up.
    std::thread::sleep(Duration::from_millis(100));
    let said = stderr.lock().map(|b| b.clone()).unwrap_or_default();
    let said = String::from_utf8_lossy(&said);
    let said = said.trim();
    let why = if said.is_empty() {
        super::container::innermost_cause(e)
    } else {
        said.lines().last().unwrap_or(said).to_owned()
    };
    io_err(std::io::Error::other(format!("ssh {}: {why}", target.host)))
}

/// Start ssh and join its stdin and stdout into one socket for hyper.
fn dial(target: &SshTarget) -> std::io::Result<(tokio::net::UnixStream, Arc<Mutex<Vec<u8>>>)> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("ssh");
    cmd.args(target.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; ssh dies with comfyprov instead of lingering.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run ssh: {e}")))?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut to_ssh = theirs.try_clone()?;
    let mut from_ssh = theirs;
    std::thread::spawn(move || {
        pump(&mut to_ssh, &mut stdin);
        // hyper closed its end: ssh sees end of input and exits.
    });
    std::thread::spawn(move || {
        pump(&mut stdout, &mut from_ssh);
        let _ = from_ssh.shutdown(std::net::Shutdown::Both);
        let _ = child.wait();
    });
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = err_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = sink.lock()
                && b.len() < 16 * 1024
            {
                b.extend_from_slice(&buf[..n]);
            }
        }
    });
    ours.set_nonblocking(true)?;
    Ok((tokio::net::UnixStream::from_std(ours)?, stderr))
}

/// Copy until end of input, passing on each read at once. Not `io::copy`: on Linux it splices
/// from a socket, and a unix socket's splice waits for a full chunk, holding a request back.
fn pump(from: &mut impl Read, to: &mut impl std::io::Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn docker_host_wins_over_contexts() {
        let e = resolve_with(env(&[
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
            ("DOCKER_CONTEXT", "remote"),
        ]))
        .unwrap();
        assert_eq!(e.host, "tcp://127.0.0.1:2375");
        assert_eq!(e.from, Source::Env);
    }

    #[test]
    fn nothing_set_is_the_local_socket() {
        let e = resolve_with(env(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        assert_eq!(e.from, Source::Default);
    }

    #[test]
    fn a_context_named_by_docker_context_is_read_from_its_metadata() {
        let dir = std::env::temp_dir().join(format!("comfyprov-ctx-{}", std::process::id()));
        let hash = comfyprov_core::digest::sha256_hex(b"gpu-box");
        let meta = dir.join("contexts/meta").join(&hash);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"gpu-box","Metadata":{},"Endpoints":{"docker":{"Host":"ssh://ops@gpu-box","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let d = dir.to_str().unwrap();
        let e = resolve_with(env(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "gpu-box")])).unwrap();
        assert_eq!(e.host, "ssh://ops@gpu-box");
        let missing = resolve_with(env(&[("DOCKER_CONFIG", d), ("DOCKER_CONTEXT", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("`nope`"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ssh_targets_parse_like_the_docker_cli() {
        let t = SshTarget::parse("ops@gpu-box:2222").unwrap();
        assert_eq!(
            t.args()[4..],
            [
                "-l",
                "ops",
                "-p",
                "2222",
                "--",
                "gpu-box",
                "docker",
                "system",
                "dial-stdio"
            ]
        );
        assert_eq!(SshTarget::parse("gpu-box").unwrap().user, None);
        assert!(SshTarget::parse("ops:secret@gpu-box").is_err());
        assert!(SshTarget::parse("gpu-box/var/run").is_err());
        assert!(SshTarget::parse("-oProxyCommand=x").is_err());
        assert!(SshTarget::parse("gpu-box:notaport").is_err());
    }
}
