//! Executors for the ComfyUI-Login password: generate the secret, write `login/PASSWORD`, move
//! or remove the legacy `ComfyUI/PASSWORD`, fix its mode.
//!
//! The hash in `login/PASSWORD` is the clients' API token, so a password that still verifies is
//! never re-hashed: a new salt would change every client's token for nothing. Everything is
//! written 0600 through a temp file, fsync and rename in the same folder.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use super::{Env, Exec, StepError};
use crate::fsutil::{rename_noreplace, sync_dir, write_atomic};
use crate::manifest::{LoginSpec, ManifestPath, validate::BCRYPT_MAX_PASSWORD};
use crate::observe::login::{
    SecretValue, count_bcrypt, read_secret, remember_verified, verify_password,
};
use crate::observe::sha256_hex;
use crate::report::Outcome;
use crate::secret::{hash_line, parse_bcrypt_hash};

/// Characters of a generated password: letters and digits, safe in any file or shell.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// 32 characters of 62: about 190 bits.
const GENERATED_LEN: usize = 32;

fn login_dir(env: &Env) -> PathBuf {
    env.comfyui().join("login")
}

fn password_path(env: &Env) -> PathBuf {
    login_dir(env).join("PASSWORD")
}

/// A strong random password, by rejection sampling so every character is equally likely.
fn random_password() -> Result<Vec<u8>, StepError> {
    let mut out = Vec::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_LEN {
        getrandom::fill(&mut buf)
            .map_err(|e| StepError::new(format!("no randomness from the OS: {e}")))?;
        // 248 = 4 × 62: bytes at or above it would favour the first characters.
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
                .take(GENERATED_LEN - out.len()),
        );
    }
    Ok(out)
}

/// Generate the password file: written in full to a temp file (0600), then linked into place, so
/// it is never half-written and never replaces a file that appeared meanwhile.
pub(crate) fn generate(file: &ManifestPath) -> Exec {
    let path = &file.path;
    if path.exists() {
        return Ok(Outcome::AlreadyDone {
            why: format!("{} exists now; it is used as is", file.shown),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| StepError::io("cannot create", &dir, e))?;
    let password = random_password()?;
    let tmp = dir.join(format!(".comfyprov-secret.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(&password)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)?;
        sync_dir(&dir);
        Ok(())
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(Outcome::Done {
            detail: Some(format!("{GENERATED_LEN} random characters, mode 0600")),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Outcome::AlreadyDone {
            why: format!("{} exists now; it is used as is", file.shown),
        }),
        Err(e) => Err(StepError::io("cannot write", path, e)),
    }
}

/// Write `login/PASSWORD` as `hash\nusername`. With `new_hash`, line 1 becomes a fresh hash of
/// the secret (or the ready hash) unless the file verifies by now; without, line 1 is kept.
pub(super) fn write(env: &Env, new_hash: bool, login: &LoginSpec) -> Exec {
    let path = password_path(env);
    let (_, value, identity) = read_secret(&login.secret);
    let Some(value) = value else {
        return Err(StepError::new(format!(
            "the secret {} cannot be read",
            login.secret.shown()
        ))
        .help("run `comfyprov plan` to see what is wrong with it"));
    };
    let current = match crate::fsutil::read_regular(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StepError::io("cannot read", &path, e)),
    };
    let current_hash = current.as_deref().map(hash_line).unwrap_or_default();
    // The plan saw a hash that does not verify. Unless the file changed since, that verdict
    // stands; a changed file is checked again rather than re-hashed blindly.
    let changed_since_plan = current
        .as_deref()
        .map(sha256_hex)
        .is_some_and(|d| d != env.seen_password);
    let current_verifies = parse_bcrypt_hash(current_hash).is_some()
        && (!new_hash || (changed_since_plan && verifies(&value, current_hash)));

    let hash: Vec<u8> = if current_verifies {
        current_hash.to_vec()
    } else if !new_hash {
        return Err(
            StepError::new("line 1 of login/PASSWORD is no longer a bcrypt hash")
                .help("run `comfyprov plan` again"),
        );
    } else {
        match &value {
            SecretValue::Hash(h) => h.expose().to_vec(),
            SecretValue::Password(pw) => {
                if pw.expose().len() > BCRYPT_MAX_PASSWORD {
                    return Err(StepError::new(format!(
                        "the password is longer than {BCRYPT_MAX_PASSWORD} bytes, which bcrypt would truncate"
                    )));
                }
                count_bcrypt();
                bcrypt::hash(pw.expose(), login.bcrypt_cost)
                    .map_err(|e| StepError::new(format!("bcrypt failed: {e}")))?
                    .into_bytes()
            }
        }
    };
    let mut content = hash;
    content.push(b'\n');
    content.extend_from_slice(login.username.as_bytes());

    let mode_ok = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600);
    if current.as_deref() == Some(content.as_slice()) && mode_ok {
        return Ok(Outcome::AlreadyDone {
            why: "login/PASSWORD already matches".to_owned(),
        });
    }
    create_login_dir(env)?;
    write_atomic(&path, &content, 0o600).map_err(|e| StepError::io("cannot write", &path, e))?;
    if let Some(id) = identity {
        remember_verified(&env.workspace, &id, &sha256_hex(&content));
    }
    let detail = if current_verifies {
        "hash kept (the token did not change)"
    } else {
        // A new password must also end the sessions signed with the old key.
        if current.is_some() && rotate_session_key(env, &login.login_node)? {
            "new hash and a new session key: clients need the new token, see `comfyprov token`; signed-in browsers must sign in again"
        } else {
            "new hash: clients need the new token, see `comfyprov token`"
        }
    };
    Ok(Outcome::Done {
        detail: Some(detail.to_owned()),
    })
}

/// ComfyUI-Login signs its session cookies with `custom_nodes/<node>/.secret-key.txt`
/// (`<urlsafe base64 of 32 random bytes>,<ISO time>`, read at start; sessions last 30 days): a
/// cookie taken before a password change would still be let in. Replace the key (mode 0600)
/// so that the restart after the rotation ends those sessions. `false` when the node's folder is
/// not there (nothing signs cookies yet).
fn rotate_session_key(env: &Env, node: &str) -> Result<bool, StepError> {
    let dir = env.custom_nodes().join(node);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(false),
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| StepError::new(format!("no random bytes: {e}")))?;
    let now = crate::fsutil::utc_iso(std::time::SystemTime::now());
    let content = format!("{},{}", base64_url(&key), now.trim_end_matches('Z'));
    let path = dir.join(".secret-key.txt");
    write_atomic(&path, content.as_bytes(), 0o600)
        .map_err(|e| StepError::io("cannot write", &path, e))?;
    Ok(true)
}

/// URL-safe base64 with padding, as Python's `base64.urlsafe_b64encode`.
fn base64_url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn verifies(value: &SecretValue, hash: &[u8]) -> bool {
    match value {
        SecretValue::Hash(h) => h.expose() == hash,
        SecretValue::Password(pw) => verify_password(pw, &String::from_utf8_lossy(hash)),
    }
}

/// Create `login/` if needed; refuse one that is a symbolic link (planted after the plan was
/// made: the write would land where it points).
fn create_login_dir(env: &Env) -> Result<(), StepError> {
    let dir = login_dir(env);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|e| StepError::io("cannot create", &dir, e))?;
    let meta =
        std::fs::symlink_metadata(&dir).map_err(|e| StepError::io("cannot inspect", &dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(StepError::new(format!(
            "`{}` is a symbolic link: comfyprov does not write through links in the workspace",
            dir.display()
        ))
        .help("replace it with a plain folder, then run apply again"));
    }
    Ok(())
}

/// Move `ComfyUI/PASSWORD` to `login/PASSWORD`, as ComfyUI-Login itself would at start. Its hash,
/// the clients' token, is kept.
pub(super) fn move_legacy(env: &Env) -> Exec {
    let legacy = env.comfyui().join("PASSWORD");
    let path = password_path(env);
    if !legacy.exists() && path.exists() {
        return Ok(Outcome::AlreadyDone {
            why: "login/PASSWORD is there and the legacy file is gone".to_owned(),
        });
    }
    create_login_dir(env)?;
    rename_noreplace(&legacy, &path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            StepError::new("login/PASSWORD appeared after the plan was made")
                .help("run `comfyprov plan` again")
        } else {
            StepError::io("cannot move", &legacy, e)
        }
    })?;
    sync_dir(&login_dir(env));
    sync_dir(&env.comfyui());
    Ok(Outcome::Done {
        detail: Some("token kept".to_owned()),
    })
}

