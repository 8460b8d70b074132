//! The container's lifecycle against the real Docker engine: observe, create, start, recreate,
//! restart, the gates (image, GPU, password), compose agreeing with the API, and
//! `verify` probing the server.
//!
//! No registry is reachable, so each test builds a `FROM scratch` image around a static binary:
//! the fake ComfyUI of `tests/fake-comfyui`, which follows the ComfyUI-Login contract. As in a
//! real deployment, ComfyUI's interpreter lives in the workspace (`venv/bin/python3`, here the
//! same fake), run from the bind-mounted folder.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    Project, SourceRepo, TestContainer, TestImage, both, docker, docker_available, fake_comfyui,
    free_port, http_get, source_repo, unique,
};

/// `[auth]` for ComfyUI-Login with the password in `pw`; the node is declared with it.
const LOGIN: &str = "[auth]\nmode = \"login\"\nusername = \"admin\"\npassword_file = \"pw\"\n";
/// `[auth]` without a password.
const NO_AUTH: &str = "[auth]\nmode = \"none\"\n";
const CPU: &str = "mode = \"none\"";

/// A deployment whose container runs the fake ComfyUI, removed (with its image) on drop.
struct Deploy {
    project: Project,
    name: String,
    image: TestImage,
    /// The image the manifest names (the built one, unless a test says otherwise).
    image_ref: String,
    node: SourceRepo,
    /// The commit `Extra` is pinned to (`v2` unless a test moves it).
    node_rev: String,
    login: SourceRepo,
    port: u16,
}

impl Drop for Deploy {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

impl Deploy {
    /// No auth, one node `Extra`, on the CPU.
    fn new() -> Deploy {
        let project = Project::new();
        let dir = project.root();
        let fake = fake_comfyui();
        let image = TestImage::from_binary(&fake, &["main.py"]);
        let python = dir.join("workspace/ComfyUI/venv/bin/python3");
        std::fs::create_dir_all(python.parent().unwrap()).unwrap();
        std::fs::write(&python, &fake).unwrap();
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("workspace/ComfyUI/comfyui_version.py"),
            "__version__ = \"0.3.68\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("pw"), "correct horse battery staple\n").unwrap();
        let node = source_repo(&dir.join("git/Extra"), 2);
        let login = source_repo(&dir.join("git/ComfyUI-Login"), 1);
        let d = Deploy {
            project,
            name: unique("cp-life"),
            image_ref: image.tag.clone(),
            image,
            node_rev: node.v2.clone(),
            node,
            login,
            port: free_port(),
        };
        d.write_manifest(&[], CPU, NO_AUTH);
        d
    }

    /// Login mode, with the password in `pw`.
    fn with_login() -> Deploy {
        let d = Deploy::new();
        d.write_manifest(&[], CPU, LOGIN);
        d
    }

    fn root(&self) -> &Path {
        self.project.root()
    }

    /// The manifest: `args` for main.py, the `[gpu]` body, the `[auth]` table (ComfyUI-Login is
    /// declared when it says `mode = "login"`), and `Extra` with `extra` added to its table.
    fn write_manifest_with(&self, args: &[&str], gpu: &str, auth: &str, extra: &str) {
        let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
        let login = if auth.contains("mode = \"login\"") {
            format!(
                "[[nodes]]\nname = \"ComfyUI-Login\"\ngit = \"{}\"\nrev = \"{}\"\n",
                self.login.url(),
                self.login.v1
            )
        } else {
            String::new()
        };
        std::fs::write(
            self.root().join("comfy.toml"),
            format!(
                r#"[project]
name = "{}"
[workspace]
path = "workspace"
[container]
image = "{}"
port = {}
args = [{}]
env = {{ NOTE = "costs $5" }}
[gpu]
{gpu}
{auth}
[[nodes]]
name = "Extra"
git = "{}"
rev = "{}"
{extra}
{login}"#,
                self.name,
                self.image_ref,
                self.port,
                args.join(", "),
                self.node.url(),
                self.node_rev
            ),
        )
        .unwrap();
    }

    fn write_manifest(&self, args: &[&str], gpu: &str, auth: &str) {
        self.write_manifest_with(args, gpu, auth, "");
    }

    fn run(&self, args: &[&str]) -> Output {
        self.project.run(args)
    }

    fn apply_ok(&self) -> Output {
        let out = self.run(&["apply", "-y"]);
        assert!(out.status.success(), "apply failed:\n{}", both(&out));
        out
    }

    fn plan_code(&self) -> i32 {
        self.run(&["plan", "--detailed-exitcode"])
            .status
            .code()
            .unwrap()
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
    }

