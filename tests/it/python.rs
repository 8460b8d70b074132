//! The Python environment with real uv: resolved on the host into `comfy.lock`, built in a
//! one-off container from the deployment's image, against a package index the tests serve on
//! 127.0.0.1 from wheels they build (see `pyindex.rs`). The image is Debian with Python
//! (`scripts/python-image.sh`, built once by `.ci/run`), plus the fake ComfyUI; ComfyUI's
//! `main.py` imports its requirements with the real interpreter, then runs the fake server.
//!
//! With `CI=true` a missing Docker engine, uv or image is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pyindex::{Index, Wheel, wheel};
use crate::support::{
    Project, both, docker, docker_available, fake_comfyui, free_port, git, unique,
};

/// ComfyUI's `main.py` here: import what ComfyUI's requirements.txt names (a missing package
/// stops the server, as it stops the real one), then run the fake server with this
/// interpreter's site-packages.
const MAIN_PY: &str = r#"import os, site, sys
import numpy, torch
print("numpy", numpy.__version__, "torch", torch.__version__, flush=True)
os.environ["FAKE_SITE_PACKAGES"] = site.getsitepackages()[0]
os.execv("/usr/local/bin/fake-comfyui", ["python3", "main.py"] + sys.argv[1:])
"#;

/// The base image with Python: `$COMFYPROV_TEST_PYTHON_IMAGE`, else the tag
/// `scripts/python-image.sh` builds (built here when missing).
fn base_image() -> String {
    let tag = std::env::var("COMFYPROV_TEST_PYTHON_IMAGE")
        .unwrap_or_else(|_| "comfyprov-test/python:bookworm".to_owned());
    let present = Command::new("docker")
        .args(["image", "inspect", &tag])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python-image.sh");
        let out = Command::new(&script).arg(&tag).output().unwrap();
        assert!(
            out.status.success(),
            "the Python test image {tag} is missing and {} failed:\n{}",
            script.display(),
            both(&out)
        );
    }
    tag
}

/// Whether uv (at comfyprov's version) is there for the binary to find. With `CI=true` it
/// must be: `.ci/run` installs it.
fn uv_available() -> bool {
    let found = Command::new(std::env::var("COMFYPROV_UV").unwrap_or_else(|_| "uv".to_owned()))
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(comfyprov::lock::UV_VERSION));
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "uv {} is required when CI=true (set COMFYPROV_UV or put it on PATH)",
            comfyprov::lock::UV_VERSION
        );
        eprintln!("skipping: no uv {}", comfyprov::lock::UV_VERSION);
    }
    found
}

/// The stand-in packages.
fn packages() -> Vec<Wheel> {
    vec![
        wheel("torch", "1.0.0", &[]),
        wheel("torch", "2.0.0", &[]),
        wheel("numpy", "1.26.4", &[]),
        wheel("numpy", "2.1.2", &[]),
        wheel("with-dep", "1.0", &["dep-a>=1"]),
        wheel("dep-a", "1.0", &[]),
        wheel("dep-a", "1.1", &[]),
        wheel("old-numpy-user", "1.0", &["numpy<2"]),
        wheel("wants-old-torch", "1.0", &["torch<2"]),
        wheel("requests-standin", "1.0", &[]),
        Wheel {
            uploaded: "2025-06-01T00:00:00Z",
            ..wheel("transformers-standin", "4.0", &["requests-standin"])
        },
        // Released after the day the deployment is resolved at; it stopped bringing in
        // `requests-standin`, as transformers 5 stopped bringing in requests.
        Wheel {
            uploaded: "2026-01-01T00:00:00Z",
            ..wheel("transformers-standin", "5.0", &[])
        },
    ]
}

/// A deployment with `[python]`: ComfyUI from a local repository, one node `Extra` with
/// `requirements = true`, the fake ComfyUI in a Debian image with Python, no auth, on the CPU.
struct PyDeploy {
    project: Project,
    name: String,
    image: String,
    index: Index,
    comfyui: PathBuf,
    extra: PathBuf,
    extra_rev: String,
    /// Lines added to `[python]`.
    python_extra: String,
    port: u16,
}

