//! Executors for checkouts: clone, checkout, replace, enable, disable.
//!
//! A clone is made in a temp directory beside its target (`.<name>.comfyprov-tmp.disabled`, which
//! ComfyUI skips) and renamed into place only once it is checked out, so ComfyUI never sees a
//! half-cloned node. A directory in the way is moved aside, never deleted.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{AutotagOption, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::{Ctx, Exec, Failure};
use crate::fsutil::{rename_noreplace, sync_dir, temp_name, utc_compact};
use crate::manifest::Rev;
use crate::observe::DirState;
use crate::observe::workspace::{inspect, open_repo, resolve};
use crate::plan::Target;
use crate::plan::step::short;
use crate::report::{Outcome, Progress, StepId};

/// Make `http://` and `https://` remotes work, through curl (as cargo does). libgit2 is built
/// without its own TLS, whose global init costs every process (`plan` included) ~8 ms; curl's
/// starts only here, and only when a remote needs it.
pub(super) fn register_transports(desired: &crate::manifest::Desired) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let needs_http = desired
        .comfyui
        .iter()
        .chain(desired.nodes.iter().map(|n| &n.source))
        .any(|s| s.url.starts_with("http://") || s.url.starts_with("https://"));
    if needs_http {
        ONCE.call_once(|| {
            let mut easy = curl::easy::Easy::new();
            let _ = easy.useragent(concat!("comfyprov/", env!("CARGO_PKG_VERSION")));
            // SAFETY: called once, before any thread of this process uses git2's transports.
            unsafe { git2_curl::register(easy) };
        });
    }
}

/// Whether the transport can fetch a single commit at depth 1. libgit2's local transport
/// (`file://`, plain paths) cannot: those get a full fetch.
fn shallow_capable(url: &str) -> bool {
    !(url.starts_with("file://") || url.starts_with('/') || url.starts_with('.'))
}

fn git_failure(e: &git2::Error) -> Failure {
    let msg = e.message().trim_end_matches('.').to_owned();
    let network = matches!(
        e.class(),
        git2::ErrorClass::Net
            | git2::ErrorClass::Ssl
            | git2::ErrorClass::Http
            | git2::ErrorClass::Ssh
    ) || ["connect", "resolve", "timed out", "unreachable"]
        .iter()
        .any(|w| msg.contains(w));
    let f = Failure::new(msg);
    if network {
        f.help("check the URL and the network; `plan` works offline, but `apply` must reach the remote")
    } else if e.class() == git2::ErrorClass::Os {
        f.help("check the URL, the disk and the permissions of the workspace")
    } else {
        f
    }
}

/// A failure of the network or the server, as opposed to the server not having what we asked.
fn is_transport_error(e: &git2::Error) -> bool {
    matches!(
        e.class(),
        git2::ErrorClass::Net
            | git2::ErrorClass::Os
            | git2::ErrorClass::Ssl
            | git2::ErrorClass::Http
            | git2::ErrorClass::Ssh
    ) && !e.message().contains("not our ref")
}

