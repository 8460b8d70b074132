//! Model files: what is at each declared path under `ComfyUI/models/`, whether it has the hash
//! it must have, whether the shared cache holds that hash, and the free space where downloads
//! land.
//!
//! Hashing gigabytes on every `plan` is out of the question, so a verdict is cached like the
//! bcrypt one: the file's SHA-256 keyed on its identity and metadata (device, inode, size,
//! mtime, ctime) in `<workspace>/.comfyprov/model-hashes.json`, written by `apply` when it
//! places a file and by `plan` when it had to read one. A hard link of the cache's entry is keyed
//! without its ctime, which changes whenever another workspace links the same entry.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use comfyprov_core::manifest::Desired;
use comfyprov_core::observed::{ModelFile, ModelObserved, ModelsObserved};
use serde::{Deserialize, Serialize};

/// The shared, content-addressed download cache: `COMFYPROV_MODEL_CACHE`, else
/// `$XDG_CACHE_HOME/comfyprov/models`, else `~/.cache/comfyprov/models`.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("COMFYPROV_MODEL_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("comfyprov/models")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/comfyprov/models")))
        .unwrap_or_else(|| std::env::temp_dir().join("comfyprov-models"))
}

/// Where the cache keeps a verified file.
pub fn cache_entry(cache: &Path, sha256: &str) -> PathBuf {
    cache.join("sha256").join(sha256)
}

/// The cache's entry for `sha256` when it is a regular file of the size the model must have
/// (when known): what plan calls cached and apply links from.
pub fn cached_entry(cache: &Path, sha256: &str, size: Option<u64>) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(cache_entry(cache, sha256))
        .ok()
        .filter(|m| m.is_file() && size.is_none_or(|s| m.len() == s))
}

/// Observe the declared models; `None` when the manifest declares none.
pub fn observe(desired: &Desired) -> Option<ModelsObserved> {
    if desired.models.is_empty() {
        return None;
    }
    let ws = &desired.workspace.path;
    let models_dir = ws.join("ComfyUI/models");
    let lock = match crate::fsutil::read_regular_nofollow(&desired.lock_file.path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(comfyprov_core::lock::parse_models),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    let locked = lock.as_ref().map(Vec::as_slice).unwrap_or_default();
    let cache = cache_dir();
    let verdicts_path = verdicts_path(ws);
    let mut verdicts = Verdicts::load(&verdicts_path);
    let files = desired
        .models
        .iter()
        .map(|spec| {
            let same_url = locked
                .iter()
                .find(|l| l.path == spec.path && l.url == spec.url);
            let expected = spec
                .sha256
                .clone()
                .or_else(|| same_url.map(|l| l.sha256.clone()));
            let size = spec.size.or_else(|| same_url.map(|l| l.size));
            let target = models_dir.join(&spec.path);
            let cached_meta = expected
                .as_deref()
                .and_then(|h| cached_entry(&cache, h, size));
            let (file, is_entry) = observe_file(
                &target,
                &spec.path,
                expected.as_deref(),
                size,
                cached_meta.as_ref(),
                &mut verdicts,
            );
            // The cache's entry is the file found, and that file does not hash as it must:
            // the entry is damaged too, and is no source.
            let damaged = is_entry
                && matches!(&file, ModelFile::Present { sha256: Some(h), .. } if Some(h.as_str()) != expected.as_deref());
            let cached = cached_meta.is_some() && !damaged;
            tracing::debug!(path = %spec.path, file = ?file, cached, "model");
            ModelObserved {
                path: spec.path.clone(),
                file,
                cached,
            }
        })
        .collect();
    verdicts.save(&verdicts_path);
    let (free, free_at) = free_space(&models_dir);
    let cache_free = {
        let (cfree, cat) = free_space(&cache);
        let same = device_of(&models_dir) == device_of(&cache);
        (!same).then_some(()).and(cfree.map(|f| (f, cat)))
    };
    Some(ModelsObserved {
        files,
        lock,
        free,
        free_at,
        cache_free,
        cache: cache.display().to_string(),
    })
}

fn observe_file(
    target: &Path,
    rel: &str,
    expected: Option<&str>,
    size: Option<u64>,
    cached: Option<&std::fs::Metadata>,
    verdicts: &mut Verdicts,
) -> (ModelFile, bool) {
    if let Some(why) = crate::fsutil::linked_write_target(target) {
        return (ModelFile::Linked { why }, false);
    }
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (ModelFile::Missing, false),
        Err(e) => {
            let error = e.to_string();
            return (ModelFile::Unreadable { error }, false);
        }
    };
    if !meta.is_file() {
        return (ModelFile::NotAFile, false);
    }
    if size.is_some_and(|s| s != meta.len()) {
        let file = ModelFile::Present {
            size: meta.len(),
            sha256: None,
        };
        return (file, false);
    }
    // A hard link of the cache's entry: every other link made or removed changes its ctime,
    // so its verdict is keyed without it (a write still changes its mtime).
    let is_entry = expected.is_some()
        && cached.is_some_and(|c| c.dev() == meta.dev() && c.ino() == meta.ino());
    (present(target, rel, &meta, is_entry, verdicts), is_entry)
}

