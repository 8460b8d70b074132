//! `[[models]]` against a real HTTP server on 127.0.0.1 started by the tests: Range and ETag,
//! 404, 401 without the token, a server that ignores Range, a slow one, a connection dropped
//! mid-body, wrong bytes, a stall and kill -9, a full disk (tmpfs), a second workspace served
//! from the cache.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{Project, both};

const TOKEN: &str = "hf_sEcReT-t0ken-never-shown";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    if_range: Option<String>,
    authorization: bool,
    sent: usize,
}

/// The file server. Routes, each serving `body` (or a variant):
/// `/ok/F` Range + ETag; `/norange/F` ignores Range; `/gated/F` needs the bearer token;
/// `/redirect/F` 302 to `http://localhost:PORT/gated/F` (another origin); `/drop/F` the first
/// request is cut after half the body; `/slow/F` 64 KiB chunks with pauses; `/wrong/F` other
/// bytes; `/stall/F` the first request stalls after half the body; anything else 404.
struct FileServer {
    port: u16,
    body: Arc<Vec<u8>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The most connections served at once.
    peak: Arc<AtomicUsize>,
}

impl FileServer {
    fn start(size: usize) -> FileServer {
        let body: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
        let body = Arc::new(body);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        {
            let (body, seen, peak) = (Arc::clone(&body), Arc::clone(&seen), Arc::clone(&peak));
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (peak, open) = (Arc::clone(&peak), Arc::clone(&open));
                    let (body, seen, hits) =
                        (Arc::clone(&body), Arc::clone(&seen), Arc::clone(&hits));
                    std::thread::spawn(move || {
                        serve(stream, port, &body, &seen, &hits, (&open, &peak));
                    });
                }
            });
        }
        FileServer {
            port,
            body,
            seen,
            peak,
        }
    }

    fn url(&self, route: &str) -> String {
        format!("http://127.0.0.1:{}/{route}/model.safetensors", self.port)
    }

    fn sha256(&self) -> String {
        comfyprov::digest::sha256_hex(&self.body)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn sent(&self) -> usize {
        self.seen().iter().map(|s| s.sent).sum()
    }
}

/// `sending`: (bodies being sent now, the most at once).
fn serve(
    stream: TcpStream,
    port: u16,
    body: &[u8],
    seen: &Mutex<Vec<Seen>>,
    hits: &AtomicUsize,
    sending: (&AtomicUsize, &AtomicUsize),
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let route = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let first = hits.fetch_add(1, Ordering::SeqCst) == 0;
    let mut s = stream;
    let record = |sent: usize| {
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            range: header("range"),
            if_range: header("if-range"),
            authorization: header("authorization").is_some(),
            sent,
        })
    };
    let etag = "\"v1\"";
    let wrong: Vec<u8>;
    let body = if route == "wrong" {
        wrong = body.iter().map(|b| b ^ 0x55).collect();
        &wrong[..]
    } else {
        body
    };
    match route.as_str() {
        "ok" | "norange" | "drop" | "slow" | "wrong" | "stall" | "gated" | "nolen" => {}
        "redirect" => {
            let _ = write!(
                s,
                "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/gated/model.safetensors\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            record(0);
            return;
        }
        _ => {
            let _ = write!(
                s,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            record(0);
            return;
        }
    }
    if route == "gated" && header("authorization").as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let _ = write!(
            s,
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        record(0);
        return;
    }
    let from = header("range")
        .filter(|_| route != "norange")
        .filter(|_| header("if-range").is_none_or(|v| v == etag))
        .and_then(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        })
        .filter(|&f| f <= body.len());
    let part = &body[from.unwrap_or(0)..];
    let head = match from {
        Some(f) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {f}-{}/{}\r\n",
            body.len() - 1,
            body.len()
        ),
        None => "HTTP/1.1 200 OK\r\n".to_owned(),
    };
    let length = if route == "nolen" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", part.len())
    };
    let _ = write!(
        s,
        "{head}ETag: {etag}\r\nAccept-Ranges: bytes\r\n{length}Connection: close\r\n\r\n"
    );
    let cut = (route == "drop" || route == "stall") && first;
    let n = if cut { part.len() / 2 } else { part.len() };
    let now = sending.0.fetch_add(1, Ordering::SeqCst) + 1;
    sending.1.fetch_max(now, Ordering::SeqCst);
    if route == "slow" {
        for c in part.chunks(64 * 1024) {
            std::thread::sleep(Duration::from_millis(20));
            if s.write_all(c).is_err() {
                break;
            }
        }
    } else {
        let _ = s.write_all(&part[..n]);
    }
    // Written into the socket: the client has not read it all yet, so it cannot have started
    // its next download before this count drops.
    sending.0.fetch_sub(1, Ordering::SeqCst);
    let _ = s.flush();
    record(n);
    if route == "stall" && first {
        std::thread::sleep(Duration::from_secs(600));
    }
}

