//! Benchmark: a no-op `comfyprov plan` as a whole process, on workspaces of N = 10 and N = 100
//! custom nodes, all at their pins, with a valid cost-12 `login/PASSWORD` and the compose file
//! rendered. Prints median, p90 and peak RSS, and the same work done by a hand-written shell
//! loop (`git rev-parse HEAD` + `git status --porcelain` per node) for scale.
//!
//! Run: `cargo bench --bench plan` (set `BENCH_RUNS` to change the number of runs, default 40).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The same isolated git runner as the tests (no user or system config).
#[path = "../tests/support/mod.rs"]
mod support;
use support::git;

const PASSWORD: &str = "benchmark-password-not-secret";

/// A workspace with `n` nodes cloned from one source repository of `files` files.
fn setup(root: &Path, n: usize, files: usize) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("web/js")).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join(".gitignore"), "__pycache__/\n*.pyc\n").unwrap();
    for i in 0..files {
        let dir = if i % 4 == 0 { "web/js" } else { "." };
        std::fs::write(
            src.join(dir).join(format!("module_{i}.py")),
            "x = 1\n".repeat(50),
        )
        .unwrap();
    }
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "pin"]);
    let pin = git(&src, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", src.display());

    let nodes = root.join("ws/ComfyUI/custom_nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    let mut manifest = String::from(
        "[project]\nname = \"bench\"\n[workspace]\npath = \"ws\"\n[container]\nimage = \"img\"\nlisten = \"0.0.0.0\"\n\
         [gpu]\nmode = \"nvidia\"\ndevices = [\"0\"]\n[auth]\nmode = \"login\"\npassword_file = \"pw\"\n",
    );
    for i in 0..n {
        let name = if i == 0 {
            "ComfyUI-Login".to_owned()
        } else {
            format!("node-{i:03}")
        };
        git(&nodes, &["clone", "-q", &url, &name]);
        git(&nodes.join(&name), &["checkout", "-q", &pin]);
        manifest.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\ngit = \"{url}\"\nrev = \"{pin}\"\n"
        ));
    }
    std::fs::write(root.join("comfy.toml"), manifest).unwrap();
    std::fs::write(root.join("pw"), PASSWORD).unwrap();
    std::fs::set_permissions(root.join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let hash = bcrypt::hash(PASSWORD, 12).unwrap();
    std::fs::create_dir_all(root.join("ws/ComfyUI/login")).unwrap();
    let pwf = root.join("ws/ComfyUI/login/PASSWORD");
    std::fs::write(&pwf, format!("{hash}\nadmin")).unwrap();
    std::fs::set_permissions(&pwf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let compose = Command::new(env!("CARGO_BIN_EXE_comfyprov"))
        .arg("render")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(compose.status.success());
    std::fs::write(root.join("docker-compose-with-auth.yml"), compose.stdout).unwrap();
    root.to_owned()
}

/// Run a command to completion; wall time and peak RSS in KiB (from wait4's rusage).
// The child is reaped by wait4 below, which std's `Child::wait` cannot do with rusage.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> (Duration, i64, i32) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain wait4 on our own child; rusage is a zeroed out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let elapsed = start.elapsed();
    let code = std::process::ExitStatus::from_raw(status)
        .code()
        .unwrap_or(-1);
    (elapsed, usage.ru_maxrss, code)
}

fn stats(mut xs: Vec<Duration>) -> (f64, f64, f64) {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(xs[0]), ms(xs[xs.len() / 2]), ms(xs[(xs.len() * 9) / 10]))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful either way.
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let bin = env!("CARGO_BIN_EXE_comfyprov");
    println!("no-op `comfyprov plan`, whole process, {runs} runs each (2-core machine)\n");
    println!(
        "{:>5}  {:>11}  {:>9}  {:>9}  {:>9}  {:>13}  {:>9}",
        "N", "cold (ms)", "min (ms)", "median", "p90", "peak RSS (MB)", "shell loop"
    );
    for (n, target_ms) in [(10usize, 8.0), (100, 20.0)] {
        let dir = tempfile::tempdir().unwrap();
        let root = setup(dir.path(), n, 40);
        let plan = || {
            let mut c = Command::new(bin);
            // The container is observed (the daemon is asked), but no container exists for
            // this manifest, so its create step is left out of the exit code.
            c.args(["plan", "--detailed-exitcode", "--workspace-only"])
                .current_dir(&root);
            c
        };
        // First run: no verdict cached yet, so it pays one bcrypt verify at cost 12.
        let (cold, _, code) = measure(&mut plan());
        assert_eq!(
            code, 0,
            "the benchmark workspace must need no changes (plan exited {code})"
        );
        let mut times = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let (t, r, code) = measure(&mut plan());
            assert_eq!(code, 0);
            times.push(t);
            rss = rss.max(r);
        }
        let (min, median, p90) = stats(times);

        let script = "for d in ws/ComfyUI/custom_nodes/*/; do git -C \"$d\" rev-parse HEAD; git -C \"$d\" status --porcelain; done";
        let shell: Vec<Duration> = (0..5.min(runs))
            .map(|_| measure(Command::new("sh").args(["-c", script]).current_dir(&root)).0)
            .collect();
        let (_, shell_median, _) = stats(shell);
        println!(
            "{n:>5}  {:>11.1}  {min:>9.2}  {median:>9.2}  {p90:>9.2}  {:>13.1}  {shell_median:>7.1}ms",
            cold.as_secs_f64() * 1e3,
            rss as f64 / 1024.0,
        );
        println!(
            "       target: median <= {target_ms} ms ({}), peak RSS <= 30 MB ({}); shell loop / comfyprov = {:.1}x",
            if median <= target_ms { "met" } else { "MISSED" },
            if rss as f64 / 1024.0 <= 30.0 {
                "met"
            } else {
                "MISSED"
            },
            shell_median / median
        );
    }
}