/// A regular file of the right size (or of no known size): its hash, from the verdict cache
/// or read now.
fn present(
    target: &Path,
    rel: &str,
    meta: &std::fs::Metadata,
    is_entry: bool,
    verdicts: &mut Verdicts,
) -> ModelFile {
    let key = Identity::of(meta);
    if let Some(h) = verdicts.get(rel, &key, is_entry) {
        return ModelFile::Present {
            size: meta.len(),
            sha256: Some(h),
        };
    }
    match hash_file(target) {
        Ok(h) => {
            verdicts.put(rel, key, &h);
            ModelFile::Present {
                size: meta.len(),
                sha256: Some(h),
            }
        }
        Err(e) => ModelFile::Unreadable {
            error: e.to_string(),
        },
    }
}

/// The SHA-256 of a file, read in large blocks (no link followed).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(comfyprov_core::digest::hex(&h.finalize()))
}

/// Free bytes for this user on the filesystem holding `dir` (or its nearest existing parent),
/// and that folder.
pub fn free_space(dir: &Path) -> (Option<u64>, String) {
    let mut at = dir.to_path_buf();
    while !at.exists() {
        if !at.pop() {
            break;
        }
    }
    let shown = at.display().to_string();
    let Ok(c) = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()) else {
        return (None, shown);
    };
    // SAFETY: `c` is a valid C string; `st` is written by statvfs before it is read.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st) == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    };
    (free, shown)
}

fn device_of(dir: &Path) -> Option<u64> {
    let mut at = dir.to_path_buf();
    loop {
        if let Ok(m) = std::fs::metadata(&at) {
            return Some(m.dev());
        }
        if !at.pop() {
            return None;
        }
    }
}

/// A file's identity and metadata: any change to its content changes one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Verdicts {
    files: BTreeMap<String, (Identity, String)>,
    #[serde(skip)]
    changed: bool,
}

impl Verdicts {
    fn load(path: &Path) -> Verdicts {
        crate::fsutil::load_json(path)
    }

    fn get(&self, rel: &str, key: &Identity, ignore_ctime: bool) -> Option<String> {
        self.files
            .get(rel)
            .filter(|(k, _)| {
                k == key
                    || (ignore_ctime
                        && Identity {
                            ctime_ns: key.ctime_ns,
                            ..k.clone()
                        } == *key)
            })
            .map(|(_, h)| h.clone())
    }

    fn put(&mut self, rel: &str, key: Identity, sha256: &str) {
        self.files.insert(rel.to_owned(), (key, sha256.to_owned()));
        self.changed = true;
    }

    /// Best effort: a verdict that cannot be saved costs a re-hash next time.
    fn save(&self, path: &Path) {
        if self.changed {
            crate::fsutil::save_json(path, self, 0o644);
        }
    }
}

fn verdicts_path(workspace: &Path) -> PathBuf {
    workspace.join(".comfyprov").join("model-hashes.json")
}

/// Record the hash of a file apply just placed, so the next plan does not read it again.
pub fn remember(workspace: &Path, rel: &str, target: &Path, sha256: &str) {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return;
    };
    let path = verdicts_path(workspace);
    let mut v = Verdicts::load(&path);
    v.put(rel, Identity::of(&meta), sha256);
    v.save(&path);
}