/// A workspace-only project with `ComfyUI/` and its own model cache.
struct Models {
    project: Project,
    cache: PathBuf,
}

impl Models {
    fn new(cache: &Path, models: &str) -> Models {
        let project = Project::new();
        std::fs::create_dir_all(project.path("ws/ComfyUI")).unwrap();
        project.write_manifest(&format!(
            "[project]\nname = \"m\"\n[workspace]\npath = \"ws\"\n[auth]\nmode = \"none\"\n{models}"
        ));
        Models {
            project,
            cache: cache.to_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    fn command(&self) -> std::process::Command {
        let mut c = self.project.command();
        c.env("COMFYPROV_MODEL_CACHE", &self.cache)
            .env("COMFYPROV_DOWNLOAD_IDLE_TIMEOUT", "3")
            .env_remove("TEST_TOKEN");
        c
    }

    fn model(&self) -> PathBuf {
        self.project.path("ws/ComfyUI/models/vae/model.safetensors")
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.project.path("comfy.lock")).unwrap_or_default()
    }
}

fn model(url: &str, extra: &str) -> String {
    format!("[[models]]\nurl = \"{url}\"\npath = \"vae/model.safetensors\"\n{extra}\n")
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Empty folder → plan → apply: downloaded, checked, linked from the cache, its hash recorded in
/// comfy.lock; then plan is empty, and a file changed in place is caught.
#[test]
fn a_model_is_downloaded_placed_recorded_and_then_matches() {
    let server = FileServer::start(3 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("ok"), ""));
    let plan = both(&m.run(&["plan"]));
    assert!(
        plan.contains("+ download model vae/model.safetensors (size not known yet)")
            && plan.contains("models/vae/model.safetensors does not exist"),
        "{plan}"
    );
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("3.1 MB downloaded; SHA-256"),
        "{}",
        both(&out)
    );
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);
    let entry = m.cache.join("sha256").join(server.sha256());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&entry).unwrap().ino(),
        std::fs::metadata(m.model()).unwrap().ino(),
        "placed by hard link"
    );
    let lock = m.lock();
    assert!(
        lock.contains(&format!("sha256 = \"{}\"", server.sha256())),
        "{lock}"
    );
    assert!(lock.contains("size = 3145728"), "{lock}");
    assert!(leftovers(&m.project.path("ws/ComfyUI/models/vae")).is_empty());
    let out = m.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let requests = server.seen().len();

    let status = both(&m.run(&["status"]));
    assert!(
        status.contains(&format!(
            "models/vae/model.safetensors: 3145728 bytes, SHA-256 {}…",
            &server.sha256()[..12]
        )),
        "{status}"
    );

    // Same size, other bytes (the cache entry is read-only: made writable first, as anyone
    // could): the lock's hash catches it, and apply puts the right file back.
    std::fs::set_permissions(
        m.model(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(m.model())
        .unwrap()
        .write_all(b"tampered")
        .unwrap();
    let out = m.run(&["plan", "--detailed-exitcode"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("~ replace model vae/model.safetensors"),
        "{text}"
    );
    assert!(text.contains("has SHA-256"), "{text}");
    assert_eq!(server.seen().len(), requests, "plan downloads nothing");
    // The damaged file was the cache's entry too (a hard link): it is no source any more.
    assert!(
        text.contains("~ replace model vae/model.safetensors (3.1 MB)"),
        "downloaded again, not linked from the damaged cache entry:\n{text}"
    );
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        *server.body,
        "the cache entry is whole again"
    );
    let out = m.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

/// A second workspace with the same model is served from the cache: no byte downloaded.
#[test]
fn a_second_workspace_is_served_from_the_cache_with_zero_bytes_downloaded() {
    let server = FileServer::start(1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let sha = format!("sha256 = \"{}\"", server.sha256());
    let a = Models::new(&cache, &model(&server.url("ok"), &sha));
    assert!(a.run(&["apply", "-y"]).status.success());
    let before = server.seen().len();
    let b = Models::new(&cache, &model(&server.url("ok"), &sha));
    let plan = both(&b.run(&["plan"]));
    assert!(
        plan.contains("+ place model vae/model.safetensors from the cache"),
        "{plan}"
    );
    let out = b.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("from the cache, linked"),
        "{}",
        both(&out)
    );
    assert_eq!(
        server.seen().len(),
        before,
        "no request for the second workspace"
    );
    assert_eq!(std::fs::read(b.model()).unwrap(), *server.body);
    // The manifest gives the hash: the lock is not needed and not written.
    assert!(!b.project.path("comfy.lock").exists());
}

/// A connection cut mid-body is resumed with Range and If-Range in the same apply; a server
/// that ignores Range sends the whole file again, which is fine too.
#[test]
fn a_dropped_connection_is_resumed_with_range() {
    let server = FileServer::start(2 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let sha = format!("sha256 = \"{}\"\nsize = {}", server.sha256(), 2 << 20);
    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("drop"), &sha));
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].range.as_deref(), Some("bytes=1048576-"), "{seen:?}");
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""), "{seen:?}");
    assert_eq!(server.sent(), 2 << 20, "no byte sent twice");
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);

    let server = FileServer::start(1 << 20);
    let sha = format!("sha256 = \"{}\"", server.sha256());
    let m = Models::new(
        &tmp.path().join("cache2"),
        &model(&server.url("norange"), &sha),
    );
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);
}

