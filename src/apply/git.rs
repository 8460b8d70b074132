//! Executors for checkouts: clone, checkout, replace, enable, disable.
//!
//! A clone is made in a temp directory beside its target (`.<name>.comfyprov-tmp.disabled`, which
//! ComfyUI skips) and renamed into place only once it is checked out, so ComfyUI never sees a
//! half-cloned node. A directory in the way is moved aside, never deleted.

use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{Oid, Repository};

use super::fetch::{fetch_pin, git_failure};
use super::{Env, Exec, StepError};
use crate::fsutil::{rename_noreplace, sync_dir, temp_name, utc_compact};
use crate::manifest::Rev;
use crate::observe::DirState;
use crate::observe::workspace::{CHECKOUT_MARKER, inspect, open_repo, resolve};
use crate::plan::Target;
use crate::plan::step::short;
use crate::report::{Outcome, Progress, StepId};

/// Check out `oid` (detached) in `repo`. `force` for a fresh clone; otherwise safe, so that
/// nothing in the working tree is overwritten.
fn checkout_commit(
    env: &Env,
    id: StepId,
    repo: &Repository,
    oid: Oid,
    force: bool,
) -> Result<(), StepError> {
    let commit = repo.find_commit(oid).map_err(|e| git_failure(&e))?;
    let mut co = CheckoutBuilder::new();
    if force {
        co.force();
    } else {
        co.safe();
    }
    co.progress(|_, done, total| {
        env.reporter
            .on_progress(id, Progress::Checkout { done, total });
    });
    // Marked in progress until HEAD is moved too: a kill in between leaves the marker, and the
    // next apply finishes this checkout instead of refusing its half-moved files.
    let marker = repo.path().join(CHECKOUT_MARKER);
    crate::fsutil::write_atomic(&marker, format!("{oid}\n").as_bytes(), 0o644)
        .map_err(|e| StepError::io("cannot write", &marker, e))?;
    // A checkout that fails (rather than being killed) is not ours to finish: a safe checkout
    // stops at a conflict before it writes, so the files left are the person's.
    if let Err(e) = repo.checkout_tree(commit.as_object(), Some(&mut co)) {
        let _ = std::fs::remove_file(&marker);
        return Err(git_failure(&e));
    }
    repo.set_head_detached(oid).map_err(|e| git_failure(&e))?;
    std::fs::remove_file(&marker).map_err(|e| StepError::io("cannot remove", &marker, e))
}

