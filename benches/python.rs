//! Benchmark: a fresh environment of a 50-package set from a package index on 127.0.0.1, built
//! the way comfyprov builds it (uv at the pinned version: `uv venv`, then `uv pip sync` of the
//! pinned, hashed set) against the way it was done before (`python3 -m venv`, then
//! `pip install -r` of the same set), in the same run, on the same index, both with empty
//! caches. Prints each one's median and the ratio.
//!
//! The packages are pure-Python stand-ins built by the benchmark (50 wheels of ~100 KB each, a
//! third of them with a dependency on another), served as PyPI serves them (PEP 691 JSON).
//!
//! Run: `cargo bench --bench python` (needs uv: `COMFYPROV_UV` or `uv` on PATH; `BENCH_RUNS`,
//! default 5).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/it/pyindex.rs"]
mod pyindex;

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn median(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64()
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let uv = std::env::var("COMFYPROV_UV").unwrap_or_else(|_| "uv".to_owned());
    let names: Vec<&'static str> = (0..50)
        .map(|i| &*Box::leak(format!("bench-pkg-{i:02}").into_boxed_str()))
        .collect();
    let wheels: Vec<pyindex::Wheel> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let requires: &'static [&'static str] = if i % 3 == 1 {
                Box::leak(vec![names[i - 1]].into_boxed_slice())
            } else {
                &[]
            };
            pyindex::Wheel {
                padding: 100_000,
                ..pyindex::wheel(n, "1.0", requires)
            }
        })
        .collect();
    let index = pyindex::Index::dated(&wheels);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // The pinned, hashed set as comfy.lock holds it: resolved once with uv.
    let input = dir.join("requirements.in");
    std::fs::write(&input, names.join("\n") + "\n").unwrap();
    let out = Command::new(&uv)
        .args([
            "pip",
            "compile",
            "--no-config",
            "--quiet",
            "--generate-hashes",
        ])
        .args(["--no-header", "--no-annotate", "--index-url", &index.url()])
        .arg(&input)
        .output()
        .expect("uv runs (set COMFYPROV_UV)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let locked = dir.join("locked.txt");
    std::fs::write(&locked, &out.stdout).unwrap();

    let fresh = |name: &str| {
        let p = dir.join(name);
        let _ = std::fs::remove_dir_all(&p);
        p
    };
    let (mut uv_times, mut pip_times) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // uv, as comfyprov's sync runs it (here on the host, without the one-off container).
        let env = fresh("uv-env");
        let cache = fresh("uv-cache");
        uv_times.push(
            run(Command::new(&uv)
                .args(["venv", "--no-config", "-q"])
                .arg(&env))
                + run(Command::new(&uv)
                    .args(["pip", "sync", "--no-config", "-q", "--require-hashes"])
                    .arg("--python")
                    .arg(env.join("bin/python"))
                    .args(["--index-url", &index.url()])
                    .arg(&locked)
                    .env("UV_CACHE_DIR", &cache)),
        );
        // pip, as the README asked before: a venv, then `pip install -r`.
        let env = fresh("pip-env");
        pip_times.push(
            run(Command::new("python3").args(["-m", "venv"]).arg(&env))
                + run(Command::new(env.join("bin/pip"))
                    .args([
                        "install",
                        "-q",
                        "--no-cache-dir",
                        "--disable-pip-version-check",
                    ])
                    .args(["--index-url", &index.url(), "-r"])
                    .arg(&locked)),
        );
    }
    check_same(&dir.join("uv-env"), &dir.join("pip-env"), &names);
    let (u, p) = (median(uv_times), median(pip_times));
    println!(
        "fresh environment of 50 packages (~100 KB wheels) from an index on 127.0.0.1, {runs} runs each"
    );
    println!("  uv venv + uv pip sync (comfyprov):   median {:>7.2} s", u);
    println!("  python3 -m venv + pip install -r:    median {:>7.2} s", p);
    println!("  pip / uv = {:.1}x", p / u);
}

/// Both environments hold every package.
fn check_same(a: &Path, b: &Path, names: &[&str]) {
    for env in [a, b] {
        let site = std::fs::read_dir(env.join("lib"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path()
            .join("site-packages");
        for n in names {
            let dist = format!("{}-1.0.dist-info", n.replace('-', "_"));
            assert!(site.join(&dist).is_dir(), "{} lacks {dist}", env.display());
        }
    }
}
