//! `verify`: probe the running server itself, the only proof that the deployment works.
//!
//! It waits until the published port answers HTTP (failing fast, with the log's tail, when the
//! container stops), then checks what a client would meet:
//!
//! - in login mode, `/system_stats` without a token is 401, with `Authorization: Bearer <token>`
//!   200, with an empty `?token=` 401 (ComfyUI-Login accepts it when PASSWORD is missing), and a
//!   browser (`Accept: text/html`) is sent to `/login`; without auth, 200 with no token;
//! - the live `argv` in `/system_stats` is the command line the manifest renders;
//! - each declared node is in the `Import times for custom nodes` block the server logged since
//!   it started, without `(IMPORT FAILED)`; with `auth = none` the login node is not.
//!
//! The token is sent, never shown: no check's text contains it.

mod http;
pub mod workflow;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::StreamExt;
use serde::Serialize;

use crate::error::ObserveError;
use crate::manifest::{AuthSpec, Desired};
use crate::observed::Liveness;
use crate::secret::Secret;

/// Why the server could not be probed at all.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error(transparent)]
    Daemon(ObserveError),
    #[error("container {container} does not exist: run `comfyprov apply`")]
    Missing { container: String },
    #[error("container {container} is {status}, so the server cannot answer{tail}")]
    Down {
        container: String,
        status: String,
        /// The log's last lines, as a suffix (empty when there are none).
        tail: String,
    },
    #[error("the server did not answer within {seconds} s (last: {last})")]
    Timeout { seconds: u64, last: String },
}

/// What to probe and what to expect, from the manifest.
#[derive(Debug)]
pub struct Target {
    pub container: String,
    /// `http://HOST:PORT`, HOST being loopback when the port is published on all addresses.
    pub url: String,
    pub login: bool,
    pub login_node: String,
    /// The token, or why there is none that matches the secret.
    pub token: Result<Secret, String>,
    /// `argv` as ComfyUI reports it: the command without the interpreter.
    pub argv: Vec<String>,
    /// Nodes that must have loaded.
    pub nodes: Vec<String>,
    /// Model files the server must list: (folder, name in it).
    pub models: Vec<(String, String)>,
}

impl Target {
    /// The target for the manifest's container; `None` without `[container]`.
    pub fn new(desired: &Desired, token: Result<Secret, String>) -> Option<Target> {
        let c = desired.container.as_ref()?;
        let host = match c.listen {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let argv = crate::render::Container::new(desired)?.spec.argv();
        Some(Target {
            container: desired.project.clone(),
            url: format!("http://{host}:{}", c.port),
            login: matches!(desired.auth, AuthSpec::Login(_)),
            login_node: desired.auth.login_node().to_owned(),
            token,
            argv,
            nodes: desired.nodes.iter().map(|n| n.name.clone()).collect(),
            models: desired
                .models
                .iter()
                .map(|m| {
                    let (folder, name) = m.folder_and_name();
                    (folder.to_owned(), name.to_owned())
                })
                .collect(),
        })
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// A stable identifier for scripts: `no_token`, `bearer_token`, `empty_token`, `browser`,
    /// `open_without_auth`, `argv`, `node:<name>`, `login_node_absent`.
    pub id: String,
    /// What was checked, e.g. `GET /system_stats without a token`.
    pub check: String,
    pub ok: bool,
    /// What was seen (and, when it fails, what was expected).
    pub detail: String,
}

/// A device as `/system_stats` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub vram_total: Option<u64>,
}

/// The outcome of `verify`.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// Version of the `--json` format; bumped on incompatible changes.
    pub format_version: u32,
    pub url: String,
    pub container: String,
    /// How long the server took to answer HTTP.
    pub ready_ms: u64,
    pub comfyui_version: Option<String>,
    pub python_version: Option<String>,
    /// torch's version (`pytorch_version` in /system_stats), e.g. `2.9.0+cu128`.
    pub torch_version: Option<String>,
    pub devices: Vec<Device>,
    /// Warnings that are not failures (ComfyUI-Login's token in the log).
    pub notes: Vec<String>,
    /// `argv` as the server reports it.
    pub argv: Option<Vec<String>>,
    pub expected_argv: Vec<String>,
    /// Per custom node dir, whether it loaded, from the server's log.
    pub imported: Option<BTreeMap<String, bool>>,
    /// The workflow checks (`[[checks]]`, `--workflow`), each with its outputs and time.
    pub workflows: Vec<workflow::WorkflowRun>,
    pub checks: Vec<Check>,
    pub ok: bool,
}

