//! `comfyprov import`: a `comfy.toml` written from a deployment that exists, so that people who
//! built one by hand can adopt comfyprov without rewriting it, and without the first `apply`
//! touching their node checkouts.
//!
//! Sources, each optional: the workspace (ComfyUI's checkout and every `custom_nodes/` entry),
//! the running container (by name: the run spec comfyprov reads from Docker), and a
//! ComfyUI-Manager snapshot. What a manifest cannot express is listed at the end, each with why;
//! nothing is invented, and no secret is read: the password's source is left for the user.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::render::RunSpec;

/// What to import from.
#[derive(Debug, Default)]
pub struct Sources {
    /// The folder that holds `ComfyUI/`.
    pub workspace: Option<PathBuf>,
    /// How the manifest names the workspace (relative to where it will be written).
    pub workspace_shown: String,
    /// The container's run spec, as read from Docker, and its name.
    pub container: Option<(String, RunSpec)>,
    /// A ComfyUI-Manager snapshot (JSON).
    pub snapshot: Option<(String, serde_json::Value)>,
    /// The project name; default: the container's name, else `comfyui`.
    pub project: Option<String>,
    /// Where the password comes from, as the manifest will name it (never read here).
    pub password_file: String,
    /// A `comfy.lock` beside the manifest to be: its `[python]` settings are the ones the
    /// environment was resolved from.
    pub lock: Option<comfyprov_core::lock::Lock>,
    /// The model entries of that `comfy.lock`: each model file apply downloaded, with its URL.
    pub models: Vec<comfyprov_core::lock::LockedModel>,
    /// Where the container section came from when it is a compose file, for the header.
    pub compose: Option<String>,
    /// Secrets found where they must not be (a hash in a compose file): reported, never copied.
    pub dangers: Vec<String>,
}

/// A node as found.
struct FoundNode {
    name: String,
    url: String,
    rev: String,
    /// Its `requirements.txt` exists.
    requirements: bool,
}

/// `url` without credentials (never copied into a manifest).
fn clean_url(url: &str) -> String {
    comfyprov_core::manifest::validate::mask_credentials(url).replace("****@", "")
}

/// A TOML basic string.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The rev to pin a checkout to: the tag HEAD is at (a name people recognise), else the full
/// commit.
fn rev_of(repo: &git2::Repository) -> Option<String> {
    let head = repo.head().ok()?.peel_to_commit().ok()?.id();
    let mut tag = None;
    let _ = repo.tag_foreach(|oid, name| {
        let at = repo
            .find_object(oid, None)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
            .map(|c| c.id());
        if at == Some(head) {
            tag = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.strip_prefix("refs/tags/"))
                .map(str::to_owned);
            return false;
        }
        true
    });
    Some(tag.unwrap_or_else(|| head.to_string()))
}

/// A git checkout's origin URL and rev, or why it is not one comfyprov can pin.
fn checkout(path: &Path) -> Result<(String, String), String> {
    let repo =
        crate::observe::workspace::open_repo(path).map_err(|_| "not a git checkout".to_owned())?;
    let url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(clean_url))
        .ok_or_else(|| "a git checkout without an `origin` remote".to_owned())?;
    let rev = rev_of(&repo).ok_or_else(|| "a git checkout without a commit".to_owned())?;
    Ok((url, rev))
}

