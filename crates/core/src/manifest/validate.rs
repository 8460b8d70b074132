//! Semantic checks: a structurally valid manifest becomes a `Desired`, or a list of every problem
//! found, each pointing at its span. Each section is checked on its own, so a broken `[container]`
//! does not hide a problem in `[[nodes]]`.
//!
//! The only I/O here is reading the plaintext password (file or variable) to check its length, and
//! a hash file to check its format: both are problems the user should learn about at `validate`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path as FsPath;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::check::{Checked, Path, Seg, SpanMap};
use super::desired::*;
use super::diag::{Problem, Source};
use super::raw;

/// bcrypt reads at most this many bytes of a password; longer ones are refused, not truncated.
pub const BCRYPT_MAX_PASSWORD: usize = 72;
/// The lowest bcrypt cost accepted, for a ready hash as for `bcrypt_cost` (the schema's minimum).
const MIN_BCRYPT_COST: u32 = 10;

pub(super) struct Ctx<'a> {
    lookup: &'a dyn super::Lookup,
    source: &'a Source,
    spans: &'a SpanMap,
    base: &'a FsPath,
    problems: Vec<Problem>,
}

pub(super) fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

fn p(parts: &[Seg]) -> Path {
    parts.to_vec()
}

impl Ctx<'_> {
    pub(super) fn err(
        &mut self,
        code: &'static str,
        at: &[Seg],
        message: String,
        label: &str,
        help: String,
    ) {
        let span = self.spans.value(at);
        self.problems.push(
            Problem::new(self.source, code, span, message)
                .label(label)
                .help(help),
        );
    }

    pub(super) fn err_key(
        &mut self,
        code: &'static str,
        at: &[Seg],
        message: String,
        label: &str,
        help: String,
    ) {
        let span = self.spans.entry(at);
        self.problems.push(
            Problem::new(self.source, code, span, message)
                .label(label)
                .help(help),
        );
    }

    pub(super) fn path(&self, shown: &str) -> ManifestPath {
        let path = if self.base == FsPath::new(".") {
            shown.into()
        } else {
            self.base.join(shown)
        };
        ManifestPath {
            shown: shown.to_owned(),
            path,
        }
    }
}

