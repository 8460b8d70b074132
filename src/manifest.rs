//! Loading the manifest from disk: the file is read here, validated by the core
//! ([`comfyprov_core::manifest`]), with secret files and variables looked up on this host.

use std::path::{Path, PathBuf};

pub use comfyprov_core::manifest::*;

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read manifest `{}`: {source}", path.display())]
    #[diagnostic(
        code(manifest::unreadable),
        help("pass the manifest with `-f PATH`, or start from one in `examples/`")
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` has {} problem{}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" })]
    #[diagnostic(code(manifest::invalid))]
    Invalid {
        path: PathBuf,
        #[related]
        problems: Vec<Problem>,
    },
}

/// Secret files and variables as this host has them.
pub struct Host;

impl Lookup for Host {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        crate::fsutil::read_regular(path).ok()
    }
    fn var_len(&self, name: &str) -> Option<usize> {
        std::env::var_os(name).map(|v| v.len())
    }
}

/// Validate manifest text with this host's secrets; `name` labels diagnostics, `base` resolves
/// relative paths.
pub fn parse(name: &str, text: String, base: &Path) -> Result<Desired, Vec<Problem>> {
    comfyprov_core::manifest::parse(name, text, base, &Host)
}

/// Read and validate the manifest at `path`.
pub fn load(path: &Path) -> Result<Desired, LoadError> {
    load_with_digest(path).map(|(desired, _)| desired)
}

/// Read and validate the manifest at `path`; also the sha256 of exactly the text that was
/// validated (for saved plans, which must name the manifest they were made from).
pub fn load_with_digest(path: &Path) -> Result<(Desired, String), LoadError> {
    let unreadable = |source| LoadError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let text = crate::fsutil::read_regular(path).map_err(unreadable)?;
    let text = String::from_utf8(text).map_err(|e| {
        unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })?;
    let digest = comfyprov_core::digest::sha256_hex(text.as_bytes());
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // Canonical (absolute, no `..`, no symlinks), so that the same deployment has one bind mount,
    // one spec and one lock however the manifest is reached (`-f ../comfy.toml`, a symlinked
    // folder); `shown` keeps the manifest's spelling for messages.
    let base = std::fs::canonicalize(&base)
        .or_else(|_| std::path::absolute(&base))
        .unwrap_or(base);
    let desired =
        parse(&path.display().to_string(), text, &base).map_err(|problems| LoadError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
    Ok((desired, digest))
}

/// Render problems as text without colour at a fixed width (for tests and `--no-color`).
pub fn render_plain(problems: &[Problem], width: usize) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(width)
            .with_links(false);
    let mut out = String::new();
    for p in problems {
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, p);
    }
    out
}
