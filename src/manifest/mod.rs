//! The manifest: `comfy.toml` read, structurally checked against its own schema, then validated
//! into `Desired`. Every problem of a file is collected and reported at once.

pub mod check;
pub mod desired;
pub mod diag;
pub mod raw;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::NamedSource;

pub use desired::*;
pub use diag::Problem;

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

/// Read and validate the manifest at `path`.
pub fn load(path: &Path) -> Result<Desired, LoadError> {
    load_with_digest(path).map(|(desired, _)| desired)
}

/// Read and validate the manifest at `path`; also the sha256 of exactly the text that was
/// validated (for saved plans, which must name the manifest they were made from).
pub fn load_with_digest(path: &Path) -> Result<(Desired, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let digest = crate::observe::sha256_hex(text.as_bytes());
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // Absolute, so that paths handed to Docker (the bind mount) do not depend on where the
    // daemon runs; `shown` keeps the manifest's spelling for messages.
    let base = std::path::absolute(&base).unwrap_or(base);
    let desired =
        parse(&path.display().to_string(), text, &base).map_err(|problems| LoadError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
    Ok((desired, digest))
}

/// Validate manifest text; `name` labels diagnostics, `base` resolves relative paths.
pub fn parse(name: &str, text: String, base: &Path) -> Result<Desired, Vec<Problem>> {
    let source: diag::Source = Arc::new(NamedSource::new(name, text));
    let text = source.inner().as_str();
    let (doc, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                Problem::new(
                    &source,
                    "syntax",
                    span,
                    format!("TOML syntax error: {}", e.message().trim_end()),
                )
                .label("here")
                .help("fix the TOML syntax (strings need quotes; each key once per table)")
            })
            .collect());
    }
    let schema = raw::schema();
    let checked = check::check(&source, &doc, &schema);
    validate::validate(&source, checked, base)
}