/// Remove the lock files a git process of an earlier apply left when it was killed (`git fetch
/// --depth=1` leaves `shallow.lock`, a checkout `index.lock`): they would fail every later
/// fetch or checkout. Safe here: this runs under apply's workspace lock, so no other apply's git
/// is at work in the checkout.
fn clear_stale_locks(env: &Env, repo: &Repository) {
    for name in ["shallow.lock", "index.lock"] {
        let lock = repo.path().join(name);
        if std::fs::symlink_metadata(&lock).is_ok_and(|m| m.is_file())
            && std::fs::remove_file(&lock).is_ok()
        {
            env.reporter.on_message(&format!(
                "removed {}: left by a git process of an interrupted apply",
                lock.display()
            ));
        }
    }
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

pub(super) fn clone(env: &Env, id: StepId, target: &Target, url: &str, rev: &Rev) -> Exec {
    let dest = env.path_of(target);
    let untracked = matches!(target, Target::Node(_));
    if std::fs::symlink_metadata(&dest).is_ok() {
        if let Some(head) = already_at(&dest, url, rev, untracked) {
            return Ok(Outcome::AlreadyDone {
                why: format!("{} is already at {}", target.shown(), short(&head)),
            });
        }
        return Err(StepError::new(format!(
            "{} appeared after the plan was made",
            target.shown()
        ))
        .help("run `comfyprov plan` again to see what is there now"));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| StepError::io("cannot create", parent, e))?;
    let tmp = parent.join(temp_name(target.name()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| StepError::io("cannot remove", &tmp, e))?;
    }
    let made = (|| {
        let repo = Repository::init(&tmp).map_err(|e| git_failure(&e))?;
        repo.remote("origin", url).map_err(|e| git_failure(&e))?;
        let oid = fetch_pin(env, id, &repo, url, rev)?;
        checkout_commit(env, id, &repo, oid, true)?;
        Ok::<Oid, StepError>(oid)
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
        return Err(StepError::io("cannot move the clone into", &dest, e));
    }
    sync_dir(parent);
    Ok(Outcome::Done {
        detail: Some(resolved_detail(rev, oid)),
    })
}

pub(super) fn checkout(
    env: &Env,
    id: StepId,
    target: &Target,
    url: &str,
    rev: &Rev,
    resume: bool,
) -> Exec {
    let path = env.path_of(target);
    let untracked = matches!(target, Target::Node(_));
    // The precondition the plan saw: a clean checkout of the same repository.
    match inspect(&path, Some(rev), untracked) {
        DirState::Git(c) => {
            if !c
                .origin
                .as_deref()
                .is_some_and(|o| crate::plan::same_repo(o, url))
            {
                return Err(StepError::new(format!(
                    "{} is no longer a checkout of {}",
                    target.shown(),
                    url
                ))
                .help("run `comfyprov plan` again"));
            }
            // Finishing an interrupted checkout: its differences are that apply's.
            if let Some(d) = c.dirty.filter(|_| !(resume && c.interrupted)) {
                return Err(StepError::new(format!(
                    "{} has local changes now ({})",
                    target.shown(),
                    d.sample.join(", ")
                ))
                .help("commit or move them, or rerun with --force to keep the directory aside"));
            }
            if let Some(h) = c.head.as_deref()
                && rev.matches(h, c.resolved.as_deref())
                && !c.interrupted
            {
                return Ok(Outcome::AlreadyDone {
                    why: format!("{} is already at {}", target.shown(), short(h)),
                });
            }
        }
        DirState::Missing => {
            return Err(StepError::new(format!("{} is gone", target.shown()))
                .help("run `comfyprov plan` again"));
        }
        DirState::NotGit => {
            return Err(StepError::new(format!(
                "{} is not a git checkout any more",
                target.shown()
            ))
            .help("run `comfyprov plan` again"));
        }
        DirState::Unreadable { error } => {
            return Err(StepError::new(format!(
                "{} cannot be inspected: {error}",
                target.shown()
            )));
        }
    }
    let repo = open_repo(&path).map_err(|e| git_failure(&e))?;
    clear_stale_locks(env, &repo);
    let oid = match resolve(&repo, rev).and_then(|h| Oid::from_str(&h).ok()) {
        Some(oid) if repo.find_commit(oid).is_ok() => oid,
        _ => fetch_pin(env, id, &repo, url, rev)?,
    };
    checkout_commit(env, id, &repo, oid, resume)?;
    Ok(Outcome::Done {
        detail: Some(resolved_detail(rev, oid)),
    })
}

/// `--force`: keep the directory aside as `<dir>.<timestamp>.disabled`, then clone afresh.
pub(super) fn replace(env: &Env, id: StepId, target: &Target, url: &str, rev: &Rev) -> Exec {
    let path = env.path_of(target);
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
        Some(move_aside(env, &path)?)
    } else {
        None
    };
    let outcome = clone(env, id, target, url, rev)?;
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
fn move_aside(env: &Env, path: &Path) -> Result<String, StepError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path.parent().unwrap_or(Path::new("."));
    let stamp = utc_compact(env.now);
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
            Err(e) => return Err(StepError::io("cannot move aside", path, e)),
        }
    }
    unreachable!("an unbounded loop returns from inside")
}

/// Rename `<name>.disabled` back to `<name>`.
pub(super) fn enable(env: &Env, node: &str, from: &str) -> Exec {
    let dir = env.custom_nodes();
    let (src, dest) = (dir.join(from), dir.join(node));
    if !src.exists() && dest.exists() {
        return Ok(Outcome::AlreadyDone {
            why: format!("custom_nodes/{node} is already there"),
        });
    }
    rename_noreplace(&src, &dest).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            StepError::new(format!(
                "custom_nodes/{node} appeared after the plan was made"
            ))
            .help("run `comfyprov plan` again")
        } else {
            StepError::io("cannot rename", &src, e)
        }
    })?;
    sync_dir(&dir);
    Ok(Outcome::Done { detail: None })
}

/// Rename `<dir>` to `<dir>.disabled` (or `<dir>.<timestamp>.disabled` when that is taken).
pub(super) fn disable(env: &Env, dir: &str) -> Exec {
    let parent = env.custom_nodes();
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
            let aside = move_aside(env, &path)?;
            Ok(Outcome::Done {
                detail: Some(format!("now custom_nodes/{aside}")),
            })
        }
        Err(e) => Err(StepError::io("cannot rename", &path, e)),
    }
}
