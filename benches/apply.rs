//! Benchmark: `comfyprov apply` as a whole process.
//!
//! - fresh apply of N = 10 and N = 100 nodes, from `file://` and from a real `git daemon` on
//!   127.0.0.1 (ready-hash PASSWORD and compose file included);
//! - no-op apply at N = 100 (everything converged);
//! - in the same run, for scale: a sequential `git clone` + `git checkout` shell loop doing the
//!   same clones, and an Ansible playbook (ansible-core from PyPI; modules `git`, `copy`,
//!   `template`) doing the same work. Ansible is installed into `target/bench-venv` on first use;
//!   without PyPI it is reported as skipped.
//!
//! Run: `cargo bench --bench apply`. `BENCH_RUNS` sets the no-op runs (default 40);
//! `BENCH_ANSIBLE=0` skips Ansible.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;
use support::{GitDaemon, allow_any_sha1, git};

const FILES: usize = 40;

/// One source repository with a little history (so a depth-1 fetch has less to carry than a
/// full one): returns the pinned commit.
fn source(path: &Path) -> String {
    std::fs::create_dir_all(path.join("web/js")).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
    for commit in 0..5 {
        for i in 0..FILES {
            let dir = if i % 4 == 0 { "web/js" } else { "." };
            std::fs::write(
                path.join(dir).join(format!("module_{i}.py")),
                format!("VERSION = {commit}\n{}", "x = 1\n".repeat(50 + i)),
            )
            .unwrap();
        }
        git(path, &["add", "-A"]);
        git(path, &["commit", "-q", "-m", &format!("commit {commit}")]);
    }
    allow_any_sha1(path);
    git(path, &["rev-parse", "HEAD"])
}

/// A deployment root: manifest for `n` nodes from `url`, a ready bcrypt hash, an empty ComfyUI.
fn deployment(root: &Path, n: usize, url: &str, pin: &str) -> Vec<(String, String)> {
    std::fs::create_dir_all(root.join("ws/ComfyUI")).unwrap();
    let hash = bcrypt::hash("benchmark-password-not-secret", 12).unwrap();
    std::fs::write(root.join("hash"), &hash).unwrap();
    let mut manifest = String::from(
        "[project]\nname = \"bench\"\n[workspace]\npath = \"ws\"\n[container]\nimage = \"img\"\n\
         [gpu]\nmode = \"nvidia\"\ndevices = [\"0\"]\n[auth]\nmode = \"login\"\nhash_file = \"hash\"\n",
    );
    let mut nodes = Vec::new();
    for i in 0..n {
        let name = if i == 0 {
            "ComfyUI-Login".to_owned()
        } else {
            format!("node-{i:03}")
        };
        manifest.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\ngit = \"{url}\"\nrev = \"{pin}\"\n"
        ));
        nodes.push((name, url.to_owned()));
    }
    std::fs::write(root.join("comfy.toml"), manifest).unwrap();
    nodes
}

/// Remove what apply creates, so the next run is a fresh apply.
fn reset(root: &Path) {
    for p in [
        "ws/ComfyUI/custom_nodes",
        "ws/ComfyUI/login",
        "ws/.comfyprov",
    ] {
        let _ = std::fs::remove_dir_all(root.join(p));
    }
    let _ = std::fs::remove_file(root.join("docker-compose-with-auth.yml"));
}

/// Wall time of a command; panics if it fails.
fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}): {}",
        out.status.code().or(out.status.signal()),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64() * 1e3
}

fn p90(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[(xs.len() * 9) / 10].as_secs_f64() * 1e3
}

fn apply(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_comfyprov"));
    // The workspace: no image exists for the manifest's container here.
    c.args(["apply", "-y", "--workspace-only"])
        .current_dir(root);
    c
}

/// Fresh apply, `runs` times: median ms.
fn fresh_apply(root: &Path, runs: usize) -> f64 {
    let times = (0..runs)
        .map(|_| {
            reset(root);
            time(&mut apply(root))
        })
        .collect();
    median(times)
}

/// `git clone` + `git checkout` of every node, one after the other: median ms.
fn git_loop(root: &Path, nodes: &[(String, String)], pin: &str, runs: usize) -> f64 {
    let script: String = nodes
        .iter()
        .map(|(name, url)| {
            format!("git clone -q {url} loop/{name} && git -C loop/{name} checkout -q {pin} && ")
        })
        .collect::<String>()
        + "true";
    let times = (0..runs)
        .map(|_| {
            let _ = std::fs::remove_dir_all(root.join("loop"));
            time(
                Command::new("sh")
                    .args(["-c", &script])
                    .current_dir(root)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null"),
            )
        })
        .collect();
    median(times)
}

