//! A stand-in for ComfyUI's interpreter in the container tests, built as one static binary and
//! installed as the workspace's `venv/bin/python3`. Like the real thing it is started as
//! `python3 main.py --listen … --port …` from the ComfyUI folder, and it also answers the other
//! two ways comfyprov runs the interpreter:
//!
//! - `python3 main.py ARGS…`: the server. It "imports" every dir in `custom_nodes/` and logs
//!   ComfyUI's `Import times for custom nodes:` block. A node fails to import when it holds a
//!   `FAIL_IMPORT` file, or when a line of its `requirements.txt` names a distribution the
//!   environment's site-packages has no `*.dist-info` for (`$FAKE_SITE_PACKAGES`, set by the
//!   `main.py` that runs this binary under a real interpreter, else beside this binary). It serves `/system_stats` (with `argv`), `/object_info` and `/`. When
//!   `custom_nodes/ComfyUI-Login` loaded, it follows the ComfyUI-Login contract of DESIGN.md: the
//!   token is line 1 of `login/PASSWORD`, read at start (and again on each request while it is
//!   empty, as ComfyUI-Login does; an Authorization header that is not two words gets 500),
//!   accepted as `Authorization: Bearer` or `?token=` and compared as plain strings; without it a
//!   request gets 302 to `/login` when it accepts `text/html`, else 401; `POST /login` checks the
//!   password with bcrypt, and with no PASSWORD the first visitor chooses it.
//! - `python3 -c SCRIPT`: the container healthcheck; connects to the port the script names.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LOGIN_NODE: &str = "ComfyUI-Login";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("-c") => healthcheck(args.get(2).map(String::as_str).unwrap_or("")),
        Some("main.py") => serve(&args[1..]),
        _ => {
            eprintln!("fake python: unsupported arguments {:?}", &args[1..]);
            2
        }
    };
    std::process::exit(code);
}

/// The environment's site-packages: `$FAKE_SITE_PACKAGES` (set by the `main.py` that runs this
/// binary under a real interpreter), else `venv/lib/python3*/site-packages` beside
/// `venv/bin/python3` (this binary, when it stands in for the interpreter).
fn site_packages() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FAKE_SITE_PACKAGES") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("venv/bin/python3"));
    let lib = exe.parent()?.parent()?.join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
}

/// Installed distributions: the normalised names of site-packages' `*.dist-info` folders.
fn installed() -> Vec<String> {
    let Some(site) = site_packages() else {
        return Vec::new();
    };
    std::fs::read_dir(site)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".dist-info")?;
                    stem.split_once('-').map(|(n, _)| normalize(n))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A distribution name as pip compares them: lowercase, `_` and `.` as `-`.
fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The requirement lines of a requirements file: no comments, no blank lines.
fn requirements(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A file name for a requirement: its name, lower-cased, without the version specifier.
fn package_name(req: &str) -> String {
    normalize(
        req.split(|c: char| "<>=!~;[ ".contains(c))
            .next()
            .unwrap_or(req),
    )
}

fn healthcheck(script: &str) -> i32 {
    // The script is `…create_connection(("127.0.0.1", PORT), …)…`: find PORT.
    let port = script.split("127.0.0.1").nth(1).and_then(|rest| {
        let digits: String = rest
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok()
    });
    let Some(port) = port else {
        eprintln!("fake python: cannot find a port in {script:?}");
        return 2;
    };
    match TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(3)) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("ConnectionRefusedError: {e}");
            1
        }
    }
}

/// One custom node as the server saw it at start.
struct Node {
    name: String,
    loaded: bool,
}

struct Server {
    argv: Vec<String>,
    nodes: Vec<Node>,
    /// `Some(token)` when ComfyUI-Login loaded; the token is empty without PASSWORD.
    login: Option<Mutex<Login>>,
    cors_origin: Option<String>,
    version: String,
    /// Finished prompts: id → its `/history/<id>` entry.
    history: Mutex<Vec<(String, serde_json::Value)>>,
}

