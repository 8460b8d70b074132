//! Benchmark: a no-op `comfyprov plan` as a whole process, on workspaces of N = 10 and N = 100
//! custom nodes, all at their pins, with a valid cost-12 `login/PASSWORD` and the compose file
//! rendered. Prints median, p90 and peak RSS, and the same work done by a hand-written shell
//! loop (`git rev-parse HEAD` + `git status --porcelain` per node) for scale.
//!
//! Rows: N = 10 and N = 100 with `--workspace-only` (the issue-2 figures: the daemon is still
//! asked about the container, but none exists), then N = 100 with a running container that
//! comfyprov created from the manifest (a FROM-scratch image around a static sleeper), so the
//! whole plan (container included) is empty: the issue-4 figure. Between them, N = 100 with
//! `[python]`: every node with `requirements = true`, a current `comfy.lock` and a
//! 200-package environment read from the host (the Python-environment issue's figure).
//!
//! Run: `cargo bench --bench plan` (set `BENCH_RUNS` to change the number of runs, default 40;
//! `BENCH_DUMP=1` prints every run's time, in ms, to stderr).
//!
//! Before/after: `BENCH_BASELINE=/path/to/an/older/comfyprov` also times that binary on the same
//! workspaces, its runs interleaved with this build's, and prints its row and the ratio
//! (baseline median / this median). The README says how to build one from an older commit. An
//! older build whose compose rendering differs plans one render step there (exit 2): it still
//! observes and compares the same workspace.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The same isolated git runner as the tests (no user or system config).
#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;
use support::git;

const PASSWORD: &str = "benchmark-password-not-secret";
/// The container's "python": sleeps, like a server that stays up.
const SLEEPER: &str =
    "fn main() { loop { std::thread::sleep(std::time::Duration::from_secs(3600)); } }";