/// Remove the legacy `ComfyUI/PASSWORD`: ComfyUI-Login would move it over `login/PASSWORD` at
/// its next start.
pub(super) fn remove_legacy(env: &Env) -> Exec {
    let legacy = env.comfyui().join("PASSWORD");
    match std::fs::remove_file(&legacy) {
        Ok(()) => {
            sync_dir(&env.comfyui());
            Ok(Outcome::Done { detail: None })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outcome::AlreadyDone {
            why: "ComfyUI/PASSWORD is gone".to_owned(),
        }),
        Err(e) => Err(StepError::io("cannot remove", &legacy, e)),
    }
}

/// `chmod 600 login/PASSWORD`.
pub(super) fn fix_mode(env: &Env) -> Exec {
    let path = password_path(env);
    let mode = std::fs::metadata(&path)
        .map_err(|e| StepError::io("cannot read", &path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode == 0o600 {
        return Ok(Outcome::AlreadyDone {
            why: "login/PASSWORD is already 0600".to_owned(),
        });
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StepError::io("cannot chmod", &path, e))?;
    Ok(Outcome::Done { detail: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_distinct_and_alphanumeric() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), GENERATED_LEN);
        assert!(a.iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(a, b);
    }

    #[test]
    fn base64_url_matches_pythons_urlsafe_b64encode() {
        // base64.urlsafe_b64encode(b"\xfb\xff\x00") == b"-_8A"; b"ab" == b"YWI="
        assert_eq!(super::base64_url(&[0xfb, 0xff, 0x00]), "-_8A");
        assert_eq!(super::base64_url(b"ab"), "YWI=");
        assert_eq!(super::base64_url(&[0u8; 32]).len(), 44);
    }
}