struct Login {
    token: String,
    sessions: Vec<String>,
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn import_nodes() -> Vec<Node> {
    let installed = installed();
    let mut names: Vec<String> = std::fs::read_dir("custom_nodes")
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && !n.ends_with(".disabled") && n != "__pycache__")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut nodes = Vec::new();
    for name in names {
        let dir = Path::new("custom_nodes").join(&name);
        let missing: Vec<String> = std::fs::read_to_string(dir.join("requirements.txt"))
            .map(|t| requirements(&t))
            .unwrap_or_default()
            .iter()
            .map(|r| package_name(r))
            .filter(|p| !installed.contains(p))
            .collect();
        let loaded = if dir.join("FAIL_IMPORT").exists() {
            println!("Traceback (most recent call last):\nRuntimeError: {name} refuses to import");
            println!(
                "Cannot import {} module for custom nodes: refuses to import",
                dir.display()
            );
            false
        } else if let Some(first) = missing.first() {
            println!(
                "Traceback (most recent call last):\nModuleNotFoundError: No module named '{first}'"
            );
            println!(
                "Cannot import {} module for custom nodes: No module named '{first}'",
                dir.display()
            );
            false
        } else {
            true
        };
        nodes.push(Node { name, loaded });
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    println!("\nImport times for custom nodes:");
    for n in &nodes {
        let failed = if n.loaded { "" } else { " (IMPORT FAILED)" };
        println!(
            "   0.0 seconds{failed}: {}",
            cwd.join("custom_nodes").join(&n.name).display()
        );
    }
    println!();
    nodes
}

/// ComfyUI-Login at start: move a legacy `PASSWORD`, then read the token once.
fn login_token() -> String {
    let _ = std::fs::create_dir_all("login");
    if Path::new("PASSWORD").exists() && !Path::new("login/PASSWORD").exists() {
        let _ = std::fs::rename("PASSWORD", "login/PASSWORD");
    }
    std::fs::read_to_string("login/PASSWORD")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.trim_end_matches('\r').to_owned())
        })
        .unwrap_or_default()
}

fn serve(args: &[String]) -> i32 {
    let port = flag(args, "--port").unwrap_or_else(|| "8188".to_owned());
    let listen = flag(args, "--listen").unwrap_or_else(|| "127.0.0.1".to_owned());
    println!("Total VRAM 0 MB, total RAM 1024 MB");
    let nodes = import_nodes();
    let login = nodes
        .iter()
        // ComfyUI loads a copy under another folder name (`ComfyUI-Login.bak`) just the same.
        .any(|n| {
            n.loaded
                && n.name
                    .strip_prefix(LOGIN_NODE)
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric()))
        })
        .then(|| {
            Mutex::new(Login {
                token: login_token(),
                sessions: Vec::new(),
            })
        });
    // As the real ComfyUI-Login does at start: its token in the log, which comfyprov must mask.
    if let Some(l) = &login
        && let Ok(l) = l.lock()
        && !l.token.is_empty()
    {
        println!("For direct API calls, use token={}", l.token);
    }
    let version = std::fs::read_to_string("comfyui_version.py")
        .ok()
        .and_then(|t| t.split('"').nth(1).map(str::to_owned))
        .unwrap_or_else(|| "0.0.0".to_owned());
    let server = Arc::new(Server {
        argv: args.to_vec(),
        nodes,
        login,
        cors_origin: flag(args, "--enable-cors-header").filter(|o| o != "*"),
        version,
        history: Mutex::new(Vec::new()),
    });
    let listener = match TcpListener::bind(format!("{listen}:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {listen}:{port}: {e}");
            return 1;
        }
    };
    println!("To see the GUI go to: http://{listen}:{port}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            let _ = handle(&server, stream);
        });
    }
    0
}

struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Request {
        method,
        path: path.to_owned(),
        query: form(query),
        headers,
        body,
    })
}