/// A slow server is not a failure (it keeps sending).
#[test]
fn a_slow_server_still_completes() {
    let server = FileServer::start(1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("slow"), ""));
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);
}

/// Bytes that do not hash to the manifest's SHA-256 are never placed: the error shows both
/// hashes, nothing is in the model folder, nothing enters the cache.
#[test]
fn wrong_bytes_are_never_placed() {
    let server = FileServer::start(1 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let m = Models::new(
        &cache,
        &model(
            &server.url("wrong"),
            &format!("sha256 = \"{}\"", server.sha256()),
        ),
    );
    let out = m.run(&["apply", "-y"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let wrong: Vec<u8> = server.body.iter().map(|b| b ^ 0x55).collect();
    assert!(
        text.contains(&comfyprov::digest::sha256_hex(&wrong)),
        "{text}"
    );
    assert!(text.contains(&server.sha256()), "{text}");
    assert!(!m.model().exists());
    assert!(leftovers(&m.project.path("ws/ComfyUI/models/vae")).is_empty());
    assert_eq!(std::fs::read_dir(cache.join("sha256")).unwrap().count(), 0);
}

/// 404 is said plainly; a gated file needs the token (401 without it), and the token is never
/// printed, never in --json, and never sent to another host after a redirect.
#[test]
fn errors_are_plain_and_the_token_stays_secret() {
    let server = FileServer::start(64 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(
        &tmp.path().join("cache"),
        &model(
            &format!("http://127.0.0.1:{}/nope/x.safetensors", server.port),
            "",
        ),
    );
    let text = both(&m.run(&["apply", "-y"]));
    assert!(text.contains("answered 404: no such file"), "{text}");

    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("gated"), ""));
    let text = both(&m.run(&["apply", "-y"]));
    assert!(text.contains("answered 401: it needs a token"), "{text}");
    assert!(text.contains("token_env"), "{text}");

    let m = Models::new(
        &tmp.path().join("cache"),
        &model(&server.url("redirect"), "token_env = \"TEST_TOKEN\""),
    );
    let text = both(&m.run(&["apply", "-y"]));
    assert!(
        text.contains("needs the token in $TEST_TOKEN, which is not set"),
        "{text}"
    );
    let mut everything = String::new();
    for args in [
        &["plan"][..],
        &["plan", "--json"],
        &["-v", "apply", "-y"],
        &["status"],
    ] {
        let out = m
            .command()
            .args(args)
            .env("TEST_TOKEN", TOKEN)
            .output()
            .unwrap();
        everything.push_str(&both(&out));
    }
    assert!(
        !everything.contains(TOKEN),
        "the token leaked:\n{everything}"
    );
    // 127.0.0.1 redirected to localhost: another origin, so no Authorization went there, and
    // the gated file refused the request.
    let seen = server.seen();
    let to_other: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/gated/"))
        .collect();
    assert!(
        !to_other.is_empty() && to_other.iter().all(|s| !s.authorization),
        "{seen:?}"
    );
    assert!(
        everything.contains("answered 401: the token was refused")
            || everything.contains("answered 401"),
        "{everything}"
    );

    // Straight to the gated URL with the token: downloaded.
    let m = Models::new(
        &tmp.path().join("cache"),
        &model(&server.url("gated"), "token_env = \"TEST_TOKEN\""),
    );
    let out = m
        .command()
        .args(["apply", "-y"])
        .env("TEST_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert!(!both(&out).contains(TOKEN));
}

/// kill -9 in the middle of a download: the next apply asks only for the rest.
#[test]
fn a_download_killed_with_sigkill_resumes_where_it_stopped() {
    let server = FileServer::start(4 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let sha = format!("sha256 = \"{}\"", server.sha256());
    let m = Models::new(&cache, &model(&server.url("stall"), &sha));
    let mut child = m
        .command()
        .args(["apply", "-y"])
        .env("COMFYPROV_DOWNLOAD_IDLE_TIMEOUT", "600")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let part_dir = cache.join("partial");
    // Written in 1 MiB blocks: at least one is on disk before the stall.
    let half = 1u64 << 20;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let size: u64 = std::fs::read_dir(&part_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if size >= half {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the download never got half way"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    // What the killed run left on disk is where the next one starts.
    let kept: u64 = std::fs::read_dir(&part_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(!m.model().exists(), "nothing placed by the killed run");
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    let seen = server.seen();
    assert_eq!(
        seen.last().unwrap().range.as_deref(),
        Some(format!("bytes={kept}-").as_str()),
        "only the rest is asked for: {seen:?}"
    );
    assert_eq!(std::fs::read(m.model()).unwrap(), *server.body);
}

/// Downloads that do not fit are blocked in plan, and apply downloads nothing.
#[test]
fn downloads_that_do_not_fit_are_blocked_before_anything_is_fetched() {
    let server = FileServer::start(64 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(
        &tmp.path().join("cache"),
        &model(&server.url("ok"), "size = 900000000000000000"),
    );
    let out = m.run(&["plan", "--detailed-exitcode"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "! blocked: download model vae/model.safetensors: the downloads need 900000000.00 GB"
        ),
        "{text}"
    );
    let out = m.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(server.seen().is_empty());
}

/// A disk that fills during the download (a 1 MiB tmpfs as the cache): a clear error, nothing
/// placed. Needs root to mount; CI runs as root.
#[test]
fn a_full_disk_is_a_clear_error_and_nothing_is_placed() {
    let server = FileServer::start(3 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&cache)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(cache.clone());
    let m = Models::new(&cache, &model(&server.url("ok"), ""));
    let out = m.run(&["apply", "-y"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("3.1 MB to download, 1.0 MB free") && text.contains("free in"),
        "{text}"
    );
    assert!(!m.model().exists());

    // Without a length to check against, the write itself fills the disk.
    let m = Models::new(&cache, &model(&server.url("nolen"), ""));
    let out = m.run(&["apply", "-y"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the disk is full"), "{text}");
    assert!(!m.model().exists());
    assert!(leftovers(&m.project.path("ws/ComfyUI/models/vae")).is_empty());
}

/// `--locked` refuses a model with no hash in the manifest or the lock.
#[test]
fn locked_requires_a_hash() {
    let server = FileServer::start(1 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("ok"), ""));
    let out = m.run(&["plan", "--locked"]);
    assert!(
        both(&out).contains("models/vae/model.safetensors has no SHA-256 (--locked)"),
        "{}",
        both(&out)
    );
    assert!(m.run(&["apply", "-y"]).status.success());
    let out = m.run(&["plan", "--locked", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the lock has it now: {}",
        both(&out)
    );
}

/// `import` of a workspace whose models apply placed gives them back as [[models]] from
/// comfy.lock (plan: nothing to do); a model file nobody declared is listed, never invented.
#[test]
fn import_gives_back_the_models_comfy_lock_records() {
    let server = FileServer::start(256 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let m = Models::new(&tmp.path().join("cache"), &model(&server.url("ok"), ""));
    assert!(m.run(&["apply", "-y"]).status.success());
    let stray = m
        .project
        .path("ws/ComfyUI/models/loras/by-hand.safetensors");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"x").unwrap();
    std::fs::rename(m.project.path("comfy.toml"), m.project.path("old.toml")).unwrap();
    let out = m.run(&["import", "--workspace", "ws", "--out", "comfy.toml"]);
    assert!(out.status.success(), "{}", both(&out));
    let text = std::fs::read_to_string(m.project.path("comfy.toml")).unwrap();
    assert!(
        text.contains(&format!("url = \"{}\"", server.url("ok")))
            && text.contains("path = \"vae/model.safetensors\""),
        "{text}"
    );
    assert!(
        text.contains("models/loras/by-hand.safetensors: no URL is known for it"),
        "{text}"
    );
    let out = m.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

/// Several models download in parallel, at most 4 at a time, each placed whole.
#[test]
fn several_models_download_in_parallel_four_at_most() {
    let server = FileServer::start(2 << 20);
    let tmp = tempfile::tempdir().unwrap();
    let models: String = (0..6)
        .map(|i| {
            format!(
                "[[models]]\nurl = \"http://127.0.0.1:{}/slow/m{i}.safetensors\"\npath = \"loras/m{i}.safetensors\"\n",
                server.port
            )
        })
        .collect();
    let m = Models::new(&tmp.path().join("cache"), &models);
    let out = m.run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    let peak = server.peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "{peak} downloads at once");
    for i in 0..6 {
        let f = m
            .project
            .path(&format!("ws/ComfyUI/models/loras/m{i}.safetensors"));
        assert_eq!(std::fs::read(f).unwrap(), *server.body);
    }
    // The same bytes under six URLs: one cache entry, six links.
    assert_eq!(
        std::fs::read_dir(m.cache.join("sha256")).unwrap().count(),
        1
    );
}
