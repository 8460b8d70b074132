//! `comfy.lock`: one resolution of ComfyUI's and the nodes' Python requirements (with torch and
//! the extras) for the container's Python and platform, and the commits the git revs stood at.
//! Written by `comfyprov lock` (and by `apply` when it is missing or stale), committed beside
//! `comfy.toml`.
//!
//! The lock records what it was resolved from: the `[python]` settings, uv's version, the
//! requirements files (path and SHA-256) and the git pins. Comparing those with what is there
//! now says, without resolving anything, whether the lock is current and why not. Its bytes
//! depend only on its content: the same resolution writes the same file.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{FindLinks, PythonSpec};

/// The uv release comfyprov resolves and syncs with. A lock made with another uv is stale.
pub const UV_VERSION: &str = "0.13.9";

/// The lock file's format version.
pub const FORMAT: u32 = 1;

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub version: u32,
    /// The SHA-256 of `resolved_from` (see [`Inputs::digest`]): `plan` compares it with today's
    /// inputs' and reads `resolved_from` only when they differ, to say how.
    #[serde(default)]
    pub inputs_sha256: String,
    /// What the packages were resolved from.
    pub resolved_from: Inputs,
    /// The commits ComfyUI and the nodes were at.
    #[serde(default, rename = "git")]
    pub git: Vec<LockedGit>,
    /// The resolved packages, sorted by name.
    #[serde(default, rename = "package")]
    pub packages: Vec<Package>,
}

/// Everything a resolution depends on. Equal inputs, equal resolution: a lock whose inputs equal
/// today's is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub uv: String,
    pub python: String,
    pub platform: String,
    #[serde(default)]
    pub torch: Option<String>,
    #[serde(default)]
    pub torch_index: Option<String>,
    #[serde(default)]
    pub index_url: Option<String>,
    #[serde(default)]
    pub extra_index_urls: Vec<String>,
    #[serde(default)]
    pub find_links: Vec<String>,
    #[serde(default)]
    pub offline: bool,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub constraints: Vec<String>,
    #[serde(default)]
    pub exclude_newer: Option<String>,
    /// The requirements files, relative to `ComfyUI/`, in resolution order.
    #[serde(default, rename = "file")]
    pub files: Vec<SourceFile>,
}

/// A requirements file the resolution read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Relative to `ComfyUI/`: `requirements.txt`, `custom_nodes/<node>/requirements.txt`.
    pub path: String,
    pub sha256: String,
}

impl SourceFile {
    /// How messages name it: `ComfyUI/requirements.txt`, `<node>/requirements.txt`.
    pub fn label(&self) -> String {
        label(&self.path)
    }
}

/// How messages name a requirements file given relative to `ComfyUI/`.
pub fn label(path: &str) -> String {
    match path.strip_prefix("custom_nodes/") {
        Some(rest) => rest.to_owned(),
        None => format!("ComfyUI/{path}"),
    }
}

/// A git checkout's pin and the commit it was at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedGit {
    /// `ComfyUI` or the node's directory name.
    pub name: String,
    pub rev: String,
    pub commit: String,
}

/// A resolved package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// As uv wrote it (normalised: lowercase, `-`).
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of every file uv may install for it.
    #[serde(default)]
    pub hashes: Vec<String>,
}

impl Inputs {
    /// A digest of everything here.
    pub fn digest(&self) -> String {
        crate::digest::sha256_hex(&serde_json::to_vec(self).unwrap_or_default())
    }

    /// The inputs a resolution for `spec` with these requirements files has.
    pub fn new(spec: &PythonSpec, files: Vec<SourceFile>) -> Inputs {
        Inputs {
            uv: UV_VERSION.to_owned(),
            python: spec.version.clone(),
            platform: spec.platform.clone(),
            torch: spec.torch.as_ref().map(|t| t.version.clone()),
            torch_index: spec.torch.as_ref().and_then(|t| t.index.clone()),
            index_url: spec.index_url.clone(),
            extra_index_urls: spec.extra_index_urls.clone(),
            find_links: spec
                .find_links
                .iter()
                .map(|f| match f {
                    FindLinks::Url(u) => u.clone(),
                    FindLinks::Dir(d) => d.shown.clone(),
                })
                .collect(),
            offline: spec.offline,
            packages: spec.packages.clone(),
            constraints: spec.constraints.clone(),
            exclude_newer: spec.exclude_newer.clone(),
            files,
        }
    }

