//! The end-to-end tier: the real ComfyUI v0.3.68 and the real ComfyUI-Login, CPU only, from an
//! empty folder, with no hand step. ComfyUI's source and ComfyUI-Login's history come from
//! `../shared/vendor/` (no registry serves them; `COMFYPROV_VENDOR` names another folder), made
//! into local git repositories; torch and the rest come from PyPI as it stood on 2025-11-06,
//! resolved and installed by comfyprov inside a Debian image with Python
//! (`scripts/python-image.sh`). uv's download cache is shared across runs through
//! `COMFYPROV_UV_CACHE` (`.ci/run` points it outside the checkout), so a second run on the same
//! machine downloads nothing.
//!
//! One test, in order, on one server: apply → verify; the tier's own HTTP requests (no token,
//! Bearer, empty `?token=`, a browser, `POST /login`); a workflow that needs no model renders a
//! PNG; a second apply does nothing; the password rotated → one restart → the old token and a
//! session taken before both get refused; `auth = none` → 200 without a token; a node that fails
//! to import is reported by verify with the server's own line. It prints its timings on stderr.
//!
//! With `CI=true`, a missing vendor folder, engine or uv is a failure, never a skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;
use support::{both, docker, free_port, git, http_exchange_raw};

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skip (or, with CI=true, fail) when something the tier needs is missing.
fn needs(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(!ci(), "the end-to-end tier needs {what} when CI=true");
        eprintln!("skipping the end-to-end tier: no {what}");
    }
    ok
}

fn vendor() -> PathBuf {
    std::env::var_os("COMFYPROV_VENDOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vendor"))
}

/// Timings on stderr, past the test harness's capture.
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "e2e: {msg}");
}

struct Tier {
    dir: tempfile::TempDir,
    name: String,
    port: u16,
}

impl Drop for Tier {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

impl Tier {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_comfyprov"))
            .args(args)
            .current_dir(self.root())
            .env("NO_COLOR", "1")
            .env("COMFYPROV_MODEL_CACHE", self.root().join("model-cache"))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let t = Instant::now();
        let out = self.run(args);
        let text = both(&out);
        assert!(out.status.success(), "comfyprov {args:?} failed:\n{text}");
        say(&format!(
            "comfyprov {} took {:.1} s",
            args.join(" "),
            t.elapsed().as_secs_f64()
        ));
        text
    }

    fn token(&self) -> String {
        String::from_utf8(self.run(&["token"]).stdout)
            .unwrap()
            .trim()
            .to_owned()
    }

    fn started_at(&self) -> String {
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &self.name])
    }

    fn manifest(&self, auth: &str, extra_nodes: &str) {
        let login = self.root().join("git/ComfyUI-Login.git");
        std::fs::write(
            self.root().join("comfy.toml"),
            format!(
                r#"[project]
name = "{name}"
[workspace]
path = "workspace"
[comfyui]
git = "file://{comfyui}"
rev = "v0.3.68"
[container]
image = "{image}"
port = {port}
[python]
version = "3.11"
exclude_newer = "2025-11-06"
{auth}
[[nodes]]
name = "ComfyUI-Login"
git = "file://{login}"
rev = "69109257f4629a11ebe26cd65667536c4f8dddcb"
requirements = true
{extra_nodes}"#,
                name = self.name,
                comfyui = self.root().join("git/ComfyUI").display(),
                image = image(),
                port = self.port,
                login = login.display(),
            ),
        )
        .unwrap();
    }

    /// One HTTP exchange with the server: status, headers, body.
    fn http(&self, request: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http_exchange_raw(self.port, request)
    }

    fn get(&self, path: &str, headers: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        self.http(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
        ))
    }
}

fn image() -> String {
    std::env::var("COMFYPROV_TEST_PYTHON_IMAGE")
        .unwrap_or_else(|_| "comfyprov-test/python:bookworm".to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The workflow that needs no model: EmptyImage → ImageInvert → SaveImage.
const WORKFLOW: &str = r#"{"prompt": {
 "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
 "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e"}}}}"#;

