//! The workspace: ComfyUI's checkout and the directories in `custom_nodes/`, read with git2.
//! Declared nodes are inspected in parallel (one libgit2 repository per thread); undeclared
//! directories are only listed, since `plan` needs nothing but their names.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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

/// List what ComfyUI loads from `custom_nodes/` (directories, links, single `.py` files) and
/// inspect the entries that declared nodes own: `<name>` and `<name>.disabled`, whatever they
/// are (a file or a link where a checkout should be is reported, not called missing). Also the
/// names that are not UTF-8.
pub fn observe_custom_nodes(dir: &Path, nodes: &[NodeSpec]) -> (Vec<NodeDir>, Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let owned = |name: &str| {
        let base = name.strip_suffix(".disabled").unwrap_or(name);
        nodes.iter().any(|n| n.name == base)
    };
    let mut odd = Vec::new();
    let mut dirs: Vec<NodeDir> = Vec::new();
    // ComfyUI's own checkout ships files in custom_nodes/ (websocket_image_save.py): not nodes.
    let shipped = std::cell::OnceCell::new();
    for e in entries.filter_map(Result::ok) {
        let name = match e.file_name().into_string() {
            Ok(n) => n,
            Err(raw) => {
                odd.push(raw.to_string_lossy().into_owned());
                continue;
            }
        };
        if name == "__pycache__" || crate::fsutil::is_temp_name(&name) {
            continue;
        }
        let kind = e.file_type().ok();
        let loaded = kind.is_some_and(|t| t.is_dir() || t.is_symlink())
            || (kind.is_some_and(|t| t.is_file())
                && name.ends_with(".py")
                && !shipped
                    .get_or_init(|| shipped_by_comfyui(dir))
                    .contains(&name));
        if loaded || owned(&name) {
            dirs.push(NodeDir {
                dir: name,
                state: None,
            });
        }
    }
    dirs.sort_by(|a, b| a.dir.cmp(&b.dir));
    odd.sort();

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
    (dirs, odd)
}

/// The files ComfyUI's own checkout tracks directly in `custom_nodes/` (read from its index;
/// `websocket_image_save.py` always, which every ComfyUI release ships there).
fn shipped_by_comfyui(custom_nodes: &Path) -> HashSet<String> {
    let mut shipped = HashSet::from(["websocket_image_save.py".to_owned()]);
    let index = custom_nodes
        .parent()
        .and_then(|comfy| open_repo(comfy).ok())
        .and_then(|repo| repo.index().ok());
    if let Some(index) = index {
        shipped.extend(index.iter().filter_map(|e| {
            let path = std::str::from_utf8(&e.path).ok()?;
            let name = path.strip_prefix("custom_nodes/")?;
            (!name.contains('/')).then(|| name.to_owned())
        }));
    }
    shipped
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
        // The container can write into the workspace: a link there is reported, never
        // followed (a checkout through it would move another repository).
        Ok(m) if m.file_type().is_symlink() => {
            return DirState::Unreadable {
                error: format!(
                    "{} is a symbolic link; comfyprov does not follow links in the workspace: replace it with the checkout itself",
                    path.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
            };
        }
        Ok(_) => {}
    }
    if !path.join(".git").exists() {
        return DirState::NotGit;
    }
    let repo = match open_repo(path) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return DirState::NotGit,
        Err(e) => {
            return DirState::Unreadable {
                error: e.message().to_owned(),
            };
        }
    };
    // The ref's target, not the commit object: no pack needs opening.
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.resolve().ok())
        .and_then(|h| h.target())
        .map(|o| o.to_string());
    // One config snapshot: libgit2 re-stats every config file on each live lookup.
    let origin = repo
        .config()
        .and_then(|mut c| c.snapshot())
        .ok()
        .and_then(|c| c.get_string("remote.origin.url").ok());
    let resolved = match rev {
        // A commit pin that HEAD already matches needs no lookup.
        Some(Rev::Commit(p)) if head.as_deref().is_some_and(|h| h.starts_with(p.as_str())) => {
            head.clone()
        }
        Some(r) => resolve(&repo, r),
        None => None,
    };
    let clean = quick_clean(&repo, path, untracked_is_dirty).unwrap_or(false);
    let dirty = if clean {
        None
    } else {
        match dirty(&repo, untracked_is_dirty) {
            Ok(d) => d,
            Err(e) => {
                return DirState::Unreadable {
                    error: e.message().to_owned(),
                };
            }
        }
    };
    DirState::Git(Checkout {
        head,
        origin,
        dirty,
        resolved,
        interrupted: repo.path().join(CHECKOUT_MARKER).exists(),
    })
}

/// A file in the checkout's git directory while apply moves its working tree (like cargo's
/// `.cargo-ok`, but present during the work rather than after it): if apply is killed midway,
/// the next one sees it and finishes the checkout instead of refusing the half-moved files as
/// local changes. It holds the commit being checked out.
pub const CHECKOUT_MARKER: &str = "comfyprov-checkout-in-progress";

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

