//! The workspace: ComfyUI's checkout and the directories in `custom_nodes/`, read with git2.
//! Declared nodes are inspected in parallel (one libgit2 repository per thread); undeclared
//! directories are only listed, since `plan` needs nothing but their names.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::{Repository, StatusOptions};

use super::{Checkout, DirState, Dirty, NodeDir};
use crate::manifest::{GitSource, NodeSpec, Rev};

/// Observe `<workspace>/ComfyUI`. Without a `[comfyui]` table only its existence matters.
pub fn observe_comfyui(path: &Path, source: Option<&GitSource>) -> DirState {
    match source {
        // ComfyUI's own folder gathers runtime files (login/, user/, venv/) that are not in its
        // .gitignore, so only changes to tracked files count as dirty there.
        Some(src) => inspect(path, Some(&src.rev), false),
        None if path.is_dir() => DirState::Git(Checkout::default()),
        None => DirState::Missing,
    }
}

/// List `custom_nodes/` and inspect the directories that declared nodes own: `<name>` and
/// `<name>.disabled`.
pub fn observe_custom_nodes(dir: &Path, nodes: &[NodeSpec]) -> Vec<NodeDir> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<NodeDir> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name != "__pycache__")
        .map(|dir| NodeDir { dir, state: None })
        .collect();
    dirs.sort_by(|a, b| a.dir.cmp(&b.dir));

    // Which listed directories to inspect, and with which rev.
    let jobs: Vec<(usize, &Rev)> = dirs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let base = d.dir.strip_suffix(".disabled").unwrap_or(&d.dir);
            nodes
                .iter()
                .find(|n| n.name == base)
                .map(|n| (i, &n.source.rev))
        })
        .collect();

    let states = parallel_map(&jobs, |(i, rev)| {
        inspect(&dir.join(&dirs[*i].dir), Some(rev), true)
    });
    for ((i, _), state) in jobs.iter().zip(states) {
        dirs[*i].state = Some(state);
    }
    dirs
}

/// Run `f` over `items` on up to `available_parallelism` threads, keeping order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Inspect one directory as a git checkout.
pub fn inspect(path: &Path, rev: Option<&Rev>, untracked_is_dirty: bool) -> DirState {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DirState::Missing,
        Err(e) => {
            return DirState::Unreadable {
                error: e.to_string(),
            };
        }
        Ok(_) => {}
    }
    if !path.join(".git").exists() {
        return DirState::NotGit;
    }
    let repo = match Repository::open(path) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return DirState::NotGit,
        Err(e) => {
            return DirState::Unreadable {
                error: e.message().to_owned(),
            };
        }
    };
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let origin = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(str::to_owned));
    let resolved = rev.and_then(|r| resolve(&repo, r));
    let dirty = match dirty(&repo, untracked_is_dirty) {
        Ok(d) => d,
        Err(e) => {
            return DirState::Unreadable {
                error: e.message().to_owned(),
            };
        }
    };
    DirState::Git(Checkout {
        head,
        origin,
        dirty,
        resolved,
    })
}

/// The commit `rev` names in `repo`, without touching the network: a tag, a remote-tracking or
/// local branch, or a commit present locally.
pub fn resolve(repo: &Repository, rev: &Rev) -> Option<String> {
    match rev {
        Rev::Commit(prefix) => repo
            .revparse_single(prefix)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .map(|c| c.id().to_string()),
        Rev::Named(name) => ["refs/tags/", "refs/remotes/origin/", "refs/heads/"]
            .iter()
            .find_map(|prefix| {
                repo.find_reference(&format!("{prefix}{name}"))
                    .ok()
                    .and_then(|r| r.peel_to_commit().ok())
            })
            .map(|c| c.id().to_string()),
    }
}

/// Files that running ComfyUI writes into node folders, which many node repositories do not
/// ignore: Python's `__pycache__/` and `*.pyc`, and ComfyUI-Login's session key
/// `.secret-key.txt`. They are not local changes anyone made, so they do not make a checkout dirty.
pub fn is_runtime_artefact(path: &str) -> bool {
    path.ends_with(".pyc")
        || path == ".secret-key.txt"
        || path.split('/').any(|c| c == "__pycache__")
}

fn dirty(repo: &Repository, untracked: bool) -> Result<Option<Dirty>, git2::Error> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(untracked)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true)
        .update_index(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    let changed: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.path().map(str::to_owned))
        .filter(|p| !is_runtime_artefact(p))
        .collect();
    Ok((!changed.is_empty()).then(|| Dirty {
        count: changed.len(),
        sample: changed.into_iter().take(3).collect(),
    }))
}