#[test]
fn the_real_comfyui_from_an_empty_folder() {
    let tarball = vendor().join("ComfyUI-v0.3.68.tar.xz");
    let bundle = vendor().join("ComfyUI-Login.bundle");
    if !needs(
        tarball.is_file() && bundle.is_file(),
        "vendored ComfyUI (../shared/vendor)",
    ) || !needs(support::docker_available(), "Docker engine")
        || !needs(
            Command::new(std::env::var("COMFYPROV_UV").unwrap_or_else(|_| "uv".into()))
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "uv",
        )
    {
        return;
    }
    let whole = Instant::now();
    let tier = Tier {
        dir: tempfile::tempdir().unwrap(),
        name: support::unique("cp-e2e"),
        port: free_port(),
    };
    let root = tier.root().to_owned();
    // The sources, as git repositories on this machine.
    let src = root.join("git");
    std::fs::create_dir_all(&src).unwrap();
    let tar = Command::new("tar")
        .args(["xJf"])
        .arg(&tarball)
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", both(&tar));
    let comfy = src.join("ComfyUI");
    git(&comfy, &["init", "-q", "-b", "master"]);
    git(&comfy, &["add", "-A"]);
    git(
        &comfy,
        &["commit", "-q", "-m", "ComfyUI v0.3.68 (upstream 265adad8)"],
    );
    git(&comfy, &["tag", "v0.3.68"]);
    git(
        &src,
        &[
            "clone",
            "-q",
            "--bare",
            bundle.to_str().unwrap(),
            "ComfyUI-Login.git",
        ],
    );
    // The image with Python, built once.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python-image.sh");
    let out = Command::new(&script).arg(image()).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    std::fs::create_dir_all(root.join(".secrets")).unwrap();
    let login_auth = "[auth]\nmode = \"login\"\npassword_file = \".secrets/pw\"\n";
    std::fs::write(root.join(".secrets/pw"), "first correct horse battery\n").unwrap();
    tier.manifest(login_auth, "");
    say(&format!("setup {:.1} s", whole.elapsed().as_secs_f64()));

    // From an empty workspace: one apply, no hand step, verified; no restart needed.
    let text = tier.ok(&["apply", "-y", "--verify-timeout", "300"]);
    for line in [
        "done     resolve the Python requirements into comfy.lock",
        "done     create the Python 3.11 environment venv/",
        "ok    node ComfyUI-Login: loaded",
        "torch 2.9.0",
        "Verified: 6 checks passed.",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(!text.contains("restart container"), "{text}");

    // A model declared while the server runs: placed (from a file:// URL) and listed by the
    // real server's GET /models/vae at once, with no restart (ComfyUI re-lists a folder whose
    // mtime changed).
    let tiny = root.join("e2e-tiny.safetensors");
    std::fs::write(&tiny, b"{}").unwrap();
    let started = tier.started_at();
    let model = format!(
        "[[models]]\nurl = \"file://{}\"\npath = \"vae/e2e-tiny.safetensors\"\n",
        tiny.display()
    );
    tier.manifest(login_auth, &model);
    let text = tier.ok(&["apply", "-y", "--verify-timeout", "120"]);
    assert!(
        text.contains("ok    model vae/e2e-tiny.safetensors: listed by GET /models/vae"),
        "{text}"
    );
    assert!(!text.contains("restart container"), "{text}");
    assert_eq!(tier.started_at(), started, "no restart for a model");

    // The tier's own requests, as a client and a browser would make them.
    let token = tier.token();
    assert!(token.starts_with("$2b$"), "a bcrypt hash is the token");
    assert_eq!(tier.get("/system_stats", "").0, 401, "no token");
    assert_eq!(
        tier.get(
            "/system_stats",
            &format!("Authorization: Bearer {token}\r\n")
        )
        .0,
        200,
        "Bearer"
    );
    assert_eq!(
        tier.get("/system_stats?token=", "").0,
        401,
        "the empty token"
    );
    let (status, headers, _) = tier.get("/system_stats", "Accept: text/html\r\n");
    assert_eq!(status, 302, "a browser");
    assert_eq!(header(&headers, "location"), Some("/login"));
    let form = "username=admin&password=first+correct+horse+battery";
    let (status, headers, _) = tier.http(&format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    ));
    assert_eq!(status, 302, "POST /login");
    assert_eq!(header(&headers, "location"), Some("/"));
    let cookie = header(&headers, "set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    assert_eq!(
        tier.get("/", &format!("Accept: text/html\r\nCookie: {cookie}\r\n"))
            .0,
        200,
        "the session lets the browser in"
    );

    // A workflow that needs no model renders a PNG.
    let t = Instant::now();
    let (status, _, body) = tier.http(&format!(
        "POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{WORKFLOW}",
        WORKFLOW.len()
    ));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let queued: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = queued["prompt_id"].as_str().unwrap().to_owned();
    let file = loop {
        let (_, _, body) = tier.get(
            &format!("/history/{id}"),
            &format!("Authorization: Bearer {token}\r\n"),
        );
        let history: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let Some(f) = history[&id]["outputs"]["3"]["images"][0]["filename"].as_str() {
            break f.to_owned();
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the workflow never finished: {history}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let png = std::fs::read(root.join("workspace/ComfyUI/output").join(&file)).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    say(&format!(
        "workflow rendered {file} in {:.2} s",
        t.elapsed().as_secs_f64()
    ));

    // A second apply does nothing: no write, no restart.
    let started = tier.started_at();
    let lock = std::fs::read(root.join("comfy.lock")).unwrap();
    let text = tier.ok(&["apply", "-y"]);
    assert!(text.contains("nothing to do"), "{text}");
    assert_eq!(tier.started_at(), started);
    assert_eq!(std::fs::read(root.join("comfy.lock")).unwrap(), lock);

    // The password rotated: one restart; the old token and a session taken before are refused.
    std::fs::write(root.join(".secrets/pw"), "second correct horse battery\n").unwrap();
    let text = tier.ok(&["apply", "-y", "--verify-timeout", "300"]);
    assert_eq!(
        text.matches("done     restart container").count(),
        1,
        "{text}"
    );
    assert!(text.contains("a new session key"), "{text}");
    let new_token = tier.token();
    assert_ne!(new_token, token);
    assert_eq!(
        tier.get(
            "/system_stats",
            &format!("Authorization: Bearer {token}\r\n")
        )
        .0,
        401,
        "the old token"
    );
    assert_eq!(
        tier.get(
            "/system_stats",
            &format!("Authorization: Bearer {new_token}\r\n")
        )
        .0,
        200,
        "the new token"
    );
    let (status, headers, _) = tier.get("/", &format!("Accept: text/html\r\nCookie: {cookie}\r\n"));
    assert_eq!(
        (status, header(&headers, "location")),
        (302, Some("/login")),
        "a session from before the rotation has ended"
    );

    // login → none: the server answers without a token.
    tier.manifest("[auth]\nmode = \"none\"\n", "");
    // `none` with the login node declared is refused: drop its table, so plan disables it.
    let text = std::fs::read_to_string(root.join("comfy.toml")).unwrap();
    let cut = text.find("[[nodes]]").unwrap();
    std::fs::write(root.join("comfy.toml"), &text[..cut]).unwrap();
    let text = tier.ok(&["apply", "-y", "--verify-timeout", "300"]);
    assert!(
        text.contains("ComfyUI-Login not loaded (auth none)"),
        "{text}"
    );
    assert_eq!(tier.get("/system_stats", "").0, 200, "no token needed");

    // A node that fails to import: verify names it, with the server's own line.
    let broken = src.join("Broken");
    std::fs::create_dir_all(&broken).unwrap();
    git(&broken, &["init", "-q", "-b", "main"]);
    std::fs::write(
        broken.join("__init__.py"),
        "raise RuntimeError(\"Broken refuses to import\")\n",
    )
    .unwrap();
    git(&broken, &["add", "-A"]);
    git(&broken, &["commit", "-q", "-m", "broken"]);
    let rev = git(&broken, &["rev-parse", "HEAD"]);
    let mut text = std::fs::read_to_string(root.join("comfy.toml")).unwrap();
    text.push_str(&format!(
        "[[nodes]]\nname = \"Broken\"\ngit = \"file://{}\"\nrev = \"{rev}\"\n",
        broken.display()
    ));
    std::fs::write(root.join("comfy.toml"), text).unwrap();
    let out = tier.run(&["apply", "-y", "--verify-timeout", "300"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  node Broken: IMPORT FAILED")
            && text.contains("Broken refuses to import"),
        "{text}"
    );
    say(&format!(
        "whole tier {:.1} s",
        whole.elapsed().as_secs_f64()
    ));
}
