//! The ComfyUI-Login password: `ComfyUI/login/PASSWORD` (line 1 a bcrypt hash, which is also the
//! API token; line 2 the username), the legacy `ComfyUI/PASSWORD`, and the secret they must match.
//!
//! A hash is compared with the password by bcrypt verify, never by bytes: a new salt changes the
//! hash. Verify costs ~250 ms at cost 12, so its verdict is cached in
//! `<workspace>/.comfyprov/password-check.json`, keyed on the secret file's identity and metadata
//! and a digest of the PASSWORD file. The cache never holds anything derived from the plaintext,
//! which would let anyone who reads it test guesses quickly.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use comfyprov_core::observed::{HashState, PasswordFile, PasswordState};

use super::{SecretState, sha256_hex};
use crate::manifest::{AuthSpec, SecretSource};
use crate::secret::{Secret, parse_bcrypt_hash, strip_newline};

/// The secret, read for comparison (and, by `apply`, for hashing) only.
pub(crate) enum SecretValue {
    Password(Secret),
    Hash(Secret),
}

/// The secret and the PASSWORD files of the workspace at `workspace` (absolute), for `auth`.
pub fn observe(auth: &AuthSpec, workspace: &Path) -> (SecretState, PasswordState) {
    let comfy = workspace.join("ComfyUI");
    let login_file = comfy.join("login").join("PASSWORD");
    let legacy_file = comfy.join("PASSWORD");
    let AuthSpec::Login(login) = auth else {
        let unchecked = || HashState::Unchecked {
            reason: "auth.mode is none".to_owned(),
        };
        let (file, digest) = read_password_file(&login_file, |_| unchecked());
        let (legacy, legacy_digest) = read_password_file(&legacy_file, |_| unchecked());
        return (
            SecretState::NotUsed,
            PasswordState {
                file,
                legacy,
                digest,
                legacy_digest,
            },
        );
    };

    let (secret_state, value, identity) = read_secret(&login.secret);
    let cache_path = cache_path(workspace);
    let mut cache = Cache::load(&cache_path);
    let mut verify = |hash_line: &[u8], file_digest: &str| -> HashState {
        let Some(value) = &value else {
            return HashState::Unchecked {
                reason: "the secret is not available".to_owned(),
            };
        };
        if parse_bcrypt_hash(hash_line).is_none() {
            return HashState::Malformed;
        }
        match value {
            SecretValue::Hash(h) => {
                if h.expose() == hash_line {
                    HashState::Verified
                } else {
                    HashState::Mismatch
                }
            }
            SecretValue::Password(pw) => {
                if let Some(id) = &identity
                    && let Some(v) = cache.get(id, file_digest)
                {
                    return if v {
                        HashState::Verified
                    } else {
                        HashState::Mismatch
                    };
                }
                let hash = String::from_utf8_lossy(hash_line);
                let ok = verify_password(pw, &hash);
                if let Some(id) = &identity {
                    cache.put(id, file_digest, ok);
                }
                if ok {
                    HashState::Verified
                } else {
                    HashState::Mismatch
                }
            }
        }
    };
    let (file, digest) = read_password_file(&login_file, |(line, d)| verify(line, d));
    let (legacy, legacy_digest) = read_password_file(&legacy_file, |(line, d)| verify(line, d));
    if workspace.is_dir() {
        cache.save(&cache_path);
    }
    (
        secret_state,
        PasswordState {
            file,
            legacy,
            digest,
            legacy_digest,
        },
    )
}

/// bcrypt operations (verify or hash) run by this process, for `-v` and the tests that prove a
/// converged workspace costs none.
static BCRYPT_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn bcrypt_runs() -> usize {
    BCRYPT_RUNS.load(std::sync::atomic::Ordering::Relaxed)
}

pub(crate) fn count_bcrypt() {
    BCRYPT_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// bcrypt verify (~250 ms at cost 12).
pub(crate) fn verify_password(pw: &Secret, hash: &str) -> bool {
    count_bcrypt();
    bcrypt::verify(pw.expose(), hash).unwrap_or(false)
}

/// The part of a PASSWORD file's path that is a symbolic link: `login/` or the file itself.
fn linked(path: &Path) -> Option<String> {
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let file = path.file_name()?.to_string_lossy();
    let parent = path.parent()?;
    if parent.file_name().is_some_and(|n| n == "login") && is_link(parent) {
        return Some("login/".to_owned());
    }
    if is_link(path) {
        let shown = if parent.file_name().is_some_and(|n| n == "login") {
            format!("login/{file}")
        } else {
            format!("ComfyUI/{file}")
        };
        return Some(shown);
    }
    None
}

/// Read a PASSWORD file; `check` judges line 1 given the content's digest.
fn read_password_file(
    path: &Path,
    check: impl FnOnce((&[u8], &str)) -> HashState,
) -> (PasswordFile, String) {
    // The container can write into the workspace: a link there is reported, never followed
    // (a planted `login/PASSWORD` → elsewhere would read as fine and redirect the write).
    if let Some(link) = linked(path) {
        return (
            PasswordFile::Unreadable {
                error: format!(
                    "{link} is a symbolic link; comfyprov does not follow links in the workspace, which the container can write: replace it with a plain {}",
                    if link.ends_with('/') {
                        "folder"
                    } else {
                        "file"
                    }
                ),
            },
            String::new(),
        );
    }
    let bytes = match crate::fsutil::read_regular(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (PasswordFile::Missing, String::new());
        }
        Err(e) => {
            return (
                PasswordFile::Unreadable {
                    error: e.to_string(),
                },
                String::new(),
            );
        }
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.mode() & 0o7777)
        .unwrap_or(0);
    let digest = sha256_hex(&bytes);
    let hash_line = crate::secret::hash_line(&bytes);
    let username = bytes
        .split(|b| *b == b'\n')
        .nth(1)
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
        .filter(|u| !u.is_empty());
    let hash = check((hash_line, &digest));
    (
        PasswordFile::Present {
            hash,
            username,
            mode,
        },
        digest,
    )
}

