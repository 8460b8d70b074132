//! uv, the resolver and installer comfyprov drives, at the one version it pins
//! ([`UV_VERSION`]). It runs on the host to resolve (`uv pip compile` for the container's
//! Python and platform) and, copied into the workspace, inside a one-off container from the
//! deployment's image to build the environment (`uv venv`, `uv pip sync`).
//!
//! Found as `$COMFYPROV_UV`, else `uv` on `PATH`; any other version is refused, so that a lock
//! means the same thing on every machine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use comfyprov_core::lock::UV_VERSION;

use crate::error::StepError;

/// The uv binary on the host, at the pinned version.
#[derive(Debug, Clone)]
pub struct Uv {
    pub path: PathBuf,
}

fn install_help() -> String {
    format!(
        "install it with `pip install uv=={UV_VERSION}` (or `pipx install uv=={UV_VERSION}`), or set COMFYPROV_UV to a uv {UV_VERSION} binary"
    )
}

/// Find uv and check its version.
pub fn find() -> Result<Uv, StepError> {
    let path = match std::env::var_os("COMFYPROV_UV") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("uv"))
                    .find(|p| p.is_file())
            })
            .ok_or_else(|| {
                StepError::new(format!(
                    "uv {UV_VERSION} is needed to resolve and build the Python environment, and none is on PATH"
                ))
                .help(install_help())
            })?,
    };
    let out = run(
        Command::new(&path).arg("--version"),
        Duration::from_secs(30),
    )
    .map_err(|e| {
        StepError::new(format!("cannot run `{} --version`: {e}", path.display()))
            .help(install_help())
    })?;
    let version = out
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    if version != UV_VERSION {
        return Err(StepError::new(format!(
            "{} is uv {}, comfyprov needs uv {UV_VERSION} (a lock made by another uv may differ)",
            path.display(),
            if version.is_empty() {
                "of an unknown version"
            } else {
                &version
            }
        ))
        .help(install_help()));
    }
    Ok(Uv { path })
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to completion with stdin closed, reading both outputs, and kill it after
/// `timeout`: a hung index must not hang comfyprov.
pub fn run(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        success: status.success(),
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Place a copy of `uv` at `<workspace>/.comfyprov/bin/uv-<version>` (once; a copy whose
/// bytes differ is replaced), for the one-off container to run. Returns its path.
pub fn place(uv: &Uv, workspace: &Path) -> Result<PathBuf, StepError> {
    let dir = crate::fsutil::real_dir(workspace, Path::new(".comfyprov/bin"))
        .map_err(|e| StepError::io("cannot create", &workspace.join(".comfyprov/bin"), e))?;
    let target = dir.join(format!("uv-{UV_VERSION}"));
    let bytes = std::fs::read(&uv.path).map_err(|e| StepError::io("cannot read", &uv.path, e))?;
    if crate::fsutil::read_regular_nofollow(&target).is_ok_and(|b| b == bytes) {
        return Ok(target);
    }
    crate::fsutil::write_atomic(&target, &bytes, 0o755)
        .map_err(|e| StepError::io("cannot write", &target, e))?;
    Ok(target)
}