fn section<T: DeserializeOwned>(value: &Value, k: &str) -> Option<T> {
    value
        .get(k)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Turn a structurally checked manifest into `Desired`, collecting every semantic problem
/// alongside the structural ones already in `checked`.
pub fn validate(
    source: &Source,
    checked: Checked,
    base: &FsPath,
    lookup: &dyn super::Lookup,
) -> Result<Desired, Vec<Problem>> {
    let Checked {
        value,
        spans,
        problems,
    } = checked;
    let mut cx = Ctx {
        lookup,
        source,
        spans: &spans,
        base,
        problems,
    };

    let project: Option<raw::Project> = section(&value, "project");
    let workspace: Option<raw::Workspace> = section(&value, "workspace");
    let comfyui: Option<raw::ComfyUi> = section(&value, "comfyui");
    let container: Option<raw::Container> = section(&value, "container");
    let python: Option<raw::Python> = section(&value, "python");
    let gpu: Option<raw::Gpu> = if value.get("gpu").is_some() {
        section(&value, "gpu")
    } else {
        Some(raw::Gpu::default())
    };
    let auth: Option<raw::Auth> = section(&value, "auth");
    let policy: Option<raw::Policy> = if value.get("policy").is_some() {
        section(&value, "policy")
    } else {
        Some(raw::Policy::default())
    };
    let node_values = value
        .get("nodes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();

    let project = project.and_then(|pr| {
        let at = p(&[key("project"), key("name")]);
        let ok = !pr.name.is_empty()
            && pr.name.len() <= 63
            && pr.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && pr.name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if ok {
            Some(pr.name)
        } else {
            cx.err(
                "project_name",
                &at,
                format!("`project.name` \"{}\" cannot name a container and compose project", pr.name.escape_debug()),
                "invalid name",
                "use lowercase letters, digits, `-` and `_`, starting with a letter or digit (at most 63), e.g. \"comfyui-qwen\"".to_owned(),
            );
            None
        }
    });

    let workspace = workspace.and_then(|w| {
        if w.path.trim().is_empty() {
            cx.err(
                "empty_path",
                &[key("workspace"), key("path")],
                "`workspace.path` is empty".to_owned(),
                "empty path",
                "name the folder that holds (or will hold) `ComfyUI/`, e.g. \"./workspace\""
                    .to_owned(),
            );
            None
        } else {
            Some(cx.path(&w.path))
        }
    });

    let comfyui = comfyui.and_then(|c| git_source(&mut cx, &[key("comfyui")], &c.git, &c.rev));

    // Nodes: each on its own, then names unique.
    let mut nodes = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut seen_folded: HashMap<String, (usize, String)> = HashMap::new();
    for (i, nv) in node_values.iter().enumerate() {
        let at = p(&[key("nodes"), Seg::Index(i)]);
        let Ok(n) = serde_json::from_value::<raw::Node>(nv.clone()) else {
            continue;
        };
        let mut name_at = at.clone();
        name_at.push(key("name"));
        let name_ok = check_dir_name(&mut cx, &name_at, &n.name, "node name");
        if name_ok {
            if let Some(first) = seen.get(&n.name) {
                cx.err(
                    "duplicate_node",
                    &name_at,
                    format!(
                        "node `{}` is declared twice (first as `nodes[{first}]`)",
                        n.name
                    ),
                    "duplicate name",
                    "each `[[nodes]]` entry needs its own directory name; remove one or rename it"
                        .to_owned(),
                );
            } else if let Some((first, other)) = seen_folded.get(&n.name.to_lowercase()) {
                cx.err(
                    "duplicate_node",
                    &name_at,
                    format!(
                        "node `{}` differs from `{other}` (`nodes[{first}]`) only in case",
                        n.name
                    ),
                    "same name in another case",
                    "on a case-insensitive file system (macOS, Windows) both are one directory; rename one"
                        .to_owned(),
                );
            } else {
                seen.insert(n.name.clone(), i);
                seen_folded.insert(n.name.to_lowercase(), (i, n.name.clone()));
            }
        }
        let source = git_source(&mut cx, &at, &n.git, &n.rev);
        if let (true, Some(source)) = (name_ok, source) {
            nodes.push(NodeSpec {
                name: n.name,
                source,
                requirements: n.requirements,
            });
        }
    }

    let gpu = gpu.and_then(|g| gpu_spec(&mut cx, g));
    let container =
        container.and_then(|c| container_spec(&mut cx, c, auth.as_ref().map(|a| a.mode)));
    let python = python.and_then(|py| {
        super::python::python_spec(
            &mut cx,
            py,
            container.as_ref(),
            value.get("container").is_some(),
        )
    });
    if value.get("python").is_none() {
        for (i, n) in node_values.iter().enumerate() {
            if n.get("requirements").and_then(Value::as_bool) == Some(true) {
                cx.err(
                    "requirements_without_python",
                    &[key("nodes"), Seg::Index(i), key("requirements")],
                    "`requirements = true` needs `[python]`: comfyprov installs requirements only into the environment it builds".to_owned(),
                    "no environment to resolve into",
                    "add a `[python]` section (e.g. `[python]` with `version = \"3.12\"`), or remove `requirements`".to_owned(),
                );
            }
        }
    }
    // Every entry with a name declares it, even one that failed its other checks: its problems
    // are already reported, and "not declared" would be false.
    let declared: HashMap<String, usize> = node_values
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(i, v)| {
            v.get("name")
                .and_then(Value::as_str)
                .map(|n| (n.to_owned(), i))
        })
        .collect();
    let auth_spec = auth.and_then(|a| auth_spec(&mut cx, a, &declared));

    let mut checks: Vec<CheckSpec> = Vec::new();
    for (i, cv) in value
        .get("checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Ok(c) = serde_json::from_value::<raw::WorkflowCheck>(cv.clone()) else {
            continue;
        };
        let at = [key("checks"), Seg::Index(i)];
        if c.workflow.trim().is_empty() {
            cx.err(
                "check_workflow",
                &[at[0].clone(), at[1].clone(), key("workflow")],
                "`checks.workflow` is empty".to_owned(),
                "empty",
                "name an API-format workflow file (\"Save (API)\" in ComfyUI), e.g. \"checks/smoke.json\"".to_owned(),
            );
            continue;
        }
        let name = c.name.clone().unwrap_or_else(|| {
            FsPath::new(&c.workflow)
                .file_stem()
                .map_or_else(|| c.workflow.clone(), |s| s.to_string_lossy().into_owned())
        });
        if checks.iter().any(|k| k.name == name) {
            cx.err(
                "duplicate_check",
                &[
                    at[0].clone(),
                    at[1].clone(),
                    key(if c.name.is_some() { "name" } else { "workflow" }),
                ],
                format!("two checks are named `{name}`"),
                "duplicate name",
                "give each `[[checks]]` entry its own `name`".to_owned(),
            );
            continue;
        }
        checks.push(CheckSpec {
            name,
            workflow: cx.path(&c.workflow),
            timeout_s: c.timeout,
            on_apply: c.on_apply,
        });
    }

    let models = super::models::models(&mut cx, &value);

    let policy = policy.map(|pol| PolicySpec {
        unmanaged_nodes: pol.unmanaged_nodes,
        allow_public_without_auth: pol.allow_public_without_auth,
    });

    // Cross-section: the compose file must not be written over the secret.
    if let (Some(c), Some(AuthSpec::Login(l))) = (&container, &auth_spec)
        && let SecretSource::PasswordFile(f) | SecretSource::HashFile(f) = &l.secret
        && f.path == c.compose_file.path
    {
        cx.err(
            "compose_file",
            &[key("container"), key("compose_file")],
            format!(
                "`container.compose_file` \"{}\" is the secret file: apply would overwrite the secret with the compose file",
                c.compose_file.shown.escape_debug()
            ),
            "the secret file",
            "name another file, e.g. \"docker-compose-with-auth.yml\"".to_owned(),
        );
    }

    // Cross-section: no-auth must stay on loopback unless the policy says otherwise.
    if let (Some(c), Some(AuthSpec::None { .. }), Some(pol)) = (&container, &auth_spec, &policy)
        && !c.listen.is_loopback()
        && !pol.allow_public_without_auth
    {
        cx.err(
            "public_without_auth",
            &[key("container"), key("listen")],
            format!("`auth.mode = \"none\"` with `container.listen = \"{}\"` exposes ComfyUI without a password", c.listen),
            "reachable from the network",
            "use `listen = \"127.0.0.1\"`, switch to `auth.mode = \"login\"`, or set `policy.allow_public_without_auth = true`".to_owned(),
        );
    }

    let lock_file = cx.path("comfy.lock");
    let mut problems = cx.problems;
    if problems.is_empty()
        && let (Some(project), Some(workspace), Some(gpu), Some(auth), Some(policy)) =
            (project, workspace, gpu, auth_spec, policy)
    {
        let container = match container {
            Some(c) => Some(c),
            None if value.get("container").is_some() => return Err(problems),
            None => None,
        };
        if value.get("comfyui").is_some() && comfyui.is_none() {
            return Err(problems);
        }
        if value.get("python").is_some() && python.is_none() {
            return Err(problems);
        }
        return Ok(Desired {
            project,
            workspace,
            comfyui,
            container,
            python,
            gpu,
            auth,
            nodes,
            policy,
            checks,
            models,
            lock_file,
        });
    }
    problems.sort_by_key(|p| (p.span.start, p.span.end));
    Err(problems)
}