/// Wait for the server (up to `timeout`), then run every check. `Err` when it never became
/// ready: the container is missing or stopped, or the port never answered.
pub async fn verify(
    docker: &Docker,
    target: &Target,
    timeout: Duration,
    workflows: &[workflow::Workflow],
) -> Result<Verification, NotReady> {
    let http = http::Http::new();
    let stats_url = format!("{}/system_stats", target.url);
    let start = Instant::now();
    let previous_end = wait_ready(docker, &http, target, &stats_url, timeout).await?;
    let ready_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);

    let mut checks = Vec::new();
    let mut stats = None;
    if target.login {
        let none = http.get(&stats_url, &[]).await;
        probe(
            &mut checks,
            "no_token",
            "GET /system_stats without a token",
            none,
            401,
        );
        match &target.token {
            Ok(token) => {
                let bearer = format!("Bearer {}", String::from_utf8_lossy(token.expose()));
                let with = http.get(&stats_url, &[("authorization", &bearer)]).await;
                stats = probe(
                    &mut checks,
                    "bearer_token",
                    "GET /system_stats with the token (Bearer)",
                    with,
                    200,
                );
            }
            Err(why) => checks.push(Check {
                id: "bearer_token".to_owned(),
                check: "GET /system_stats with the token (Bearer)".to_owned(),
                ok: false,
                detail: format!("not probed: {why}"),
            }),
        }
        let empty = http.get(&format!("{stats_url}?token="), &[]).await;
        probe(
            &mut checks,
            "empty_token",
            "GET /system_stats?token= (the empty token ComfyUI-Login takes without PASSWORD)",
            empty,
            401,
        );
        let browser = http.get(&stats_url, &[("accept", "text/html")]).await;
        let (ok, detail) = match &browser {
            Ok(r) if r.status == 302 && r.location.as_deref() == Some("/login") => {
                (true, "302 to /login".to_owned())
            }
            Ok(r) => (
                false,
                format!(
                    "{}{}, expected 302 to /login",
                    r.status,
                    r.location
                        .as_deref()
                        .map(|l| format!(" to {l}"))
                        .unwrap_or_default()
                ),
            ),
            Err(e) => (false, e.clone()),
        };
        checks.push(Check {
            id: "browser".to_owned(),
            check: "GET /system_stats as a browser (Accept: text/html)".to_owned(),
            ok,
            detail,
        });
    } else {
        let none = http.get(&stats_url, &[]).await;
        stats = probe(
            &mut checks,
            "open_without_auth",
            "GET /system_stats without a token (auth none)",
            none,
            200,
        );
    }

    let mut v = Verification {
        format_version: 1,
        url: target.url.clone(),
        container: target.container.clone(),
        ready_ms,
        comfyui_version: None,
        python_version: None,
        torch_version: None,
        devices: Vec::new(),
        notes: Vec::new(),
        argv: None,
        expected_argv: target.argv.clone(),
        imported: None,
        workflows: Vec::new(),
        checks,
        ok: false,
    };
    stats_checks(&mut v, stats.as_ref().map(|r| &r.body[..]));
    let log = server_log(docker, &target.container, previous_end).await;
    if target.login && log.as_ref().is_ok_and(|l| l.contains("use token=")) {
        v.notes.push(format!(
            "ComfyUI-Login wrote the token into this run's log (`For direct API calls, use token=…`, at INFO level): whoever can run `docker logs {}` or fetch /internal/logs has it; keep the Docker socket to admins",
            target.container
        ));
    }
    let token = target.token.as_ref().ok().filter(|_| target.login);
    let bearer = token.map(|t| format!("Bearer {}", String::from_utf8_lossy(t.expose())));
    let auth: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    // Which node packs the server loaded, by the Python modules its node classes come from
    // (`custom_nodes.<dir>`): evidence beside the import log, which a quieter log level hides.
    let modules = match http
        .get(&format!("{}/object_info", target.url), &auth)
        .await
    {
        Ok(r) if r.status == 200 => serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|o| {
                o.as_object().map(|classes| {
                    classes
                        .values()
                        .filter_map(|c| c["python_module"].as_str())
                        .filter_map(|m| m.strip_prefix("custom_nodes."))
                        .map(|m| m.split('.').next().unwrap_or(m).to_owned())
                        .collect::<std::collections::BTreeSet<String>>()
                })
            }),
        _ => None,
    };
    // Without auth, whether ComfyUI-Login runs is judged by what the server does (it serves
    // its /login page), not by a directory's name: a copy such as `ComfyUI-Login.bak` loads too.
    let login_page = if target.login {
        None
    } else {
        http.get(&format!("{}/login", target.url), &[])
            .await
            .ok()
            .map(|r| r.status == 200 && String::from_utf8_lossy(&r.body).contains("password"))
    };
    node_checks(&mut v, target, log, modules.as_ref(), login_page);
    model_checks(&mut v, &http, target, &auth).await;
    for w in workflows {
        let run = match (target.login, token) {
            (true, None) => workflow::WorkflowRun {
                name: w.name.clone(),
                ok: false,
                seconds: 0.0,
                prompt_id: None,
                outputs: Vec::new(),
                error: Some("not submitted: there is no token that matches the secret".to_owned()),
            },
            _ => {
                let token = token.map(|t| String::from_utf8_lossy(t.expose()).into_owned());
                workflow::run(&http, &target.url, token.as_deref(), w).await
            }
        };
        v.checks.push(Check {
            id: format!("workflow:{}", run.name),
            check: format!("workflow {}", run.name),
            ok: run.ok,
            detail: match &run.error {
                None if run.outputs.is_empty() => {
                    format!("ran in {:.1} s, no output files", run.seconds)
                }
                None => format!(
                    "rendered {} in {:.1} s",
                    run.outputs.join(", "),
                    run.seconds
                ),
                Some(e) => e.clone(),
            },
        });
        v.workflows.push(run);
    }
    v.ok = v.checks.iter().all(|c| c.ok);
    Ok(v)
}

