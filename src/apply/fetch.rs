//! Bringing a pinned commit into a repository: as little as the transport allows.
//!
//! Local remotes (`file://`, paths) are fetched in process by libgit2, in full: its local
//! transport cannot fetch shallow. Network remotes (`https://`, `ssh://`, `git://`, scp-like)
//! are fetched by the `git` command, at depth 1 where the pin allows it, as cargo's
//! `net.git-fetch-with-cli` does. Two reasons: git brings what production needs and libgit2
//! would have to be given (credential helpers, SSH agent and config, proxies, TLS settings);
//! and linking a TLS stack costs every process its start-up (libgit2's OpenSSL init, or curl's
//! constructor, ~3–8 ms), `plan` included, while `plan` never touches the network.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use git2::{AutotagOption, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::{Env, StepError};
use crate::manifest::Rev;
use crate::observe::workspace::resolve;
use crate::report::{Progress, StepId};

/// Protocols the `git` command may use: never `ext::` or other remote helpers.
const ALLOWED_PROTOCOLS: &str = "https:http:ssh:git:file";

const NETWORK_HELP: &str =
    "check the URL and the network; `plan` works offline, but `apply` must reach the remote";

/// Whether `url` is served by libgit2's local transport.
fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || url.starts_with('.')
}

/// Why a fetch did not bring what was asked.
enum FetchError {
    /// The remote does not have it, or will not serve it (e.g. a commit no ref names).
    Missing,
    /// Anything else: network, authentication, disk.
    Failed(StepError),
}

/// Bring the commit `rev` names into `repo` and return it.
pub(super) fn fetch_pin(
    env: &Env,
    id: StepId,
    repo: &Repository,
    url: &str,
    rev: &Rev,
) -> Result<Oid, StepError> {
    let shallow = !is_local(url);
    let fetch = |specs: &[String], depth1: bool| -> Result<(), FetchError> {
        if is_local(url) {
            libgit2_fetch(env, id, repo, url, specs)
        } else {
            cli_fetch(env, id, repo, url, specs, depth1)
        }
    };
    let unknown = |what: String| {
        StepError::new(what)
            .help("check `rev` in the manifest: a commit id (preferred), a tag or a branch")
    };
    let found = |rev: &Rev| resolve(repo, rev).and_then(|h| Oid::from_str(&h).ok());
    match rev {
        Rev::Commit(hex) if hex.len() == 40 && shallow => {
            match fetch(std::slice::from_ref(hex), true) {
                Ok(()) => {
                    if let Some(oid) = found(rev) {
                        return Ok(oid);
                    }
                }
                // Not served by id (no allowAnySHA1InWant, or unknown): try its branches and tags.
                Err(FetchError::Missing) => {}
                Err(FetchError::Failed(f)) => return Err(f),
            }
        }
        Rev::Named(name) => {
            let tag = format!("+refs/tags/{name}:refs/tags/{name}");
            let branch = format!("+refs/heads/{name}:refs/remotes/origin/{name}");
            let tried = if shallow {
                // The git command fails on a refspec that matches nothing: one at a time.
                match fetch(std::slice::from_ref(&tag), true) {
                    Err(FetchError::Missing) => fetch(std::slice::from_ref(&branch), true),
                    other => other,
                }
            } else {
                fetch(&[tag, branch], false)
            };
            return match tried {
                Ok(()) | Err(FetchError::Missing) => found(rev).ok_or_else(|| {
                    unknown(format!("`{name}` is neither a tag nor a branch of {url}"))
                }),
                Err(FetchError::Failed(f)) => Err(f),
            };
        }
        Rev::Commit(_) => {}
    }
    let all = [
        "+refs/heads/*:refs/remotes/origin/*".to_owned(),
        "+refs/tags/*:refs/tags/*".to_owned(),
    ];
    match fetch(&all, false) {
        Ok(()) | Err(FetchError::Missing) => {}
        Err(FetchError::Failed(f)) => return Err(f),
    }
    found(rev).ok_or_else(|| {
        unknown(format!(
            "commit {} is not in any branch or tag of {url}",
            rev.as_str()
        ))
    })
}

/// A libgit2 error as a step failure.
pub(super) fn git_failure(e: &git2::Error) -> StepError {
    let msg = e.message().trim_end_matches('.').to_owned();
    let network = matches!(
        e.class(),
        git2::ErrorClass::Net
            | git2::ErrorClass::Ssl
            | git2::ErrorClass::Http
            | git2::ErrorClass::Ssh
    );
    let f = StepError::new(msg);
    if network {
        f.help(NETWORK_HELP)
    } else if e.class() == git2::ErrorClass::Os {
        f.help("check the URL, the disk and the permissions of the workspace")
    } else {
        f
    }
}