/// Read the secret. Returns its state, its value for comparison, and the file identity used as
/// the cache key (none for environment variables, which have no identity).
pub(crate) fn read_secret(
    source: &SecretSource,
) -> (SecretState, Option<SecretValue>, Option<String>) {
    let file = match source {
        SecretSource::PasswordEnv(var) => {
            return match std::env::var_os(var) {
                None => (SecretState::Missing, None, None),
                Some(v) if v.is_empty() => (
                    SecretState::Unusable {
                        error: format!("${var} is empty"),
                    },
                    None,
                    None,
                ),
                Some(v) => {
                    use std::os::unix::ffi::OsStringExt;
                    (
                        SecretState::Present { mode: None },
                        Some(SecretValue::Password(Secret::new(v.into_vec()))),
                        None,
                    )
                }
            };
        }
        SecretSource::PasswordFile(f) | SecretSource::HashFile(f) => &f.path,
    };
    let (bytes, meta) =
        match crate::fsutil::read_regular(file).and_then(|b| Ok((b, std::fs::metadata(file)?))) {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (SecretState::Missing, None, None);
            }
            Err(e) => {
                return (
                    SecretState::Unusable {
                        error: e.to_string(),
                    },
                    None,
                    None,
                );
            }
        };
    let content = strip_newline(&bytes).to_vec();
    let state = SecretState::Present {
        mode: Some(meta.mode() & 0o7777),
    };
    let value = match source {
        SecretSource::HashFile(_) if parse_bcrypt_hash(&content).is_none() => {
            return (
                SecretState::Unusable {
                    error: "it does not hold a bcrypt hash".to_owned(),
                },
                None,
                None,
            );
        }
        SecretSource::HashFile(_) => SecretValue::Hash(Secret::new(content)),
        _ if content.is_empty() => {
            return (
                SecretState::Unusable {
                    error: "it is empty".to_owned(),
                },
                None,
                None,
            );
        }
        _ => SecretValue::Password(Secret::new(content)),
    };
    let identity = format!(
        "{}|{}:{}|{}|{}.{}|{}.{}",
        file.display(),
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    (state, Some(value), Some(identity))
}

/// Cached bcrypt verdicts.
#[derive(Default, Serialize, Deserialize)]
struct Cache {
    entries: Vec<CacheEntry>,
    #[serde(skip)]
    changed: bool,
}

#[derive(Serialize, Deserialize, Clone)]
struct CacheEntry {
    /// Secret file path, device, inode, size, mtime and ctime.
    secret: String,
    /// sha256 of the PASSWORD file's content.
    password_file: String,
    verified: bool,
}

const CACHE_ENTRIES: usize = 8;

impl Cache {
    fn load(path: &Path) -> Cache {
        crate::fsutil::load_json(path)
    }

    fn get(&self, secret: &str, password_file: &str) -> Option<bool> {
        self.entries
            .iter()
            .find(|e| e.secret == secret && e.password_file == password_file)
            .map(|e| e.verified)
    }

    fn put(&mut self, secret: &str, password_file: &str, verified: bool) {
        self.entries
            .retain(|e| !(e.secret == secret && e.password_file == password_file));
        self.entries.insert(
            0,
            CacheEntry {
                secret: secret.to_owned(),
                password_file: password_file.to_owned(),
                verified,
            },
        );
        self.entries.truncate(CACHE_ENTRIES);
        self.changed = true;
    }

    /// Best effort: a cache that cannot be written only costs time on the next run.
    fn save(&self, path: &Path) {
        if self.changed {
            crate::fsutil::save_json(path, self, 0o600);
        }
    }
}

/// Record that the PASSWORD file whose content digests to `password_file` verifies the secret
/// file `identity`, so the next observation needs no bcrypt (used after `apply` writes it).
pub(crate) fn remember_verified(workspace: &Path, identity: &str, password_file: &str) {
    let path = cache_path(workspace);
    let mut cache = Cache::load(&path);
    cache.put(identity, password_file, true);
    cache.save(&path);
}

/// Where the verify cache lives for a workspace.
pub fn cache_path(workspace: &Path) -> PathBuf {
    workspace.join(".comfyprov").join("password-check.json")
}