/// Poll until the server answers HTTP. Returns when the container's previous run ended (ns), if
/// it ever did: the log lines after that are this run's.
/// Whether the server lists each declared model. `GET /models/<folder>` is what ComfyUI's own
/// loader nodes fill their menus from (`folder_paths.get_filename_list`, re-read when a model
/// folder's mtime changes): a name listed there is one a workflow can load.
async fn model_checks(
    v: &mut Verification,
    http: &http::Http,
    target: &Target,
    auth: &[(&str, &str)],
) {
    let mut listed: BTreeMap<&str, Result<Vec<String>, String>> = BTreeMap::new();
    for (folder, _) in &target.models {
        if listed.contains_key(folder.as_str()) {
            continue;
        }
        let got = match http
            .get(&format!("{}/models/{folder}", target.url), auth)
            .await
        {
            Ok(r) if r.status == 200 => serde_json::from_slice::<Vec<String>>(&r.body)
                .map_err(|e| format!("GET /models/{folder}: not a list of names ({e})")),
            Ok(r) if r.status == 404 => Err(format!(
                "GET /models/{folder}: 404, the server has no model folder `{folder}`"
            )),
            Ok(r) => Err(format!("GET /models/{folder}: {}", r.status)),
            Err(e) => Err(e),
        };
        listed.insert(folder, got);
    }
    for (folder, name) in &target.models {
        let (ok, detail) = match listed.get(folder.as_str()) {
            Some(Ok(names)) if names.iter().any(|n| n == name) => {
                (true, format!("listed by GET /models/{folder}"))
            }
            Some(Ok(names)) => (
                false,
                format!(
                    "GET /models/{folder} lists {} file{} but not this one",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" }
                ),
            ),
            Some(Err(e)) => (false, e.clone()),
            None => (false, "not probed".to_owned()),
        };
        v.checks.push(Check {
            id: format!("model:{folder}/{name}"),
            check: format!("model {folder}/{name}"),
            ok,
            detail,
        });
    }
}

