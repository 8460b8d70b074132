//! The container as `plan` and `apply` see it, against the real Docker engine: a `FROM scratch`
//! image built here around a static binary, containers made with the docker CLI.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{TestContainer, TestImage, docker, docker_available, unique};

/// Sleeps forever: a container that stays running.
const SLEEPER: &str =
    "fn main() { loop { std::thread::sleep(std::time::Duration::from_secs(3600)); } }";

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A login-mode manifest for project `name` whose container runs `image`.
fn manifest(root: &Path, name: &str, image: &str) {
    std::fs::write(
        root.join("comfy.toml"),
        format!(
            r#"[project]
name = "{name}"
[workspace]
path = "workspace"
[container]
image = "{image}"
[gpu]
mode = "none"
[auth]
mode = "login"
password_file = "pw"
[[nodes]]
name = "ComfyUI-Login"
git = "file:///nonexistent/ComfyUI-Login"
rev = "69109257f4629a11ebe26cd65667536c4f8dddcb"
"#
        ),
    )
    .unwrap();
    std::fs::write(root.join("pw"), "correct horse battery staple\n").unwrap();
    std::fs::create_dir_all(root.join("workspace/ComfyUI")).unwrap();
}

fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comfyprov"))
        .args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn missing_container_is_reported_with_the_command_that_creates_it() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cp-missing");
    manifest(dir.path(), &name, "img:never-pulled");
    let out = run(dir.path(), &["plan"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains(&format!(
            "container `{name}` does not exist; comfyprov does not create containers yet: `docker-compose -p {name} -f docker-compose-with-auth.yml up -d`"
        )),
        "{}",
        both(&out)
    );
}

#[test]
fn created_and_running_containers_are_observed_and_a_login_server_without_password_is_critical() {
    if !docker_available() {
        return;
    }
    let image = TestImage::build(SLEEPER);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cp-state");
    manifest(dir.path(), &name, &image.tag);
    let label = format!("comfyprov.project={name}");
    let _c = TestContainer::create(&name, &image.tag, &["--label", &label]);

    let text = both(&run(dir.path(), &["plan"]));
    assert!(
        text.contains(&format!("container `{name}` is created")),
        "{text}"
    );
    assert!(
        !text.contains("CRITICAL"),
        "a stopped server is no risk:\n{text}"
    );
    assert!(!text.contains("was not created from comfyprov"), "{text}");

    docker(&["start", &name]);
    let text = both(&run(dir.path(), &["plan"]));
    assert!(
        text.contains(&format!("container `{name}` is running, started 20")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "CRITICAL: container `{name}` is running in login mode, but login/PASSWORD is missing"
        )),
        "{text}"
    );

    // With a PASSWORD that verifies, the finding goes away.
    let hash = bcrypt::hash("correct horse battery staple", 4).unwrap();
    std::fs::create_dir_all(dir.path().join("workspace/ComfyUI/login")).unwrap();
    std::fs::write(
        dir.path().join("workspace/ComfyUI/login/PASSWORD"),
        format!("{hash}\nadmin"),
    )
    .unwrap();
    let text = both(&run(dir.path(), &["plan", "--json"]));
    assert!(!text.contains("CRITICAL"), "{text}");
    assert!(!text.contains(&hash), "the token stays out of --json");
}

#[test]
fn container_comfyprov_did_not_create_is_reported_as_foreign() {
    if !docker_available() {
        return;
    }
    let image = TestImage::build(SLEEPER);
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cp-foreign");
    manifest(dir.path(), &name, &image.tag);
    let _c = TestContainer::create(&name, &image.tag, &[]);
    let text = both(&run(dir.path(), &["plan"]));
    assert!(
        text.contains(&format!(
            "container `{name}` was not created from comfyprov's compose file"
        )),
        "{text}"
    );
}

/// No daemon: plan still shows the workspace and says why in one line; apply does the workspace
/// steps and then fails with that line.
#[test]
fn unreachable_daemon_keeps_plan_useful_and_fails_apply_after_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("comfy.toml"),
        r#"[project]
name = "no-daemon"
[workspace]
path = "workspace"
[container]
image = "img:1"
[gpu]
mode = "none"
[auth]
mode = "none"
"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("workspace/ComfyUI")).unwrap();
    let socket = dir.path().join("no-such-docker.sock");
    let host = format!("unix://{}", socket.display());
    let go = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_comfyprov"))
            .args(args)
            .current_dir(dir.path())
            .env("DOCKER_HOST", &host)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = go(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("+ render docker-compose-no-auth.yml"),
        "{text}"
    );
    let line = format!("container not observed: the Docker daemon at {host} cannot be reached (");
    assert_eq!(text.matches(&line).count(), 1, "one clear line:\n{text}");

    let out = go(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(dir.path().join("docker-compose-no-auth.yml").exists());
    assert!(
        both(&out).contains(&format!(
            "error: the container cannot be observed: the Docker daemon at {host} cannot be reached"
        )),
        "{}",
        both(&out)
    );
}