    /// What differs from `now`, for the reason a lock is stale. Empty when equal.
    pub fn differences(&self, now: &Inputs) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name} {a} → {b}"));
            }
        };
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".to_owned());
        let list = |l: &[String]| format!("[{}]", l.join(", "));
        field("uv", self.uv.clone(), now.uv.clone());
        field("python.version", self.python.clone(), now.python.clone());
        field(
            "python.platform",
            self.platform.clone(),
            now.platform.clone(),
        );
        field("python.torch.version", opt(&self.torch), opt(&now.torch));
        field(
            "python.torch.index",
            opt(&self.torch_index),
            opt(&now.torch_index),
        );
        field(
            "python.index_url",
            opt(&self.index_url),
            opt(&now.index_url),
        );
        field(
            "python.extra_index_urls",
            list(&self.extra_index_urls),
            list(&now.extra_index_urls),
        );
        field(
            "python.find_links",
            list(&self.find_links),
            list(&now.find_links),
        );
        field(
            "python.offline",
            self.offline.to_string(),
            now.offline.to_string(),
        );
        field("python.packages", list(&self.packages), list(&now.packages));
        field(
            "python.constraints",
            list(&self.constraints),
            list(&now.constraints),
        );
        field(
            "python.exclude_newer",
            opt(&self.exclude_newer),
            opt(&now.exclude_newer),
        );
        let before: BTreeMap<&str, &str> = self
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        let after: BTreeMap<&str, &str> = now
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.sha256.as_str()))
            .collect();
        for (path, sha) in &after {
            match before.get(path) {
                None => out.push(format!("{} is new", label(path))),
                Some(old) if old != sha => out.push(format!("{} changed", label(path))),
                Some(_) => {}
            }
        }
        for path in before.keys().filter(|p| !after.contains_key(*p)) {
            out.push(format!("{} is no longer an input", label(path)));
        }
        out
    }
}

impl Lock {
    /// A lock of `packages` resolved from `inputs`, with the checkouts' commits.
    pub fn new(inputs: Inputs, git: Vec<LockedGit>, packages: Vec<Package>) -> Lock {
        Lock {
            version: FORMAT,
            inputs_sha256: inputs.digest(),
            resolved_from: inputs,
            git,
            packages,
        }
    }