impl Drop for PyDeploy {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// An image from `base` with the fake ComfyUI at /usr/local/bin/fake-comfyui.
fn fake_image(base: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{}:latest", unique("comfyprov-test-py"));
    let mut bytes = fake_comfyui();
    bytes.extend_from_slice(tag.as_bytes());
    std::fs::write(dir.path().join("fake-comfyui"), bytes).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY --chmod=755 fake-comfyui /usr/local/bin/fake-comfyui\nLABEL comfyprov.test=1\n"
        ),
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    if !out.status.success() {
        // Without BuildKit `COPY --chmod` is refused: copy, then chmod in a RUN.
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {base}\nCOPY fake-comfyui /usr/local/bin/fake-comfyui\nRUN chmod 755 /usr/local/bin/fake-comfyui\nLABEL comfyprov.test=1\n"
            ),
        )
        .unwrap();
        docker(&["build", "-q", "-t", &tag, &dir.path().display().to_string()]);
    }
    tag
}

/// Commit `files` in `repo` (made on first use); the new commit.
fn commit(repo: &Path, files: &[(&str, &str)]) -> String {
    if !repo.join(".git").exists() {
        std::fs::create_dir_all(repo).unwrap();
        git(repo, &["init", "-q", "-b", "main"]);
    }
    for (path, text) in files {
        std::fs::write(repo.join(path), text).unwrap();
        git(repo, &["add", path]);
    }
    git(repo, &["commit", "-q", "-m", "change"]);
    git(repo, &["rev-parse", "HEAD"])
}

impl PyDeploy {
    fn new() -> PyDeploy {
        PyDeploy::with_comfyui_requirements("numpy>=2\ntorch\n")
    }

    fn with_comfyui_requirements(requirements: &str) -> PyDeploy {
        let project = Project::new();
        let root = project.root().to_owned();
        let comfyui = root.join("git/ComfyUI");
        commit(
            &comfyui,
            &[
                ("main.py", MAIN_PY),
                ("requirements.txt", requirements),
                ("comfyui_version.py", "__version__ = \"0.3.68\"\n"),
                (".gitignore", "/venv/\n"),
            ],
        );
        git(&comfyui, &["tag", "v0.3.68"]);
        let extra = root.join("git/Extra");
        let extra_rev = commit(
            &extra,
            &[
                ("__init__.py", "NODE_CLASS_MAPPINGS = {}\n"),
                ("requirements.txt", "with-dep\n"),
            ],
        );
        let d = PyDeploy {
            project,
            name: unique("cp-py"),
            image: fake_image(&base_image()),
            index: Index::dated(&packages()),
            comfyui,
            extra,
            extra_rev,
            python_extra: String::new(),
            port: free_port(),
        };
        d.write_manifest();
        d
    }

    fn root(&self) -> &Path {
        self.project.root()
    }

    fn write_manifest(&self) {
        self.project.write_manifest(&format!(
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
index_url = "{index}"
torch = {{ version = "2.0.0" }}
{extra}
[auth]
mode = "none"
[[nodes]]
name = "Extra"
git = "file://{node}"
rev = "{rev}"
requirements = true
"#,
            name = self.name,
            comfyui = self.comfyui.display(),
            image = self.image,
            port = self.port,
            index = self.index.url(),
            extra = self.python_extra,
            node = self.extra.display(),
            rev = self.extra_rev,
        ));
    }

    /// Commit a new `requirements.txt` to Extra and pin the node to it.
    fn pin_extra_requirements(&mut self, text: &str) {
        self.extra_rev = commit(&self.extra, &[("requirements.txt", text)]);
        self.write_manifest();
    }

    fn run(&self, args: &[&str]) -> Output {
        self.project.run(args)
    }

    fn apply_ok(&self) -> String {
        let out = self.run(&["apply", "-y"]);
        let text = both(&out);
        assert!(out.status.success(), "apply failed:\n{text}");
        text
    }

    fn plan_code(&self) -> i32 {
        self.run(&["plan", "--detailed-exitcode"])
            .status
            .code()
            .unwrap()
    }

    fn started_at(&self) -> String {
        docker(&["inspect", "-f", "{{.State.StartedAt}}", &self.name])
    }

    fn lock_text(&self) -> String {
        std::fs::read_to_string(self.root().join("comfy.lock")).unwrap_or_default()
    }

    fn site_packages(&self) -> PathBuf {
        self.root()
            .join("workspace/ComfyUI/venv/lib/python3.11/site-packages")
    }