/// Environment variable names whose values are secrets: their values are not copied.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASS", "TOKEN", "SECRET", "KEY", "AUTH", "CRED", "COOKIE", "SESSION",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// Files under `models/` with a model extension (as ComfyUI lists them), `folder/name` paths;
/// links are not followed, hidden names and temp files skipped, at most 4 levels deep.
fn model_files(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth < 4 {
            model_files(&e.path(), &format!("{prefix}{name}/"), depth + 1, out);
        } else if ft.is_file()
            && !prefix.is_empty()
            && [
                ".safetensors",
                ".ckpt",
                ".pt",
                ".pt2",
                ".pth",
                ".bin",
                ".sft",
                ".pkl",
                ".gguf",
            ]
            .iter()
            .any(|x| name.ends_with(x))
        {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// The manifest text, and what could not be expressed (also written into it as comments).
pub fn manifest(src: &Sources) -> (String, Vec<String>) {
    let mut left_out: Vec<String> = Vec::new();
    let mut nodes: Vec<FoundNode> = Vec::new();
    let mut comfyui: Option<(String, String)> = None;
    let mut login = false;
    let mut venv: Option<String> = None;
    let mut from = Vec::new();
    match (&src.compose, &src.container) {
        (Some(file), Some((name, _))) => {
            from.push(format!("the compose file {file} (service {name})"))
        }
        (None, Some((name, _))) => from.push(format!("the container {name}")),
        _ => {}
    }

    if let Some(ws) = &src.workspace {
        from.push(format!("the workspace {}", src.workspace_shown));
        let comfy = ws.join("ComfyUI");
        match checkout(&comfy) {
            Ok(c) => comfyui = Some(c),
            Err(why) => left_out.push(format!(
                "ComfyUI/: {why}; it is kept as it is (no [comfyui])"
            )),
        }
        login = comfy.join("login/PASSWORD").is_file();
        // Never a blocking read: a FIFO planted there is an error, not a hang.
        venv = crate::fsutil::read_regular(&comfy.join("venv/pyvenv.cfg"))
            .ok()
            .and_then(|cfg| crate::observe::python::pyvenv_python(&String::from_utf8_lossy(&cfg)))
            .and_then(|v| crate::observe::python::minor_of(&v));
        let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(comfy.join("custom_nodes"))
            .map(|d| {
                d.flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        for (name, path) in entries {
            if name == "__pycache__" || name.starts_with('.') {
                continue;
            }
            if name.ends_with(".disabled") {
                left_out.push(format!(
                    "custom_nodes/{name}: disabled; declare it in [[nodes]] (without `.disabled`) to enable it, or leave it"
                ));
                continue;
            }
            if path.is_file() {
                if name.ends_with(".py") {
                    left_out.push(format!(
                        "custom_nodes/{name}: a single-file node; comfyprov manages git checkouts (policy.unmanaged_nodes = \"keep\" leaves it loaded)"
                    ));
                }
                continue;
            }
            match checkout(&path) {
                Ok((url, rev)) => nodes.push(FoundNode {
                    requirements: path.join("requirements.txt").is_file(),
                    name,
                    url,
                    rev,
                }),
                Err(why) => left_out.push(format!(
                    "custom_nodes/{name}: {why}; kept as an unmanaged node"
                )),
            }
        }
    }

    if let Some((file, snap)) = &src.snapshot {
        // ComfyUI-Manager's snapshot format (ComfyUI-Manager, glob/manager_core.py,
        // `save_snapshot`/`get_current_snapshot`): `comfyui` (the commit), `git_custom_nodes`
        // (URL → {"hash", "disabled"}), `cnr_custom_nodes` (registry id → version),
        // `file_custom_nodes` ([{"filename", "disabled"}]) and `pips` (pip freeze).
        from.push(format!("the ComfyUI-Manager snapshot {file}"));
        if comfyui.is_none()
            && let Some(c) = snap["comfyui"].as_str().filter(|c| !c.is_empty())
        {
            comfyui = Some((
                "https://github.com/comfyanonymous/ComfyUI".to_owned(),
                c.to_owned(),
            ));
        }
        for (url, v) in snap["git_custom_nodes"].as_object().into_iter().flatten() {
            let url = clean_url(url);
            let name = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(&url)
                .trim_end_matches(".git")
                .to_owned();
            if nodes.iter().any(|n| n.name == name) {
                continue;
            }
            if v["disabled"].as_bool() == Some(true) {
                left_out.push(format!("{name} ({url}): disabled in the snapshot"));
                continue;
            }
            match v["hash"].as_str() {
                Some(hash) if !hash.is_empty() => nodes.push(FoundNode {
                    name,
                    url,
                    rev: hash.to_owned(),
                    requirements: false,
                }),
                _ => left_out.push(format!("{name} ({url}): the snapshot has no commit for it")),
            }
        }
        for (id, version) in snap["cnr_custom_nodes"].as_object().into_iter().flatten() {
            left_out.push(format!(
                "{id} {}: a Comfy Registry package; comfyprov pins git checkouts: add its repository and a commit to [[nodes]]",
                version
                    .as_str()
                    .map_or_else(|| version.to_string(), str::to_owned)
            ));
        }
        for f in snap["file_custom_nodes"].as_array().into_iter().flatten() {
            left_out.push(format!(
                "custom_nodes/{}: a single-file node in the snapshot; comfyprov manages git checkouts",
                f["filename"].as_str().unwrap_or("?")
            ));
        }
        if let Some(pips) = snap["pips"].as_object().filter(|p| !p.is_empty()) {
            left_out.push(format!(
                "{} pip packages recorded in the snapshot: comfyprov resolves ComfyUI's and the nodes' requirements into comfy.lock; pin what must stay with [python] constraints",
                pips.len()
            ));
        }
    }

    // ComfyUI-Login among the nodes asks for a password: that is login mode, PASSWORD or not.
    let login_reason = if login {
        Some("ComfyUI/login/PASSWORD exists")
    } else if nodes.iter().any(|n| n.name == "ComfyUI-Login") {
        Some("ComfyUI-Login is among the nodes")
    } else {
        None
    };
    let mut t = String::new();
    let _ = writeln!(t, "#:schema ./comfy.schema.json");
    let _ = writeln!(
        t,
        "# Written by `comfyprov import` from {}. Review it, fill in what it marks, then run\n# `comfyprov plan`: it should touch no node checkout.",
        if from.is_empty() {
            "nothing".to_owned()
        } else {
            from.join(", ")
        }
    );
    let _ = writeln!(t);
    let project = src
        .project
        .clone()
        .or_else(|| src.container.as_ref().map(|(n, _)| n.to_lowercase()))
        .unwrap_or_else(|| "comfyui".to_owned());
    let _ = writeln!(t, "[project]\nname = {}\n", q(&project));
    let _ = writeln!(t, "[workspace]\npath = {}\n", q(&src.workspace_shown));
    if let Some((url, rev)) = &comfyui {
        let _ = writeln!(t, "[comfyui]\ngit = {}\nrev = {}\n", q(url), q(rev));
    }
    let mut gpu = String::from("[gpu]\nmode = \"none\"\n");
    let mut container_python = None;
    if let Some((name, spec)) = &src.container {
        let _ = writeln!(
            t,
            "[container]                # as {} runs it",
            src.compose
                .as_ref()
                .map_or_else(|| format!("container {name}"), |f| format!("{f}'s service"))
        );
        let _ = writeln!(t, "image = {}", q(&spec.image));
        let _ = writeln!(t, "listen = {}", q(&spec.listen));
        let _ = writeln!(t, "port = {}", spec.port);
        // What runs is the entrypoint followed by the command (`docker run --entrypoint
        // venv/bin/python3 IMAGE main.py …` puts the interpreter in the entrypoint).
        let argv: Vec<&String> = spec
            .entrypoint
            .iter()
            .flatten()
            .chain(spec.command.iter())
            .collect();
        if argv.get(1).is_some_and(|a| a.as_str() != "main.py") {
            left_out.push(format!(
                "the container's command `{}`: comfyprov runs `PYTHON main.py …`; check `python` and `args`",
                argv.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ")
            ));
        }
        if let Some(python) = argv.first() {
            let rel = python
                .strip_prefix(crate::render::CONTAINER_ROOT)
                .map(|p| p.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| (*python).clone());
            let _ = writeln!(t, "python = {}", q(&rel));
            container_python = Some(rel);
        }
        // The command is `python main.py --listen X --port 8188 [--cpu] ARGS…`: the rest are args.
        let mut args = Vec::new();
        let mut it = argv.iter().skip(2);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--listen" | "--port" => {
                    it.next();
                }
                "--cpu" => {}
                a => args.push(q(a)),
            }
        }
        let _ = writeln!(t, "args = [{}]", args.join(", "));
        let mut env = Vec::new();
        for (k, v) in &spec.env {
            if secret_name(k) {
                left_out.push(format!(
                    "container env {k}: looks like a secret, so its value is not copied; comfyprov writes env into the compose file, so keep secrets out of it"
                ));
            } else {
                env.push(format!("{} = {}", q(k), q(v)));
            }
        }
        if !env.is_empty() {
            let _ = writeln!(t, "env = {{ {} }}", env.join(", "));
        }
        if !spec.mounts.is_empty() {
            let mounts: Vec<String> = spec
                .mounts
                .iter()
                .map(|m| {
                    q(&format!(
                        "{}:{}{}",
                        m.source,
                        m.target,
                        if m.read_only { ":ro" } else { "" }
                    ))
                })
                .collect();
            let _ = writeln!(t, "mounts = [{}]", mounts.join(", "));
        }
        let _ = writeln!(t, "restart = {}\n", q(spec.restart.as_str()));
        if let Some(g) = &spec.gpu {
            gpu = if g.device_ids.is_empty() {
                match g.count {
                    Some(n) if n > 0 => format!("[gpu]\nmode = \"nvidia\"\ncount = {n}\n"),
                    _ => "[gpu]\nmode = \"nvidia\"\ncount = \"all\"\n".to_owned(),
                }
            } else {
                let ids: Vec<String> = g.device_ids.iter().map(|d| q(d)).collect();
                format!("[gpu]\nmode = \"nvidia\"\ndevices = [{}]\n", ids.join(", "))
            };
        }
    }
    let python_ok = (venv.is_some() || src.lock.is_some())
        && src.container.is_some()
        && container_python
            .as_deref()
            .is_none_or(|p| p.starts_with("venv/bin/python"));
    match (&src.lock, &venv, python_ok) {
        (Some(lock), _, true) => {
            // The settings the environment was resolved from, as comfy.lock records them.
            let r = &lock.resolved_from;
            let list = |l: &[String]| l.iter().map(|x| q(x)).collect::<Vec<_>>().join(", ");
            let _ = writeln!(t, "[python]                   # as comfy.lock was resolved");
            let _ = writeln!(t, "version = {}", q(&r.python));
            if r.platform != "x86_64-manylinux_2_28" {
                let _ = writeln!(t, "platform = {}", q(&r.platform));
            }
            match (&r.torch, &r.torch_index) {
                (Some(v), Some(i)) => {
                    let _ = writeln!(t, "torch = {{ version = {}, index = {} }}", q(v), q(i));
                }
                (Some(v), None) => {
                    let _ = writeln!(t, "torch = {{ version = {} }}", q(v));
                }
                _ => {}
            }
            if let Some(i) = &r.index_url {
                let _ = writeln!(t, "index_url = {}", q(i));
            }
            for (key, l) in [
                ("extra_index_urls", &r.extra_index_urls),
                ("find_links", &r.find_links),
                ("packages", &r.packages),
                ("constraints", &r.constraints),
            ] {
                if !l.is_empty() {
                    let _ = writeln!(t, "{key} = [{}]", list(l));
                }
            }
            if r.offline {
                let _ = writeln!(t, "offline = true");
            }
            if let Some(d) = &r.exclude_newer {
                let _ = writeln!(t, "exclude_newer = {}", q(d));
            }
            let _ = writeln!(t);
        }
        (None, Some(version), true) => {
            let _ = writeln!(
                t,
                "[python]                   # the environment in ComfyUI/venv; comfyprov rebuilds it in the image\nversion = {}\n",
                q(version)
            );
        }
        _ => {}
    }
    let _ = writeln!(t, "{gpu}");
    if let Some(why) = login_reason {
        let _ = writeln!(t, "[auth]\nmode = \"login\"                    # {why}");
        let _ = writeln!(
            t,
            "password_file = {}   # FILL IN: the password its hash was made from (import never reads a secret)\n",
            q(&src.password_file)
        );
    } else {
        let _ = writeln!(t, "[auth]\nmode = \"none\"\n");
    }
    for n in &nodes {
        let _ = writeln!(
            t,
            "[[nodes]]\nname = {}\ngit = {}\nrev = {}",
            q(&n.name),
            q(&n.url),
            q(&n.rev)
        );
        if n.requirements && python_ok {
            let _ = writeln!(t, "requirements = true");
        }
        let _ = writeln!(t);
    }
    // Model files: those comfy.lock records (with the URL they came from) become [[models]];
    // any other file under models/ has no known URL and is listed.
    let mut found_models = Vec::new();
    if let Some(ws) = &src.workspace {
        model_files(&ws.join("ComfyUI/models"), "", 0, &mut found_models);
    }
    for m in &src.models {
        if src.workspace.is_some() && !found_models.contains(&m.path) {
            continue;
        }
        let _ = writeln!(
            t,
            "[[models]]                 # as comfy.lock recorded it\nurl = {}\npath = {}\n",
            q(&m.url),
            q(&m.path)
        );
    }
    for path in found_models
        .iter()
        .filter(|p| !src.models.iter().any(|m| &m.path == *p))
    {
        left_out.push(format!(
            "models/{path}: no URL is known for it (comfy.lock does not record it); add a [[models]] entry with its url, and apply records its SHA-256 without downloading it again"
        ));
    }
    let _ = writeln!(
        t,
        "[policy]\nunmanaged_nodes = \"keep\"        # import never plans to disable what it found"
    );
    let mut dangers = src.dangers.clone();
    let public = src.container.as_ref().is_some_and(|(_, spec)| {
        spec.listen
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| !ip.is_loopback())
    });
    if login_reason.is_none() && public {
        let _ = writeln!(
            t,
            "allow_public_without_auth = true   # as found: see DANGER below"
        );
        dangers.push(
            "ComfyUI is published on a public address without a password; set `listen = \"127.0.0.1\"` or `[auth] mode = \"login\"`"
                .to_owned(),
        );
    }
    if !dangers.is_empty() {
        let _ = writeln!(t);
        for d in &dangers {
            let _ = writeln!(t, "# DANGER: {d}");
        }
    }
    if !left_out.is_empty() {
        let _ = writeln!(t, "\n# Not expressed in this manifest:");
        for l in &left_out {
            let _ = writeln!(t, "#   {l}");
        }
    }
    (t, left_out)
}

