//! Executor for the compose file: rendered from the manifest, written atomically and only when
//! its bytes differ.

use super::{Ctx, Exec, Failure};
use crate::report::Outcome;

pub(super) fn render(ctx: &Ctx) -> Exec {
    let (Some(c), Some(text)) = (
        ctx.desired.container.as_ref(),
        crate::render::compose::render(ctx.desired),
    ) else {
        return Err(Failure::new("the manifest has no [container]"));
    };
    let path = &c.compose_file.path;
    match std::fs::read(path) {
        Ok(b) if b == text.as_bytes() => {
            return Ok(Outcome::AlreadyDone {
                why: format!("{} already matches", c.compose_file.shown),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(Outcome::Done { detail: None })
}