    fn exists(&self) -> bool {
        Command::new("docker")
            .args(["inspect", &self.name])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn node_dir(&self) -> PathBuf {
        self.root().join("workspace/ComfyUI/custom_nodes/Extra")
    }

    /// `comfyprov token`.
    fn token(&self) -> String {
        let out = self.run(&["token"]);
        assert!(out.status.success(), "token: {}", both(&out));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    /// `<compose> -p <name> -f docker-compose-no-auth.yml ARGS`, which must succeed; its stdout.
    fn compose(&self, compose: &Path, args: &[&str], which: &str) -> String {
        let out = Command::new(compose)
            .args(["-p", &self.name, "-f", "docker-compose-no-auth.yml"])
            .args(args)
            .current_dir(self.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{which} {args:?}: {}", both(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GET on the published port.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http_get(self.port, path, headers)
    }
}

#[test]
fn fresh_apply_creates_and_starts_the_container_and_a_second_apply_does_nothing() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let out = d.apply_ok();
    assert!(
        both(&out).contains(&format!("done     create and start container {}", d.name)),
        "{}",
        both(&out)
    );
    assert_eq!(d.inspect("{{.State.Status}}"), "running");
    assert_eq!(
        d.inspect("{{index .Config.Labels \"comfyprov.project\"}}"),
        d.name
    );
    let started = d.inspect("{{.State.StartedAt}}");
    let id = d.inspect("{{.Id}}");
    // The healthcheck is the container's own interpreter connecting to ComfyUI's port.
    let test: Vec<String> =
        serde_json::from_str(&d.inspect("{{json .Config.Healthcheck.Test}}")).unwrap();
    assert_eq!(test[..3], ["CMD", "venv/bin/python3", "-c"]);
    let mut exec = vec!["exec", &d.name];
    exec.extend(test[1..].iter().map(String::as_str));
    docker(&exec);

    let out = d.apply_ok();
    assert!(both(&out).contains("nothing to do"), "{}", both(&out));
    assert_eq!(d.inspect("{{.State.StartedAt}}"), started, "not restarted");
    assert_eq!(d.inspect("{{.Id}}"), id, "not recreated");
    assert_eq!(d.plan_code(), 0);
}

#[test]
fn stopped_container_is_started_and_a_removed_one_created_again() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    d.apply_ok();
    docker(&["stop", "-t", "1", &d.name]);
    // verify does not wait out its timeout for a stopped server.
    let t = std::time::Instant::now();
    let out = d.run(&["verify", "--timeout", "60"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        both(&out).contains(&format!(
            "cannot verify: container {} is exited, so the server cannot answer",
            d.name
        )),
        "{}",
        both(&out)
    );
    assert!(t.elapsed().as_secs() < 30, "failed fast");
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains(&format!("~ start container {} (exited)", d.name)),
        "{plan}"
    );
    d.apply_ok();
    assert_eq!(d.inspect("{{.State.Status}}"), "running");

    docker(&["rm", "-f", &d.name]);
    let out = d.apply_ok();
    assert!(
        both(&out).contains("create and start container"),
        "{}",
        both(&out)
    );
    assert_eq!(d.inspect("{{.State.Status}}"), "running");
    assert_eq!(d.plan_code(), 0);
}

#[test]
fn changed_args_recreate_the_container_and_the_plan_names_the_field() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    d.apply_ok();
    let id = d.inspect("{{.Id}}");
    d.write_manifest(
        &["--preview-method", "auto"],
        "mode = \"none\"",
        "[auth]\nmode = \"none\"\n",
    );
    let plan = both(&d.run(&["plan"]));
    assert!(
        plan.contains(&format!(
            "~ recreate container {} (command changed)",
            d.name
        )),
        "{plan}"
    );
    d.apply_ok();
    assert_ne!(d.inspect("{{.Id}}"), id);
    assert!(
        d.inspect("{{json .Config.Cmd}}")
            .contains("--preview-method")
    );
    assert_eq!(d.plan_code(), 0);
}

#[test]
fn node_changes_restart_the_container_once_including_changes_made_between_applies() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    d.apply_ok();
    let started = d.inspect("{{.State.StartedAt}}");

    // Deleted by hand: cloned again, then one restart, last.
    std::fs::remove_dir_all(d.node_dir()).unwrap();
    let out = d.apply_ok();
    let text = both(&out);
    let clone = text.find("done     clone Extra").expect("clone done");
    let restart = text
        .find(&format!("done     restart container {}", d.name))
        .expect("restart done");
    assert!(clone < restart, "restart comes last:\n{text}");
    assert_eq!(text.matches("restart container").count(), 2, "{text}");
    let restarted = d.inspect("{{.State.StartedAt}}");
    assert_ne!(restarted, started);

    // Changed while nobody restarted: `--workspace-only` converges the files only, and the next
    // apply finds the restart pending.
    std::fs::remove_dir_all(d.node_dir()).unwrap();
    d.run(&["apply", "-y", "--workspace-only"]);
    let plan = both(&d.run(&["plan"]));
    assert!(plan.contains("(pending restart)"), "{plan}");
    d.apply_ok();
    assert_ne!(d.inspect("{{.State.StartedAt}}"), restarted);
    assert_eq!(d.plan_code(), 0);
}

#[test]
fn missing_image_is_a_clear_error_and_nothing_is_created() {
    if !docker_available() {
        return;
    }
    let mut d = Deploy::new();
    d.image_ref = format!("{}:not-built", unique("comfyprov-test-missing"));
    d.write_manifest(&[], "mode = \"none\"", "[auth]\nmode = \"none\"\n");
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains(&format!(
            "image `{}` is not present locally and cannot be pulled",
            d.image_ref
        )),
        "{}",
        both(&out)
    );
    assert!(!d.exists());
}

#[test]
fn nvidia_requested_on_a_daemon_without_it_fails_before_anything_is_created() {
    if !docker_available() {
        return;
    }
    let runtimes = docker(&["info", "-f", "{{json .Runtimes}}"]);
    if runtimes.contains("nvidia") {
        eprintln!("skipping: this daemon has the NVIDIA runtime");
        return;
    }
    let d = Deploy::new();
    d.write_manifest(
        &[],
        "mode = \"nvidia\"\ncount = 1",
        "[auth]\nmode = \"none\"\n",
    );
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains("gpu.mode is \"nvidia\", but the Docker daemon has no NVIDIA runtime"),
        "{}",
        both(&out)
    );
    assert!(!d.exists(), "nothing created");
}

