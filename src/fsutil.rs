//! File writes that never leave a half-written file where a reader would find it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `bytes` to `path` with permission `mode`: a temp file in the same folder, fsync, rename
/// over the target, fsync the folder. Readers see the old content or the new, never a mix.
///
/// Nothing is written through a symlink: the temp file is created exclusively and without
/// following one (`O_EXCL | O_NOFOLLOW`; a link planted at its name is refused, not followed),
/// and the rename replaces a link at `path` instead of writing where it points.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = dir.join(format!(".{name}.tmp-{}-{suffix}", std::process::id()));
    let mut created = false;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(&tmp)?;
        created = true;
        // `mode` is filtered by the umask at creation; set it exactly.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    // Only a file this call created is removed: never something planted at the temp name.
    if result.is_err() && created {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read a regular file. Anything else (a FIFO, a device, a directory) is an `InvalidInput` error
/// instead of a read that blocks forever: the file is opened without blocking and checked on the
/// open descriptor, so a FIFO planted at the path cannot stall the reader.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    read_with(path, libc::O_NONBLOCK)
}

/// [`read_regular`] for a file in the workspace, which the container can write: a symbolic link
/// at `path` is refused (`ELOOP`, "too many levels of symbolic links"), not followed.
pub fn read_regular_nofollow(path: &Path) -> std::io::Result<Vec<u8>> {
    read_with(path, libc::O_NONBLOCK | libc::O_NOFOLLOW)
}

fn read_with(path: &Path, flags: i32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One of comfyprov's cache files (JSON, in `<workspace>/.comfyprov/`): its content, or the
/// default when it is missing, unreadable or not ours. No link is followed.
pub fn load_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    read_regular_nofollow(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Best effort: write a cache file as JSON, making its folder when the folder above exists (a
/// cache never creates a workspace). One that cannot be written costs time on the next run.
pub fn save_json<T: serde::Serialize>(path: &Path, value: &T, mode: u32) {
    let Ok(json) = serde_json::to_vec_pretty(value) else {
        return;
    };
    if let Some(dir) = path.parent()
        && dir.parent().is_some_and(Path::is_dir)
    {
        let _ = std::fs::create_dir(dir);
    }
    let _ = write_atomic(path, &json, mode);
}

/// Why writing `path` (absolute, under a canonical folder) would go through a symbolic link:
/// `path` itself is one, or a folder between the canonical base and it is. `None` when it would
/// not (or when nothing is there yet to tell).
pub fn linked_write_target(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok();
    if meta.is_some_and(|m| m.file_type().is_symlink()) {
        return Some("it is a symbolic link".to_owned());
    }
    let parent = path.parent()?;
    let spelled: std::path::PathBuf = parent
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let real = std::fs::canonicalize(&spelled).ok()?;
    (real != spelled).then(|| {
        format!(
            "its folder `{}` is reached through a symbolic link (to `{}`)",
            spelled.display(),
            real.display()
        )
    })
}

/// `base/rel` as a real folder: each component under `base` is created when missing and refused
/// when it is a symbolic link (or not a folder), so a write into it cannot land where a link
/// planted by a container points. `base` itself is trusted (the user may link their workspace).
pub fn real_dir(base: &Path, rel: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut path = base.to_owned();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` is not a plain relative path", rel.display()),
            ));
        };
        path.push(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "`{}` is a symbolic link: comfyprov does not write through links in the workspace",
                        path.display()
                    ),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("`{}` is not a folder", path.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    // Made by a parallel step a moment ago: fine if it is a real folder.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidInput,
                                format!("`{}` is not a folder", path.display()),
                            ));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// Rename `from` to `to`, failing with `AlreadyExists` instead of replacing anything at `to`
/// (a plain `rename` silently replaces an empty directory).
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (a, b) = (cstr(from)?, cstr(to)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE: fall back to check-then-rename below.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        ));
    }
    std::fs::rename(from, to)
}

/// Flush a directory's entries (a rename is durable only once its folder is synced).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Suffix of the directories `apply` clones into before renaming them into place. They start
/// with `.` and end with `.disabled`, so ComfyUI never loads one, even half-written.
const TEMP_SUFFIX: &str = ".comfyprov-tmp.disabled";

/// The temp directory beside `name` for a clone in progress.
pub fn temp_name(name: &str) -> String {
    format!(".{name}{TEMP_SUFFIX}")
}

/// Whether a directory name is one of `apply`'s temp clones (left behind only if it was killed).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Seconds since the epoch as UTC calendar fields (year, month, day, hour, minute, second).
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

fn epoch_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-21T09:30:00Z`.
pub fn utc_iso(t: std::time::SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch_secs(t));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20261121T093000Z`: for file names.
pub fn utc_compact(t: std::time::SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch_secs(t));
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `2026-11-21T10:36:20.038289311Z` (Docker's timestamps) → nanoseconds since the epoch.
pub fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse::<i128>().ok()? * 10i128.pow(9 - digits.len() as u32)
    };
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("PASSWORD");
        std::fs::write(&f, "old").unwrap();
        write_atomic(&f, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_atomic_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("missing-dir").join("x");
        assert!(write_atomic(&f, b"new", 0o600).is_err());
        assert!(!f.exists());
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn docker_timestamps_parse_to_epoch_nanoseconds() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2024-02-29T01:02:03.5Z"),
            Some((1_709_164_800 + 3_723) * 1_000_000_000 + 500_000_000)
        );
        assert_eq!(parse_rfc3339_ns("garbage"), None);
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc_iso(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2024-02-29 is a leap day; 1_709_164_800 is its midnight.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3_723);
        assert_eq!(utc_iso(leap), "2024-02-29T01:02:03Z");
        assert_eq!(utc_compact(leap), "20240229T010203Z");
    }

    #[test]
    fn rename_noreplace_never_replaces_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(a.is_dir());
        std::fs::remove_dir(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert!(b.is_dir() && !a.exists());
    }

    #[test]
    fn temp_names_are_hidden_and_disabled() {
        let t = temp_name("ComfyUI-Login");
        assert!(t.starts_with('.') && t.ends_with(".disabled"));
        assert!(is_temp_name(&t));
        assert!(!is_temp_name("ComfyUI-Login.disabled"));
    }
}

#[cfg(test)]
mod real_dir_tests {
    use super::*;

    #[test]
    fn real_dir_creates_missing_folders_and_refuses_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let made = real_dir(&ws, Path::new(".comfyprov/bin")).unwrap();
        assert!(made.is_dir());
        // A container plants `.comfyprov/python` as a link to a folder outside.
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join(".comfyprov/python")).unwrap();
        let err = real_dir(&ws, Path::new(".comfyprov/python")).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        // A file where a folder goes, and a path that climbs out, are refused too.
        std::fs::write(ws.join("file"), "x").unwrap();
        assert!(real_dir(&ws, Path::new("file/sub")).is_err());
        assert!(real_dir(&ws, Path::new("../escape")).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