fn respond(
    mut stream: &TcpStream,
    status: &str,
    headers: &[(&str, String)],
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn session_of(req: &Request) -> Option<String> {
    req.headers.get("cookie").and_then(|c| {
        c.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == "FAKE_SESSION")
            .map(|(_, v)| v.to_owned())
    })
}

/// ComfyUI-Login's middleware: is this request let through?
fn authorised(server: &Server, login: &Login, req: &Request) -> bool {
    let p = &req.path;
    if p == "/login"
        || [".js", ".css", ".css.map", ".ico"]
            .iter()
            .any(|s| p.ends_with(s))
    {
        return true;
    }
    if session_of(req).is_some_and(|s| login.sessions.contains(&s)) {
        return true;
    }
    if let Some(origin) = &server.cors_origin
        && req.headers.get("origin") != Some(origin)
    {
        return false;
    }
    let bearer = req
        .headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    bearer == Some(login.token.as_str()) || req.query.get("token") == Some(&login.token)
}

/// What the middleware lets through before it looks at the Authorization header: the login
/// page, static files and a signed-in session.
fn authorised_without_header(login: &Login, req: &Request) -> bool {
    let p = &req.path;
    p == "/login"
        || [".js", ".css", ".css.map", ".ico"]
            .iter()
            .any(|s| p.ends_with(s))
        || session_of(req).is_some_and(|s| login.sessions.contains(&s))
}

/// The node classes this fake can run: ComfyUI's own `EmptyImage`, `ImageInvert` and
/// `SaveImage`, and `FakeRaise`, which fails as a node's exception does.
const CLASSES: [&str; 4] = ["EmptyImage", "ImageInvert", "SaveImage", "FakeRaise"];

/// A minimal PNG (1×1, grey), what `SaveImage` writes.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0x3a, 0x7e, 0x9b, 0x55, 0, 0, 0, 0x0a, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0x68, 0, 0, 0, 0x82, 0, 0x81, 0x77, 0xcd, 0x72, 0xb6, 0, 0, 0, 0, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// `POST /prompt` as ComfyUI answers it: an unknown class is refused (400, `invalid_prompt`),
/// anything else runs at once; `SaveImage` writes `output/<prefix>_00001_.png`, `FakeRaise`
/// fails with an `execution_error`.
fn prompt(server: &Server, req: &Request, stream: &TcpStream) -> std::io::Result<()> {
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    let nodes = body["prompt"].as_object().cloned().unwrap_or_default();
    for (id, node) in &nodes {
        let class = node["class_type"].as_str().unwrap_or("");
        if !CLASSES.contains(&class) {
            let answer = serde_json::json!({
                "error": {
                    "type": "invalid_prompt",
                    "message": format!("Cannot execute because node {class} does not exist."),
                    "details": format!("Node ID '#{id}'"),
                    "extra_info": {}
                },
                "node_errors": {}
            });
            return respond(
                stream,
                "400 Bad Request",
                &[],
                "application/json",
                &answer.to_string(),
            );
        }
    }
    let mut history = server.history.lock().unwrap_or_else(|e| e.into_inner());
    let id = format!("fake-prompt-{}", history.len() + 1);
    let mut outputs = serde_json::Map::new();
    let mut status =
        serde_json::json!({"status_str": "success", "completed": true, "messages": []});
    for (node_id, node) in &nodes {
        match node["class_type"].as_str() {
            Some("FakeRaise") => {
                status = serde_json::json!({"status_str": "error", "completed": false, "messages": [
                    ["execution_start", {"prompt_id": id}],
                    ["execution_error", {"prompt_id": id, "node_id": node_id, "node_type": "FakeRaise",
                        "exception_message": "FakeRaise raised, as asked\n", "exception_type": "RuntimeError"}]
                ]});
            }
            Some("SaveImage") => {
                let prefix = node["inputs"]["filename_prefix"]
                    .as_str()
                    .unwrap_or("ComfyUI");
                // As ComfyUI numbers them: one past the highest file of this prefix.
                let next = std::fs::read_dir("output")
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| {
                                let n = e.file_name().to_string_lossy().into_owned();
                                n.strip_prefix(&format!("{prefix}_"))?
                                    .strip_suffix("_.png")?
                                    .parse::<u32>()
                                    .ok()
                            })
                            .max()
                            .unwrap_or(0)
                    })
                    .unwrap_or(0)
                    + 1;
                let file = format!("{prefix}_{next:05}_.png");
                let _ = std::fs::create_dir_all("output");
                let _ = std::fs::write(Path::new("output").join(&file), PNG);
                outputs.insert(
                    node_id.clone(),
                    serde_json::json!({"images": [{"filename": file, "subfolder": "", "type": "output"}]}),
                );
            }
            _ => {}
        }
    }
    history.push((
        id.clone(),
        serde_json::json!({"outputs": outputs, "status": status}),
    ));
    let answer =
        serde_json::json!({"prompt_id": id, "number": history.len() - 1, "node_errors": {}});
    respond(
        stream,
        "200 OK",
        &[],
        "application/json",
        &answer.to_string(),
    )
}