#[test]
fn container_comfyprov_did_not_create_is_left_unless_force() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let _foreign = TestContainer::create(&d.name, &d.image.tag, &[], &[]);
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains(&format!("blocked: container {} is not comfyprov's", d.name)),
        "{}",
        both(&out)
    );
    assert_eq!(
        d.inspect("{{index .Config.Labels \"comfyprov.project\"}}"),
        ""
    );
    let out = d.run(&["apply", "-y", "--force"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(
        d.inspect("{{index .Config.Labels \"comfyprov.project\"}}"),
        d.name
    );
}

#[test]
fn login_mode_never_starts_a_server_without_a_password_that_verifies() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    // Login mode with a secret that does not exist.
    d.write_manifest(&[], CPU, &LOGIN.replace("\"pw\"", "\"missing.password\""));
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("(login/PASSWORD would not be valid)"),
        "the container step is blocked:\n{text}"
    );
    assert!(!d.exists(), "no server without a password");
}

/// A login-mode server already running without PASSWORD takes the empty token: `verify` catches
/// it, `plan` calls it critical, and apply closes the hole.
#[test]
fn running_login_server_without_password_is_critical_and_verify_catches_it() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    let comfy = d.root().join("workspace/ComfyUI");
    crate::support::clone_at(
        &d.login,
        &comfy.join("custom_nodes/ComfyUI-Login"),
        &d.login.v1,
    );
    crate::support::clone_at(&d.node, &comfy.join("custom_nodes/Extra"), &d.node.v2);
    // Started by hand, the way a compose file without comfyprov would.
    let label = format!("comfyprov.project={}", d.name);
    let mount = format!("{}:/workspace/ComfyUI", comfy.display());
    let publish = format!("127.0.0.1:{}:8188", d.port);
    let _c = TestContainer::create(
        &d.name,
        &d.image.tag,
        &[
            "--label",
            &label,
            "-v",
            &mount,
            "-w",
            "/workspace/ComfyUI",
            "-p",
            &publish,
            "--entrypoint",
            "venv/bin/python3",
        ],
        &["main.py", "--listen", "0.0.0.0", "--port", "8188"],
    );
    docker(&["start", &d.name]);

    let out = d.run(&["verify", "--timeout", "20"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("FAIL  GET /system_stats?token= (the empty token ComfyUI-Login takes without PASSWORD): 200, expected 401"),
        "the empty token is accepted, and verify says so:\n{text}"
    );
    assert!(
        text.contains("FAIL  live argv matches the manifest"),
        "{text}"
    );
    assert_eq!(
        d.get("/system_stats?token=", &[]).0,
        200,
        "the hole is real"
    );

    let text = both(&d.run(&["plan"]));
    assert!(
        text.contains(&format!(
            "CRITICAL: container `{}` is running in login mode, but login/PASSWORD is missing",
            d.name
        )),
        "{text}"
    );
    // apply writes PASSWORD, and only then may the server be recreated from the spec.
    let out = d.apply_ok();
    assert!(both(&out).contains("Verified:"), "{}", both(&out));
    assert_eq!(
        d.get("/system_stats?token=", &[]).0,
        401,
        "the hole is closed"
    );
    let text = both(&d.run(&["plan"]));
    assert!(!text.contains("CRITICAL"), "{text}");
}

#[test]
fn verify_passes_after_a_fresh_login_apply_and_probes_like_a_client() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    let out = d.apply_ok();
    let text = both(&out);
    for line in [
        "ok    GET /system_stats without a token: 401",
        "ok    GET /system_stats with the token (Bearer): 200",
        "ok    GET /system_stats?token= (the empty token ComfyUI-Login takes without PASSWORD): 401",
        "ok    GET /system_stats as a browser (Accept: text/html): 302 to /login",
        "ok    live argv matches the manifest: main.py --listen 0.0.0.0 --port 8188 --cpu",
        "ok    node Extra: loaded",
        "ok    node ComfyUI-Login: loaded",
        "server: ComfyUI 0.3.68, Python 3.11.2, torch 2.5.1+cpu, devices: cpu (cpu)",
        "note: ComfyUI-Login wrote the token into this run's log",
        "Verified: 7 checks passed.",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // As the real ComfyUI-Login (the end-to-end tier checks it there): a header that is not
    // two words is an exception in its middleware.
    assert_eq!(d.get("/system_stats", &[("Authorization", "x")]).0, 500);
    let token = d.token();
    assert!(!text.contains(&token), "apply never prints the token");

    let out = d.run(&["verify", "--json"]);
    assert!(out.status.success(), "{}", both(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["comfyui_version"], "0.3.68");
    assert_eq!(v["argv"], v["expected_argv"]);
    assert_eq!(v["imported"]["ComfyUI-Login"], true);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
    assert_eq!(v["format_version"], 1);
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "no_token",
        "bearer_token",
        "empty_token",
        "browser",
        "argv",
        "node:ComfyUI-Login",
    ] {
        assert!(ids.contains(&id), "check id {id} in {ids:?}");
    }

    // What a client sees, through the tests' own HTTP.
    let bearer = format!("Bearer {token}");
    assert_eq!(d.get("/system_stats", &[("Authorization", &bearer)]).0, 200);
    assert_eq!(d.get(&format!("/system_stats?token={token}"), &[]).0, 200);
    assert_eq!(d.get("/system_stats", &[]).0, 401);
    // The browser's way in: ComfyUI-Login checks the form's password against PASSWORD's hash.
    let login = |password: &str| {
        crate::support::http_post_form(
            d.port,
            "/login",
            &format!("username=admin&password={}", password.replace(' ', "+")),
        )
    };
    assert_eq!(
        login("correct horse battery staple"),
        (302, Some("/".to_owned()))
    );
    assert_eq!(login("wrong").1.as_deref(), Some("/login?wrong=1"));
}