async fn wait_ready(
    docker: &Docker,
    http: &http::Http,
    target: &Target,
    url: &str,
    timeout: Duration,
) -> Result<Option<i128>, NotReady> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = crate::observe::container::inspect(docker, &target.container)
            .await
            .map_err(NotReady::Daemon)?
            .ok_or_else(|| NotReady::Missing {
                container: target.container.clone(),
            })?;
        // `restarting` is a crash loop: the server will not answer either.
        if info.liveness() != Liveness::Running {
            let tail = log_tail(docker, &target.container, 20).await;
            return Err(NotReady::Down {
                container: target.container.clone(),
                status: info.status.clone(),
                tail,
            });
        }
        let last_error = match http.get(url, &[]).await {
            Ok(_) => return Ok(info.finished_ns),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(NotReady::Timeout {
                seconds: timeout.as_secs(),
                last: last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Record a probe that expects `want`; the response when it is an expected 200.
fn probe(
    checks: &mut Vec<Check>,
    id: &str,
    check: &str,
    got: Result<http::Response, String>,
    want: u16,
) -> Option<http::Response> {
    let (ok, detail) = match &got {
        Ok(r) if r.status == want => (true, r.status.to_string()),
        Ok(r) => (false, format!("{}, expected {want}", r.status)),
        Err(e) => (false, e.clone()),
    };
    checks.push(Check {
        id: id.to_owned(),
        check: check.to_owned(),
        ok,
        detail,
    });
    got.ok().filter(|r| r.status == 200 && want == 200)
}

fn stats_checks(v: &mut Verification, body: Option<&[u8]>) {
    let Some(body) = body else {
        v.checks.push(Check {
            id: "argv".to_owned(),
            check: "live argv matches the manifest".to_owned(),
            ok: false,
            detail: "not checked: no authorised /system_stats answer".to_owned(),
        });
        return;
    };
    let stats: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let system = &stats["system"];
    v.comfyui_version = system["comfyui_version"].as_str().map(str::to_owned);
    v.python_version = system["python_version"]
        .as_str()
        .and_then(|p| p.split_whitespace().next())
        .map(str::to_owned);
    v.torch_version = system["pytorch_version"].as_str().map(str::to_owned);
    v.devices = stats["devices"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .map(|d| Device {
                    name: d["name"].as_str().unwrap_or("?").to_owned(),
                    kind: d["type"].as_str().unwrap_or("?").to_owned(),
                    vram_total: d["vram_total"].as_u64(),
                })
                .collect()
        })
        .unwrap_or_default();
    v.argv = system["argv"].as_array().map(|a| {
        a.iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    });
    let (ok, detail) = match &v.argv {
        Some(live) if *live == v.expected_argv => (true, live.join(" ")),
        Some(live) => (
            false,
            format!(
                "server runs `{}`, the manifest renders `{}`",
                live.join(" "),
                v.expected_argv.join(" ")
            ),
        ),
        None => (false, "/system_stats has no system.argv".to_owned()),
    };
    v.checks.push(Check {
        id: "argv".to_owned(),
        check: "live argv matches the manifest".to_owned(),
        ok,
        detail,
    });
}

fn node_checks(
    v: &mut Verification,
    target: &Target,
    log: Result<String, String>,
    modules: Option<&std::collections::BTreeSet<String>>,
    login_page: Option<bool>,
) {
    let imported = log.as_deref().ok().and_then(parse_imports);
    let unknown = match (&log, &imported) {
        (Err(e), _) => Some(format!("its log cannot be read: {e}")),
        (Ok(_), None) => Some(
            "the server logged no `Import times for custom nodes` block since it started"
                .to_owned(),
        ),
        _ => None,
    };
    for name in &target.nodes {
        let by_module = modules.is_some_and(|m| m.contains(name));
        let (ok, detail) = match (&imported, &unknown) {
            // No import block (a quieter log level), but its node classes are served.
            (_, Some(_)) if by_module => (
                true,
                "loaded (its node classes are in /object_info)".to_owned(),
            ),
            (_, Some(why)) => (false, format!("unknown: {why}")),
            (Some(m), _) => match m.get(name) {
                Some(true) => (true, "loaded".to_owned()),
                Some(false) => (
                    false,
                    match log.as_deref().ok().and_then(|l| import_error(l, name)) {
                        Some(line) => format!(
                            "IMPORT FAILED: {line} (`docker logs {}` has the traceback)",
                            target.container
                        ),
                        None => format!(
                            "IMPORT FAILED: see `docker logs {}` for the traceback",
                            target.container
                        ),
                    },
                ),
                None => (false, "not imported: the server did not see it".to_owned()),
            },
            (None, None) => (false, "unknown".to_owned()),
        };
        v.checks.push(Check {
            id: format!("node:{name}"),
            check: format!("node {name}"),
            ok,
            detail,
        });
    }
    if !target.login {
        // What the server loaded: its /login page, and every imported folder named after the
        // login node (a copy such as `ComfyUI-Login.bak` is ComfyUI-Login too).
        let copies: Vec<&str> = imported
            .iter()
            .flatten()
            .filter(|(dir, loaded)| {
                **loaded
                    && dir
                        .strip_prefix(target.login_node.as_str())
                        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
            })
            .map(|(dir, _)| dir.as_str())
            .collect();
        let loaded = login_page == Some(true) || !copies.is_empty();
        v.checks.push(Check {
            id: "login_node_absent".to_owned(),
            check: format!("{} not loaded (auth none)", target.login_node),
            ok: !loaded,
            detail: match (loaded, copies.is_empty()) {
                (false, _) => "not loaded (no /login page, no such folder imported)".to_owned(),
                (true, true) => "it is loaded: the server serves ComfyUI-Login's /login page".to_owned(),
                (true, false) => format!(
                    "it is loaded from custom_nodes/{}: the server asks for a password; disable or remove that copy",
                    copies.join(", custom_nodes/")
                ),
            },
        });
    }
    v.imported = imported;
}

/// The server's own line for a node that failed to import, the last of this run's log:
/// `Cannot import /workspace/ComfyUI/custom_nodes/<node> module for custom nodes: <error>`, or
/// for a pack without mappings `Skip … module for custom nodes due to the lack of
/// NODE_CLASS_MAPPINGS.` Tokens masked.
pub fn import_error(log: &str, node: &str) -> Option<String> {
    let needle = format!("/custom_nodes/{node} module for custom nodes");
    log.lines()
        .rev()
        .map(|l| {
            l.split_once(' ')
                .filter(|(ts, _)| ts.contains('T'))
                .map_or(l, |(_, rest)| rest)
        })
        .find(|l| l.contains(&needle) && (l.starts_with("Cannot import") || l.starts_with("Skip")))
        .map(|l| crate::secret::mask_tokens(l.trim()))
}

/// The last `Import times for custom nodes:` block in a ComfyUI log: node dir → loaded.
///
/// ```text
/// Import times for custom nodes:
///    0.0 seconds: /workspace/ComfyUI/custom_nodes/websocket_image_save.py
///    0.3 seconds (IMPORT FAILED): /workspace/ComfyUI/custom_nodes/Broken
/// ```
pub fn parse_imports(log: &str) -> Option<BTreeMap<String, bool>> {
    let start = log.rfind("Import times for custom nodes:")?;
    let mut nodes = BTreeMap::new();
    for line in log[start..].lines().skip(1) {
        let line = line.trim();
        let Some((timing, path)) = line.split_once(": ") else {
            break;
        };
        if !timing.contains(" seconds") {
            break;
        }
        let name = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(path);
        let name = name.strip_suffix(".py").unwrap_or(name);
        nodes.insert(name.to_owned(), !timing.contains("IMPORT FAILED"));
    }
    Some(nodes)
}

/// The container's log (stdout and stderr) of its current run: the lines after `previous_end`.
/// (Not "since it started": the first lines are often stamped before `StartedAt` is.)
async fn server_log(
    docker: &Docker,
    name: &str,
    previous_end: Option<i128>,
) -> Result<String, String> {
    let since = previous_end.map_or(0, |ns| i32::try_from(ns / 1_000_000_000).unwrap_or(0));
    let options = bollard::query_parameters::LogsOptions {
        stdout: true,
        stderr: true,
        since,
        timestamps: true,
        ..Default::default()
    };
    let mut out = String::new();
    for_each_frame(docker, name, options, |frame| {
        for line in frame.lines() {
            // `2026-11-21T11:00:00.123456789Z text`: keep the lines of this run only; `since`
            // has a one-second granularity and a restart can land in the same second.
            let (stamp, text) = line.split_once(' ').unwrap_or((line, ""));
            let at = crate::fsutil::parse_rfc3339_ns(stamp);
            if matches!((at, previous_end), (Some(at), Some(end)) if at <= end) {
                continue;
            }
            out.push_str(text);
            out.push('\n');
        }
    })
    .await?;
    Ok(out)
}

/// Stream the container's log as `options` select it, one frame at a time (a frame is a line,
/// or part of a long one). Stops at the first error, after the frames read before it.
pub(crate) async fn for_each_frame(
    docker: &Docker,
    name: &str,
    options: bollard::query_parameters::LogsOptions,
    mut each: impl FnMut(&str),
) -> Result<(), String> {
    let mut stream = docker.logs(name, Some(options));
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| crate::observe::container::describe(&e).to_string())?;
        each(&String::from_utf8_lossy(frame.as_ref()));
    }
    Ok(())
}