/// Check a plain directory name (node names, `auth.login_node`).
fn check_dir_name(cx: &mut Ctx<'_>, at: &[Seg], name: &str, what: &str) -> bool {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory outside `custom_nodes/`")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else if name.chars().any(is_bidi_control) {
        Some(
            "it contains a bidirectional control character, which makes it read differently than it is",
        )
    } else if name.starts_with('.') {
        Some(
            "it starts with `.` (hidden directories are reserved for comfyprov's temporary clones)",
        )
    } else if name.ends_with(".disabled") {
        Some("ComfyUI skips directories ending in `.disabled`")
    } else if name == "__pycache__" {
        Some("ComfyUI skips `__pycache__`")
    } else if name.len() > MAX_NAME {
        Some(
            "it is longer than 200 bytes (a file name has at most 255, and apply's temporary clone beside it needs the rest)",
        )
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            cx.err(
                "node_name",
                at,
                format!(
                    "{what} \"{}\" is not a plain directory name: {why}",
                    name.escape_debug()
                ),
                "not a plain directory name",
                "use the directory name the node has under `custom_nodes/`, e.g. \"ComfyUI-Login\""
                    .to_owned(),
            );
            false
        }
    }
}

fn git_source(cx: &mut Ctx<'_>, at: &[Seg], url: &str, rev: &str) -> Option<GitSource> {
    let mut url_at = at.to_vec();
    url_at.push(key("git"));
    let mut rev_at = at.to_vec();
    rev_at.push(key("rev"));
    let url_ok = match check_git_url(url) {
        Ok(()) => true,
        Err(_) if credentials(url).is_some() => {
            // Neither the message nor the snippet may show them: the snippet is drawn from a
            // copy of the manifest with the credentials masked.
            let span = cx.spans.value(&url_at);
            let mut text = cx.source.inner().clone();
            if let Some(r) = credentials(url) {
                let secret = &url[r];
                if let Some(at) = text.get(span.clone()).and_then(|v| v.find(secret)) {
                    let start = span.start + at;
                    text.replace_range(start..start + secret.len(), &"*".repeat(secret.len()));
                }
            }
            let masked: Source =
                std::sync::Arc::new(miette::NamedSource::new(cx.source.name(), text));
            cx.problems.push(
                Problem::new(
                    &masked,
                    "git_url_credentials",
                    span,
                    format!(
                        "git URL \"{}\" has credentials in it",
                        mask_credentials(url).escape_debug()
                    ),
                )
                .label("credentials")
                .help(CREDENTIALS_HELP.to_owned()),
            );
            false
        }
        Err((why, help)) => {
            cx.err(
                "git_url",
                &url_at,
                format!("git URL \"{}\" is not allowed: {why}", url.escape_debug()),
                "unsupported URL",
                help,
            );
            false
        }
    };
    let rev = match parse_rev(rev) {
        Ok(r) => Some(r),
        Err(why) => {
            cx.err(
                "rev",
                &rev_at,
                format!("rev \"{}\" is malformed: {why}", rev.escape_debug()),
                "not a commit, tag or branch",
                "pin a commit (7 to 40 hex digits, preferred), a tag such as \"v1.2.0\" or a branch such as \"main\"".to_owned(),
            );
            None
        }
    };
    match (url_ok, rev) {
        (true, Some(rev)) => Some(GitSource {
            url: url.to_owned(),
            rev,
        }),
        _ => None,
    }
}