fn handle(server: &Server, stream: TcpStream) -> std::io::Result<()> {
    let req = read_request(&stream)?;
    if let Some(login) = &server.login {
        let mut login = login.lock().unwrap_or_else(|e| e.into_inner());
        if req.path == "/login" && req.method == "POST" {
            return post_login(&mut login, &req, &stream);
        }
        if req.path == "/login" {
            return respond(
                &stream,
                "200 OK",
                &[],
                "text/html",
                "<form method=post>login</form>",
            );
        }
        // As ComfyUI-Login's middleware: an empty token (no PASSWORD at start) is read again on
        // every request, and an Authorization header that is not two words is an exception
        // in it (`auth_type, token = header.split()`): 500.
        if login.token.is_empty() {
            login.token = std::fs::read_to_string("login/PASSWORD")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .next()
                        .map(|l| l.trim_end_matches('\r').to_owned())
                })
                .unwrap_or_default();
        }
        let malformed = req
            .headers
            .get("authorization")
            .is_some_and(|a| !a.is_empty() && a.split_whitespace().count() != 2);
        if malformed && !authorised_without_header(&login, &req) {
            return respond(
                &stream,
                "500 Internal Server Error",
                &[],
                "text/plain",
                "500 Internal Server Error\n\nServer got itself in trouble",
            );
        }
        if !authorised(server, &login, &req) {
            let html = req
                .headers
                .get("accept")
                .is_some_and(|a| a.contains("text/html"));
            return if html {
                respond(
                    &stream,
                    "302 Found",
                    &[("Location", "/login".into())],
                    "text/plain",
                    "",
                )
            } else {
                respond(
                    &stream,
                    "401 Unauthorized",
                    &[],
                    "application/json",
                    r#"{"error": "Authentication required."}"#,
                )
            };
        }
    }
    match req.path.as_str() {
        "/system_stats" => {
            let argv: Vec<String> = server.argv.iter().map(|a| json_str(a)).collect();
            let body = format!(
                r#"{{"system": {{"os": "posix", "ram_total": 1073741824, "ram_free": 536870912, "comfyui_version": {}, "python_version": "3.11.2 (fake)", "pytorch_version": "2.5.1+cpu", "embedded_python": false, "argv": [{}]}}, "devices": [{{"name": "cpu", "type": "cpu", "index": null, "vram_total": 1073741824, "vram_free": 536870912, "torch_vram_total": 1073741824, "torch_vram_free": 536870912}}]}}"#,
                json_str(&server.version),
                argv.join(", ")
            );
            respond(&stream, "200 OK", &[], "application/json", &body)
        }
        "/prompt" if req.method == "POST" => prompt(server, &req, &stream),
        p if p.starts_with("/history/") => {
            let id = &p["/history/".len()..];
            let history = server.history.lock().unwrap_or_else(|e| e.into_inner());
            let body = match history.iter().find(|(k, _)| k == id) {
                Some((k, v)) => serde_json::json!({ k.clone(): v }).to_string(),
                None => "{}".to_owned(),
            };
            respond(&stream, "200 OK", &[], "application/json", &body)
        }
        "/object_info" => {
            let classes: Vec<String> = server
                .nodes
                .iter()
                .filter(|n| n.loaded)
                .map(|n| {
                    format!(
                        r#"{}: {{"name": {}, "python_module": {}}}"#,
                        json_str(&format!("{}Node", n.name)),
                        json_str(&format!("{}Node", n.name)),
                        json_str(&format!("custom_nodes.{}", n.name))
                    )
                })
                .collect();
            let body = format!("{{{}}}", classes.join(", "));
            respond(&stream, "200 OK", &[], "application/json", &body)
        }
        p if p.starts_with("/models/") => {
            // As ComfyUI's `GET /models/{folder}`: 404 for a folder it does not know, else the
            // files under models/<folder> (recursively) with a model extension, read now.
            let folder = &p["/models/".len()..];
            if !MODEL_FOLDERS.contains(&folder) {
                return respond(&stream, "404 Not Found", &[], "text/plain", "");
            }
            let mut names = Vec::new();
            list_models(Path::new("models").join(folder).as_path(), "", &mut names);
            names.sort();
            let body = serde_json::to_string(&names).unwrap_or_default();
            respond(&stream, "200 OK", &[], "application/json", &body)
        }
        "/" => respond(
            &stream,
            "200 OK",
            &[],
            "text/html",
            "<html>ComfyUI (fake)</html>",
        ),
        _ => respond(
            &stream,
            "404 Not Found",
            &[],
            "text/plain",
            "404: Not Found",
        ),
    }
}