/// One spec, two outputs: the container docker-compose creates from the rendered file and the
/// one apply creates through the API agree on everything the spec holds.
#[test]
fn compose_file_and_api_create_the_same_container() {
    if !docker_available() {
        return;
    }
    for (which, compose_bin) in crate::support::compose_binaries() {
        let d = Deploy::new();
        d.write_manifest(
            &["--preview-method", "auto"],
            "mode = \"none\"",
            "[auth]\nmode = \"none\"\n[policy]\nallow_public_without_auth = false\n",
        );
        d.apply_ok();
        let fields = [
            "{{.Config.Image}}",
            "{{json .Config.Cmd}}",
            "{{.Config.WorkingDir}}",
            "{{json .Config.Env}}",
            "{{index .Config.Labels \"comfyprov.project\"}}",
            "{{index .Config.Labels \"comfyprov.spec\"}}",
            "{{json .HostConfig.PortBindings}}",
            // Where the bind is, not how it was asked for: v2 records it in HostConfig.Binds,
            // v1 and the API in HostConfig.Mounts.
            "{{range .Mounts}}{{.Type}} {{.Source}} {{.Destination}}{{end}}",
            "{{json .HostConfig.DeviceRequests}}",
            "{{.HostConfig.RestartPolicy.Name}}",
            "{{json .HostConfig.Init}}",
            "{{json .Config.Healthcheck.Test}}",
        ];
        let api: Vec<String> = fields.iter().map(|f| d.inspect(f)).collect();
        docker(&["rm", "-f", &d.name]);

        let compose = |args: &[&str]| {
            d.compose(&compose_bin, args, which);
        };
        compose(&["up", "--no-start"]);
        let from_compose: Vec<String> = fields.iter().map(|f| d.inspect(f)).collect();
        for ((field, a), c) in fields.iter().zip(&api).zip(&from_compose) {
            assert_eq!(a, c, "{field} differs between the API and {which}");
        }
        // What the container is matches the manifest, so comfyprov only starts it.
        let plan = both(&d.run(&["plan"]));
        assert!(plan.contains("~ start container"), "{which}: {plan}");
        assert!(!plan.contains("recreate"), "{which}: {plan}");
        compose(&["down"]);
    }
}

/// The container comfyprov creates is a member of the compose project: the rendered file's
/// `ps`, `logs` and `down` see it, and `up -d` (which its header suggests) works instead of
/// failing on the name; under Compose v1 and v2.
#[test]
fn the_api_container_is_a_member_of_the_compose_project() {
    if !docker_available() {
        return;
    }
    for (which, compose_bin) in crate::support::compose_binaries() {
        let d = Deploy::new();
        d.apply_ok();
        let compose = |args: &[&str]| d.compose(&compose_bin, args, which);
        let ps = compose(&["ps"]);
        assert!(ps.contains(&d.name), "{which} ps:\n{ps}");
        let logs = compose(&["logs"]);
        assert!(!logs.trim().is_empty(), "{which} logs: nothing");
        compose(&["up", "-d"]);
        assert!(d.exists(), "{which}: up -d keeps a container of that name");
        compose(&["down"]);
        assert!(
            !d.exists(),
            "{which}: down removes the container comfyprov made"
        );
    }
}