/// A workspace with `n` nodes cloned from one source repository of `files` files; with
/// `python`, `[python]` too, every node with `requirements = true`, a current `comfy.lock` of
/// 200 packages and an environment that holds them.
fn setup(
    root: &Path,
    n: usize,
    files: usize,
    container: Option<(&str, &str)>,
    python: bool,
    models: usize,
) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("web/js")).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join(".gitignore"), "__pycache__/\n*.pyc\n").unwrap();
    std::fs::write(src.join("requirements.txt"), "pkg-001>=1\npkg-002\n").unwrap();
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
    // With a real container: its image and name, and no GPU (this daemon has no NVIDIA runtime).
    let (project, image, gpu) = match container {
        Some((image, project)) => (project, image, "mode = \"none\""),
        None => ("bench", "img", "mode = \"nvidia\"\ndevices = [\"0\"]"),
    };
    // A free port: 8188 may be taken by a real ComfyUI on this host.
    let port = support::free_port();
    let mut manifest = format!(
        "[project]\nname = \"{project}\"\n[workspace]\npath = \"ws\"\n[container]\nimage = \"{image}\"\nlisten = \"0.0.0.0\"\nport = {port}\n\
         [gpu]\n{gpu}\n[auth]\nmode = \"login\"\npassword_file = \"pw\"\n",
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
        if python {
            manifest.push_str("requirements = true\n");
        }
    }
    if python {
        manifest.push_str("[python]\nversion = \"3.11\"\ntorch = { version = \"2.0.0\" }\n");
    }
    // Model files of 1 GB each (sparse), in place, their hashes in comfy.lock: the first plan
    // hashes them once; the no-op plans after it must not read them again.
    let mut locked = Vec::new();
    for i in 0..models {
        let dir = root.join("ws/ComfyUI/models/checkpoints");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("model-{i:02}.safetensors"));
        std::fs::File::create(&f).unwrap().set_len(1 << 30).unwrap();
        let url = format!("https://models.invalid/model-{i:02}.safetensors");
        manifest.push_str(&format!(
            "[[models]]\nurl = \"{url}\"\npath = \"checkpoints/model-{i:02}.safetensors\"\n"
        ));
        let sha256 = match locked.first() {
            Some(comfyprov::lock::LockedModel { sha256, .. }) => sha256.clone(),
            None => comfyprov::observe::models::hash_file(&f).unwrap(),
        };
        locked.push(comfyprov::lock::LockedModel {
            path: format!("checkpoints/model-{i:02}.safetensors"),
            url,
            sha256,
            size: 1 << 30,
        });
    }
    if models > 0 {
        std::fs::write(
            root.join("comfy.lock"),
            comfyprov::lock::join_models("", &locked),
        )
        .unwrap();
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
    if python {
        python_env(root, image, &pin);
    }
    if container.is_some() {
        // The container runs the workspace's interpreter, as in production: here a static
        // sleeper. (Without it the container crash-loops, and a restarting container keeps
        // the daemon busy: its answers then take 100-250 ms.)
        let python = root.join("ws/ComfyUI/venv/bin/python3");
        std::fs::create_dir_all(python.parent().unwrap()).unwrap();
        std::fs::write(&python, support::static_binary(SLEEPER)).unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        // comfyprov creates the container, so its spec label matches and nothing is left to do.
        let out = Command::new(env!("CARGO_BIN_EXE_comfyprov"))
            .args(["apply", "-y", "--no-verify"])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    root.to_owned()
}

/// `comfy.lock` resolved from the workspace's inputs as they are, with 200 packages, and the
/// environment `ws/ComfyUI/venv` holding exactly those, built (its marker says) in `image`.
fn python_env(root: &Path, image: &str, pin: &str) {
    use comfyprov::lock::{Lock, LockedGit, Package};
    std::fs::write(
        root.join("ws/ComfyUI/requirements.txt"),
        "torch\nnumpy>=2\n",
    )
    .unwrap();
    let desired = comfyprov::ops::load(&root.join("comfy.toml"))
        .unwrap()
        .desired;
    let observed = comfyprov::observe::python::observe(&desired).unwrap();
    let packages: Vec<Package> = (0..200)
        .map(|i| Package {
            name: format!("pkg-{i:03}"),
            version: "1.0".to_owned(),
            hashes: vec![format!("sha256:{:064x}", i)],
        })
        .collect();
    let lock = Lock::new(
        observed.inputs,
        comfyprov::plan::pin_targets(&desired)
            .into_iter()
            .map(|(t, rev)| LockedGit {
                name: t.name().to_owned(),
                rev,
                commit: pin.to_owned(),
            })
            .collect(),
        packages,
    );
    std::fs::write(root.join("comfy.lock"), lock.render()).unwrap();
    let venv = root.join("ws/ComfyUI/venv");
    let site = venv.join("lib/python3.11/site-packages");
    for i in 0..200 {
        let dist = site.join(format!("pkg_{i:03}-1.0.dist-info"));
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(
            dist.join("METADATA"),
            format!("Name: pkg-{i:03}\nVersion: 1.0\n"),
        )
        .unwrap();
        std::fs::create_dir_all(site.join(format!("pkg_{i:03}"))).unwrap();
    }
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/bin\nversion_info = 3.11.2\n",
    )
    .unwrap();
    std::fs::write(
        venv.join(comfyprov::observed::ENV_MARKER),
        serde_json::json!({ "image": image }).to_string(),
    )
    .unwrap();
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
    println!("no-op `comfyprov plan`, whole process, {runs} runs each (2-core machine)");
    println!(
        "N+py: with [python], every node's requirements.txt, a current comfy.lock and a 200-package environment"
    );
    println!("N+c: with a running container that comfyprov created (the plan is empty)");
    println!("N+m: with 20 declared 1 GB model files in place, their hashes in comfy.lock\n");
    println!(
        "{:>5}  {:>11}  {:>9}  {:>9}  {:>9}  {:>13}  {:>9}",
        "N", "cold (ms)", "min (ms)", "median", "p90", "peak RSS (MB)", "shell loop"
    );
    // The container row needs an image; none can be pulled here, so build one.
    let image = support::TestImage::build(SLEEPER);
    let project = support::unique("comfyprov-bench");
    let _container = support::TestContainer {
        name: project.clone(),
    };
    for (n, target_ms, with_container, python, models) in [
        (10usize, 8.0, false, false, 0),
        (100, 20.0, false, false, 0),
        (100, 20.0, false, true, 0),
        (100, 25.0, true, false, 0),
        (100, 25.0, false, false, 20),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let container = with_container.then_some((image.tag.as_str(), project.as_str()));
        let root = setup(dir.path(), n, 40, container, python, models);
        if std::env::var_os("BENCH_KEEP").is_some() {
            // Keep the workspaces for a closer look (profiling), and say where they are.
            eprintln!("kept: {}", root.display());
            std::mem::forget(dir);
        }
        let plan = || {
            let mut c = Command::new(bin);
            c.args(["plan", "--detailed-exitcode"]).current_dir(&root);
            if !with_container {
                // The container is observed (the daemon is asked), but no container exists
                // for this manifest, so its create step is left out of the exit code.
                c.arg("--workspace-only");
            }
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
        if std::env::var_os("BENCH_DUMP").is_some() {
            eprintln!(
                "{:?}",
                times.iter().map(|t| t.as_millis()).collect::<Vec<_>>()
            );
        }
        let (min, median, p90) = stats(times);
        // An older build may not read `[python]`: the python row compares with the row above.
        let baseline = std::env::var_os("BENCH_BASELINE")
            .filter(|_| !python && models == 0)
            .map(|b| {
                // Interleaved with a second series of this build, so both see the same machine.
                let mut theirs = Vec::new();
                let mut ours = Vec::new();
                let mut their_rss = 0;
                for _ in 0..runs {
                    let mut c = plan();
                    let mut b = Command::new(&b);
                    b.args(c.get_args()).current_dir(&root);
                    let (t, r, code) = measure(&mut b);
                    // An older build may render the compose file (its spec label) differently and
                    // plan one render step (exit 2): the same observation, one more line printed.
                    assert_ne!(code, 1, "the baseline must plan without an error");
                    theirs.push(t);
                    their_rss = their_rss.max(r);
                    ours.push(measure(&mut c).0);
                }
                (stats(theirs).1, stats(ours).1, their_rss)
            });

        let script = "for d in ws/ComfyUI/custom_nodes/*/; do git -C \"$d\" rev-parse HEAD; git -C \"$d\" status --porcelain; done";
        let shell: Vec<Duration> = (0..5.min(runs))
            .map(|_| measure(Command::new("sh").args(["-c", script]).current_dir(&root)).0)
            .collect();
        let (_, shell_median, _) = stats(shell);
        let label = match (with_container, python) {
            _ if models > 0 => format!("{n}+m"),
            (true, _) => format!("{n}+c"),
            (false, true) => format!("{n}+py"),
            (false, false) => n.to_string(),
        };
        println!(
            "{label:>5}  {:>11.1}  {min:>9.2}  {median:>9.2}  {p90:>9.2}  {:>13.1}  {shell_median:>7.1}ms",
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
        if let Some((theirs, ours, their_rss)) = baseline {
            println!(
                "       baseline (BENCH_BASELINE): median {theirs:.2} ms, peak RSS {:.1} MB; this build, interleaved: median {ours:.2} ms; baseline / this = {:.2}x",
                their_rss as f64 / 1024.0,
                theirs / ours
            );
        }
    }
}