    /// [`Lock::parse`] for `plan`, which knows today's inputs: when the lock says it was
    /// resolved from inputs with today's digest, `resolved_from` is not parsed at all (it is
    /// today's); the git pins and packages are read by the line scanner.
    pub fn parse_against(text: &str, now: &Inputs) -> Result<Lock, String> {
        let digest = now.digest();
        let current = text.lines().take(8).any(|l| {
            l.strip_prefix("inputs_sha256 = \"")
                .and_then(|r| r.strip_suffix('"'))
                == Some(digest.as_str())
        });
        let fast = current.then(|| {
            let (head, packages) = text.split_once("\n[[package]]\n")?;
            let git = match head.split_once("\n[[git]]\n") {
                Some((_, git)) => scan_tables(git)?
                    .into_iter()
                    .map(|mut t| {
                        Some(LockedGit {
                            name: take(&mut t, "name")?,
                            rev: take(&mut t, "rev")?,
                            commit: take(&mut t, "commit")?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
                None => Vec::new(),
            };
            Some(Lock {
                version: FORMAT,
                inputs_sha256: digest.clone(),
                resolved_from: now.clone(),
                git,
                packages: scan_packages(packages)?,
            })
        });
        match fast.flatten() {
            Some(lock) if text.contains(&format!("\nversion = {FORMAT}\n")) => Ok(lock),
            _ => Lock::parse(text),
        }
    }

    /// Parse a lock file's text. `plan` reads it on every run and a real lock holds thousands of
    /// hashes: the packages, in the exact form [`Lock::render`] writes them, are read by a
    /// line scanner (a tenth of the TOML parser's time), the rest by the TOML parser. Anything
    /// else (a hand-edited file) goes to the TOML parser whole.
    pub fn parse(text: &str) -> Result<Lock, String> {
        let fast = text.split_once("\n[[package]]\n").and_then(|(head, tail)| {
            #[derive(Deserialize)]
            struct Head {
                version: u32,
                #[serde(default)]
                inputs_sha256: String,
                resolved_from: Inputs,
                #[serde(default)]
                git: Vec<LockedGit>,
            }
            let head: Head = toml::from_str(head).ok()?;
            Some(Lock {
                version: head.version,
                inputs_sha256: head.inputs_sha256,
                resolved_from: head.resolved_from,
                git: head.git,
                packages: scan_packages(tail)?,
            })
        });
        let lock = match fast {
            Some(lock) => lock,
            None => toml::from_str(text).map_err(|e| e.message().to_owned())?,
        };
        if lock.version != FORMAT {
            return Err(format!(
                "format version {} (this comfyprov reads {FORMAT})",
                lock.version
            ));
        }
        Ok(lock)
    }

    /// The file's bytes: a header, then the content in a fixed order.
    pub fn render(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# comfy.lock: written by comfyprov (`comfyprov lock`, or `apply` when it is missing or stale).\n# Commit it beside comfy.toml; do not edit it by hand.\n{body}"
        )
    }

    /// Packages by normalised name.
    pub fn by_name(&self) -> BTreeMap<String, &str> {
        self.packages
            .iter()
            .map(|p| (normalize(&p.name), p.version.as_str()))
            .collect()
    }

    /// The requirements file `uv pip sync` installs exactly: one pinned line per package, with
    /// its hashes.
    pub fn requirements(&self) -> String {
        let mut out = String::new();
        for p in &self.packages {
            out.push_str(&format!("{}=={}", p.name, p.version));
            for h in &p.hashes {
                out.push_str(&format!(" --hash={h}"));
            }
            out.push('\n');
        }
        out
    }
}

/// A scanned table: each key with its string values.
type Table = Vec<(String, Vec<String>)>;

/// `[[…]]` tables as `render` writes them, the first header already split off: each a list of
/// `key = "string"` or `key = ["string", …]` lines, until the next header of the same name.
/// `None` on anything else.
fn scan_tables(text: &str) -> Option<Vec<Table>> {
    let quoted = |v: &str| -> Option<String> {
        let inner = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains(['"', '\\'])).then(|| inner.to_owned())
    };
    let mut out = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("[[") {
            out.push(Vec::new());
            continue;
        }
        let (key, value) = line.split_once(" = ")?;
        let values = match value.trim().strip_prefix('[') {
            Some(list) => list
                .strip_suffix(']')?
                .split(',')
                .filter(|h| !h.trim().is_empty())
                .map(quoted)
                .collect::<Option<Vec<_>>>()?,
            None => vec![quoted(value)?],
        };
        out.last_mut()?.push((key.to_owned(), values));
    }
    Some(out)
}

/// The one string value of `key` in a scanned table.
fn take(table: &mut Table, key: &str) -> Option<String> {
    let i = table.iter().position(|(k, _)| k == key)?;
    let (_, mut v) = table.swap_remove(i);
    (v.len() == 1).then(|| v.remove(0))
}

/// The `[[package]]` tables as `render` writes them (the first header already split off).
fn scan_packages(text: &str) -> Option<Vec<Package>> {
    scan_tables(text)?
        .into_iter()
        .map(|mut t| {
            let name = take(&mut t, "name")?;
            let version = take(&mut t, "version")?;
            let hashes = match t.iter().position(|(k, _)| k == "hashes") {
                Some(i) => t.swap_remove(i).1,
                None => Vec::new(),
            };
            t.is_empty().then_some(Package {
                name,
                version,
                hashes,
            })
        })
        .collect()
}

/// A package name as PEP 503 compares them: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One package's difference between an environment and the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PackageChange {
    Add {
        name: String,
        version: String,
    },
    Remove {
        name: String,
        version: String,
    },
    Update {
        name: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for PackageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageChange::Add { name, version } => write!(f, "+ {name} {version}"),
            PackageChange::Remove { name, version } => write!(f, "- {name} {version}"),
            PackageChange::Update { name, from, to } => write!(f, "{name} {from} → {to}"),
        }
    }
}

/// What a sync to `lock` changes in an environment holding `installed` (normalised name →
/// version), sorted by name.
pub fn changes(installed: &BTreeMap<String, String>, lock: &Lock) -> Vec<PackageChange> {
    let wanted = lock.by_name();
    let mut out = Vec::new();
    for (name, version) in &wanted {
        match installed.get(name) {
            None => out.push(PackageChange::Add {
                name: name.clone(),
                version: (*version).to_owned(),
            }),
            Some(v) if v != version => out.push(PackageChange::Update {
                name: name.clone(),
                from: v.clone(),
                to: (*version).to_owned(),
            }),
            Some(_) => {}
        }
    }
    for (name, version) in installed {
        if !wanted.contains_key(name) {
            out.push(PackageChange::Remove {
                name: name.clone(),
                version: version.clone(),
            });
        }
    }
    out.sort_by(|a, b| change_name(a).cmp(change_name(b)));
    out
}