#[test]
fn missing_container_is_planned_for_creation() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let out = d.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        both(&out).contains(&format!("+ create and start container {}", d.name)),
        "{}",
        both(&out)
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
    // What cannot be observed cannot match: exit 1, even with other changes pending.
    let out = go(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("+ render docker-compose-no-auth.yml"),
        "{text}"
    );
    let line = format!(
        "container not observed: the Docker daemon at {host} (DOCKER_HOST) cannot be reached ("
    );
    assert_eq!(text.matches(&line).count(), 1, "one clear line:\n{text}");

    let out = go(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains(&format!(
            "cannot verify: the Docker daemon at {host} (DOCKER_HOST) cannot be reached"
        )),
        "{}",
        both(&out)
    );

    let out = go(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(dir.path().join("docker-compose-no-auth.yml").exists());

    assert!(
        both(&out).contains(&format!(
            "error: the container cannot be observed: the Docker daemon at {host} (DOCKER_HOST) cannot be reached"
        )),
        "{}",
        both(&out)
    );
    assert!(!both(&out).contains("Converged"), "{}", both(&out));

    // The workspace now matches, the container still cannot be observed: not "matches".
    let out = go(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(!text.contains("nothing to do"), "{text}");
    assert!(
        text.contains("the container could not be observed")
            && text.contains("Not observed: the container (the Docker daemon at"),
        "{text}"
    );
    let out = go(&["plan", "--detailed-exitcode", "--workspace-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

/// The secret changed: PASSWORD is rewritten, the server restarts to read it, and the new token
/// (and only it) works.
#[test]
fn stale_password_is_synced_the_server_restarted_and_the_new_token_verifies() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    d.apply_ok();
    let old = d.token();
    let started = d.inspect("{{.State.StartedAt}}");

    std::fs::write(d.root().join("pw"), "a brand new passphrase\n").unwrap();
    let plan = both(&d.run(&["plan"]));
    assert!(plan.contains("~ write login/PASSWORD"), "{plan}");
    assert!(
        plan.contains(&format!("~ restart container {}", d.name)),
        "{plan}"
    );
    let out = d.apply_ok();
    let text = both(&out);
    assert!(
        text.contains("ok    GET /system_stats with the token (Bearer): 200"),
        "{text}"
    );
    assert!(text.contains("Verified:"), "{text}");
    assert_ne!(d.inspect("{{.State.StartedAt}}"), started, "restarted");
    let new = d.token();
    assert_ne!(new, old);
    assert_eq!(
        d.get(
            "/system_stats",
            &[("Authorization", &format!("Bearer {new}"))]
        )
        .0,
        200
    );
    assert_eq!(
        d.get(
            "/system_stats",
            &[("Authorization", &format!("Bearer {old}"))]
        )
        .0,
        401,
        "the old token is dead"
    );
    assert_eq!(d.plan_code(), 0);
}

/// Login → none: the login node is disabled, the no-auth compose file written, the server
/// restarted, and it answers without a token.
#[test]
fn switching_login_to_none_disables_the_node_and_restarts_into_an_open_server() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    d.apply_ok();
    assert_eq!(d.get("/system_stats", &[]).0, 401);

    d.write_manifest(&[], CPU, NO_AUTH);
    let out = d.apply_ok();
    let text = both(&out);
    for line in [
        "done     disable custom_nodes/ComfyUI-Login",
        "done     render docker-compose-no-auth.yml",
        &format!("done     restart container {}", d.name),
        "ok    GET /system_stats without a token (auth none): 200",
        "ok    ComfyUI-Login not loaded (auth none): not loaded (no /login page, no such folder imported)",
        "Verified:",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    assert!(
        d.root()
            .join("workspace/ComfyUI/custom_nodes/ComfyUI-Login.disabled")
            .is_dir()
    );
    assert_eq!(d.get("/system_stats", &[]).0, 200);
    assert_eq!(d.plan_code(), 0);

    // A leftover copy under another name is loaded by the server all the same: verify judges
    // by what the server loaded, not by the folder's name.
    let nodes = d.root().join("workspace/ComfyUI/custom_nodes");
    std::fs::rename(
        nodes.join("ComfyUI-Login.disabled"),
        nodes.join("ComfyUI-Login.bak"),
    )
    .unwrap();
    docker(&["restart", "-t", "1", &d.name]);
    let out = d.run(&["verify"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  ComfyUI-Login not loaded (auth none): it is loaded from custom_nodes/ComfyUI-Login.bak"),
        "{text}"
    );
}

/// An image missing locally but in a reachable registry is pulled, and the pull reports layers
/// and bytes as it goes. The registry is a real one as far as dockerd can tell.
#[test]
fn image_from_a_reachable_registry_is_pulled_with_progress() {
    if !docker_available() {
        return;
    }
    // An image whose layer no other image here has (`from_binary` makes each one unique),
    // served by the registry and then removed locally: the pull must download it.
    let local = TestImage::from_binary(&fake_comfyui(), &["main.py"]);
    let repo = unique("comfyprov-test-pull");
    let registry = crate::support::FakeRegistry::serve(&local.tag, &repo, "1");
    drop(local);
    // The pulled image is removed on drop like the built one.
    let pulled = TestImage {
        tag: format!("127.0.0.1:{}/{repo}:1", registry.port),
    };
    // Made after `pulled`, so dropped before it: the container goes before its image.
    let mut d = Deploy::new();
    d.image_ref = pulled.tag.clone();
    d.write_manifest(&[], CPU, NO_AUTH);
    let desired = d.project.desired();
    let planned = comfyprov::ops::plan(&desired, &Default::default());
    let pulls = crate::support::Recorder::default();
    let report = comfyprov::ops::apply(
        &desired,
        &planned,
        &Default::default(),
        &Default::default(),
        &pulls,
    )
    .report;
    assert!(
        report.failed().next().is_none(),
        "{:?}",
        report.failed().collect::<Vec<_>>()
    );
    assert_eq!(d.inspect("{{.Config.Image}}"), pulled.tag);
    let events = pulls.pulls.lock().unwrap();
    let last = events
        .iter()
        .rev()
        .find_map(|p| match *p {
            comfyprov::report::Progress::Pull {
                layers_done,
                layers,
                bytes_done,
                bytes_total,
            } => Some((layers_done, layers, bytes_done, bytes_total)),
            _ => None,
        })
        .expect("the pull reported progress");
    let (layers_done, layers, bytes_done, bytes_total) = last;
    assert!(layers >= 1 && layers_done == layers, "{last:?}");
    assert!(
        bytes_total > 1_000_000 && bytes_done == bytes_total,
        "{last:?}"
    );
    assert_eq!(d.run(&["verify"]).status.code(), Some(0));
}

/// A server that cannot start (here: the workspace has no interpreter) makes apply fail at its
/// verify, at once rather than after the readiness timeout.
#[test]
fn apply_fails_fast_when_the_server_cannot_start() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    std::fs::remove_file(d.root().join("workspace/ComfyUI/venv/bin/python3")).unwrap();
    let t = std::time::Instant::now();
    let out = d.run(&["apply", "-y", "--verify-timeout", "100"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains(&format!("cannot verify: container {} is", d.name))
            && text.contains("so the server cannot answer"),
        "{text}"
    );
    assert!(t.elapsed().as_secs() < 60, "did not wait out the timeout");
}

/// The container is judged by what it is, not by its labels: one started from an edited copy of
/// the rendered compose file carries comfyprov's labels, but its command and environment differ,
/// and plan says so and recreates it.
#[test]
fn a_container_changed_by_hand_under_matching_labels_is_recreated() {
    if !docker_available() || !crate::support::docker_compose_available() {
        return;
    }
    let d = Deploy::new();
    d.apply_ok();
    assert_eq!(d.plan_code(), 0);
    let rendered = std::fs::read_to_string(d.root().join("docker-compose-no-auth.yml")).unwrap();
    assert!(rendered.contains("\"--cpu\"]"), "{rendered}");
    let edited = rendered
        .replace("\"--cpu\"]", "\"--cpu\", \"--verbose\", \"DEBUG\"]")
        .replace(
            "    restart:",
            "    environment:\n      EXTRA: \"1\"\n    restart:",
        );
    std::fs::write(d.root().join("edited.yml"), edited).unwrap();
    docker(&["rm", "-f", &d.name]);
    let out = Command::new("docker-compose")
        .args(["-p", &d.name, "-f", "edited.yml", "up", "-d"])
        .current_dir(d.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let labels = d.inspect("{{index .Config.Labels \"comfyprov.spec\"}}");
    assert!(!labels.is_empty(), "the labels say comfyprov's spec");

    let out = d.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains(&format!(
            "~ recreate container {} (command, env changed)",
            d.name
        )),
        "{text}"
    );
    d.apply_ok();
    assert_eq!(d.plan_code(), 0, "recreated as the manifest says");
    assert!(!d.inspect("{{json .Config.Cmd}}").contains("--verbose"));
}

/// A recreate onto a host port something else holds is blocked at plan time, naming the holder,
/// and the running server is left as it is; once the port is free the recreate goes through.
#[test]
fn a_recreate_onto_a_taken_port_is_blocked_and_leaves_the_server_running() {
    if !docker_available() {
        return;
    }
    let mut d = Deploy::new();
    d.apply_ok();
    let id = d.inspect("{{.Id}}");
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    d.port = taken.local_addr().unwrap().port();
    d.write_manifest(&[], CPU, NO_AUTH);
    let out = d.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains(&format!("127.0.0.1:{} is taken", d.port))
            && text.contains("another process on this host holds port"),
        "{text}"
    );
    let out = d.run(&["apply", "-y"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_eq!(d.inspect("{{.Id}}"), id, "the old container is still there");
    assert_eq!(d.inspect("{{.State.Status}}"), "running");

    drop(taken);
    d.apply_ok();
    assert_ne!(d.inspect("{{.Id}}"), id, "recreated on the new port");
    assert_eq!(d.plan_code(), 0);
}

/// Extra bind mounts from the manifest (a models folder kept elsewhere) reach the container, the
/// compose file and the plan's comparison; a hand edit of the compose file is shown as a diff
/// and kept as `.bak` when apply rewrites it.
#[test]
fn extra_mounts_reach_the_container_and_a_hand_edited_compose_file_is_diffed_and_kept() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let models = d.root().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let manifest = d.root().join("comfy.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "[container]\n",
        "[container]\nmounts = [\"models:/workspace/models:ro\"]\n",
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    d.apply_ok();
    let want = std::fs::canonicalize(&models).unwrap();
    assert_eq!(
        d.inspect("{{range .Mounts}}{{if eq .Destination \"/workspace/models\"}}{{.Source}} {{.RW}}{{end}}{{end}}"),
        format!("{} false", want.display())
    );
    assert_eq!(d.plan_code(), 0, "the mount is what the manifest says");

    let compose = d.root().join("docker-compose-no-auth.yml");
    let rendered = std::fs::read_to_string(&compose).unwrap();
    let edited = rendered.replace("restart: \"unless-stopped\"", "restart: \"always\"");
    std::fs::write(&compose, &edited).unwrap();
    let plan = both(&d.run(&["plan", "--no-color"]));
    assert!(
        plan.contains("-     restart: \"always\"")
            && plan.contains("+     restart: \"unless-stopped\""),
        "{plan}"
    );
    d.apply_ok();
    assert_eq!(std::fs::read_to_string(&compose).unwrap(), rendered);
    let bak = d.root().join("docker-compose-no-auth.yml.bak");
    assert_eq!(
        std::fs::read_to_string(bak).unwrap(),
        edited,
        "the edit is kept"
    );
}

/// `down` stops and removes the container comfyprov made and leaves the workspace; a second
/// `down` has nothing to do; a container comfyprov did not make is left alone.
#[test]
fn down_removes_the_container_and_never_the_workspace() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    d.apply_ok();
    let out = d.run(&["down"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(!d.exists());
    assert!(
        d.root()
            .join("workspace/ComfyUI/custom_nodes/Extra")
            .is_dir()
    );
    assert!(d.root().join("docker-compose-no-auth.yml").exists());
    let out = d.run(&["down"]);
    assert!(both(&out).contains("nothing to do"), "{}", both(&out));

    let _foreign = TestContainer::create(&d.name, &d.image.tag, &[], &["main.py"]);
    let out = d.run(&["down"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(both(&out).contains("is not comfyprov's"), "{}", both(&out));
    assert!(d.exists(), "left alone");
}

/// `logs` shows the server's log with the token masked: ComfyUI-Login logs it at start.
#[test]
fn logs_mask_the_token_the_login_node_prints() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    d.apply_ok();
    let token = d.token();
    let raw = docker(&["logs", &d.name]);
    let out = d.run(&["logs"]);
    assert!(out.status.success(), "{}", both(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("For direct API calls, use token=****"),
        "{text}\n(docker logs: {})",
        raw.len()
    );
    assert!(!text.contains(&token), "the token is masked");
    let out = d.run(&["logs", "--tail", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() <= 1);
}

/// Workflow checks: `verify --workflow FILE` submits an API-format workflow with the token and
/// follows it to completion; `[[checks]]` with `on_apply` run at the end of apply; the server's
/// own errors (a refused prompt, a node's exception) are reported, exit 1; `--json` lists them.
#[test]
fn workflow_checks_report_outputs_or_the_servers_own_error() {
    if !docker_available() {
        return;
    }
    let d = Deploy::with_login();
    let write = |name: &str, classes: &[&str]| {
        let nodes: Vec<String> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    r#""{}": {{"class_type": "{c}", "inputs": {{"filename_prefix": "check"}}}}"#,
                    i + 1
                )
            })
            .collect();
        std::fs::write(
            d.root().join(name),
            format!("{{\"prompt\": {{{}}}}}", nodes.join(", ")),
        )
        .unwrap();
    };
    write("good.json", &["EmptyImage", "ImageInvert", "SaveImage"]);
    write("unknown.json", &["EmptyImage", "NoSuchNode"]);
    write("raises.json", &["EmptyImage", "FakeRaise"]);
    std::fs::write(d.root().join("ui.json"), r#"{"nodes": [], "links": []}"#).unwrap();
    // A [[checks]] entry run by apply too.
    let manifest = std::fs::read_to_string(d.root().join("comfy.toml")).unwrap();
    std::fs::write(
        d.root().join("comfy.toml"),
        format!("{manifest}\n[[checks]]\nname = \"smoke\"\nworkflow = \"good.json\"\ntimeout = 30\non_apply = true\n"),
    )
    .unwrap();
    let text = both(&d.apply_ok());
    assert!(
        text.contains("ok    workflow smoke: rendered check_00001_.png in"),
        "{text}"
    );
    assert!(
        d.root()
            .join("workspace/ComfyUI/output/check_00001_.png")
            .is_file()
    );

    let out = d.run(&[
        "verify",
        "--workflow",
        "unknown.json",
        "--workflow",
        "raises.json",
    ]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for line in [
        "ok    workflow smoke: rendered check_00002_.png",
        "FAIL  workflow unknown.json: POST /prompt refused it (400): Cannot execute because node NoSuchNode does not exist. (Node ID '#2')",
        "FAIL  workflow raises.json: node 2 (FakeRaise) failed: FakeRaise raised, as asked",
    ] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
    let token = d.token();
    assert!(!text.contains(&token), "the token is never printed");

    let out = d.run(&["verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workflows"][0]["name"], "smoke");
    assert_eq!(v["workflows"][0]["ok"], true);
    assert_eq!(v["workflows"][0]["outputs"][0], "check_00003_.png");

    // The editor's format is refused before anything is sent, with what to do.
    let out = d.run(&["verify", "--workflow", "ui.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(both(&out).contains("Save (API)"), "{}", both(&out));
}

/// `docker context use`, `DOCKER_CONTEXT` and `ssh://` endpoints mean for comfyprov what they
/// mean for `docker`. The ssh here is a stand-in on PATH that records its arguments and runs the
/// real `docker system dial-stdio` against this machine's engine, as sshd would on the far side.
#[test]
fn the_docker_context_and_ssh_endpoints_are_honoured() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let _foreign = TestContainer::create(&d.name, &d.image.tag, &[], &[]);
    let foreign = format!("blocked: container {} is not comfyprov's", d.name);
    let config = d.project.path("docker-config");
    let context = |name: &str, host: &str| {
        let hash = comfyprov_core::digest::sha256_hex(name.as_bytes());
        let meta = config.join("contexts/meta").join(hash);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            ),
        )
        .unwrap();
    };
    let dead = d.project.path("no-such-docker.sock");
    context("dead", &format!("unix://{}", dead.display()));
    context("here", "unix:///var/run/docker.sock");
    context("box", "ssh://ops@gpu-box:2222");
    std::fs::write(config.join("config.json"), r#"{"currentContext":"dead"}"#).unwrap();
    let ssh_dir = d.project.path("bin");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let log = d.project.path("ssh-args.log");
    std::fs::write(
        ssh_dir.join("ssh"),
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift; shift\nunset DOCKER_HOST DOCKER_CONTEXT DOCKER_CONFIG\nexec \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(ssh_dir.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", ssh_dir.display(), std::env::var("PATH").unwrap());
    let plan = |env: &[(&str, &str)]| {
        let mut c = d.project.command();
        c.args(["plan"])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        both(&out)
    };

    // The current context (`docker context use dead`) is the daemon asked, and the message says so.
    let text = plan(&[]);
    assert!(
        text.contains(&format!(
            "the Docker daemon at unix://{} (docker context `dead`, docker context use) cannot be reached",
            dead.display()
        )),
        "{text}"
    );
    // DOCKER_CONTEXT overrides it; the engine there has the hand-made container.
    let text = plan(&[("DOCKER_CONTEXT", "here")]);
    assert!(text.contains(&foreign), "{text}");
    // DOCKER_HOST overrides both, as for docker.
    let text = plan(&[
        ("DOCKER_CONTEXT", "dead"),
        ("DOCKER_HOST", "unix:///var/run/docker.sock"),
    ]);
    assert!(text.contains(&foreign), "{text}");
    // A context that does not exist is named, with what chose it.
    let text = plan(&[("DOCKER_CONTEXT", "nope")]);
    assert!(
        text.contains("the docker context `nope` (chosen by DOCKER_CONTEXT) cannot be used"),
        "{text}"
    );
    assert!(!log.exists(), "no ssh yet");

    // An ssh:// context: ssh runs `docker system dial-stdio` on the far side, with the user and port.
    let text = plan(&[("DOCKER_CONTEXT", "box")]);
    assert!(text.contains(&foreign), "{text}");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(
        args.lines().all(
            |l| l.ends_with("-l ops -p 2222 -- gpu-box docker system dial-stdio")
                && l.contains("BatchMode=yes")
        ),
        "{args}"
    );
    // An ssh that cannot get in: its own words, not a timeout.
    std::fs::write(
        ssh_dir.join("ssh"),
        "#!/bin/sh\necho 'ops@gpu-box: Permission denied (publickey).' >&2\nexit 255\n",
    )
    .unwrap();
    let text = plan(&[("DOCKER_HOST", "ssh://ops@gpu-box")]);
    assert!(
        text.contains("ssh gpu-box: ops@gpu-box: Permission denied (publickey)."),
        "{text}"
    );
}

/// Round trip from a deployment made by hand: nodes cloned one by one and a container started
/// with `docker run`. `import` writes a manifest whose plan touches no checkout and only adopts
/// the container, saying what adopting it changes; with --force, apply adopts it and the plan
/// is then empty.
#[test]
fn import_of_a_hand_made_deployment_only_adopts_the_container() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    std::fs::remove_file(d.root().join("comfy.toml")).unwrap();
    let comfy = d.root().join("workspace/ComfyUI");
    crate::support::clone_at(&d.node, &comfy.join("custom_nodes/Extra"), &d.node.v2);
    let mount = format!("{}:/workspace/ComfyUI", comfy.display());
    let publish = format!("127.0.0.1:{}:8188", d.port);
    docker(&[
        "run",
        "-d",
        "--name",
        &d.name,
        "--label",
        crate::support::TEST_LABEL,
        "-v",
        &mount,
        "-w",
        "/workspace/ComfyUI",
        "-p",
        &publish,
        "--entrypoint",
        "venv/bin/python3",
        &d.image.tag,
        "main.py",
        "--listen",
        "0.0.0.0",
        "--port",
        "8188",
        "--cpu",
    ]);
    let out = d.run(&[
        "import",
        "--workspace",
        "workspace",
        "--container",
        &d.name,
        "--out",
        "comfy.toml",
    ]);
    assert!(out.status.success(), "{}", both(&out));
    let manifest = std::fs::read_to_string(d.root().join("comfy.toml")).unwrap();
    assert!(
        manifest.contains("rev = \"v2\""),
        "the tag HEAD is at:\n{manifest}"
    );

    let heads = || crate::support::git(&comfy.join("custom_nodes/Extra"), &["rev-parse", "HEAD"]);
    let head = heads();
    let out = d.run(&["plan", "--detailed-exitcode"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    // The steps: the compose file comfyprov keeps beside the manifest, and the container.
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["  + ", "  ~ ", "  - ", "  ! "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(steps.len(), 2, "{steps:#?}\n{text}");
    assert!(
        steps[0].contains("+ render docker-compose-no-auth.yml"),
        "{text}"
    );
    assert!(
        steps[1].contains(&format!("blocked: container {} is not comfyprov's", d.name)),
        "{text}"
    );
    assert!(
        text.contains("adopting it changes nothing but comfyprov's labels")
            || text.contains("adopting it also changes: "),
        "says what adopting changes:\n{text}"
    );
    let out = d.run(&["plan", "--force"]);
    assert!(
        both(&out).contains(&format!(
            "replace container {} (not created by comfyprov)",
            d.name
        )),
        "{}",
        both(&out)
    );
    let out = d.run(&["apply", "-y", "--force", "--no-verify"]);
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(heads(), head, "the checkout was not touched");
    let out = d.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
}

/// verify asks the running server for each declared model (`GET /models/<folder>`, what
/// ComfyUI's loader nodes list) and reports the one it does not list; a model placed while the
/// server runs is listed without a restart.
#[test]
fn verify_reports_whether_the_server_lists_each_model() {
    if !docker_available() {
        return;
    }
    let d = Deploy::new();
    let src = d.root().join("vae-src.safetensors");
    std::fs::write(&src, b"not really a VAE").unwrap();
    let models = format!(
        "[[models]]\nurl = \"file://{}\"\npath = \"vae/tiny.safetensors\"\n",
        src.display()
    );
    d.write_manifest_with(&[], CPU, NO_AUTH, &models);
    std::fs::create_dir_all(d.root().join("cache")).unwrap();
    let run = |args: &[&str]| {
        d.project
            .command()
            .args(args)
            .env("COMFYPROV_MODEL_CACHE", d.root().join("cache"))
            .output()
            .unwrap()
    };
    let out = run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("ok    model vae/tiny.safetensors: listed by GET /models/vae"),
        "{text}"
    );
    let started = d.inspect("{{.State.StartedAt}}");
    // Gone from the folder: verify says so.
    std::fs::remove_file(
        d.root()
            .join("workspace/ComfyUI/models/vae/tiny.safetensors"),
    )
    .unwrap();
    let out = run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(
        both(&out).contains(
            "FAIL  model vae/tiny.safetensors: GET /models/vae lists 0 files but not this one"
        ),
        "{}",
        both(&out)
    );
    // Put back by apply (from the cache), listed again, and the server was not restarted.
    let out = run(&["apply", "-y"]);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("from the cache, linked"),
        "{}",
        both(&out)
    );
    assert_eq!(
        d.inspect("{{.State.StartedAt}}"),
        started,
        "no restart for a model"
    );
}
