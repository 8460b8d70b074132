//! The `comfyprov` binary end to end: exit codes, output streams, JSON, saved plans, secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Project, clone_at, source_repo};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_comfyprov"));
    c.env_remove("NO_COLOR");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PW: &str = "tr0ub4dor&3-correct-horse";

/// A workspace where everything matches the manifest: a pinned node, a verified PASSWORD and
/// the rendered compose file.
struct Converged {
    project: Project,
    hash: String,
}

impl Converged {
    fn new() -> Converged {
        let project = Project::new();
        let root = project.root();
        let src = source_repo(&root.join("git/ComfyUI-Login"), 2);
        std::fs::create_dir_all(root.join("ws/ComfyUI/custom_nodes")).unwrap();
        clone_at(
            &src,
            &root.join("ws/ComfyUI/custom_nodes/ComfyUI-Login"),
            &src.v2,
        );
        std::fs::write(
            root.join("comfy.toml"),
            format!(
                r#"[project]
name = "e2e"
[workspace]
path = "ws"
[container]
image = "img:1"
listen = "0.0.0.0"
env = {{ GREETING = "price: $5" }}
[gpu]
mode = "nvidia"
count = 1
[auth]
mode = "login"
password_file = "pw"
[[nodes]]
name = "ComfyUI-Login"
git = "{}"
rev = "{}"
"#,
                src.url(),
                src.v2
            ),
        )
        .unwrap();
        std::fs::write(root.join("pw"), format!("{PW}\n")).unwrap();
        std::fs::set_permissions(root.join("pw"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let hash = bcrypt::hash(PW, 4).unwrap();
        std::fs::create_dir_all(root.join("ws/ComfyUI/login")).unwrap();
        let pw_file = root.join("ws/ComfyUI/login/PASSWORD");
        std::fs::write(&pw_file, format!("{hash}\nadmin")).unwrap();
        std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let compose = run(root, &["render"]);
        assert!(compose.status.success(), "{}", stderr(&compose));
        std::fs::write(root.join("docker-compose-with-auth.yml"), &compose.stdout).unwrap();
        Converged { project, hash }
    }

    fn root(&self) -> &Path {
        self.project.root()
    }
}

#[test]
fn converged_workspace_plans_nothing_and_exits_0_with_detailed_exitcode() {
    let c = Converged::new();
    // The container is tests/container.rs's subject; this workspace has none.
    let out = run(
        c.root(),
        &["plan", "--detailed-exitcode", "--workspace-only"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
}

#[test]
fn drift_exits_2_with_detailed_exitcode_and_0_without() {
    let c = Converged::new();
    std::fs::remove_dir_all(c.root().join("ws/ComfyUI/custom_nodes/ComfyUI-Login")).unwrap();
    let out = run(c.root(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("+ clone ComfyUI-Login"),
        "{}",
        stdout(&out)
    );
    assert_eq!(run(c.root(), &["plan"]).status.code(), Some(0));
}

#[test]
fn secrets_never_reach_plan_output_json_or_the_compose_file() {
    let c = Converged::new();
    // Make the plan busy: stale hash in PASSWORD, legacy file, edited compose.
    let stale = bcrypt::hash("old", 4).unwrap();
    std::fs::write(
        c.root().join("ws/ComfyUI/login/PASSWORD"),
        format!("{stale}\nadmin"),
    )
    .unwrap();
    std::fs::write(
        c.root().join("ws/ComfyUI/PASSWORD"),
        format!("{}\nadmin", c.hash),
    )
    .unwrap();
    std::fs::write(c.root().join("docker-compose-with-auth.yml"), "edited\n").unwrap();
    let mut everything = String::new();
    for args in [
        &["plan"][..],
        &["plan", "--json"],
        &["plan", "-v"],
        &["render"],
        &["validate"],
    ] {
        let out = run(c.root(), args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        everything.push_str(&stdout(&out));
        everything.push_str(&stderr(&out));
    }
    for secret in [PW, &c.hash, &stale, &c.hash[7..], &stale[7..]] {
        assert!(
            !everything.contains(secret),
            "a secret leaked:\n{everything}"
        );
    }
    assert!(
        !everything.contains("$2b$"),
        "a bcrypt hash leaked:\n{everything}"
    );
    assert!(
        everything.contains("~ write login/PASSWORD"),
        "{everything}"
    );
}

#[test]
fn plan_json_is_versioned_and_matches_the_text_plan() {
    let c = Converged::new();
    std::fs::remove_file(c.root().join("docker-compose-with-auth.yml")).unwrap();
    let out = run(c.root(), &["plan", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["changes_pending"], true);
    assert_eq!(v["steps"][0]["action"], "render_compose");
    assert_eq!(v["steps"][0]["symbol"], "+");
    assert_eq!(
        v["steps"][0]["reasons"][0],
        "docker-compose-with-auth.yml does not exist"
    );
    assert_eq!(v["observed_fingerprint"].as_str().unwrap().len(), 64);
}

#[test]
fn saved_plan_holds_the_observed_fingerprint_and_manifest_digest() {
    let c = Converged::new();
    let out = run(c.root(), &["plan", "--out", "plan.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("saved plan to plan.json"));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.root().join("plan.json")).unwrap()).unwrap();
    let fresh: serde_json::Value =
        serde_json::from_slice(&run(c.root(), &["plan", "--json"]).stdout).unwrap();
    assert_eq!(saved["observed_fingerprint"], fresh["observed_fingerprint"]);
    assert_eq!(saved["manifest_sha256"].as_str().unwrap().len(), 64);
    // The fingerprint moves when reality moves.
    std::fs::write(
        c.root()
            .join("ws/ComfyUI/custom_nodes/ComfyUI-Login/new.txt"),
        "x",
    )
    .unwrap();
    let moved: serde_json::Value =
        serde_json::from_slice(&run(c.root(), &["plan", "--json"]).stdout).unwrap();
    assert_ne!(saved["observed_fingerprint"], moved["observed_fingerprint"]);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(c.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn invalid_manifest_exits_1_with_every_problem_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests/invalid/many-problems-at-once.toml");
    std::fs::copy(src, dir.path().join("comfy.toml")).unwrap();
    for cmd in ["validate", "plan"] {
        let out = bin()
            .args([cmd, "--no-color"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(
            stdout(&out).is_empty(),
            "{cmd}: diagnostics belong on stderr"
        );
        let err = stderr(&out);
        assert!(err.contains("has 10 problems"), "{err}");
        for code in [
            "manifest::unknown_key",
            "manifest::git_url",
            "manifest::rev",
            "manifest::out_of_range",
        ] {
            assert!(err.contains(code), "{cmd}: {code} missing from:\n{err}");
        }
        assert!(!err.contains('\x1b'), "--no-color output has escape codes");
    }
}

#[test]
fn missing_manifest_exits_1_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot read manifest `comfy.toml`"), "{err}");
    assert!(err.contains("-f PATH"), "{err}");
}

#[test]
fn usage_errors_exit_1_because_2_means_changes_pending() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(dir.path(), &["plan", "--no-such-flag"]).status.code(),
        Some(1)
    );
    assert_eq!(run(dir.path(), &["--help"]).status.code(), Some(0));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let out = run(Path::new(env!("CARGO_MANIFEST_DIR")), &["schema"]);
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/comfy.schema.json"))
            .unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn plan_on_the_repository_manifest_works_from_a_clean_clone() {
    // The README's first command: a fresh clone has no workspace and no secret.
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("comfy.toml"), dir.path().join("comfy.toml")).unwrap();
    let out = run(dir.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "+ create workspace ./workspace",
        "+ clone ComfyUI @ v0.3.68",
        "+ clone ComfyUI-Login @ 6910925",
        "+ generate password",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(
        !dir.path().join("workspace").exists(),
        "plan must not create anything"
    );
    assert!(
        !dir.path().join(".secrets").exists(),
        "plan must not create anything"
    );
}

/// `docker-compose config` parses and interpolates the file the way `up` would.
#[test]
fn rendered_compose_is_accepted_by_docker_compose_and_keeps_dollars_literal() {
    if !crate::support::docker_compose_available() {
        return;
    }
    let c = Converged::new();
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose-with-auth.yml", "config"])
        .current_dir(c.root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose rejected the file: {}",
        stderr(&out)
    );
    let config = stdout(&out);
    assert!(
        config.contains("price: $5") || config.contains("price: $$5"),
        "interpolation changed the value:\n{config}"
    );
    assert!(!config.contains("$2b$"), "{config}");
    assert!(config.contains("driver: nvidia"), "{config}");
    assert!(config.contains("0.0.0.0"), "{config}");
}

#[test]
fn a_closed_stdout_pipe_ends_output_quietly() {
    let c = Converged::new();
    std::fs::remove_dir_all(c.root().join("ws/ComfyUI/custom_nodes/ComfyUI-Login")).unwrap();
    let mut child = bin()
        .args(["plan"])
        .current_dir(c.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before comfyprov writes
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Unattended (no terminal, as from cron or CI), apply changes nothing without `--yes`, and says
/// how to approve; with `--yes` it applies.
#[test]
fn apply_without_a_terminal_needs_yes() {
    let c = Converged::new();
    let compose = c.root().join("docker-compose-with-auth.yml");
    std::fs::remove_file(&compose).unwrap();
    let out = bin()
        .args(["apply", "--workspace-only"])
        .current_dir(c.root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("there is no terminal to ask on: nothing was changed")
            && stderr(&out).contains("pass --yes"),
        "{}",
        stderr(&out)
    );
    assert!(!compose.exists(), "nothing was written");
    let out = bin()
        .args(["apply", "--workspace-only", "--yes"])
        .current_dir(c.root())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(compose.exists());
}

/// The same deployment has one spec (one bind mount) however its manifest is reached: through
/// `..` from inside the workspace, or through a symlinked folder.
#[test]
fn the_same_manifest_reached_by_other_paths_has_one_spec() {
    let c = Converged::new();
    let root = c.root();
    let link = root.parent().unwrap().join(format!(
        "{}-link",
        root.file_name().unwrap().to_string_lossy()
    ));
    std::os::unix::fs::symlink(root, &link).unwrap();
    let spec = |path: PathBuf| {
        let desired = comfyprov::ops::load(&path).unwrap().desired;
        (
            comfyprov::render::Container::new(&desired).unwrap().spec,
            comfyprov::apply::lock::lock_path(&desired.workspace.path),
        )
    };
    let direct = spec(root.join("comfy.toml"));
    let dotdot = spec(root.join("ws/ComfyUI/../../comfy.toml"));
    let linked = spec(link.join("comfy.toml"));
    let _ = std::fs::remove_file(&link);
    assert_eq!(direct, dotdot);
    assert_eq!(direct, linked);
}

/// A compose file in a subfolder mounts the workspace where it is, not a folder of that name
/// beside the compose file (Compose resolves relative sources against the file's folder).
#[test]
fn a_compose_file_in_a_subfolder_mounts_the_real_workspace() {
    if !crate::support::docker_compose_available() {
        return;
    }
    let c = Converged::new();
    let manifest = c.root().join("comfy.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen(
        "[container]\n",
        "[container]\ncompose_file = \"deploy/docker-compose.yml\"\n",
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    let out = run(c.root(), &["apply", "-y", "--workspace-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("docker-compose")
        .args(["-f", "deploy/docker-compose.yml", "config"])
        .current_dir(c.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config = stdout(&out);
    let want = std::fs::canonicalize(c.root().join("ws/ComfyUI")).unwrap();
    assert!(
        config.contains(&format!("source: {}", want.display())),
        "the mount must be the workspace's ComfyUI/:\n{config}"
    );
    assert!(!config.contains("deploy/ws"), "{config}");
}

/// A FIFO where a file should be (the manifest, the secret, or `login/PASSWORD`, which the
/// container can plant) is an error, never a read that blocks forever.
#[test]
fn a_fifo_in_place_of_a_file_is_an_error_not_a_hang() {
    let c = Converged::new();
    let mkfifo = |p: &Path| {
        let out = Command::new("mkfifo").arg(p).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let run_bounded = |args: &[&str]| {
        let mut child = bin()
            .args(args)
            .current_dir(c.root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("comfyprov {args:?} blocked on a FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    };
    mkfifo(&c.root().join("fifo.toml"));
    let out = run_bounded(&["-f", "fifo.toml", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );

    let password = c.root().join("ws/ComfyUI/login/PASSWORD");
    std::fs::remove_file(&password).unwrap();
    mkfifo(&password);
    let out = run_bounded(&["plan", "--workspace-only"]);
    assert!(
        stdout(&out).contains("login/PASSWORD cannot be read")
            && stdout(&out).contains("not a regular file"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_file(&password).unwrap();

    let secret = c.root().join("pw");
    std::fs::remove_file(&secret).unwrap();
    mkfifo(&secret);
    let out = run_bounded(&["plan", "--workspace-only"]);
    assert!(
        stdout(&out).contains("the secret pw is unusable"),
        "{}",
        stdout(&out)
    );
}

/// With `--json`, a command that fails prints a JSON error object on stdout (code, message, help,
/// and each manifest problem), so a script can tell "broken" from "refused" (a refusal is a plan
/// with `!` steps, exit 0 or 2).
#[test]
fn json_commands_that_fail_print_a_json_error() {
    let c = Converged::new();
    std::fs::write(c.root().join("comfy.toml"), "[project]\nname = \"X Y\"\n").unwrap();
    let out = run(c.root(), &["plan", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["error"]["code"], "manifest::invalid");
    let problems = v["error"]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["code"] == "manifest::project_name"
                || p["message"].as_str().unwrap_or("").contains("name")),
        "{v}"
    );
    assert!(
        !stderr(&out).is_empty(),
        "people still get the error on stderr"
    );

    let out = run(c.root(), &["-f", "missing.toml", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], "manifest::unreadable");
    assert!(v["error"]["help"].as_str().is_some());
}

/// Like cargo, comfyprov finds the manifest from a subfolder; `COMFYPROV_MANIFEST` names one.
#[test]
fn the_manifest_is_found_from_a_subfolder_or_named_by_the_environment() {
    let c = Converged::new();
    let deep = c.root().join("ws/ComfyUI/custom_nodes");
    let out = run(&deep, &["plan", "--workspace-only", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("e2e ("), "{}", stdout(&out));

    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["validate"])
        .current_dir(elsewhere.path())
        .env("COMFYPROV_MANIFEST", c.root().join("comfy.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(elsewhere.path(), &["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read manifest `comfy.toml`"),
        "{}",
        stderr(&out)
    );
}

/// Completion scripts for bash, zsh and fish; bash parses its own.
#[test]
fn completions_are_generated_and_bash_parses_them() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("comfyprov"), "{shell}");
        assert!(
            stdout(&out).contains("verify"),
            "{shell}: lists the commands"
        );
        if shell == "bash" {
            let script = dir.path().join("comfyprov.bash");
            std::fs::write(&script, &out.stdout).unwrap();
            let check = Command::new("bash")
                .arg("-n")
                .arg(&script)
                .output()
                .unwrap();
            assert!(check.status.success(), "{}", stderr(&check));
        }
    }
}

/// `init` writes a commented manifest that validates and plans, its schema, the .gitignore lines,
/// a 0600 password on request; it never overwrites a manifest and asks nothing.
#[test]
fn init_writes_a_valid_commented_manifest_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("My Deployment");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join(".gitignore"), "target/").unwrap();
    let out = bin()
        .args(["init", "--gpu", "none", "--generate-password"])
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(root.join("comfy.toml")).unwrap();
    assert!(
        manifest.starts_with("#:schema ./comfy.schema.json\n"),
        "{manifest}"
    );
    assert!(manifest.contains("name = \"my-deployment\""), "{manifest}");
    assert!(root.join("comfy.schema.json").is_file());
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignore.starts_with("target/\n")
            && ignore.contains("/.secrets/")
            && ignore.contains("/workspace/"),
        "{ignore}"
    );
    let pw = root.join(".secrets/comfyui.password");
    let mode = std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&pw).unwrap().trim().len(), 32);
    assert!(!stdout(&out).contains(std::fs::read_to_string(&pw).unwrap().trim()));

    let out = run(&root, &["validate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&root, &["plan", "--workspace-only", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("+ clone ComfyUI @ v0.3.68"),
        "{}",
        stdout(&out)
    );

    let out = run(&root, &["init", "--auth", "none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("comfy.toml")).unwrap(),
        manifest
    );

    let other = dir.path().join("open");
    std::fs::create_dir(&other).unwrap();
    let out = run(&other, &["init", "--auth", "none", "--gpu", "none"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(&other, &["validate"]).status.success());
    let out = run(
        &other,
        &["init", "--project", "Bad Name", "-f", "x/comfy.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!other.join("x/comfy.toml").exists(), "nothing written");
}

/// `--color auto|always|never`, NO_COLOR and CLICOLOR_FORCE, as CLI users expect them: piped
/// output has no colour unless forced, NO_COLOR wins over CLICOLOR_FORCE, `--color` over both.
#[test]
fn colour_follows_the_flag_then_no_color_then_clicolor_force() {
    let c = Converged::new();
    let esc = |o: &Output| stdout(o).contains('\u{1b}');
    let go = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.args(["plan", "--workspace-only"])
            .args(args)
            .current_dir(c.root())
            .env_remove("CLICOLOR_FORCE")
            .env_remove("COMFYPROV_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    assert!(!esc(&go(&[], &[])), "piped: no colour");
    assert!(esc(&go(&["--color", "always"], &[])));
    assert!(esc(&go(&[], &[("CLICOLOR_FORCE", "1")])));
    assert!(!esc(&go(&[], &[("CLICOLOR_FORCE", "0")])));
    assert!(!esc(&go(
        &[],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    )));
    assert!(esc(&go(&["--color", "always"], &[("NO_COLOR", "1")])));
    assert!(!esc(&go(&["--color", "never"], &[("CLICOLOR_FORCE", "1")])));
    assert!(!esc(&go(&["--no-color"], &[("CLICOLOR_FORCE", "1")])));
    assert!(esc(&go(&[], &[("COMFYPROV_COLOR", "always")])));
}

/// `status` says what is deployed, part by part, with what apply would still do: here all
/// matches but the container (none exists), so it exits 2; `--json` has the same parts and
/// never the hash.
#[test]
fn status_lists_each_part_with_what_apply_would_still_do() {
    if !crate::support::docker_available() {
        return;
    }
    let c = Converged::new();
    let out = run(c.root(), &["status"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    for line in [
        "  ok    login/PASSWORD verifies the secret (mode 0600)\n",
        "  todo  no container is named ",
        "          apply would: create and start container ",
        "Not converged: 1 step pending",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    let out = run(c.root(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["converged"], false);
    let ids: Vec<&str> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"password") && ids.contains(&"container"),
        "{ids:?}"
    );
    assert!(!stdout(&out).contains("$2b$"), "never the hash");
}

/// Every command's `--help` ends with an example.
#[test]
fn every_command_help_has_an_example() {
    use clap::CommandFactory;
    let cmd = comfyprov::cli::Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect();
    assert!(names.len() >= 14, "{names:?}");
    for name in names {
        let out = bin().args([name.as_str(), "--help"]).output().unwrap();
        assert!(
            stdout(&out).contains("\nExample: comfyprov ")
                || stdout(&out).contains("\nExample: curl "),
            "`comfyprov {name} --help` has no example:\n{}",
            stdout(&out)
        );
    }
}

/// `import` of a hand-made workspace: ComfyUI at a tag, a node at a commit, and what a
/// manifest cannot express (a non-git folder, a single-file node, a disabled node) listed with
/// why; the password's presence means login mode, its source left to fill in. Its plan touches
/// no node checkout.
#[test]
fn import_of_a_hand_made_workspace_pins_what_it_finds_and_lists_the_rest() {
    let p = Project::new();
    let src = source_repo(&p.path("git/ComfyUI"), 1);
    clone_at(&src, &p.path("workspace/ComfyUI"), "v1");
    let node = source_repo(&p.path("git/Extra"), 1);
    clone_at(
        &node,
        &p.path("workspace/ComfyUI/custom_nodes/Extra"),
        &node.dev,
    );
    let login = source_repo(&p.path("git/ComfyUI-Login"), 1);
    clone_at(
        &login,
        &p.path("workspace/ComfyUI/custom_nodes/ComfyUI-Login"),
        &login.v2,
    );
    let nodes = p.path("workspace/ComfyUI/custom_nodes");
    std::fs::create_dir_all(nodes.join("copied-by-hand")).unwrap();
    std::fs::write(nodes.join("single.py"), "NODE_CLASS_MAPPINGS = {}\n").unwrap();
    std::fs::create_dir_all(nodes.join("Old.disabled")).unwrap();
    std::fs::create_dir_all(p.path("workspace/ComfyUI/login")).unwrap();
    std::fs::write(
        p.path("workspace/ComfyUI/login/PASSWORD"),
        "$2b$12$abcdefghijklmnopqrstuv\nadmin",
    )
    .unwrap();
    let out = run(p.root(), &["import", "--workspace", "workspace"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        &format!("git = \"{}\"\nrev = \"v1\"", src.url()),
        &format!(
            "name = \"Extra\"\ngit = \"{}\"\nrev = \"{}\"",
            node.url(),
            node.dev
        ),
        &format!(
            "name = \"ComfyUI-Login\"\ngit = \"{}\"\nrev = \"v2\"",
            login.url()
        ),
        "mode = \"login\"",
        "password_file = \".secrets/comfyui.password\"   # FILL IN",
        "#   custom_nodes/Old.disabled: disabled",
        "#   custom_nodes/copied-by-hand: not a git checkout; kept as an unmanaged node",
        "#   custom_nodes/single.py: a single-file node",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(!text.contains("$2b$"), "never the hash");
    std::fs::write(p.path("imported.toml"), &text).unwrap();
    let out = run(p.root(), &["-f", "imported.toml", "plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let touched: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["action"].as_str())
        .filter(|a| ["clone", "checkout", "replace", "disable", "enable"].contains(a))
        .collect();
    assert!(touched.is_empty(), "no node checkout is touched: {plan:#}");
}

/// `import --snapshot`: a ComfyUI-Manager snapshot's ComfyUI commit and git nodes become pins;
/// registry packages, disabled nodes and pip lines are listed, not invented.
#[test]
fn import_of_a_comfyui_manager_snapshot() {
    let p = Project::new();
    std::fs::write(
        p.path("snapshot.json"),
        r#"{
  "comfyui": "265adad858e1f31b66cd3523a02b16f5d34ced52",
  "git_custom_nodes": {
    "https://github.com/liusida/ComfyUI-Login": {"hash": "69109257f4629a11ebe26cd65667536c4f8dddcb", "disabled": false},
    "https://github.com/rgthree/rgthree-comfy.git": {"hash": "a1f570e1d04d8e9c5b9b1e3e5d1a0e9c1b1d2e3f", "disabled": false},
    "https://github.com/example/Old-Node": {"hash": "b2", "disabled": true}
  },
  "cnr_custom_nodes": {"comfyui-impact-pack": "8.8.1"},
  "file_custom_nodes": [{"filename": "hello.py", "disabled": false}],
  "pips": {"numpy==1.26.4": "", "torch==2.5.1": ""}
}"#,
    )
    .unwrap();
    let out = run(p.root(), &["import", "--snapshot", "snapshot.json"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        "git = \"https://github.com/comfyanonymous/ComfyUI\"\nrev = \"265adad858e1f31b66cd3523a02b16f5d34ced52\"",
        "name = \"ComfyUI-Login\"\ngit = \"https://github.com/liusida/ComfyUI-Login\"\nrev = \"69109257f4629a11ebe26cd65667536c4f8dddcb\"",
        "name = \"rgthree-comfy\"",
        "#   Old-Node (https://github.com/example/Old-Node): disabled in the snapshot",
        "#   comfyui-impact-pack 8.8.1: a Comfy Registry package",
        "#   custom_nodes/hello.py: a single-file node in the snapshot",
        "#   2 pip packages recorded in the snapshot",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    // The YAML form reads the same.
    std::fs::write(
        p.path("snapshot.yaml"),
        "comfyui: 265adad858e1f31b66cd3523a02b16f5d34ced52\ngit_custom_nodes:\n  https://github.com/liusida/ComfyUI-Login:\n    hash: 69109257f4629a11ebe26cd65667536c4f8dddcb\n    disabled: false\ncnr_custom_nodes:\n  comfyui-impact-pack: 8.8.1\nfile_custom_nodes: []\npips: {}\n",
    )
    .unwrap();
    let out = run(p.root(), &["import", "--snapshot", "snapshot.yaml"]);
    let yaml = stdout(&out);
    assert!(out.status.success(), "{yaml}{}", stderr(&out));
    assert!(
        yaml.contains("name = \"ComfyUI-Login\"\ngit = \"https://github.com/liusida/ComfyUI-Login\"\nrev = \"69109257f4629a11ebe26cd65667536c4f8dddcb\"")
            && yaml.contains("#   comfyui-impact-pack 8.8.1: a Comfy Registry package"),
        "{yaml}"
    );
    // Not a snapshot: a clear error, nothing printed.
    std::fs::write(p.path("other.json"), "{\"a\": 1}").unwrap();
    let out = run(p.root(), &["import", "--snapshot", "other.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a ComfyUI-Manager snapshot"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

/// `import --compose`: a seed deployment's hand-written compose file, with the API token's hash
/// in `command:`. The hash is reported as a danger and copied nowhere; the rest (image, port,
/// args, GPUs, extra mounts, env without secret-looking values) becomes `[container]`.
#[test]
fn import_of_a_hand_written_compose_file_reports_a_hash_in_it_and_never_copies_it() {
    let p = Project::new();
    let src = source_repo(&p.path("git/ComfyUI"), 1);
    clone_at(&src, &p.path("workspace/ComfyUI"), "v1");
    let login = source_repo(&p.path("git/ComfyUI-Login"), 1);
    clone_at(
        &login,
        &p.path("workspace/ComfyUI/custom_nodes/ComfyUI-Login"),
        &login.v2,
    );
    let hash = "$$2b$$12$$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    std::fs::write(
        p.path("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  comfyui:
    image: nvidia/cuda:12.4.0-devel-ubuntu22.04
    container_name: comfyui-qwen
    command: venv/bin/python3 main.py --listen 0.0.0.0 --port 8188 --preview-method auto --login-token {hash}
    working_dir: /workspace/ComfyUI
    ports:
      - "0.0.0.0:8188:8188"
    volumes:
      - ./workspace/ComfyUI:/workspace/ComfyUI
      - /srv/models:/workspace/ComfyUI/models:ro
    environment:
      - TZ=UTC
      - HF_TOKEN=hf_not_copied
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ["0"]
              capabilities: [gpu]
    restart: unless-stopped
"#
        ),
    )
    .unwrap();
    let out = run(p.root(), &["import", "--compose", "docker-compose.yml"]);
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{text}{err}");
    for line in [
        "name = \"comfyui-qwen\"",
        "path = \"./workspace\"",
        "image = \"nvidia/cuda:12.4.0-devel-ubuntu22.04\"",
        "listen = \"0.0.0.0\"",
        "python = \"venv/bin/python3\"",
        "args = [\"--preview-method\", \"auto\"]",
        "env = { \"TZ\" = \"UTC\" }",
        "mounts = [\"/srv/models:/workspace/ComfyUI/models:ro\"]",
        "mode = \"nvidia\"\ndevices = [\"0\"]",
        "mode = \"login\"",
        "# DANGER: service comfyui's `command:` holds a bcrypt hash",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(
        err.contains("DANGER: service comfyui's `command:` holds a bcrypt hash"),
        "{err}"
    );
    assert!(err.contains("HF_TOKEN: looks like a secret"), "{err}");
    for secret in ["$2b$", "R9h/cIPz0gi", "hf_not_copied"] {
        assert!(
            !text.contains(secret) && !err.contains(secret),
            "{secret} copied:\n{text}{err}"
        );
    }
    // Without ComfyUI-Login the server is open on a public address: said, not hidden.
    std::fs::remove_dir_all(p.path("workspace/ComfyUI/custom_nodes/ComfyUI-Login")).unwrap();
    let out = run(p.root(), &["import", "--compose", "docker-compose.yml"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("allow_public_without_auth = true")
            && text
                .contains("# DANGER: ComfyUI is published on a public address without a password"),
        "{text}"
    );
}

/// `-v` says what was observed and how long each part took, on stderr, through tracing; the
/// plan on stdout is the same with or without it.
#[test]
fn verbose_shows_what_was_observed_and_how_long_each_part_took() {
    let c = Converged::new();
    let quiet = run(c.root(), &["plan"]);
    assert!(!stderr(&quiet).contains("time.busy"), "{}", stderr(&quiet));
    let out = run(c.root(), &["plan", "-v"]);
    assert_eq!(stdout(&out), stdout(&quiet));
    let err = stderr(&out);
    for span in [
        "load: close time.busy=",
        "observe:workspace: close time.busy=",
        "observe:login: close time.busy=",
        "observe:container: close time.busy=",
        "observe: close time.busy=",
        "plan: close time.busy=",
    ] {
        assert!(err.contains(span), "no `{span}` in:\n{err}");
    }
    // What was seen: ComfyUI, each custom_nodes/ entry, the password's verdict, the container.
    assert!(err.contains("ComfyUI/ state="), "{err}");
    assert!(
        err.contains("custom_nodes/ node=NodeDir { dir: \"ComfyUI-Login\""),
        "{err}"
    );
    assert!(
        err.contains("password={\"file\":{\"state\":\"present\""),
        "{err}"
    );
    assert!(err.contains("observe:container: seen container="), "{err}");
    assert!(err.contains("timings manifest_ms="), "{err}");

    // As every global option, it has a COMFYPROV_ variable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_comfyprov"))
        .arg("plan")
        .current_dir(c.root())
        .env("COMFYPROV_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("observe: close time.busy="),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_comfyprov"))
        .arg("plan")
        .current_dir(c.root())
        .env("COMFYPROV_QUIET", "true")
        .output()
        .unwrap();
    assert_eq!(stderr(&out), "", "quiet: data and errors only");
}