/// The last `n` lines of the container's log, as a suffix for an error message.
async fn log_tail(docker: &Docker, name: &str, n: usize) -> String {
    let options = bollard::query_parameters::LogsOptions {
        stdout: true,
        stderr: true,
        tail: n.to_string(),
        ..Default::default()
    };
    let mut out = String::new();
    // Best effort: this only adds to an error message.
    let _ = for_each_frame(docker, name, options, |frame| out.push_str(frame)).await;
    if out.trim().is_empty() {
        String::new()
    } else {
        // ComfyUI-Login logs the token: never shown.
        let out = crate::secret::mask_tokens(&out);
        let lines: Vec<&str> = out.trim_end().lines().collect();
        format!("; the last lines of its log:\n  {}", lines.join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_import_block() {
        let log = "Import times for custom nodes:\n   0.0 seconds: /x/custom_nodes/Old\n\n\
                   Starting server\n\
                   Import times for custom nodes:\n   \
                   0.0 seconds: /w/ComfyUI/custom_nodes/websocket_image_save.py\n   \
                   0.3 seconds (IMPORT FAILED): /w/ComfyUI/custom_nodes/Broken\n   \
                   1.2 seconds: /w/ComfyUI/custom_nodes/ComfyUI-Login\n\nStarting server\n";
        let m = parse_imports(log).unwrap();
        assert_eq!(
            m,
            BTreeMap::from([
                ("websocket_image_save".to_owned(), true),
                ("Broken".to_owned(), false),
                ("ComfyUI-Login".to_owned(), true),
            ])
        );
        assert_eq!(parse_imports("Starting server\n"), None);
    }

    #[test]
    fn an_import_failure_is_told_in_the_servers_own_words() {
        let log = "2026-11-30T13:00:01.5Z Traceback (most recent call last):\n\
                   2026-11-30T13:00:01.5Z RuntimeError: Broken refuses to import\n\
                   2026-11-30T13:00:01.6Z Cannot import /workspace/ComfyUI/custom_nodes/Broken module for custom nodes: Broken refuses to import\n";
        assert_eq!(
            import_error(log, "Broken").as_deref(),
            Some(
                "Cannot import /workspace/ComfyUI/custom_nodes/Broken module for custom nodes: Broken refuses to import"
            )
        );
        assert_eq!(import_error(log, "Other"), None);
    }
}
