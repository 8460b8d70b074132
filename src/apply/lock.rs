//! One apply per workspace at a time.
//!
//! The lock is an advisory `flock(2)` on a file beside the workspace
//! (`<parent>/.<workspace>.comfyprov-lock`; beside, not inside, so that taking it does not create
//! the workspace before the plan that creates it). The kernel releases the lock when its holder
//! exits, even by `kill -9`, so a stale lock cannot block anyone: the next apply simply gets it.
//! The file's content only describes the holder (pid, host, start time) for the message a
//! waiting apply prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// UTC, ISO 8601.
    pub started: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid, self.host, self.started
        )
    }
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
    /// Whether the file described a holder that is gone (a killed apply): it was taken over.
    pub took_over: Option<Holder>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Say nobody holds it; the kernel drops the flock itself when the file closes.
        let _ = self.file.set_len(0);
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    #[error("another apply holds the workspace lock `{path}`: {}", holder.as_ref().map_or_else(|| "holder unknown".to_owned(), ToString::to_string))]
    #[diagnostic(
        code(comfyprov::lock::busy),
        help("wait for it to finish, or raise --lock-timeout (waited {waited:.1} s)")
    )]
    Busy {
        holder: Option<Holder>,
        path: String,
        waited: f64,
    },
    #[error("cannot take the workspace lock `{path}`: {error}")]
    #[diagnostic(
        code(comfyprov::lock::io),
        help("check that the folder holding the workspace exists and is writable")
    )]
    Io { path: String, error: std::io::Error },
}

/// Where the lock for `workspace` lives. An existing workspace is keyed on its canonical path,
/// so the same folder reached through a symlink has one lock.
pub fn lock_path(workspace: &Path) -> PathBuf {
    if let Ok(canonical) = std::fs::canonicalize(workspace) {
        return beside(&canonical);
    }
    let abs = if workspace.is_absolute() {
        workspace.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(workspace))
            .unwrap_or_else(|_| workspace.to_path_buf())
    };
    // Normalise `.` and `..` without touching the disk (the workspace may not exist yet).
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                norm.pop();
            }
            c => norm.push(c),
        }
    }
    beside(&norm)
}

/// `<parent>/.<name>.comfyprov-lock` for an absolute, normal path.
fn beside(norm: &Path) -> PathBuf {
    let name = norm
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".to_owned());
    let parent = norm
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    parent.join(format!(".{name}.comfyprov-lock"))
}

/// Take the lock on `workspace`, waiting up to `timeout`. `on_wait` is called once, with the
/// holder, if the lock is busy.
pub fn acquire(
    workspace: &Path,
    timeout: Duration,
    mut on_wait: impl FnMut(Option<&Holder>),
) -> Result<Lock, LockError> {
    let path = lock_path(workspace);
    let io = |error| LockError::Io {
        path: path.display().to_string(),
        error,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                if started.elapsed() >= timeout {
                    return Err(LockError::Busy {
                        holder,
                        path: path.display().to_string(),
                        waited: started.elapsed().as_secs_f64(),
                    });
                }
                if !told {
                    on_wait(holder.as_ref());
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    // A description left in the file means its holder died without dropping the lock.
    let took_over = read_holder(&mut file);
    let me = Holder {
        pid: std::process::id(),
        host: hostname(),
        started: crate::fsutil::utc_iso(SystemTime::now()),
    };
    let json = serde_json::to_string(&me).unwrap_or_default();
    (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(json.as_bytes())?;
        file.flush()
    })()
    .map_err(io)?;
    Ok(Lock {
        file,
        path,
        took_over,
    })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_beside_the_workspace() {
        assert_eq!(
            lock_path(Path::new("/srv/comfy/./workspace")),
            Path::new("/srv/comfy/.workspace.comfyprov-lock")
        );
        assert_eq!(
            lock_path(Path::new("/srv/comfy/ws/../workspace/")),
            Path::new("/srv/comfy/.workspace.comfyprov-lock")
        );
    }

    #[test]
    fn second_holder_in_process_times_out_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        let first = acquire(&ws, Duration::ZERO, |_| {}).unwrap();
        let mut waited_for = None;
        let err = acquire(&ws, Duration::from_millis(120), |h| {
            waited_for = h.cloned();
        })
        .unwrap_err();
        let LockError::Busy { holder, .. } = err else {
            panic!("expected Busy, got {err:?}")
        };
        assert_eq!(holder.as_ref().map(|h| h.pid), Some(std::process::id()));
        assert_eq!(waited_for, holder);
        drop(first);
        let again = acquire(&ws, Duration::ZERO, |_| {}).unwrap();
        assert_eq!(again.took_over, None, "a released lock is not stale");
    }
}