const CREDENTIALS_HELP: &str = "remove them from the URL (they would be shown in plans, saved plans and git's messages); let git find them instead: a credential helper (`git config --global credential.helper store`), an SSH key with `ssh://` or `user@host:path`, or a `.netrc`";

/// Where a URL carries credentials: the userinfo of an `https://`, `git://` or `file://` URL
/// (a token alone is a credential there), or a password in an `ssh://` one (`ssh://git@host` is
/// a user name, not a secret).
pub fn credentials(url: &str) -> Option<std::ops::Range<usize>> {
    let (scheme, rest) = url.split_once("://")?;
    let start = scheme.len() + 3;
    let authority = rest.split('/').next().unwrap_or(rest);
    let at = authority.rfind('@')?;
    let userinfo = &authority[..at];
    let secret = match scheme {
        "ssh" => userinfo.contains(':'),
        _ => !userinfo.is_empty(),
    };
    secret.then(|| start..start + at)
}

/// `url` with its credentials (see [`credentials`]) replaced by `****`.
pub fn mask_credentials(url: &str) -> String {
    match credentials(url) {
        Some(r) => format!("{}****{}", &url[..r.start], &url[r.end..]),
        None => url.to_owned(),
    }
}

const URL_HELP: &str = "use `https://host/path`, `ssh://host/path`, `git://host/path`, `file:///absolute/path` or `user@host:path`";

/// Accept only transports that cannot run commands: https, ssh, git, file and scp-like.
///
/// ```
/// use comfyprov_core::manifest::validate::check_git_url;
/// assert!(check_git_url("https://github.com/liusida/ComfyUI-Login").is_ok());
/// assert!(check_git_url("git@github.com:liusida/ComfyUI-Login.git").is_ok());
/// assert!(check_git_url("ext::sh -c touch% /tmp/pwned").is_err());
/// assert!(check_git_url("--upload-pack=evil").is_err());
/// assert!(check_git_url("https://user:token@github.com/x/y").is_err());
/// assert!(check_git_url("ssh://git@github.com/x/y").is_ok());
/// ```
pub fn check_git_url(url: &str) -> Result<(), (String, String)> {
    let err = |why: &str| Err((why.to_owned(), URL_HELP.to_owned()));
    if url.is_empty() {
        return err("it is empty");
    }
    if url
        .split_once("://")
        .map_or(url, |(scheme, _)| scheme)
        .contains("::")
    {
        return err("remote helpers (`ext::`, `fd::`, `<transport>::`) can run arbitrary commands");
    }
    if url.starts_with('-') {
        return err("it starts with `-`, which git would read as an option");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err("it contains whitespace or a control character");
    }
    if credentials(url).is_some() {
        return Err((
            "it has credentials in it".to_owned(),
            CREDENTIALS_HELP.to_owned(),
        ));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let rest_ok = |r: &str| !r.is_empty() && !r.starts_with('/');
        return match scheme {
            "https" | "ssh" | "git" if rest_ok(rest) => Ok(()),
            "https" | "ssh" | "git" => err("it has no host"),
            "file" if rest.starts_with('/') || rest.starts_with("localhost/") => Ok(()),
            "file" => err("a `file://` URL needs an absolute path (`file:///path`)"),
            "http" => Err((
                "plain `http://` is not allowed (no integrity or authenticity)".to_owned(),
                "use `https://` instead".to_owned(),
            )),
            _ => err(&format!(
                "the scheme `{scheme}` is not one of https, ssh, git, file"
            )),
        };
    }
    if url.starts_with('/') || url.starts_with('.') || url.starts_with('~') {
        return Err((
            "local paths are not URLs".to_owned(),
            "write a local repository as `file:///absolute/path`".to_owned(),
        ));
    }
    // scp-like: user@host:path, with no `/` before the `:`.
    if let Some((user_host, path)) = url.split_once(':')
        && let Some((user, host)) = user_host.split_once('@')
        && !user.is_empty()
        && !host.is_empty()
        && !user_host.contains('/')
        && !path.is_empty()
    {
        return Ok(());
    }
    err("it is neither a URL with a scheme nor scp-like `user@host:path`")
}