/// ComfyUI's model folders (folder_paths.folder_names_and_paths), the ones tests use and more.
const MODEL_FOLDERS: &[&str] = &[
    "checkpoints",
    "configs",
    "loras",
    "vae",
    "text_encoders",
    "clip",
    "diffusion_models",
    "unet",
    "clip_vision",
    "style_models",
    "embeddings",
    "diffusers",
    "vae_approx",
    "controlnet",
    "gligen",
    "upscale_models",
    "hypernetworks",
    "photomaker",
    "classifiers",
];

/// Files with ComfyUI's model extensions under `dir`, as `sub/name` relative names.
fn list_models(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() {
            list_models(&path, &format!("{prefix}{name}/"), out);
        } else if [
            ".safetensors",
            ".ckpt",
            ".pt",
            ".pt2",
            ".pth",
            ".bin",
            ".sft",
            ".pkl",
        ]
        .iter()
        .any(|x| name.ends_with(x))
        {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// A session id: unique in this process, which is all a test server needs.
fn new_session() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}{n:x}")
}

fn post_login(login: &mut Login, req: &Request, stream: &TcpStream) -> std::io::Result<()> {
    let f = form(&String::from_utf8_lossy(&req.body));
    let password = f.get("password").cloned().unwrap_or_default();
    let username = f.get("username").cloned().unwrap_or_default();
    let stored = std::fs::read_to_string("login/PASSWORD").ok();
    let ok = match stored.as_deref().and_then(|t| t.lines().next()) {
        Some(hash) => bcrypt::verify(&password, hash).unwrap_or(false),
        None => {
            // No PASSWORD: the first visitor chooses it (the danger comfyprov guards against).
            match bcrypt::hash(&password, 4) {
                Ok(hash) => std::fs::write("login/PASSWORD", format!("{hash}\n{username}")).is_ok(),
                Err(_) => false,
            }
        }
    };
    if ok {
        let session = new_session();
        login.sessions.push(session.clone());
        respond(
            stream,
            "302 Found",
            &[
                ("Location", "/".into()),
                ("Set-Cookie", format!("FAKE_SESSION={session}; Path=/")),
            ],
            "text/plain",
            "",
        )
    } else {
        respond(
            stream,
            "302 Found",
            &[("Location", "/login?wrong=1".into())],
            "text/plain",
            "",
        )
    }
}
