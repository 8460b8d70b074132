//! The manifest: `comfy.toml` read, structurally checked against its own schema, then validated
//! into `Desired`. Every problem of a file is collected and reported at once.

pub mod check;
pub mod desired;
pub mod diag;
pub mod models;
mod python;
pub mod raw;
pub mod template;
pub mod validate;

use std::path::Path;
use std::sync::Arc;

use miette::NamedSource;

pub use desired::*;
pub use diag::Problem;

/// What validation may look at outside the manifest's text: the content of a secret file and
/// the length of a secret variable (to refuse a password bcrypt would truncate). The binary
/// answers from the real filesystem and environment; tests answer from memory.
pub trait Lookup {
    /// The file's bytes, or `None` when it cannot be read (`plan` reports why).
    fn read(&self, path: &Path) -> Option<Vec<u8>>;
    /// The byte length of the environment variable's value, if it is set.
    fn var_len(&self, name: &str) -> Option<usize>;
}

/// A [`Lookup`] that finds nothing: every secret is missing.
pub struct NoLookup;

impl Lookup for NoLookup {
    fn read(&self, _: &Path) -> Option<Vec<u8>> {
        None
    }
    fn var_len(&self, _: &str) -> Option<usize> {
        None
    }
}

/// `text` with the userinfo of every `scheme://user:secret@host` replaced by `*`s of the same
/// length (a `ssh://git@host` user name too: it is not worth telling apart here).
///
/// ```
/// use comfyprov_core::manifest::mask_url_credentials;
/// assert_eq!(
///     mask_url_credentials(r#"index = "https://u:tok@h/simple""#),
///     r#"index = "https://*****@h/simple""#
/// );
/// assert_eq!(mask_url_credentials("a@b https://h/x"), "a@b https://h/x");
/// ```
pub fn mask_url_credentials(text: &str) -> String {
    let mut out = text.to_owned();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let end = text[start..]
            .find(['/', '"', '\'', '\n', ' ', '\t', '#', '?'])
            .map_or(text.len(), |e| start + e);
        if let Some(at) = text[start..end].rfind('@') {
            out.replace_range(start..start + at, &"*".repeat(at));
        }
        from = end.max(start);
    }
    out
}

/// Validate manifest text; `name` labels diagnostics, `base` resolves relative paths.
pub fn parse(
    name: &str,
    text: String,
    base: &Path,
    lookup: &dyn Lookup,
) -> Result<Desired, Vec<Problem>> {
    // Diagnostics quote the manifest around each problem: they quote it with every URL's
    // credentials masked (same length, so every span still fits), whatever the problem is.
    let source: diag::Source = Arc::new(NamedSource::new(name, mask_url_credentials(&text)));
    let (doc, errors) = toml::de::DeTable::parse_recoverable(&text);
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
    validate::validate(&source, checked, base, lookup)
}
