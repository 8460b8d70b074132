//! Model downloads and hashing, each against the tool people would use instead, in the same
//! run: a 1 GB download from a server on 127.0.0.1 by `comfyprov apply` (download, SHA-256 while
//! streaming, into the cache, linked into models/) against `curl -o` of the same file (goal:
//! ≥ 0.9 of curl's throughput); hashing a 1 GB file against `sha256sum` (goal ≥ 1.0).
//! `BENCH_MB` changes the size (default 1000), `BENCH_RUNS` the runs (default 3); `BENCH_SERVE=1`
//! only serves the file for 90 s (its URL is printed), to compare other clients by hand.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// Serve `file` on 127.0.0.1 (any path), with Content-Length; one thread per connection.
fn serve(file: std::path::PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let file = file.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let f = std::fs::File::open(&file).unwrap();
                let len = f.metadata().unwrap().len();
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: \"b\"\r\nConnection: close\r\n\r\n"
                );
                // sendfile(2) in a loop: the server costs as little CPU as a server can, so
                // the 2 cores go to the clients being compared.
                use std::os::fd::AsRawFd;
                let mut off: libc::off_t = 0;
                while (off as u64) < len {
                    // SAFETY: both descriptors are open for the duration of the call.
                    let n = unsafe {
                        libc::sendfile(
                            s.as_raw_fd(),
                            f.as_raw_fd(),
                            &mut off,
                            (len - off as u64) as usize,
                        )
                    };
                    if n <= 0 {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(c: &mut Command) -> Duration {
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn main() {
    let mb: u64 = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let bytes = mb * 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.safetensors");
    {
        // Not sparse and not compressible: pseudo-random bytes.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            for c in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
            }
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n]).unwrap();
            left -= n as u64;
        }
        f.into_inner().unwrap().sync_all().unwrap();
    }
    let port = serve(src.clone());
    let url = format!("http://127.0.0.1:{port}/model.safetensors");
    let bin = env!("CARGO_BIN_EXE_comfyprov");
    if std::env::var_os("BENCH_SERVE").is_some() {
        println!("serving {url}");
        std::thread::sleep(Duration::from_secs(90));
    }
    println!("{mb} MB, {runs} runs each, medians (2-core machine)\n");

    let mut ours = Vec::new();
    let mut curl = Vec::new();
    let mut curl_sync = Vec::new();
    // Each measurement starts with nothing dirty in the page cache (`sync`, not timed).
    let settle = || {
        let _ = Command::new("sync").status();
    };
    for i in 0..runs {
        let out = dir.path().join("curl.out");
        settle();
        curl.push(time(
            Command::new("curl")
                .args(["-s", "-f", "-o"])
                .arg(&out)
                .arg(&url),
        ));
        let _ = std::fs::remove_file(&out);
        // curl, then the file made durable the way comfyprov makes a cache entry (fsync).
        settle();
        let t = Instant::now();
        let st = Command::new("curl")
            .args(["-s", "-f", "-o"])
            .arg(&out)
            .arg(&url)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::File::open(&out).unwrap().sync_all().unwrap();
        curl_sync.push(t.elapsed());
        let _ = std::fs::remove_file(&out);
        // comfyprov: an empty project and an empty cache each time.
        let p = dir.path().join(format!("p{i}"));
        std::fs::create_dir_all(p.join("ws/ComfyUI")).unwrap();
        std::fs::write(
            p.join("comfy.toml"),
            format!(
                "[project]\nname = \"b\"\n[workspace]\npath = \"ws\"\n[auth]\nmode = \"none\"\n[[models]]\nurl = \"{url}\"\npath = \"checkpoints/m.safetensors\"\n"
            ),
        )
        .unwrap();
        settle();
        ours.push(time(
            Command::new(bin)
                .args(["apply", "-y", "-q"])
                .current_dir(&p)
                .env("COMFYPROV_MODEL_CACHE", p.join("cache")),
        ));
        std::fs::remove_dir_all(&p).unwrap();
    }
    let (o, c, cs) = (median(ours), median(curl), median(curl_sync));
    let rate = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!(
        "download  comfyprov apply {:>8.0} MB/s ({:.2} s: fetched, hashed, fsynced, linked into models/)",
        rate(o),
        o.as_secs_f64()
    );
    println!(
        "          curl -o         {:>8.0} MB/s ({:.2} s, left in the page cache)",
        rate(c),
        c.as_secs_f64()
    );
    println!(
        "          curl -o + fsync {:>8.0} MB/s ({:.2} s, on disk, as comfyprov leaves it)",
        rate(cs),
        cs.as_secs_f64()
    );
    println!(
        "          ratio against curl -o: {:.2} (goal >= 0.90: {}); against curl -o + fsync: {:.2}\n",
        rate(o) / rate(c),
        if rate(o) / rate(c) >= 0.9 {
            "met"
        } else {
            "MISSED"
        },
        rate(o) / rate(cs)
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let h = comfyprov::observe::models::hash_file(&src).unwrap();
        ours.push(t.elapsed());
        let t = Instant::now();
        let out = Command::new("sha256sum").arg(&src).output().unwrap();
        theirs.push(t.elapsed());
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with(&h),
            "the same hash"
        );
    }
    let (o, t) = (median(ours), median(theirs));
    println!("hashing   comfyprov       {:>8.0} MB/s", rate(o));
    println!("          sha256sum       {:>8.0} MB/s", rate(t));
    println!(
        "          ratio {:.2} (goal >= 1.0: {})",
        rate(o) / rate(t),
        if rate(o) >= rate(t) { "met" } else { "MISSED" }
    );
}