/// Fetch `refspecs` from `url` into `repo`, reporting progress.
fn fetch(
    ctx: &Ctx,
    id: StepId,
    repo: &Repository,
    url: &str,
    refspecs: &[String],
    depth: Option<i32>,
) -> Result<(), git2::Error> {
    let mut remote = repo.remote_anonymous(url)?;
    let mut cb = RemoteCallbacks::new();
    cb.transfer_progress(|p| {
        ctx.reporter.on_progress(
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
    if let Some(d) = depth {
        fo.depth(d);
    }
    remote.fetch(refspecs, Some(&mut fo), None)
}

/// Bring the commit `rev` names into `repo`, fetching as little as the transport allows, and
/// return it.
fn fetch_pin(
    ctx: &Ctx,
    id: StepId,
    repo: &Repository,
    url: &str,
    rev: &Rev,
) -> Result<Oid, Failure> {
    let shallow = shallow_capable(url);
    match rev {
        Rev::Commit(hex) if hex.len() == 40 && shallow => {
            match fetch(ctx, id, repo, url, std::slice::from_ref(hex), Some(1)) {
                Ok(()) => {
                    if let Ok(oid) = Oid::from_str(hex)
                        && repo.find_commit(oid).is_ok()
                    {
                        return Ok(oid);
                    }
                }
                Err(e) if is_transport_error(&e) => return Err(git_failure(&e)),
                // The server does not serve arbitrary commits (no allowAnySHA1InWant, or the
                // commit is unknown): fall back to fetching its branches and tags.
                Err(_) => {}
            }
        }
        Rev::Named(name) => {
            let specs = [
                format!("+refs/tags/{name}:refs/tags/{name}"),
                format!("+refs/heads/{name}:refs/remotes/origin/{name}"),
            ];
            fetch(ctx, id, repo, url, &specs, shallow.then_some(1)).map_err(|e| git_failure(&e))?;
            return resolve(repo, rev)
                .and_then(|h| Oid::from_str(&h).ok())
                .ok_or_else(|| {
                    Failure::new(format!("`{name}` is neither a tag nor a branch of {url}")).help(
                        "check `rev` in the manifest: a commit id (preferred), a tag or a branch",
                    )
                });
        }
        Rev::Commit(_) => {}
    }
    let specs = [
        "+refs/heads/*:refs/remotes/origin/*".to_owned(),
        "+refs/tags/*:refs/tags/*".to_owned(),
    ];
    fetch(ctx, id, repo, url, &specs, None).map_err(|e| git_failure(&e))?;
    resolve(repo, rev)
        .and_then(|h| Oid::from_str(&h).ok())
        .ok_or_else(|| {
            Failure::new(format!(
                "commit {} is not in any branch or tag of {url}",
                rev.as_str()
            ))
            .help("check `rev` in the manifest, or push the commit to the remote")
        })
}

/// Check out `oid` (detached) in `repo`. `force` for a fresh clone; otherwise safe, so that
/// nothing in the working tree is overwritten.
fn checkout_commit(
    ctx: &Ctx,
    id: StepId,
    repo: &Repository,
    oid: Oid,
    force: bool,
) -> Result<(), Failure> {
    let commit = repo.find_commit(oid).map_err(|e| git_failure(&e))?;
    let mut co = CheckoutBuilder::new();
    if force {
        co.force();
    } else {
        co.safe();
    }
    co.progress(|_, done, total| {
        ctx.reporter
            .on_progress(id, Progress::Checkout { done, total });
    });
    repo.checkout_tree(commit.as_object(), Some(&mut co))
        .map_err(|e| git_failure(&e))?;
    repo.set_head_detached(oid).map_err(|e| git_failure(&e))
}

/// What the pin resolved to, for the summary: `v1.0 → a1b2c3d` or `a1b2c3d`.
fn resolved_detail(rev: &Rev, oid: Oid) -> String {
    let hex = oid.to_string();
    match rev {
        Rev::Named(n) => format!("{n} → {}", short(&hex)),
        Rev::Commit(_) => format!("at {}", short(&hex)),
    }
}

/// Whether `path` already is a clean checkout of `url` at `rev` (a rerun after the step's work
/// was done).
fn already_at(path: &Path, url: &str, rev: &Rev, untracked: bool) -> Option<String> {
    match inspect(path, Some(rev), untracked) {
        DirState::Git(c)
            if c.dirty.is_none()
                && c.origin
                    .as_deref()
                    .is_some_and(|o| crate::plan::same_repo(o, url))
                && c.head
                    .as_deref()
                    .is_some_and(|h| rev.matches(h, c.resolved.as_deref())) =>
        {
            c.head
        }
        _ => None,
    }
}

pub(super) fn clone(ctx: &Ctx, id: StepId, target: &Target, url: &str, rev: &Rev) -> Exec {
    let dest = ctx.path_of(target);
    let untracked = matches!(target, Target::Node(_));
    if std::fs::symlink_metadata(&dest).is_ok() {
        if let Some(head) = already_at(&dest, url, rev, untracked) {
            return Ok(Outcome::AlreadyDone {
                why: format!("{} is already at {}", target.shown(), short(&head)),
            });
        }
        return Err(Failure::new(format!(
            "{} appeared after the plan was made",
            target.shown()
        ))
        .help("run `comfyprov plan` again to see what is there now"));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(temp_name(target.name()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let made = (|| {
        let repo = Repository::init(&tmp).map_err(|e| git_failure(&e))?;
        repo.remote("origin", url).map_err(|e| git_failure(&e))?;
        let oid = fetch_pin(ctx, id, &repo, url, rev)?;
        checkout_commit(ctx, id, &repo, oid, true)?;
        Ok::<Oid, Failure>(oid)
    })();
    let oid = match made {
        Ok(oid) => oid,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(f);
        }
    };
    if let Err(e) = rename_noreplace(&tmp, &dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.into());
    }
    sync_dir(parent);
    Ok(Outcome::Done {
        detail: Some(resolved_detail(rev, oid)),
    })
}

pub(super) fn checkout(ctx: &Ctx, id: StepId, target: &Target, rev: &Rev) -> Exec {
    let path = ctx.path_of(target);
    let Some(src) = ctx.source_of(target) else {
        return Err(Failure::new(format!(
            "{} is not in the manifest",
            target.shown()
        )));
    };
    let untracked = matches!(target, Target::Node(_));
    // The precondition the plan saw: a clean checkout of the same repository.
    match inspect(&path, Some(rev), untracked) {
        DirState::Git(c) => {
            if !c
                .origin
                .as_deref()
                .is_some_and(|o| crate::plan::same_repo(o, &src.url))
            {
                return Err(Failure::new(format!(
                    "{} is no longer a checkout of {}",
                    target.shown(),
                    src.url
                ))
                .help("run `comfyprov plan` again"));
            }
            if let Some(d) = c.dirty {
                return Err(Failure::new(format!(
                    "{} has local changes now ({})",
                    target.shown(),
                    d.sample.join(", ")
                ))
                .help("commit or move them, or rerun with --force to keep the directory aside"));
            }
            if let Some(h) = c.head.as_deref()
                && rev.matches(h, c.resolved.as_deref())
            {
                return Ok(Outcome::AlreadyDone {
                    why: format!("{} is already at {}", target.shown(), short(h)),
                });
            }
        }
        other => {
            return Err(Failure::new(format!(
                "{} is not a git checkout any more ({other:?})",
                target.shown()
            ))
            .help("run `comfyprov plan` again"));
        }
    }
    let repo = open_repo(&path).map_err(|e| git_failure(&e))?;
    let oid = match resolve(&repo, rev).and_then(|h| Oid::from_str(&h).ok()) {
        Some(oid) if repo.find_commit(oid).is_ok() => oid,
        _ => fetch_pin(ctx, id, &repo, &src.url, rev)?,
    };
    checkout_commit(ctx, id, &repo, oid, false)?;
    Ok(Outcome::Done {
        detail: Some(resolved_detail(rev, oid)),
    })
}

/// `--force`: keep the directory aside as `<dir>.<timestamp>.disabled`, then clone afresh.
pub(super) fn replace(ctx: &Ctx, id: StepId, target: &Target, url: &str, rev: &Rev) -> Exec {
    let path = ctx.path_of(target);
    let untracked = matches!(target, Target::Node(_));
    if let Some(head) = already_at(&path, url, rev, untracked) {
        return Ok(Outcome::AlreadyDone {
            why: format!(
                "{} is already a clean checkout at {}",
                target.shown(),
                short(&head)
            ),
        });
    }
    let aside = if std::fs::symlink_metadata(&path).is_ok() {
        Some(move_aside(ctx, &path)?)
    } else {
        None
    };
    let outcome = clone(ctx, id, target, url, rev)?;
    Ok(match (outcome, aside) {
        (Outcome::Done { detail }, Some(aside)) => Outcome::Done {
            detail: Some(format!(
                "{}; old directory kept as {aside}",
                detail.unwrap_or_default()
            )),
        },
        (o, _) => o,
    })
}

/// Rename `path` to `<name>.<timestamp>.disabled` beside it; returns the new name.
fn move_aside(ctx: &Ctx, path: &Path) -> Result<String, Failure> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path.parent().unwrap_or(Path::new("."));
    let stamp = utc_compact(ctx.now);
    for n in 1.. {
        let aside = if n == 1 {
            format!("{name}.{stamp}.disabled")
        } else {
            format!("{name}.{stamp}-{n}.disabled")
        };
        match rename_noreplace(path, &parent.join(&aside)) {
            Ok(()) => {
                sync_dir(parent);
                return Ok(aside);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("an unbounded loop returns from inside")
}

/// Rename `<name>.disabled` back to `<name>`.
pub(super) fn enable(ctx: &Ctx, node: &str, from: &str) -> Exec {
    let dir = ctx.custom_nodes();
    let (src, dest) = (dir.join(from), dir.join(node));
    if !src.exists() && dest.exists() {
        return Ok(Outcome::AlreadyDone {
            why: format!("custom_nodes/{node} is already there"),
        });
    }
    rename_noreplace(&src, &dest).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::new(format!(
                "custom_nodes/{node} appeared after the plan was made"
            ))
            .help("run `comfyprov plan` again")
        } else {
            e.into()
        }
    })?;
    sync_dir(&dir);
    Ok(Outcome::Done { detail: None })
}

/// Rename `<dir>` to `<dir>.disabled` (or `<dir>.<timestamp>.disabled` when that is taken).
pub(super) fn disable(ctx: &Ctx, dir: &str) -> Exec {
    let parent = ctx.custom_nodes();
    let path = parent.join(dir);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(Outcome::AlreadyDone {
            why: format!("custom_nodes/{dir} is gone"),
        });
    }
    match rename_noreplace(&path, &parent.join(format!("{dir}.disabled"))) {
        Ok(()) => {
            sync_dir(&parent);
            Ok(Outcome::Done {
                detail: Some(format!("now custom_nodes/{dir}.disabled")),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let aside = move_aside(ctx, &path)?;
            Ok(Outcome::Done {
                detail: Some(format!("now custom_nodes/{aside}")),
            })
        }
        Err(e) => Err(e.into()),
    }
}