fn libgit2_fetch(
    env: &Env,
    id: StepId,
    repo: &Repository,
    url: &str,
    specs: &[String],
) -> Result<(), FetchError> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| FetchError::Failed(git_failure(&e)))?;
    let mut cb = RemoteCallbacks::new();
    cb.transfer_progress(|p| {
        env.reporter.on_progress(
            id,
            Progress::Transfer {
                received_objects: p.received_objects(),
                total_objects: p.total_objects(),
                received_bytes: p.received_bytes(),
            },
        );
        true
    });
    let mut fo = FetchOptions::new();
    fo.remote_callbacks(cb).download_tags(AutotagOption::None);
    remote
        .fetch(specs, Some(&mut fo), None)
        .map_err(|e| FetchError::Failed(git_failure(&e)))
}

/// `git fetch` into `repo`, reporting the progress git prints.
fn cli_fetch(
    env: &Env,
    id: StepId,
    repo: &Repository,
    url: &str,
    specs: &[String],
    depth1: bool,
) -> Result<(), FetchError> {
    let git_dir = repo.path();
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(git_dir)
        // Always index the pack as received (never explode it into loose objects): fewer files
        // written, and git reports `Receiving objects` progress even for small fetches.
        .args(["-c", "fetch.unpackLimit=1"])
        .args(["fetch", "--progress", "--no-tags", "--no-write-fetch-head"]);
    if depth1 {
        cmd.arg("--depth=1");
    }
    cmd.arg("--")
        .arg(url)
        .args(specs)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe. If apply dies (even by kill -9), its git dies too,
    // instead of writing on into a temp directory the next apply removes.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        FetchError::Failed(
            StepError::new(format!("cannot run `git`: {e}"))
                .help("apply fetches network remotes with the git command: install git"),
        )
    })?;
    let mut stderr = child.stderr.take().map(std::io::BufReader::new);
    let mut tail: Vec<String> = Vec::new();
    if let Some(err) = stderr.as_mut() {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        // git redraws progress with `\r`: split on both.
        while let Ok(1) = err.read(&mut byte) {
            if byte[0] == b'\r' || byte[0] == b'\n' {
                let line = String::from_utf8_lossy(&buf).into_owned();
                buf.clear();
                if let Some(p) = parse_progress(&line) {
                    env.reporter.on_progress(id, p);
                } else if !line.trim().is_empty() {
                    tail.push(line);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
            } else {
                buf.push(byte[0]);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| FetchError::Failed(StepError::new(format!("`git fetch` failed: {e}"))))?;
    if status.success() {
        return Ok(());
    }
    let text = tail.join("\n");
    let missing = [
        "not our ref",
        "unadvertised object",
        "couldn't find remote ref",
        "no such remote ref",
    ];
    if missing.iter().any(|m| text.contains(m)) {
        return Err(FetchError::Missing);
    }
    // git's message starts at its last `fatal:`/`error:` line and may go on (`unable to connect
    // to host:` then `host[0: addr]: errno=Connection refused`).
    let start = tail
        .iter()
        .rposition(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .unwrap_or(tail.len().saturating_sub(1));
    let cause = tail
        .get(start..)
        .filter(|lines| !lines.is_empty())
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    l.trim_start_matches("fatal: ")
                        .trim_start_matches("error: ")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("`git fetch` exited with {status}"));
    Err(FetchError::Failed(StepError::new(cause).help(NETWORK_HELP)))
}

/// `Receiving objects:  45% (450/1000), 1.20 MiB | 2.00 MiB/s` → a transfer event.
fn parse_progress(line: &str) -> Option<Progress> {
    let rest = line.trim().strip_prefix("Receiving objects:")?;
    let (_, counts) = rest.split_once('(')?;
    let (counts, after) = counts.split_once(')')?;
    let (got, total) = counts.split_once('/')?;
    let bytes = after
        .trim_start_matches(',')
        .split('|')
        .next()
        .and_then(|s| {
            let mut parts = s.split_whitespace();
            let n: f64 = parts.next()?.parse().ok()?;
            let unit = match parts.next()? {
                "bytes" => 1.0,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            Some((n * unit) as usize)
        })
        .unwrap_or(0);
    Some(Progress::Transfer {
        received_objects: got.trim().parse().ok()?,
        total_objects: total.trim().parse().ok()?,
        received_bytes: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_progress_lines_become_transfer_events() {
        assert_eq!(
            parse_progress("Receiving objects:  45% (450/1000), 1.50 MiB | 2.00 MiB/s"),
            Some(Progress::Transfer {
                received_objects: 450,
                total_objects: 1000,
                received_bytes: 1_572_864,
            })
        );
        assert_eq!(
            parse_progress("Receiving objects: 100% (3/3), done."),
            Some(Progress::Transfer {
                received_objects: 3,
                total_objects: 3,
                received_bytes: 0,
            })
        );
        assert_eq!(parse_progress("remote: Counting objects: 3, done."), None);
    }
}
