//! A Python package index on 127.0.0.1 for the Python-environment tests, serving wheels the
//! tests build (pure-Python stand-ins: a fake `torch`, a conflicting pair, a package with a
//! dependency…) the way the real indexes serve them: PEP 691 JSON with upload times, as PyPI
//! does (so `exclude_newer` has dates to cut at), or PEP 503 HTML without dates, as torch's own
//! wheel index does.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A wheel to build: `name==version`, its `Requires-Dist` lines, and when it was "uploaded".
#[derive(Debug, Clone)]
pub struct Wheel {
    pub name: &'static str,
    pub version: &'static str,
    pub requires: Vec<&'static str>,
    pub uploaded: &'static str,
    /// Bytes of filler module text (stored, not compressed), for wheels of a realistic size.
    pub padding: usize,
}

/// `name==version` requiring `requires`, uploaded on 2025-01-01.
pub fn wheel(name: &'static str, version: &'static str, requires: &[&'static str]) -> Wheel {
    Wheel {
        name,
        version,
        requires: requires.to_vec(),
        uploaded: "2025-01-01T00:00:00Z",
        padding: 0,
    }
}

/// Builds wheels with the host's Python standard library (zipfile): a module, METADATA, WHEEL
/// and RECORD, with fixed timestamps so the same wheel has the same bytes (and hash).
const BUILD_WHEELS: &str = r##"
import base64, hashlib, json, os, sys, zipfile
out = sys.argv[1]
for w in json.load(sys.stdin):
    name, version = w["name"], w["version"]
    dist = name.replace("-", "_")
    meta = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    meta += "".join("Requires-Dist: %s\n" % r for r in w["requires"])
    files = {
        "%s/__init__.py" % dist: "__version__ = %r\n" % version,
        "%s/filler.py" % dist: "#" * w["padding"] + "\n",
        "%s-%s.dist-info/METADATA" % (dist, version): meta,
        "%s-%s.dist-info/WHEEL" % (dist, version): "Wheel-Version: 1.0\nGenerator: comfyprov-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
    record.append("%s-%s.dist-info/RECORD,," % (dist, version))
    files["%s-%s.dist-info/RECORD" % (dist, version)] = "\n".join(record) + "\n"
    folder = os.path.join(out, name.lower().replace("_", "-"))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "%s-%s-py3-none-any.whl" % (dist, version))
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0)), text)
    with open(path + ".uploaded", "w") as f:
        f.write(w["uploaded"])
"##;

/// Build `wheels` into `dir/<name>/`.
pub fn build_wheels(dir: &Path, wheels: &[Wheel]) {
    let spec: Vec<serde_json::Value> = wheels
        .iter()
        .map(|w| {
            serde_json::json!({
                "name": w.name, "version": w.version, "requires": w.requires,
                "uploaded": w.uploaded, "padding": w.padding,
            })
        })
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", BUILD_WHEELS])
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs (the tests build their wheels with it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&spec).unwrap().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "building wheels failed");
}

/// An index served from a folder of wheels (`<name>/<file>.whl`), on 127.0.0.1; stopped on drop.
pub struct Index {
    pub port: u16,
    _tmp: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    /// Every request path, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Milliseconds each file download waits before its first byte (a slow index).
    pub delay_ms: Arc<AtomicU64>,
}

impl Index {
    /// PyPI-like: JSON pages with upload times.
    pub fn dated(wheels: &[Wheel]) -> Index {
        Index::start(wheels, true)
    }

    /// torch's-index-like: HTML pages without dates.
    pub fn undated(wheels: &[Wheel]) -> Index {
        Index::start(wheels, false)
    }

    fn start(wheels: &[Wheel], dated: bool) -> Index {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        build_wheels(&dir, wheels);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (s, r, d, w) = (
            stop.clone(),
            requests.clone(),
            dir.clone(),
            delay_ms.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (r, d, w) = (r.clone(), d.clone(), w.clone());
                        std::thread::spawn(move || {
                            serve(stream, &d, port, dated, &r, w.load(Ordering::Relaxed));
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Index {
            port,
            _tmp: tmp,
            stop,
            requests,
            delay_ms,
        }
    }

    /// The index URL (`--index-url`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut stream: TcpStream,
    dir: &Path,
    port: u16,
    dated: bool,
    log: &Mutex<Vec<String>>,
    delay_ms: u64,
) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    // Drain the headers.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    if let Ok(mut l) = log.lock() {
        l.push(path.clone());
    }
    if path.starts_with("/files/") && delay_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    }
    let (status, kind, body) = respond(&path, dir, port, dated);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

fn respond(
    path: &str,
    dir: &Path,
    port: u16,
    dated: bool,
) -> (&'static str, &'static str, Vec<u8>) {
    let not_found = ("404 Not Found", "text/plain", b"not found".to_vec());
    if let Some(rest) = path.strip_prefix("/files/") {
        if rest.contains("..") {
            return not_found;
        }
        return match std::fs::read(dir.join(rest)) {
            Ok(b) => ("200 OK", "application/octet-stream", b),
            Err(_) => not_found,
        };
    }
    let Some(name) = path
        .strip_prefix("/simple/")
        .map(|n| n.trim_end_matches('/'))
        .filter(|n| !n.is_empty() && !n.contains(".."))
    else {
        return not_found;
    };
    let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
        return not_found;
    };
    let mut files: Vec<(String, String, String)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.ends_with(".whl").then(|| {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                let uploaded = std::fs::read_to_string(e.path().with_extension("whl.uploaded"))
                    .unwrap_or_default();
                (file, comfyprov::digest::sha256_hex(&bytes), uploaded)
            })
        })
        .collect();
    files.sort();
    let base = format!("http://127.0.0.1:{port}/files/{name}");
    if dated {
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(f, sha, up)| {
                serde_json::json!({
                    "filename": f, "url": format!("{base}/{f}"),
                    "hashes": {"sha256": sha}, "upload-time": up,
                })
            })
            .collect();
        let doc = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": files});
        (
            "200 OK",
            "application/vnd.pypi.simple.v1+json",
            doc.to_string().into_bytes(),
        )
    } else {
        let links: String = files
            .iter()
            .map(|(f, sha, _)| format!("<a href=\"{base}/{f}#sha256={sha}\">{f}</a>\n"))
            .collect();
        (
            "200 OK",
            "text/html",
            format!("<html><body>\n{links}</body></html>\n").into_bytes(),
        )
    }
}