/// A bcrypt hash (ComfyUI-Login's token) in `s`, as written in a compose file (`$` doubled or not).
fn holds_hash(s: &str) -> bool {
    let s = s.replace("$$", "$");
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.contains(p))
}

/// The service a compose file runs ComfyUI in, read into a run spec; with the dangers found
/// (a `$2b$…` hash in it: the API token, in a file that is often committed), which are never
/// copied. `dir` is the compose file's folder (relative bind sources are relative to it).
pub fn from_compose(
    doc: &serde_json::Value,
    want: Option<&str>,
    dir: &Path,
) -> Result<(String, RunSpec, Vec<String>), String> {
    use serde_json::Value;
    let services = doc["services"]
        .as_object()
        .ok_or("it has no `services`: not a compose file")?;
    let (name, svc) = match want {
        Some(w) => (
            w,
            services
                .get(w)
                .ok_or_else(|| format!("it has no service `{w}`"))?,
        ),
        None if services.len() == 1 => services
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v))
            .ok_or("no service")?,
        None => services
            .get_key_value("comfyui")
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                format!(
                    "it has {} services: name one with --service ({})",
                    services.len(),
                    services.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?,
    };
    let mut dangers = Vec::new();
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut command = strings(&svc["command"]);
    if command.iter().any(|a| holds_hash(a)) {
        dangers.push(format!(
            "service {name}'s `command:` holds a bcrypt hash, ComfyUI-Login's API token: it is not copied; the compose file is often committed, so treat the password as leaked and rotate it (comfyprov keeps the hash in login/PASSWORD only)"
        ));
        let mut kept: Vec<String> = Vec::new();
        for a in command {
            if holds_hash(&a) {
                if kept.last().is_some_and(|p| p.starts_with("--")) {
                    kept.pop();
                }
            } else {
                kept.push(a);
            }
        }
        command = kept;
    }
    // The interpreter is the first word of the command, or of the entrypoint.
    if command.first().is_some_and(|c| c.ends_with(".py")) {
        let entry = strings(&svc["entrypoint"]);
        command = entry.into_iter().chain(command).collect();
    }
    let mut env = std::collections::BTreeMap::new();
    match &svc["environment"] {
        Value::Object(m) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                env.insert(k.clone(), v);
            }
        }
        Value::Array(a) => {
            for item in a.iter().filter_map(Value::as_str) {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                env.insert(k.to_owned(), v.to_owned());
            }
        }
        _ => {}
    }
    env.retain(|k, v| {
        if holds_hash(v) {
            dangers.push(format!(
                "service {name}'s environment {k} holds a bcrypt hash: not copied; rotate the password"
            ));
            false
        } else {
            true
        }
    });
    let (mut listen, mut port) = ("127.0.0.1".to_owned(), 8188u16);
    for p in svc["ports"].as_array().into_iter().flatten() {
        let (host_ip, published, target) = match p {
            Value::String(s) => {
                let parts: Vec<&str> = s.rsplitn(3, ':').collect();
                match parts.as_slice() {
                    [t, pu, ip] => ((*ip).to_owned(), (*pu).to_owned(), (*t).to_owned()),
                    [t, pu] => ("0.0.0.0".to_owned(), (*pu).to_owned(), (*t).to_owned()),
                    _ => continue,
                }
            }
            Value::Object(o) => (
                o.get("host_ip")
                    .and_then(Value::as_str)
                    .unwrap_or("0.0.0.0")
                    .to_owned(),
                o.get("published")
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .unwrap_or_default(),
                o.get("target").map(|v| v.to_string()).unwrap_or_default(),
            ),
            _ => continue,
        };
        if target.trim_matches('"') == "8188" {
            listen = host_ip;
            port = published.trim_matches('"').parse().unwrap_or(8188);
        }
    }
    let mut mount = String::new();
    let mut mounts = Vec::new();
    for v in svc["volumes"].as_array().into_iter().flatten() {
        let (source, target, ro) = match v {
            Value::String(s) => {
                let mut it = s.split(':');
                let (Some(src), Some(tgt)) = (it.next(), it.next()) else {
                    continue;
                };
                (src.to_owned(), tgt.to_owned(), it.next() == Some("ro"))
            }
            Value::Object(o) => (
                o.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                o.get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                o.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            ),
            _ => continue,
        };
        let abs = if Path::new(&source).is_absolute() {
            source.clone()
        } else {
            dir.join(source.trim_start_matches("./"))
                .display()
                .to_string()
        };
        if target == crate::render::CONTAINER_ROOT {
            mount = abs;
        } else {
            mounts.push(crate::render::spec::BindMount {
                source: abs,
                target,
                read_only: ro,
            });
        }
    }
    let gpu = svc["deploy"]["resources"]["reservations"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| {
            d["driver"].as_str() == Some("nvidia")
                || strings(&d["capabilities"]).iter().any(|c| c == "gpu")
        })
        .map(|d| crate::render::spec::GpuRequest {
            device_ids: strings(&d["device_ids"]),
            count: match &d["count"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) if s == "all" => Some(-1),
                _ => None,
            },
        });
    // Compose spells restart policies as the manifest does.
    let restart: crate::manifest::RestartPolicy =
        serde_json::from_value(svc["restart"].clone()).unwrap_or_default();
    let container = svc["container_name"].as_str().unwrap_or(name).to_owned();
    let spec = RunSpec {
        image: svc["image"].as_str().unwrap_or("").to_owned(),
        command,
        working_dir: crate::render::CONTAINER_ROOT.to_owned(),
        listen,
        port,
        mount,
        gpu,
        env,
        restart,
        healthcheck: Vec::new(),
        init: false,
        entrypoint: None,
        mounts,
    };
    Ok((container, spec, dangers))
}