    /// Installed distributions as `name==version`, sorted.
    fn installed(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.site_packages())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        let (name, version) = n.strip_suffix(".dist-info")?.split_once('-')?;
                        Some(format!("{}=={version}", name.replace('_', "-")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

macro_rules! needs_uv_and_docker {
    () => {
        if !docker_available() || !uv_available() {
            return;
        }
    };
}

/// From an empty folder, one apply: ComfyUI and the node cloned, one resolution into
/// comfy.lock, the environment built in the image, the container started, verify passing; then
/// nothing to do, and `comfyprov lock` rewrites nothing.
#[test]
fn from_an_empty_folder_one_apply_builds_the_environment_and_verify_passes() {
    needs_uv_and_docker!();
    let d = PyDeploy::new();
    let text = d.apply_ok();
    for line in [
        "done     resolve the Python requirements into comfy.lock (4 packages, torch 2.0.0",
        "done     create the Python 3.11 environment venv/ and sync it to the new comfy.lock (created; 4 changes: + dep-a 1.1, + numpy 2.1.2, + torch 2.0.0, + with-dep 1.0",
        &format!("done     create and start container {}", d.name),
        "ok    node Extra: loaded",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(
        !text.contains("restart container"),
        "a new container needs no restart:\n{text}"
    );
    assert_eq!(
        d.installed(),
        [
            "dep-a==1.1",
            "numpy==2.1.2",
            "torch==2.0.0",
            "with-dep==1.0"
        ]
    );
    let logs = docker(&["logs", &d.name]);
    assert!(logs.contains("numpy 2.1.2 torch 2.0.0"), "{logs}");
    // The lock: every package with its hash, and the commits the revs stood at.
    let lock = d.lock_text();
    assert!(
        lock.contains("name = \"with-dep\"\nversion = \"1.0\"\nhashes = [\"sha256:"),
        "{lock}"
    );
    let comfy_commit = git(&d.comfyui, &["rev-parse", "HEAD"]);
    assert!(
        lock.contains(&format!(
            "name = \"ComfyUI\"\nrev = \"v0.3.68\"\ncommit = \"{comfy_commit}\""
        )),
        "{lock}"
    );
    // Every package came from the index on 127.0.0.1.
    let requests = d.index.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("/files/torch/")),
        "{requests:?}"
    );

    let started = d.started_at();
    let mtime = std::fs::metadata(d.root().join("comfy.lock"))
        .unwrap()
        .modified()
        .unwrap();
    let text = d.apply_ok();
    assert!(text.contains("nothing to do"), "{text}");
    assert_eq!(d.started_at(), started, "no restart");
    assert_eq!(d.plan_code(), 0);
    let out = d.run(&["lock"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("comfy.lock matches its inputs: nothing rewritten"),
        "{}",
        both(&out)
    );
    assert_eq!(
        std::fs::metadata(d.root().join("comfy.lock"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime,
        "a lock with nothing new rewrites nothing"
    );
}

/// A node's requirements change with its pin: the checkout, one resolution, one sync that
/// lists the change, one restart.
#[test]
fn a_changed_requirement_gives_one_sync_and_one_restart() {
    needs_uv_and_docker!();
    let mut d = PyDeploy::new();
    d.apply_ok();
    let started = d.started_at();
    d.pin_extra_requirements("with-dep\ndep-a==1.0\n");
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains("~ checkout Extra")
            && plan.contains("+ resolve the Python requirements into comfy.lock")
            && plan.contains("comfy.lock records other git pins: Extra")
            && plan.contains("~ sync the Python environment venv/ to the new comfy.lock")
            && plan.contains(&format!("~ restart container {}", d.name)),
        "{plan}"
    );
    let text = d.apply_ok();
    assert!(
        text.contains("done     sync the Python environment venv/ to the new comfy.lock (1 change: dep-a 1.1 → 1.0"),
        "{text}"
    );
    assert_eq!(
        text.matches("done     restart container").count(),
        1,
        "{text}"
    );
    assert_ne!(d.started_at(), started);
    assert!(d.installed().contains(&"dep-a==1.0".to_owned()));
    assert_eq!(d.plan_code(), 0);
}

/// Two requirements that cannot both hold: named with the file each comes from, nothing
/// installed, comfy.lock and the running server left as they were.
#[test]
fn a_conflict_is_named_nothing_is_installed_and_the_server_keeps_running() {
    needs_uv_and_docker!();
    let mut d = PyDeploy::new();
    d.apply_ok();
    let started = d.started_at();
    let lock = d.lock_text();
    let before = d.installed();
    d.pin_extra_requirements("with-dep\nold-numpy-user\n");
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    for line in [
        "the Python requirements conflict; nothing was installed and the running server is untouched:",
        "ComfyUI/requirements.txt: numpy>=2",
        "Extra/requirements.txt: old-numpy-user",
        "Because all versions of old-numpy-user depend on numpy<2",
        "the Python environment is not in sync with comfy.lock",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert_eq!(d.installed(), before, "nothing installed");
    assert_eq!(d.lock_text(), lock, "the lock is left as it was");
    assert_eq!(d.started_at(), started, "the server was not restarted");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &d.name]),
        "running"
    );
}

/// torch is protected: a node that needs another torch is a conflict, never an upgrade.
#[test]
fn a_node_that_asks_for_another_torch_is_refused() {
    needs_uv_and_docker!();
    let mut d = PyDeploy::new();
    d.apply_ok();
    d.pin_extra_requirements("wants-old-torch\n");
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains(
            "comfy.toml [python] torch: torch==2.0.0 (protected: never replaced for a node)"
        ) && text.contains("Extra/requirements.txt: wants-old-torch"),
        "{text}"
    );
    assert!(d.installed().contains(&"torch==2.0.0".to_owned()));
}

/// `--locked` deploys what was committed or nothing: a lock that no longer matches the manifest
/// is refused by plan and apply, and neither the lock nor the environment changes.
#[test]
fn locked_with_a_stale_lock_refuses() {
    needs_uv_and_docker!();
    let mut d = PyDeploy::new();
    d.apply_ok();
    let lock = d.lock_text();
    d.python_extra = "packages = [\"dep-a==1.0\"]".to_owned();
    d.write_manifest();
    let out = d.run(&["plan", "--locked"]);
    let text = both(&out);
    assert!(
        text.contains("! blocked: comfy.lock is not current (--locked)")
            && text.contains("python.packages [] → [dep-a==1.0]")
            && text.contains("run `comfyprov lock` and commit comfy.lock"),
        "{text}"
    );
    let out = d.run(&["apply", "-y", "--locked"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(d.lock_text(), lock);
    assert!(d.installed().contains(&"dep-a==1.1".to_owned()));
    // Without --locked, apply rewrites the lock and syncs.
    let text = d.apply_ok();
    assert!(text.contains("dep-a 1.1 → 1.0"), "{text}");
}

/// kill -9 while the one-off container syncs (the index is slow): the next apply removes the
/// leftover sync container and converges.
#[test]
fn kill_9_during_the_sync_then_a_rerun_converges() {
    needs_uv_and_docker!();
    let d = PyDeploy::new();
    d.index
        .delay_ms
        .store(1500, std::sync::atomic::Ordering::Relaxed);
    let mut child = d
        .project
        .command()
        .args(["apply", "-y", "--no-verify"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the sync container, then kill comfyprov.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let ps = docker(&["ps", "-q", "-f", "label=comfyprov.python-sync"]);
        if !ps.is_empty() && d.root().join("workspace/ComfyUI/venv/pyvenv.cfg").exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "apply ended before the sync"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    d.index
        .delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains("sync"),
        "the interrupted sync is planned again:\n{plan}"
    );
    d.apply_ok();
    assert_eq!(d.plan_code(), 0);
    assert_eq!(
        d.installed(),
        [
            "dep-a==1.1",
            "numpy==2.1.2",
            "torch==2.0.0",
            "with-dep==1.0"
        ]
    );
}

/// A packaged changed under the lock (an extra one installed by hand): plan lists it and the
/// sync removes it; exact, not additive.
#[test]
fn the_sync_is_exact_extras_are_removed() {
    needs_uv_and_docker!();
    let d = PyDeploy::new();
    d.apply_ok();
    // Plant a distribution the lock does not have, as `pip install` by hand would.
    let planted = d.site_packages().join("stray-0.1.dist-info");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(
        planted.join("METADATA"),
        "Metadata-Version: 2.1\nName: stray\nVersion: 0.1\n",
    )
    .unwrap();
    std::fs::write(
        planted.join("RECORD"),
        "stray-0.1.dist-info/METADATA,,\nstray-0.1.dist-info/INSTALLER,,\nstray-0.1.dist-info/RECORD,,\n",
    )
    .unwrap();
    std::fs::write(planted.join("INSTALLER"), "pip\n").unwrap();
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains("~ sync the Python environment venv/ (1 change)")
            && plan.contains("      - stray 0.1"),
        "{plan}"
    );
    let text = d.apply_ok();
    assert!(text.contains("1 change: - stray 0.1"), "{text}");
    assert!(!planted.exists());
    assert_eq!(d.plan_code(), 0);
}

// The tests below resolve only (no container): `comfyprov lock` on a workspace whose checkouts
// the test made.

/// A PyDeploy whose ComfyUI is checked out by hand (no apply), for `comfyprov lock`.
fn checked_out(requirements: &str) -> PyDeploy {
    let d = PyDeploy::with_comfyui_requirements(requirements);
    let ws = d.root().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    git(
        &ws,
        &[
            "clone",
            "-q",
            &format!("file://{}", d.comfyui.display()),
            "ComfyUI",
        ],
    );
    let nodes = ws.join("ComfyUI/custom_nodes");
    std::fs::create_dir_all(&nodes).unwrap();
    git(
        &nodes,
        &[
            "clone",
            "-q",
            &format!("file://{}", d.extra.display()),
            "Extra",
        ],
    );
    d
}

fn lock_ok(d: &PyDeploy) -> String {
    let out = d.run(&["lock"]);
    assert!(out.status.success(), "lock failed:\n{}", both(&out));
    d.lock_text()
}

/// `exclude_newer` resolves as the index stood that day: the release that still brought in
/// `requests-standin`, not the later one that stopped (transformers 5 and requests).
#[test]
fn exclude_newer_resolves_as_the_index_stood_that_day() {
    if !uv_available() {
        return;
    }
    let mut d = checked_out("numpy>=2\ntorch\ntransformers-standin\n");
    let today = lock_ok(&d);
    assert!(
        today.contains("name = \"transformers-standin\"\nversion = \"5.0\""),
        "{today}"
    );
    assert!(!today.contains("requests-standin"), "{today}");
    d.python_extra = "exclude_newer = \"2025-11-06\"".to_owned();
    d.write_manifest();
    let then = lock_ok(&d);
    assert!(
        then.contains("name = \"transformers-standin\"\nversion = \"4.0\""),
        "{then}"
    );
    assert!(then.contains("name = \"requests-standin\""), "{then}");
    assert!(then.contains("exclude_newer = \"2025-11-06\""), "{then}");
}

/// torch from its own wheel index (no upload dates, like download.pytorch.org): the CUDA build
/// is chosen and kept despite the date cut-off; everything else comes from the main index.
#[test]
fn torch_comes_from_its_own_index_and_other_packages_from_the_main_one() {
    if !uv_available() {
        return;
    }
    let torch_index = Index::undated(&[
        wheel("torch", "2.0.0+cu124", &[]),
        // torch's index mirrors others too, without dates.
        wheel("numpy", "2.1.2", &[]),
    ]);
    let mut d = checked_out("numpy>=2\ntorch\n");
    d.python_extra = "exclude_newer = \"2025-11-06\"".to_owned();
    d.write_manifest();
    let manifest = std::fs::read_to_string(d.root().join("comfy.toml"))
        .unwrap()
        .replace(
            "torch = { version = \"2.0.0\" }",
            &format!(
                "torch = {{ version = \"2.0.0\", index = \"http://127.0.0.1:{}/simple\" }}",
                torch_index.port
            ),
        );
    d.project.write_manifest(&manifest);
    let lock = lock_ok(&d);
    assert!(
        lock.contains("name = \"torch\"\nversion = \"2.0.0+cu124\""),
        "{lock}"
    );
    assert!(
        lock.contains("name = \"numpy\"\nversion = \"2.1.2\""),
        "{lock}"
    );
}

/// An air-gapped machine: `offline = true` and a folder of wheels; no index is asked.
#[test]
fn offline_resolves_from_a_wheelhouse_alone() {
    if !uv_available() {
        return;
    }
    let mut d = checked_out("numpy>=2\ntorch\n");
    let wheels = d.root().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    crate::pyindex::build_wheels(&wheels, &packages());
    // A flat folder, as `pip download -d` makes one.
    for e in std::fs::read_dir(&wheels).unwrap().flatten() {
        if e.path().is_dir() {
            for w in std::fs::read_dir(e.path()).unwrap().flatten() {
                std::fs::rename(w.path(), wheels.join(w.file_name())).unwrap();
            }
        }
    }
    let manifest = std::fs::read_to_string(d.root().join("comfy.toml"))
        .unwrap()
        .replace(&format!("index_url = \"{}\"\n", d.index.url()), "");
    d.project.write_manifest(&manifest);
    d.python_extra = String::new();
    let manifest = manifest.replace(
        "torch = { version = \"2.0.0\" }",
        "torch = { version = \"2.0.0\" }\noffline = true\nfind_links = [\"wheels\"]",
    );
    d.project.write_manifest(&manifest);
    let before = d.index.requests.lock().unwrap().len();
    let lock = lock_ok(&d);
    assert!(
        lock.contains("name = \"numpy\"\nversion = \"2.1.2\""),
        "{lock}"
    );
    assert_eq!(
        d.index.requests.lock().unwrap().len(),
        before,
        "no index was asked"
    );
}

/// A workspace from before comfyprov built environments: a venv made on the host and the old
/// per-node install record. plan says what it will do (build the environment afresh in the
/// image), and is not an error.
#[test]
fn an_old_workspace_with_a_host_venv_plans_a_fresh_environment() {
    if !uv_available() {
        return;
    }
    let d = checked_out("numpy>=2\ntorch\n");
    let venv = d.root().join("workspace/ComfyUI/venv");
    let out = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let record = d.root().join("workspace/.comfyprov/requirements.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, "{\"nodes\":{}}").unwrap();
    let out = d.run(&["plan", "--workspace-only"]);
    let text = both(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("~ create the Python 3.11 environment venv/ and sync it to the new comfy.lock")
            && text.contains("venv/ has no build record from comfyprov (made on the host, whose interpreter the container lacks, or a build was interrupted)"),
        "{text}"
    );
}

/// `comfyprov lock` without uv says what to install, and writes nothing.
#[test]
fn lock_without_uv_says_how_to_get_it() {
    let d = checked_out("numpy>=2\n");
    let out = d
        .project
        .command()
        .arg("lock")
        .env("COMFYPROV_UV", d.root().join("no-uv-here"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("cannot run")
            && text.contains(&format!("pip install uv=={}", comfyprov::lock::UV_VERSION)),
        "{text}"
    );
    assert!(!d.root().join("comfy.lock").exists());
}

/// Round trip: `import` of a deployment that `apply` made (the container, its workspace, the
/// lock beside it) gives a manifest whose plan is empty.
#[test]
fn import_of_an_applied_deployment_plans_nothing() {
    needs_uv_and_docker!();
    let d = PyDeploy::new();
    d.apply_ok();
    let out = d.run(&["import", "--container", &d.name, "--out", "imported.toml"]);
    assert!(out.status.success(), "{}", both(&out));
    let text = std::fs::read_to_string(d.root().join("imported.toml")).unwrap();
    for line in [
        &format!("name = \"{}\"", d.name),
        "path = \"./workspace\"",
        "rev = \"v0.3.68\"",
        "[python]                   # as comfy.lock was resolved",
        "torch = { version = \"2.0.0\" }",
        &format!("index_url = \"{}\"", d.index.url()),
        "requirements = true",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    let out = d.run(&["-f", "imported.toml", "plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    // It never overwrites.
    let out = d.run(&["import", "--container", &d.name, "--out", "imported.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(both(&out).contains("never overwrites"), "{}", both(&out));
}

/// A restart is for what its steps changed: with comfy.lock deleted, apply resolves it again
/// (same packages) and the sync finds nothing to install, so the server is not restarted.
#[test]
fn no_restart_when_the_sync_finds_nothing_to_install() {
    needs_uv_and_docker!();
    let d = PyDeploy::new();
    d.apply_ok();
    let started = d.started_at();
    std::fs::remove_file(d.root().join("comfy.lock")).unwrap();
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains("+ resolve the Python requirements into comfy.lock")
            && plan.contains(&format!("~ restart container {}", d.name)),
        "{plan}"
    );
    let text = d.apply_ok();
    assert!(
        text.contains("already  sync the Python environment venv/ to the new comfy.lock: venv/ matches comfy.lock"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "already  restart container {}: every step it was for found nothing to change",
            d.name
        )),
        "{text}"
    );
    assert_eq!(d.started_at(), started, "not restarted");
    assert_eq!(d.plan_code(), 0);
}