fn change_name(c: &PackageChange) -> &str {
    match c {
        PackageChange::Add { name, .. }
        | PackageChange::Remove { name, .. }
        | PackageChange::Update { name, .. } => name,
    }
}

/// Parse `uv pip compile --generate-hashes` output: `name==version \` lines followed by
/// `--hash=sha256:…` lines; comments and blank lines skipped. A line that pins nothing (a URL
/// requirement) is an error: the lock holds versions and hashes only.
pub fn parse_compiled(text: &str) -> Result<Vec<Package>, String> {
    let mut packages: Vec<Package> = Vec::new();
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        let line = line.trim_end_matches('\\').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some(hash) = first.strip_prefix("--hash=") {
            match packages.last_mut() {
                Some(p) => p.hashes.push(hash.to_owned()),
                None => return Err(format!("a hash before any package: {line}")),
            }
        } else if let Some((name, version)) = first.split_once("==") {
            let mut p = Package {
                name: normalize(name.split('[').next().unwrap_or(name)),
                version: version.to_owned(),
                hashes: Vec::new(),
            };
            for rest in parts {
                if let Some(hash) = rest.strip_prefix("--hash=") {
                    p.hashes.push(hash.to_owned());
                }
            }
            packages.push(p);
        } else if first.starts_with("--") {
            // An option uv repeats from the inputs (`--index-url …`): not a package.
            continue;
        } else {
            return Err(format!(
                "`{line}` is not pinned to a version (direct URL and path requirements cannot be locked yet)"
            ));
        }
    }
    for p in &mut packages {
        p.hashes.sort();
        p.hashes.dedup();
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

/// The package a requirement line names (normalised), if it names one: `numpy>=2; python_version
/// > "3.8"` → `numpy`. Options, URLs and includes name none.
pub fn requirement_name(line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() || line.starts_with('-') || line.contains("://") {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let name = &line[..end];
    (!name.is_empty()).then(|| normalize(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_pep_503_says() {
        assert_eq!(normalize("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(normalize("typing_extensions"), "typing-extensions");
        assert_eq!(normalize("PyYAML"), "pyyaml");
    }

    #[test]
    fn compiled_output_becomes_sorted_packages_with_hashes() {
        let out = "numpy==2.1.2 \\\n    --hash=sha256:bb \\\n    --hash=sha256:aa\n    # via -r a.txt\ndep-a==1.1 \\\n    --hash=sha256:cc\n";
        let p = parse_compiled(out).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "dep-a");
        assert_eq!(p[1].hashes, vec!["sha256:aa", "sha256:bb"]);
        assert!(parse_compiled("foo @ https://x/y.whl\n").is_err());
    }

    #[test]
    fn requirement_lines_name_their_package() {
        assert_eq!(requirement_name("numpy<2").as_deref(), Some("numpy"));
        assert_eq!(
            requirement_name("Pillow >= 9 ; python_version > '3.8'").as_deref(),
            Some("pillow")
        );
        assert_eq!(
            requirement_name("torch[cuda]==2.5").as_deref(),
            Some("torch")
        );
        assert_eq!(requirement_name("-r other.txt"), None);
        assert_eq!(requirement_name("# comment"), None);
    }

    #[test]
    fn changes_list_updates_additions_and_removals() {
        let lock = Lock::new(
            Inputs::new(
                &crate::manifest::PythonSpec {
                    version: "3.11".into(),
                    platform: "x86_64-manylinux_2_28".into(),
                    torch: None,
                    index_url: None,
                    extra_index_urls: vec![],
                    find_links: vec![],
                    offline: false,
                    packages: vec![],
                    constraints: vec![],
                    exclude_newer: None,
                    env: "venv".into(),
                    lock_file: crate::manifest::ManifestPath {
                        shown: "comfy.lock".into(),
                        path: "comfy.lock".into(),
                    },
                },
                vec![],
            ),
            vec![LockedGit {
                name: "ComfyUI".into(),
                rev: "v0.3.68".into(),
                commit: "f".repeat(40),
            }],
            vec![
                Package {
                    name: "numpy".into(),
                    version: "2.1.2".into(),
                    hashes: vec!["sha256:aa".into(), "sha256:bb".into()],
                },
                Package {
                    name: "onnxruntime".into(),
                    version: "1.19.0".into(),
                    hashes: vec![],
                },
            ],
        );
        let installed: BTreeMap<String, String> = [("numpy", "1.26.4"), ("foo", "0.1")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        let shown: Vec<String> = changes(&installed, &lock)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            vec!["- foo 0.1", "numpy 1.26.4 → 2.1.2", "+ onnxruntime 1.19.0"]
        );
        let text = lock.render();
        assert_eq!(Lock::parse(&text).unwrap(), lock);
        assert_eq!(lock.render(), text, "the same lock renders the same bytes");
        // The scanner and the TOML parser agree; a hand-edited file still parses.
        let (_, tail) = text.split_once("\n[[package]]\n").unwrap();
        assert_eq!(scan_packages(tail).unwrap(), lock.packages);
        let edited = text.replace(
            "[[package]]\nname = \"numpy\"",
            "[[package]]\nname   =   'numpy'",
        );
        assert_eq!(Lock::parse(&edited).unwrap(), lock);
        assert!(scan_packages("name = 'numpy'\n").is_none());
        // Against today's inputs: the same lock, without parsing what it was resolved from;
        // against other inputs, the full parse (whose resolved_from then differs).
        assert_eq!(
            Lock::parse_against(&text, &lock.resolved_from).unwrap(),
            lock
        );
        let mut other = lock.resolved_from.clone();
        other.python = "3.12".into();
        let parsed = Lock::parse_against(&text, &other).unwrap();
        assert_eq!(parsed, lock);
        assert_eq!(
            parsed.resolved_from.differences(&other),
            ["python.version 3.11 → 3.12"]
        );
    }
}

/// A model file's entry in `comfy.lock`: the SHA-256 and size it was first downloaded with
/// (or recorded from the file found there), for the URL it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedModel {
    pub path: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// Where the model entries start in `comfy.lock`: after the Python resolution, which its own
/// readers take up to here.
const MODELS_HEADER: &str =
    "# Model files: the SHA-256 each was first downloaded with, enforced from then on.\n";

/// Split a lock file into its Python part and its model entries.
pub fn split_models(text: &str) -> (&str, &str) {
    let at = text.find(MODELS_HEADER).or_else(|| {
        text.find("[[model]]\n")
            .filter(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
    });
    match at {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    }
}

/// The model entries of a lock file's text.
pub fn parse_models(text: &str) -> Result<Vec<LockedModel>, String> {
    let (_, part) = split_models(text);
    if part.trim().is_empty() {
        return Ok(Vec::new());
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        model: Vec<LockedModel>,
    }
    toml::from_str::<Part>(part)
        .map(|p| p.model)
        .map_err(|e| format!("its model entries: {}", e.message()))
}

/// A lock file with `python` (a rendered [`Lock`], or nothing) and these model entries, sorted
/// by path so the bytes depend only on the content.
pub fn join_models(python: &str, models: &[LockedModel]) -> String {
    let mut models = models.to_vec();
    models.sort_by(|a, b| a.path.cmp(&b.path));
    models.dedup_by(|a, b| a.path == b.path);
    let mut out = if python.trim().is_empty() {
        "# comfy.lock: written by comfyprov. Commit it beside comfy.toml; do not edit it by hand.\n"
            .to_owned()
    } else {
        python.trim_end().to_owned() + "\n"
    };
    if models.is_empty() {
        return out;
    }
    out.push('\n');
    out.push_str(MODELS_HEADER);
    #[derive(Serialize)]
    struct Part<'a> {
        model: &'a [LockedModel],
    }
    out.push_str(&toml::to_string(&Part { model: &models }).unwrap_or_default());
    out
}

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn model_entries_round_trip_beside_the_python_part() {
        let m = LockedModel {
            path: "vae/x.safetensors".to_owned(),
            url: "https://example.invalid/x".to_owned(),
            sha256: "ab".repeat(32),
            size: 42,
        };
        let python = "# comfy.lock\nversion = 1\n\n[[package]]\nname = \"a\"\nversion = \"1\"\n";
        let text = join_models(python, std::slice::from_ref(&m));
        let (py, _) = split_models(&text);
        assert_eq!(py.trim_end(), python.trim_end());
        assert_eq!(parse_models(&text).unwrap(), vec![m.clone()]);
        // Only models: still one lock.
        let text = join_models("", std::slice::from_ref(&m));
        assert_eq!(parse_models(&text).unwrap(), vec![m]);
        assert_eq!(parse_models(python).unwrap(), vec![]);
    }
}