/// `ansible-playbook`, installed into `target/bench-venv` on first use.
fn ansible() -> Option<PathBuf> {
    if std::env::var("BENCH_ANSIBLE").as_deref() == Ok("0") {
        return None;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let bin = venv.join("bin/ansible-playbook");
    if bin.exists() {
        return Some(bin);
    }
    eprintln!("installing ansible-core into {} ...", venv.display());
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "ansible-core"])
            .status()
            .is_ok_and(|s| s.success());
    (ok && bin.exists()).then_some(bin)
}

/// The same work as apply, as an Ansible playbook: clone every node at its pin (`git`), write
/// PASSWORD from the ready hash (`copy`), render the compose file (`template`).
fn ansible_run(bin: &Path, root: &Path, nodes: &[(String, String)], pin: &str) -> f64 {
    let rendered = Command::new(env!("CARGO_BIN_EXE_comfyprov"))
        .arg("render")
        .current_dir(root)
        .output()
        .unwrap();
    std::fs::write(root.join("compose.j2"), &rendered.stdout).unwrap();
    let vars = serde_json::json!({
        "root": root,
        "pin": pin,
        "nodes": nodes.iter().map(|(n, u)| serde_json::json!({"name": n, "url": u})).collect::<Vec<_>>(),
    });
    std::fs::write(root.join("vars.json"), vars.to_string()).unwrap();
    std::fs::write(
        root.join("playbook.yml"),
        r#"- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: custom nodes at their pins
      ansible.builtin.git:
        repo: "{{ item.url }}"
        dest: "{{ root }}/ws/ComfyUI/custom_nodes/{{ item.name }}"
        version: "{{ pin }}"
      loop: "{{ nodes }}"
    - name: login folder
      ansible.builtin.file:
        path: "{{ root }}/ws/ComfyUI/login"
        state: directory
    - name: PASSWORD from the ready hash
      ansible.builtin.copy:
        dest: "{{ root }}/ws/ComfyUI/login/PASSWORD"
        content: "{{ lookup('file', root + '/hash') }}\nadmin"
        mode: "0600"
    - name: compose file
      ansible.builtin.template:
        src: "{{ root }}/compose.j2"
        dest: "{{ root }}/docker-compose-with-auth.yml"
"#,
    )
    .unwrap();
    reset(root);
    let t = time(
        Command::new(bin)
            .args(["-i", "localhost,", "-e", "@vars.json", "playbook.yml"])
            .current_dir(root)
            .env("ANSIBLE_PYTHON_INTERPRETER", bin.with_file_name("python"))
            .env("ANSIBLE_LOCALHOST_WARNING", "False"),
    );
    t.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let pin = source(&base.join("git/node"));
    let daemon = GitDaemon::start(&base.join("git"));
    let file_url = format!("file://{}", base.join("git/node").display());
    let git_url = daemon.url("node");

    println!(
        "`comfyprov apply`, whole process, 2-core machine; nodes of {FILES} files, 5 commits\n"
    );
    println!(
        "{:>5}  {:<10}  {:>16}  {:>16}  {:>8}",
        "N", "source", "fresh apply (ms)", "git loop (ms)", "ratio"
    );
    let mut file100 = None;
    for n in [10usize, 100] {
        for (label, url) in [("file://", &file_url), ("git daemon", &git_url)] {
            let root = base.join(format!(
                "{n}-{}",
                label.trim_end_matches("://").replace(' ', "-")
            ));
            let nodes = deployment(&root, n, url, &pin);
            let fresh_runs = if n == 10 { 9 } else { 5 };
            let fresh = fresh_apply(&root, fresh_runs);
            let looped = git_loop(&root, &nodes, &pin, 3);
            println!(
                "{n:>5}  {label:<10}  {fresh:>16.0}  {looped:>16.0}  {:>7.2}×",
                fresh / looped
            );
            if n == 100 && label == "file://" {
                file100 = Some((root, nodes, fresh, looped));
            }
        }
    }
    let Some((root, nodes, fresh, looped)) = file100 else {
        return;
    };

    // No-op: converge once, then apply again and again.
    reset(&root);
    time(&mut apply(&root));
    let noop: Vec<Duration> = (0..runs).map(|_| time(&mut apply(&root))).collect();
    let (noop_median, noop_p90) = (median(noop.clone()), p90(noop));
    println!(
        "\nno-op apply, N = 100, {runs} runs: median {noop_median:.1} ms, p90 {noop_p90:.1} ms (target: median ≤ 25 ms)"
    );
    println!(
        "fresh apply, N = 100, file://: {fresh:.0} ms = {:.2}× the sequential git loop's {looped:.0} ms (target ≤ 0.8×)",
        fresh / looped
    );

    match ansible() {
        Some(bin) => {
            let a = ansible_run(&bin, &root, &nodes, &pin);
            println!(
                "Ansible playbook (git, copy, template), N = 100, file://: {a:.0} ms; comfyprov is {:.1}× faster (target ≥ 15×)",
                a / fresh
            );
        }
        None => {
            println!("Ansible: skipped (BENCH_ANSIBLE=0, or ansible-core could not be installed)")
        }
    }
}