/// A commit (7 to 64 hex digits) or a ref name following `git check-ref-format`'s rules.
///
/// ```
/// use comfyprov_core::manifest::{Rev, validate::parse_rev};
/// assert_eq!(parse_rev("6910925"), Ok(Rev::Commit("6910925".into())));
/// assert_eq!(parse_rev("v0.3.68"), Ok(Rev::Named("v0.3.68".into())));
/// assert!(parse_rev("main..dev").is_err()); // a range, not a pin
/// assert!(parse_rev("HEAD~1").is_err()); // moves
/// ```
pub fn parse_rev(rev: &str) -> Result<Rev, String> {
    if rev.is_empty() {
        return Err("it is empty".to_owned());
    }
    let hex = rev.chars().all(|c| c.is_ascii_hexdigit());
    if hex && (7..=64).contains(&rev.len()) {
        return Ok(Rev::Commit(rev.to_ascii_lowercase()));
    }
    if hex && rev.len() > 64 {
        return Err("it is longer than a commit id".to_owned());
    }
    if rev == "HEAD" || rev.starts_with("HEAD~") || rev.starts_with("HEAD^") || rev == "@" {
        return Err("`HEAD` moves; it is not a pin".to_owned());
    }
    if let Some(c) = rev
        .chars()
        .find(|c| c.is_control() || " ~^:?*[\\".contains(*c))
    {
        return Err(match c {
            '~' | '^' => {
                format!("`{c}` is revision syntax, not a name; pin the commit it points at")
            }
            c if c.is_control() => "it contains a control character".to_owned(),
            ' ' => "it contains a space".to_owned(),
            c => format!("`{c}` cannot appear in a git ref name"),
        });
    }
    if rev.contains("..") {
        return Err("`..` is a range, not a single revision".to_owned());
    }
    if rev.contains("@{") {
        return Err("`@{` is reflog syntax, not a name".to_owned());
    }
    if rev.starts_with('-') {
        return Err("it starts with `-`".to_owned());
    }
    if rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return Err("it has an empty path component".to_owned());
    }
    if rev.ends_with('.') || rev.ends_with(".lock") || rev.split('/').any(|c| c.starts_with('.')) {
        return Err("git does not allow ref names that end in `.` or `.lock` or have a component starting with `.`".to_owned());
    }
    Ok(Rev::Named(rev.to_owned()))
}

fn gpu_spec(cx: &mut Ctx<'_>, g: raw::Gpu) -> Option<GpuSpec> {
    let at_dev = p(&[key("gpu"), key("devices")]);
    let at_count = p(&[key("gpu"), key("count")]);
    match g.mode {
        raw::GpuMode::None => {
            if g.devices.is_some() || g.count.is_some() {
                let at = if g.devices.is_some() {
                    at_dev
                } else {
                    at_count
                };
                cx.err_key(
                    "gpu",
                    &at,
                    "GPU devices or count given with `gpu.mode = \"none\"`".to_owned(),
                    "ignored without a GPU",
                    "set `mode = \"nvidia\"` to reserve GPUs, or remove this key".to_owned(),
                );
                return None;
            }
            Some(GpuSpec::None)
        }
        raw::GpuMode::Nvidia => {
            let select = match (g.devices, g.count) {
                (Some(_), Some(_)) => {
                    cx.err_key(
                        "gpu",
                        &at_count,
                        "`gpu.devices` and `gpu.count` are both given".to_owned(),
                        "conflicts with `devices`",
                        "keep one: `devices = [\"0\"]` names GPUs, `count = 1` or `count = \"all\"` takes any".to_owned(),
                    );
                    return None;
                }
                (Some(d), None) => {
                    if d.is_empty() {
                        cx.err(
                            "gpu",
                            &at_dev,
                            "`gpu.devices` is empty".to_owned(),
                            "no device",
                            "name at least one device id, e.g. `devices = [\"0\"]`, or use `count`"
                                .to_owned(),
                        );
                        return None;
                    }
                    let bad = d.iter().position(|id| {
                        id.is_empty()
                            || !id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
                    });
                    if let Some(i) = bad {
                        let mut at = at_dev.clone();
                        at.push(Seg::Index(i));
                        cx.err(
                            "gpu",
                            &at,
                            format!("GPU device id \"{}\" is not an index or UUID", d[i].escape_debug()),
                            "invalid device id",
                            "use an index such as \"0\" or a UUID such as \"GPU-8e2b…\" (see `nvidia-smi -L`)".to_owned(),
                        );
                        return None;
                    }
                    GpuSelect::Devices(d)
                }
                (None, Some(raw::GpuCount::Count(n))) => GpuSelect::Count(n),
                (None, Some(raw::GpuCount::All(_))) | (None, None) => GpuSelect::All,
            };
            Some(GpuSpec::Nvidia { select })
        }
    }
}

/// The longest node name: apply clones into `.<name>.comfyprov-tmp` beside it, and a file name has
/// at most 255 bytes.
const MAX_NAME: usize = 200;