pub fn dirty(repo: &Repository, untracked: bool) -> Result<Option<Dirty>, git2::Error> {
    let mut opts = StatusOptions::new();
    opts.include_untracked(untracked)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true)
        // Like `git status`: refresh stat data of racily clean entries, so the next run can
        // decide from stat data alone (see `quick_clean`).
        .update_index(true);
    let statuses = repo.statuses(Some(&mut opts))?;
    // Tracked changes first, so that the sample names what makes the checkout differ.
    let mut changed: Vec<(bool, String)> = statuses
        .iter()
        .filter_map(|s| {
            let untracked = s.status() == git2::Status::WT_NEW;
            s.path().map(|p| (untracked, p.to_owned()))
        })
        .filter(|(_, p)| !is_runtime_artefact(p))
        .collect();
    changed.sort_by_key(|(untracked, _)| *untracked);
    let tracked = changed.iter().filter(|(untracked, _)| !untracked).count();
    Ok((!changed.is_empty()).then(|| Dirty {
        count: changed.len(),
        tracked,
        sample: changed.into_iter().take(3).map(|(_, p)| p).collect(),
    }))
}

/// Open the checkout at exactly `path`: never a repository above it (a plain directory inside
/// ComfyUI's own checkout is not a git checkout of its own).
pub fn open_repo(path: &Path) -> Result<Repository, git2::Error> {
    Repository::open_ext(
        path,
        git2::RepositoryOpenFlags::NO_SEARCH,
        std::iter::empty::<&OsStr>(),
    )
}

/// `quick_clean` for the checkout at `path`: `Some(true)` when stat data alone proves it clean.
pub fn clean_by_stat(path: &Path) -> Option<bool> {
    let repo = open_repo(path).ok()?;
    quick_clean(&repo, path, true)
}

/// Whether the checkout is certainly clean, judged from stat data alone, the way git's index
/// is meant to be used: every tracked file's size, mtime, ctime, inode and type match its index
/// entry, no entry is racily clean, and no file outside the index is left unignored.
///
/// `Some(true)` only when all of that holds; anything unusual (conflicts, skip-worktree,
/// intent-to-add, racy entries, a mismatch, an untracked file) gives `Some(false)` or `None`, and
/// libgit2's full status decides. It is a shortcut, never more lenient than libgit2: it costs one
/// `lstat` per tracked file, where libgit2 also re-reads config and attributes files many times.
fn quick_clean(repo: &Repository, workdir: &Path, untracked: bool) -> Option<bool> {
    let index_meta = std::fs::metadata(repo.path().join("index")).ok()?;
    let (index_s, index_ns) = (index_meta.mtime(), index_meta.mtime_nsec());
    let index = repo.index().ok()?;
    let mut tracked: HashSet<&[u8]> = HashSet::new();
    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    for e in &entries {
        let stage = (e.flags >> 12) & 0x3;
        // Extended flags: intent-to-add, skip-worktree.
        if stage != 0 || e.flags_extended & 0x6000 != 0 {
            return None;
        }
        let mode = e.mode & 0o170000;
        if mode == 0o160000 {
            // Submodules are excluded from the full status too.
            tracked.insert(&e.path);
            continue;
        }
        let (mtime_s, mtime_ns) = (
            i64::from(e.mtime.seconds()),
            i64::from(e.mtime.nanoseconds()),
        );
        if (mtime_s, mtime_ns) >= (index_s, index_ns) {
            return None; // racily clean: only content can tell
        }
        let meta = std::fs::symlink_metadata(workdir.join(OsStr::from_bytes(&e.path))).ok()?;
        let same = meta.len() as u32 == e.file_size
            && meta.mtime() == mtime_s
            && meta.mtime_nsec() == mtime_ns
            && meta.ctime() == i64::from(e.ctime.seconds())
            && meta.ctime_nsec() == i64::from(e.ctime.nanoseconds())
            && meta.ino() as u32 == e.ino
            && meta.mode() & 0o170000 == mode
            && (mode != 0o100000 || (meta.mode() & 0o100 != 0) == (e.mode & 0o100 != 0));
        if !same {
            return Some(false);
        }
        tracked.insert(&e.path);
        let mut p = e.path.as_slice();
        while let Some(i) = p.iter().rposition(|b| *b == b'/') {
            p = &p[..i];
            if !dirs.insert(p.to_vec()) {
                break;
            }
        }
    }
    if !untracked {
        return Some(true);
    }
    // Every directory that holds tracked files is listed; anything else must be ignored.
    let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let dir = workdir.join(OsStr::from_bytes(&rel));
        for entry in std::fs::read_dir(&dir).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name();
            if rel.is_empty() && name == ".git" {
                continue;
            }
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            if tracked.contains(child.as_slice()) {
                continue;
            }
            let is_dir = entry.file_type().ok()?.is_dir();
            if is_dir && dirs.contains(&child) {
                stack.push(child);
                continue;
            }
            let shown = String::from_utf8_lossy(&child).into_owned();
            if is_runtime_artefact(&shown)
                || repo
                    .is_path_ignored(Path::new(OsStr::from_bytes(&child)))
                    .unwrap_or(false)
            {
                continue;
            }
            return Some(false);
        }
    }
    Some(true)
}
