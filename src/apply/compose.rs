//! Executor for the compose file: the step carries the bytes the plan rendered; they are written
//! atomically, and only when the file's bytes differ.

use super::{Exec, StepError};
use crate::manifest::ManifestPath;
use crate::report::Outcome;

pub(super) fn write(file: &ManifestPath, content: &str) -> Exec {
    let path = &file.path;
    // A link planted since the plan was made: refuse rather than write where it points.
    if let Some(why) = crate::fsutil::linked_write_target(path) {
        return Err(
            StepError::new(format!("{} cannot be written: {why}", file.shown))
                .help("replace the link with a plain file or folder, then run apply again"),
        );
    }
    let previous = match crate::fsutil::read_regular_nofollow(path) {
        Ok(b) if b == content.as_bytes() => {
            return Ok(Outcome::AlreadyDone {
                why: format!("{} already matches", file.shown),
            });
        }
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StepError::io("cannot read", path, e)),
    };
    // Hand edits are not lost without a trace: the file replaced is kept beside it.
    let backup = previous.as_ref().map(|old| {
        let mut name = path.as_os_str().to_owned();
        name.push(".bak");
        (std::path::PathBuf::from(name), old)
    });
    if let Some((bak, old)) = &backup {
        crate::fsutil::write_atomic(bak, old, 0o644)
            .map_err(|e| StepError::io("cannot keep the old file as", bak, e))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StepError::io("cannot create", dir, e))?;
    }
    crate::fsutil::write_atomic(path, content.as_bytes(), 0o644)
        .map_err(|e| StepError::io("cannot write", path, e))?;
    Ok(Outcome::Done {
        detail: backup.map(|(bak, _)| format!("the old file is kept as {}", bak.display())),
    })
}