/// Unicode's bidirectional controls (embedding, override, isolate, marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `HOST:CONTAINER[:ro|:rw]` → (host, container, read only).
fn parse_mount(m: &str) -> Result<(&str, &str, bool), &'static str> {
    let parts: Vec<&str> = m.split(':').collect();
    let (host, target, read_only) = match parts.as_slice() {
        [h, t] => (*h, *t, false),
        [h, t, "ro"] => (*h, *t, true),
        [h, t, "rw"] => (*h, *t, false),
        [_, _, _] => return Err("the third part must be `ro` or `rw`"),
        _ => return Err("it needs `HOST:CONTAINER`"),
    };
    if host.is_empty() || host.chars().any(char::is_control) {
        return Err("the host path is empty or has a control character");
    }
    if !target.starts_with('/') || target.split('/').any(|s| s == "..") {
        return Err("the container path must be absolute, without `..`");
    }
    if target.trim_end_matches('/') == crate::render::CONTAINER_ROOT {
        return Err("`/workspace/ComfyUI` is the workspace's own mount");
    }
    Ok((host, target.trim_end_matches('/'), read_only))
}

/// Arguments comfyprov sets itself from other keys.
const MANAGED_ARGS: &[(&str, &str)] = &[
    (
        "--listen",
        "it is always `0.0.0.0` inside the container; set `container.listen` for the host side",
    ),
    ("--port", "set `container.port`"),
    ("--cpu", "set `gpu.mode = \"none\"`"),
];

fn container_spec(
    cx: &mut Ctx<'_>,
    c: raw::Container,
    auth: Option<raw::AuthMode>,
) -> Option<ContainerSpec> {
    let mut ok = true;
    if c.image.trim().is_empty() || c.image.chars().any(char::is_whitespace) {
        cx.err(
            "image",
            &[key("container"), key("image")],
            format!(
                "`container.image` \"{}\" is not an image reference",
                c.image.escape_debug()
            ),
            "invalid image",
            "use `name:tag` or `name@sha256:…`, e.g. \"nvidia/cuda:12.4.0-devel-ubuntu22.04\""
                .to_owned(),
        );
        ok = false;
    }
    let listen = match c.listen.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            cx.err(
                "listen",
                &[key("container"), key("listen")],
                format!("`container.listen` \"{}\" is not an IP address", c.listen.escape_debug()),
                "not an IP address",
                "use \"127.0.0.1\" (this machine only), \"0.0.0.0\" (every interface) or one of the host's addresses".to_owned(),
            );
            None
        }
    };
    if c.python.trim().is_empty() {
        cx.err(
            "python",
            &[key("container"), key("python")],
            "`container.python` is empty".to_owned(),
            "empty",
            "name the interpreter relative to ComfyUI's folder, e.g. \"venv/bin/python3\""
                .to_owned(),
        );
        ok = false;
    }
    for (i, a) in c.args.iter().enumerate() {
        let flag = a.split('=').next().unwrap_or(a);
        // ComfyUI's argparse also takes a unique prefix of a long flag: `--por 9000` is `--port`.
        let managed = MANAGED_ARGS
            .iter()
            .find(|(f, _)| *f == flag || (flag.len() > 3 && f.starts_with(flag)));
        if let Some((f, why)) = managed {
            let message = if *f == flag {
                format!("`{f}` is set by comfyprov")
            } else {
                format!(
                    "`{flag}` is `{f}` to ComfyUI (it takes a flag's unique prefix), which comfyprov sets"
                )
            };
            cx.err(
                "managed_arg",
                &[key("container"), key("args"), Seg::Index(i)],
                message,
                "managed by comfyprov",
                format!("remove it from `args`: {why}"),
            );
            ok = false;
        }
    }
    for k in c.env.keys() {
        let valid = k.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
            && k.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !valid {
            cx.err_key(
                "env",
                &[key("container"), key("env"), key(k)],
                format!(
                    "environment variable name \"{}\" is not valid",
                    k.escape_debug()
                ),
                "invalid name",
                "use letters, digits and `_`, not starting with a digit".to_owned(),
            );
            ok = false;
        }
    }
    let compose_file = match &c.compose_file {
        Some(f) => {
            let valid = (f.ends_with(".yml") || f.ends_with(".yaml"))
                && !f.starts_with('/')
                && !f.split('/').any(|s| s == "..")
                && !f.chars().any(char::is_control);
            if !valid {
                cx.err(
                    "compose_file",
                    &[key("container"), key("compose_file")],
                    format!("`container.compose_file` \"{}\" must be a relative `.yml` path inside the manifest's folder", f.escape_debug()),
                    "invalid compose file path",
                    "e.g. \"docker-compose-with-auth.yml\"".to_owned(),
                );
                ok = false;
            }
            f.clone()
        }
        None => match auth {
            Some(raw::AuthMode::None) => "docker-compose-no-auth.yml".to_owned(),
            _ => "docker-compose-with-auth.yml".to_owned(),
        },
    };
    let compose_file = cx.path(&compose_file);
    let mut mounts = Vec::new();
    for (i, m) in c.mounts.iter().enumerate() {
        match parse_mount(m) {
            Ok((source, target, read_only)) => mounts.push(ExtraMount {
                source: cx.path(source),
                target: target.to_owned(),
                read_only,
            }),
            Err(why) => {
                cx.err(
                    "mount",
                    &[key("container"), key("mounts"), Seg::Index(i)],
                    format!("mount \"{}\" is not valid: {why}", m.escape_debug()),
                    "invalid mount",
                    "write `HOST:CONTAINER` or `HOST:CONTAINER:ro`, e.g. \"/srv/models:/workspace/ComfyUI/models\"".to_owned(),
                );
                ok = false;
            }
        }
    }
    mounts.sort_by(|a, b| a.target.cmp(&b.target));
    for pair in mounts.windows(2) {
        if pair[0].target == pair[1].target {
            cx.err(
                "mount",
                &[key("container"), key("mounts")],
                format!("two mounts target `{}`", pair[0].target),
                "same target twice",
                "keep one mount per container path".to_owned(),
            );
            ok = false;
        }
    }
    match (ok, listen) {
        (true, Some(listen)) => Some(ContainerSpec {
            image: c.image,
            listen,
            port: c.port,
            python: c.python,
            args: c.args,
            env: c.env,
            mounts,
            compose_file,
            restart: c.restart,
        }),
        _ => None,
    }
}

fn auth_spec(
    cx: &mut Ctx<'_>,
    a: raw::Auth,
    declared: &HashMap<String, usize>,
) -> Option<AuthSpec> {
    let login_node_at = p(&[key("auth"), key("login_node")]);
    if !check_dir_name(cx, &login_node_at, &a.login_node, "`auth.login_node`") {
        return None;
    }
    match a.mode {
        raw::AuthMode::None => {
            if let Some(i) = declared.get(&a.login_node) {
                cx.err(
                    "auth_login_node",
                    &[key("nodes"), Seg::Index(*i), key("name")],
                    format!("`{}` is declared while `auth.mode = \"none\"`", a.login_node),
                    "would enable password protection",
                    format!("remove this `[[nodes]]` entry, or set `auth.mode = \"login\"`; with `none`, comfyprov keeps `{}` disabled", a.login_node),
                );
                return None;
            }
            Some(AuthSpec::None {
                login_node: a.login_node,
            })
        }
        raw::AuthMode::Login => {
            let sources: Vec<(&str, &String)> = [
                ("password_file", a.password_file.as_ref()),
                ("hash_file", a.hash_file.as_ref()),
                ("password_env", a.password_env.as_ref()),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let mode_at = p(&[key("auth"), key("mode")]);
            let secret = match sources.as_slice() {
                [] => {
                    cx.err_key(
                        "auth_secret",
                        &mode_at,
                        "`auth.mode = \"login\"` needs a secret source".to_owned(),
                        "no password to protect ComfyUI with",
                        "add `password_file = \".secrets/comfyui.password\"` (with `generate = true` to create it), `hash_file = …` or `password_env = …`".to_owned(),
                    );
                    return None;
                }
                [(k, v)] => match *k {
                    "password_file" => SecretSource::PasswordFile(cx.path(v)),
                    "hash_file" => SecretSource::HashFile(cx.path(v)),
                    _ => SecretSource::PasswordEnv((*v).clone()),
                },
                [_, (second, _), ..] => {
                    cx.err_key(
                        "auth_secret",
                        &[key("auth"), key(second)],
                        format!(
                            "more than one secret source: {}",
                            sources
                                .iter()
                                .map(|(k, _)| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "second secret source",
                        "keep exactly one of `password_file`, `hash_file`, `password_env`"
                            .to_owned(),
                    );
                    return None;
                }
            };
            let mut ok = true;
            if a.generate && !matches!(secret, SecretSource::PasswordFile(_)) {
                cx.err_key(
                    "auth_generate",
                    &[key("auth"), key("generate")],
                    "`generate = true` works only with `password_file`".to_owned(),
                    "nothing to generate into",
                    "use `password_file = …` with `generate = true`, or remove `generate`"
                        .to_owned(),
                );
                ok = false;
            }
            if a.username.is_empty() || a.username.chars().any(|c| c.is_control()) {
                cx.err(
                    "auth_username",
                    &[key("auth"), key("username")],
                    "`auth.username` must be a non-empty single line".to_owned(),
                    "invalid username",
                    "e.g. `username = \"admin\"`".to_owned(),
                );
                ok = false;
            }
            ok &= check_secret_content(cx, &secret);
            if !declared.contains_key(&a.login_node) {
                cx.err_key(
                    "auth_login_node",
                    &mode_at,
                    format!("`auth.mode = \"login\"` needs the `{}` node, which no `[[nodes]]` entry declares", a.login_node),
                    "login node not declared",
                    format!(
                        "add it, pinned:\n[[nodes]]\nname = \"{}\"\ngit = \"https://github.com/liusida/ComfyUI-Login\"\nrev = \"69109257f4629a11ebe26cd65667536c4f8dddcb\"",
                        a.login_node
                    ),
                );
                ok = false;
            }
            ok.then_some({
                AuthSpec::Login(LoginSpec {
                    username: a.username,
                    secret,
                    generate: a.generate,
                    bcrypt_cost: a.bcrypt_cost,
                    login_node: a.login_node,
                })
            })
        }
    }
}

/// Check what can be checked of the secret without revealing it: a plaintext password's length,
/// a hash file's format. A missing file is not a problem here (`plan` reports it).
fn check_secret_content(cx: &mut Ctx<'_>, secret: &SecretSource) -> bool {
    match secret {
        SecretSource::PasswordFile(f) => match cx.lookup.read(&f.path) {
            Some(bytes) => {
                let pw = crate::secret::strip_newline(&bytes);
                if pw.len() > BCRYPT_MAX_PASSWORD {
                    cx.err(
                        "password_too_long",
                        &[key("auth"), key("password_file")],
                        format!("the password in `{}` is {} bytes; bcrypt uses only the first {BCRYPT_MAX_PASSWORD}", f.shown, pw.len()),
                        "password too long",
                        format!("use a password of at most {BCRYPT_MAX_PASSWORD} bytes; comfyprov refuses to truncate it"),
                    );
                    return false;
                }
                if pw.iter().all(u8::is_ascii_whitespace) {
                    cx.err(
                        "password_empty",
                        &[key("auth"), key("password_file")],
                        if pw.is_empty() {
                            format!("`{}` is empty", f.shown)
                        } else {
                            format!("`{}` holds only whitespace", f.shown)
                        },
                        "empty password",
                        "write a password into the file, or delete it and set `generate = true`"
                            .to_owned(),
                    );
                    return false;
                }
                if pw.contains(&0) || std::str::from_utf8(pw).is_err() {
                    cx.err(
                        "password_bytes",
                        &[key("auth"), key("password_file")],
                        format!("the password in `{}` has a NUL byte or is not UTF-8", f.shown),
                        "not a typeable password",
                        "ComfyUI-Login's login form sends text: use a UTF-8 password without NUL bytes"
                            .to_owned(),
                    );
                    return false;
                }
                true
            }
            None => true,
        },
        SecretSource::PasswordEnv(var)
            if !(var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) =>
        {
            cx.err(
                "password_env",
                &[key("auth"), key("password_env")],
                format!(
                    "`password_env` \"{}\" is not an environment variable name",
                    var.escape_debug()
                ),
                "not a variable name",
                "name the variable only (letters, digits and `_`), e.g. \"COMFYUI_PASSWORD\"; its value is read at run time".to_owned(),
            );
            false
        }
        SecretSource::PasswordEnv(var) => match cx.lookup.var_len(var) {
            Some(len) if len > BCRYPT_MAX_PASSWORD => {
                cx.err(
                    "password_too_long",
                    &[key("auth"), key("password_env")],
                    format!("the password in `${var}` is {len} bytes; bcrypt uses only the first {BCRYPT_MAX_PASSWORD}"),
                    "password too long",
                    format!("use a password of at most {BCRYPT_MAX_PASSWORD} bytes; comfyprov refuses to truncate it"),
                );
                false
            }
            _ => true,
        },
        SecretSource::HashFile(f) => match cx.lookup.read(&f.path) {
            Some(bytes)
                if crate::secret::parse_bcrypt_hash(crate::secret::strip_newline(&bytes))
                    .is_some_and(|cost| cost < MIN_BCRYPT_COST) =>
            {
                cx.err(
                    "hash_cost",
                    &[key("auth"), key("hash_file")],
                    format!("the hash in `{}` has a bcrypt cost under {MIN_BCRYPT_COST}", f.shown),
                    "cost too low",
                    format!("hash the password again with a cost of at least {MIN_BCRYPT_COST} (e.g. `htpasswd -nbBC 12 '' PASSWORD`), as `bcrypt_cost` requires"),
                );
                false
            }
            Some(bytes)
                if crate::secret::parse_bcrypt_hash(crate::secret::strip_newline(&bytes))
                    .is_none() =>
            {
                cx.err(
                    "hash_format",
                    &[key("auth"), key("hash_file")],
                    format!("`{}` does not hold a bcrypt hash", f.shown),
                    "not a bcrypt hash",
                    "the file must hold one line like `$2b$12$` followed by 53 characters (e.g. from `htpasswd -nbBC 12 '' PASSWORD`, without the leading `:`)".to_owned(),
                );
                false
            }
            _ => true,
        },
    }
}
