//! The planner, scenario by scenario: a `Desired` from a manifest, an `Observed` built by hand,
//! and a snapshot of the plan as `comfyprov plan` prints it. Pure and fast: no disk, no git.

use std::path::Path;

use comfyprov::lock::{FORMAT, Inputs, Lock, LockedGit, Package, SourceFile};
use comfyprov::manifest::{self, Desired};
use comfyprov::observe::container::ContainerInfo;
use comfyprov::observe::login::{HashState, PasswordFile, PasswordState};
use comfyprov::observe::{
    Checkout, ContainerState, DirState, Dirty, FileState, NodeDir, Observed, SecretState,
    sha256_hex,
};
use comfyprov::observed::{EnvState, LockState, PythonObserved};
use comfyprov::plan::{self, Options, Plan, display};

const LOGIN_PIN: &str = "69109257f4629a11ebe26cd65667536c4f8dddcb";
const OTHER: &str = "1111111111111111111111111111111111111111";
const COMFY_TAG_COMMIT: &str = "2222222222222222222222222222222222222222";
const LOGIN_URL: &str = "https://github.com/liusida/ComfyUI-Login";

const BASE: &str = r#"
[project]
name = "qwen"

[workspace]
path = "./workspace"

[comfyui]
git = "https://github.com/comfyanonymous/ComfyUI"
rev = "v0.3.68"

[container]
image = "nvidia/cuda:12.4.0-devel-ubuntu22.04"
listen = "0.0.0.0"

[gpu]
mode = "nvidia"
devices = ["0"]

[auth]
mode = "login"
password_file = ".secrets/pw"
generate = true

[[nodes]]
name = "ComfyUI-Login"
git = "https://github.com/liusida/ComfyUI-Login"
rev = "69109257f4629a11ebe26cd65667536c4f8dddcb"
"#;

fn desired_from(text: &str) -> Desired {
    match manifest::parse("comfy.toml", text.to_owned(), Path::new("/nonexistent")) {
        Ok(d) => d,
        Err(p) => panic!("{}", manifest::render_plain(&p, 80)),
    }
}

fn desired() -> Desired {
    desired_from(BASE)
}

fn checkout(head: &str, origin: &str) -> DirState {
    DirState::Git(Checkout {
        head: Some(head.to_owned()),
        origin: Some(origin.to_owned()),
        dirty: None,
        resolved: None,
        ..Default::default()
    })
}

/// A ComfyUI-Login checkout at `head` with changes to the tracked `files`.
fn dirty_login(head: &str, files: &[&str]) -> DirState {
    with_changes(head, files, files.len())
}

/// A ComfyUI-Login checkout at `head` with the untracked `files` (what nodes write at run time).
fn untracked_login(head: &str, files: &[&str]) -> DirState {
    with_changes(head, files, 0)
}

fn with_changes(head: &str, files: &[&str], tracked: usize) -> DirState {
    DirState::Git(Checkout {
        head: Some(head.to_owned()),
        origin: Some(LOGIN_URL.to_owned()),
        dirty: Some(Dirty {
            count: files.len(),
            tracked,
            sample: files.iter().map(|f| f.to_string()).collect(),
        }),
        resolved: None,
        ..Default::default()
    })
}

fn node(dir: &str, state: Option<DirState>) -> NodeDir {
    NodeDir {
        dir: dir.to_owned(),
        state,
    }
}

fn password(hash: HashState, username: Option<&str>, mode: u32) -> PasswordFile {
    PasswordFile::Present {
        hash,
        username: username.map(str::to_owned),
        mode,
    }
}

fn good_password() -> PasswordFile {
    password(HashState::Verified, Some("admin"), 0o600)
}

/// Reality exactly as `d` declares it.
fn converged(d: &Desired) -> Observed {
    let compose = comfyprov::render::compose::render(d).map(|y| FileState::Present {
        sha256: sha256_hex(y.as_bytes()),
        text: y.clone(),
    });
    let mut nodes: Vec<NodeDir> = d
        .nodes
        .iter()
        .map(|n| {
            node(
                &n.name,
                Some(checkout(&commit_of(&n.source.rev), &n.source.url)),
            )
        })
        .collect();
    nodes.sort_by(|a, b| a.dir.cmp(&b.dir));
    Observed {
        workspace_exists: true,
        comfyui: DirState::Git(Checkout {
            head: Some(COMFY_TAG_COMMIT.to_owned()),
            origin: Some("https://github.com/comfyanonymous/ComfyUI".to_owned()),
            dirty: None,
            resolved: Some(COMFY_TAG_COMMIT.to_owned()),
            ..Default::default()
        }),
        custom_nodes: nodes,
        odd_names: Vec::new(),
        port: Default::default(),
        secret: match d.auth {
            manifest::AuthSpec::None { .. } => SecretState::NotUsed,
            _ => SecretState::Present { mode: Some(0o600) },
        },
        password: PasswordState {
            file: good_password(),
            legacy: PasswordFile::Missing,
            digest: String::new(),
            legacy_digest: String::new(),
        },
        compose,
        container: match d.container {
            Some(_) => ContainerState::NotObserved {
                reason: "comfyprov does not manage containers yet".to_owned(),
            },
            None => ContainerState::NotManaged,
        },
        inputs_changed_ns: None,
        python: None,
        models: None,
    }
}

/// A full commit id for a pin in these tests (commit pins are written in full here).
fn commit_of(rev: &manifest::Rev) -> String {
    match rev {
        manifest::Rev::Commit(c) => format!("{c:0<40}"),
        manifest::Rev::Named(_) => OTHER.to_owned(),
    }
}

fn set_node(o: &mut Observed, dir: &str, state: Option<DirState>) {
    o.custom_nodes.retain(|n| n.dir != dir);
    o.custom_nodes.push(node(dir, state));
    o.custom_nodes.sort_by(|a, b| a.dir.cmp(&b.dir));
}

fn render(p: &Plan) -> String {
    display::render(p, "qwen (comfy.toml)", false)
}

fn run(d: &Desired, o: &Observed) -> String {
    render(&plan::plan(d, o, &Options::default()))
}

fn run_forced(d: &Desired, o: &Observed) -> String {
    render(&plan::plan(
        d,
        o,
        &Options {
            force: true,
            ..Default::default()
        },
    ))
}

macro_rules! scenario {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            let out: String = $body;
            insta::with_settings!({ snapshot_path => "snapshots/plan", prepend_module_to_snapshot => false }, {
                insta::assert_snapshot!(stringify!($name), out);
            });
        }
    };
}

#[test]
fn converged_workspace_plans_nothing() {
    let d = desired();
    let p = plan::plan(&d, &converged(&d), &Options::default());
    assert!(!p.has_changes(), "unexpected steps: {:#?}", p.steps);
    // The container note, and (login mode) that ComfyUI-Login logs its token.
    assert_eq!(p.notes.len(), 2, "{:#?}", p.notes);
    assert!(matches!(
        p.notes[0],
        comfyprov::plan::Note::TokenInLog { .. }
    ));
}

#[test]
fn planning_is_deterministic() {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", None);
    set_node(&mut o, "Extra", None);
    o.password.file = PasswordFile::Missing;
    assert_eq!(
        plan::plan(&d, &o, &Options::default()),
        plan::plan(&d, &o, &Options::default())
    );
}

scenario!(fresh_machine_plans_everything, {
    let d = desired();
    let o = Observed {
        workspace_exists: false,
        comfyui: DirState::Missing,
        custom_nodes: vec![],
        odd_names: Vec::new(),
        port: Default::default(),
        secret: SecretState::Missing,
        password: PasswordState {
            file: PasswordFile::Missing,
            legacy: PasswordFile::Missing,
            digest: String::new(),
            legacy_digest: String::new(),
        },
        compose: Some(FileState::Missing),
        container: ContainerState::NotObserved {
            reason: "not yet".to_owned(),
        },
        inputs_changed_ns: None,
        python: None,
        models: None,
    };
    run(&d, &o)
});

scenario!(missing_node_is_cloned, {
    let d = desired();
    let mut o = converged(&d);
    o.custom_nodes.clear();
    run(&d, &o)
});

scenario!(node_at_another_commit_is_checked_out, {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", Some(checkout(OTHER, LOGIN_URL)));
    run(&d, &o)
});

scenario!(short_commit_pin_matches_by_prefix, {
    let d = desired_from(&BASE.replace(LOGIN_PIN, "6910925"));
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(checkout(LOGIN_PIN, LOGIN_URL)),
    );
    run(&d, &o)
});

scenario!(comfyui_at_another_tag_is_checked_out, {
    let d = desired();
    let mut o = converged(&d);
    o.comfyui = DirState::Git(Checkout {
        head: Some(OTHER.to_owned()),
        origin: Some("https://github.com/comfyanonymous/ComfyUI.git".to_owned()),
        dirty: None,
        resolved: Some(COMFY_TAG_COMMIT.to_owned()),
        ..Default::default()
    });
    run(&d, &o)
});

scenario!(tag_not_fetched_yet_is_checked_out_after_fetch, {
    let d = desired();
    let mut o = converged(&d);
    o.comfyui = DirState::Git(Checkout {
        head: Some(OTHER.to_owned()),
        origin: Some("https://github.com/comfyanonymous/ComfyUI".to_owned()),
        dirty: None,
        resolved: None,
        ..Default::default()
    });
    run(&d, &o)
});

scenario!(comfyui_missing_without_comfyui_table_is_blocked, {
    let d = desired_from(&BASE.replace(
        "[comfyui]\ngit = \"https://github.com/comfyanonymous/ComfyUI\"\nrev = \"v0.3.68\"\n",
        "",
    ));
    let mut o = converged(&d);
    o.comfyui = DirState::Missing;
    run(&d, &o)
});

scenario!(dirty_node_that_must_move_is_refused, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(dirty_login(OTHER, &["password.py", "notes.txt"])),
    );
    run(&d, &o)
});

scenario!(dirty_node_with_force_is_replaced, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(dirty_login(OTHER, &["password.py"])),
    );
    run_forced(&d, &o)
});

scenario!(dirty_node_at_its_pin_is_only_noted, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(untracked_login(LOGIN_PIN, &["login.html"])),
    );
    run(&d, &o)
});

scenario!(tracked_change_at_its_pin_is_refused, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(dirty_login(LOGIN_PIN, &["password.py"])),
    );
    run(&d, &o)
});

scenario!(tracked_change_at_its_pin_with_force_is_replaced, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(dirty_login(LOGIN_PIN, &["password.py"])),
    );
    run_forced(&d, &o)
});

scenario!(non_git_node_dir_is_refused, {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", Some(DirState::NotGit));
    run(&d, &o)
});

scenario!(non_git_node_dir_with_force_is_replaced, {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", Some(DirState::NotGit));
    run_forced(&d, &o)
});

scenario!(foreign_origin_is_refused, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(checkout(
            LOGIN_PIN,
            "https://github.com/someone/ComfyUI-Login-fork",
        )),
    );
    run(&d, &o)
});

scenario!(checkout_without_origin_is_refused, {
    let d = desired();
    let mut o = converged(&d);
    set_node(
        &mut o,
        "ComfyUI-Login",
        Some(DirState::Git(Checkout {
            head: Some(LOGIN_PIN.to_owned()),
            ..Checkout::default()
        })),
    );
    run(&d, &o)
});

#[test]
fn origin_with_git_suffix_or_slash_is_the_same_repository() {
    let d = desired();
    for origin in [format!("{LOGIN_URL}.git"), format!("{LOGIN_URL}/")] {
        let mut o = converged(&d);
        set_node(&mut o, "ComfyUI-Login", Some(checkout(LOGIN_PIN, &origin)));
        assert!(
            !plan::plan(&d, &o, &Options::default()).has_changes(),
            "{origin}"
        );
    }
}

scenario!(disabled_twin_is_enabled_and_checked_out, {
    let d = desired();
    let mut o = converged(&d);
    o.custom_nodes.clear();
    set_node(
        &mut o,
        "ComfyUI-Login.disabled",
        Some(checkout(OTHER, LOGIN_URL)),
    );
    run(&d, &o)
});

scenario!(unmanaged_dirs_are_kept_and_listed_under_keep_policy, {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login.bak", None);
    set_node(&mut o, "SomethingElse", None);
    run(&d, &o)
});

scenario!(unmanaged_dirs_are_disabled_under_disable_policy, {
    let d = desired_from(&format!(
        "{BASE}\n[policy]\nunmanaged_nodes = \"disable\"\n"
    ));
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login.bak", None);
    set_node(&mut o, "SomethingElse", None);
    set_node(&mut o, "Old.disabled", None);
    run(&d, &o)
});

scenario!(auth_none_disables_the_login_node, {
    let d = desired_from(
        r#"
[project]
name = "qwen"
[workspace]
path = "./workspace"
[container]
image = "img"
listen = "127.0.0.1"
[auth]
mode = "none"
"#,
    );
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", None);
    run(&d, &o)
});

scenario!(missing_password_file_is_written, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = PasswordFile::Missing;
    run(&d, &o)
});

scenario!(stale_password_hash_is_replaced, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Mismatch, Some("admin"), 0o600);
    run(&d, &o)
});

scenario!(malformed_password_hash_is_replaced, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Malformed, Some("admin"), 0o600);
    run(&d, &o)
});

scenario!(password_without_username_line_keeps_its_hash, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Verified, None, 0o600);
    run(&d, &o)
});

scenario!(password_with_another_username_keeps_its_hash, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Verified, Some("root"), 0o600);
    run(&d, &o)
});

scenario!(world_readable_password_gets_mode_0600, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Verified, Some("admin"), 0o644);
    run(&d, &o)
});

scenario!(legacy_password_that_verifies_is_moved_keeping_the_token, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = PasswordFile::Missing;
    o.password.legacy = good_password();
    run(&d, &o)
});

scenario!(legacy_password_without_username_is_moved_then_completed, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = PasswordFile::Missing;
    o.password.legacy = password(HashState::Verified, None, 0o644);
    run(&d, &o)
});

scenario!(stale_legacy_password_is_removed_and_a_new_one_written, {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = PasswordFile::Missing;
    o.password.legacy = password(HashState::Mismatch, Some("admin"), 0o644);
    run(&d, &o)
});

scenario!(legacy_password_beside_a_good_one_is_removed, {
    let d = desired();
    let mut o = converged(&d);
    o.password.legacy = good_password();
    run(&d, &o)
});

scenario!(missing_secret_without_generate_blocks, {
    let d = desired_from(&BASE.replace("generate = true\n", ""));
    let mut o = converged(&d);
    o.secret = SecretState::Missing;
    o.password.file = password(
        HashState::Unchecked {
            reason: "no secret".to_owned(),
        },
        Some("admin"),
        0o600,
    );
    run(&d, &o)
});

scenario!(missing_secret_with_generate_is_generated_and_written, {
    let d = desired();
    let mut o = converged(&d);
    o.secret = SecretState::Missing;
    run(&d, &o)
});

scenario!(unset_password_variable_blocks, {
    let d = desired_from(&BASE.replace(
        "password_file = \".secrets/pw\"\ngenerate = true",
        "password_env = \"COMFY_PW\"",
    ));
    let mut o = converged(&d);
    o.secret = SecretState::Missing;
    run(&d, &o)
});

scenario!(secret_readable_by_others_is_noted, {
    let d = desired();
    let mut o = converged(&d);
    o.secret = SecretState::Present { mode: Some(0o644) };
    run(&d, &o)
});

scenario!(ready_hash_that_differs_is_copied, {
    let d = desired_from(&BASE.replace(
        "password_file = \".secrets/pw\"\ngenerate = true",
        "hash_file = \".secrets/hash\"",
    ));
    let mut o = converged(&d);
    o.password.file = password(HashState::Mismatch, Some("admin"), 0o600);
    run(&d, &o)
});

scenario!(missing_compose_file_is_rendered, {
    let d = desired();
    let mut o = converged(&d);
    o.compose = Some(FileState::Missing);
    run(&d, &o)
});

scenario!(compose_file_edited_by_hand_is_rendered_again, {
    let d = desired();
    let mut o = converged(&d);
    // Someone changed the restart policy and added a volume by hand: the plan shows the lines
    // the rewrite changes.
    let edited = comfyprov::render::compose::render(&d)
        .unwrap()
        .replace("restart: \"unless-stopped\"", "restart: \"always\"")
        .replace(
            "    volumes:\n",
            "    volumes:\n      - \"/srv/models:/workspace/ComfyUI/models\"\n",
        );
    o.compose = Some(FileState::Present {
        sha256: sha256_hex(edited.as_bytes()),
        text: edited,
    });
    run(&d, &o)
});

scenario!(workspace_only_manifest_has_no_compose_or_container, {
    let d = desired_from(
        r#"
[project]
name = "host"
[workspace]
path = "/opt/comfy"
[auth]
mode = "login"
password_file = "/etc/comfy/pw"
[[nodes]]
name = "ComfyUI-Login"
git = "https://github.com/liusida/ComfyUI-Login"
rev = "69109257f4629a11ebe26cd65667536c4f8dddcb"
"#,
    );
    let mut o = converged(&d);
    o.custom_nodes.clear();
    run(&d, &o)
});

scenario!(many_drifts_at_once_restart_once_with_every_reason, {
    let d = desired_from(&format!(
        "{BASE}\n[[nodes]]\nname = \"rgthree-comfy\"\ngit = \"https://github.com/rgthree/rgthree-comfy\"\nrev = \"454e645b745c096ad8aeb430e848d9f0a51f169b\"\n[policy]\nunmanaged_nodes = \"disable\"\n"
    ));
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", Some(checkout(OTHER, LOGIN_URL)));
    set_node(&mut o, "rgthree-comfy", None);
    set_node(&mut o, "rgthree-comfy", Some(DirState::Missing));
    set_node(&mut o, "Leftover", None);
    o.password.file = password(HashState::Mismatch, Some("admin"), 0o600);
    o.compose = Some(FileState::Missing);
    run(&d, &o)
});

#[test]
fn plan_json_has_a_format_version_and_typed_steps() {
    let d = desired();
    let mut o = converged(&d);
    set_node(&mut o, "ComfyUI-Login", Some(checkout(OTHER, LOGIN_URL)));
    o.password.file = PasswordFile::Missing;
    let p = plan::plan(&d, &o, &Options::default());
    let json = display::json(&p, "comfy.toml", "qwen", "f1ng3rpr1nt");
    insta::with_settings!({ snapshot_path => "snapshots/plan", prepend_module_to_snapshot => false }, {
        insta::assert_json_snapshot!("plan_json", json);
    });
}

/// BASE with `[python]` and `requirements = true` on the login node, observed converged: a
/// running container from the current spec, `comfy.lock` resolved from today's inputs, and the
/// environment holding exactly the lock's packages.
fn with_python() -> (Desired, Observed) {
    let d = desired_from(
        &BASE
            .replace(
                "rev = \"69109257f4629a11ebe26cd65667536c4f8dddcb\"",
                "rev = \"69109257f4629a11ebe26cd65667536c4f8dddcb\"\nrequirements = true",
            )
            .replace(
                "[gpu]",
                "[python]\nversion = \"3.11\"\ntorch = { version = \"2.5.1\", index = \"https://download.pytorch.org/whl/cu124\" }\n\n[gpu]",
            ),
    );
    let mut o = converged_with_container(&d);
    let spec = d.python.clone().unwrap();
    let inputs = Inputs::new(
        &spec,
        vec![
            SourceFile {
                path: "requirements.txt".to_owned(),
                sha256: "a".repeat(64),
            },
            SourceFile {
                path: "custom_nodes/ComfyUI-Login/requirements.txt".to_owned(),
                sha256: "b".repeat(64),
            },
        ],
    );
    let package = |name: &str, version: &str| Package {
        name: name.to_owned(),
        version: version.to_owned(),
        hashes: vec![format!("sha256:{}", "c".repeat(64))],
    };
    let lock = Lock {
        version: FORMAT,
        inputs_sha256: String::new(),
        resolved_from: inputs.clone(),
        git: plan::pin_targets(&d)
            .into_iter()
            .map(|(t, rev)| LockedGit {
                name: t.name().to_owned(),
                rev,
                commit: OTHER.to_owned(),
            })
            .collect(),
        packages: vec![package("numpy", "2.1.2"), package("torch", "2.5.1+cu124")],
    };
    o.python = Some(PythonObserved {
        lock: LockState::Present(Box::new(lock)),
        inputs,
        env: EnvState::Present {
            python: Some("3.11.2".to_owned()),
            built_for: Some(d.container.as_ref().unwrap().image.clone()),
            packages: [("numpy", "2.1.2"), ("torch", "2.5.1+cu124")]
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        },
    });
    (d, o)
}

fn py(o: &mut Observed) -> &mut PythonObserved {
    o.python.as_mut().unwrap()
}

fn actions(p: &Plan) -> Vec<String> {
    p.steps.iter().map(|s| s.action.describe()).collect()
}

#[test]
fn a_current_lock_and_an_environment_that_holds_it_plan_nothing() {
    let (d, o) = with_python();
    let p = plan::plan(&d, &o, &Options::default());
    assert!(!p.has_changes(), "{:#?}", p.steps);
}

#[test]
fn an_environment_that_differs_from_the_lock_is_synced_then_the_server_restarts_once() {
    let (d, mut o) = with_python();
    if let EnvState::Present { packages, .. } = &mut py(&mut o).env {
        packages.insert("numpy".to_owned(), "1.26.4".to_owned());
        packages.insert("foo".to_owned(), "0.1".to_owned());
    }
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        actions(&p),
        [
            "sync the Python environment venv/ (2 changes)",
            "restart container qwen"
        ]
    );
    assert_eq!(
        p.steps[0].reasons,
        ["venv/ differs from the lock in 2 packages"]
    );
    let text = display::render(&p, "qwen (comfy.toml)", false);
    assert!(text.contains("      - foo 0.1\n"), "{text}");
    assert!(text.contains("      numpy 1.26.4 → 2.1.2\n"), "{text}");
    assert_eq!(
        p.steps[1].reasons,
        ["sync the Python environment venv/ (2 changes)"]
    );
}

#[test]
fn a_changed_requirements_file_relocks_then_syncs_to_the_new_lock() {
    let (d, mut o) = with_python();
    py(&mut o).inputs.files[1].sha256 = "d".repeat(64);
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        actions(&p),
        [
            "resolve the Python requirements into comfy.lock",
            "sync the Python environment venv/ to the new comfy.lock",
            "restart container qwen"
        ]
    );
    assert_eq!(
        p.steps[0].reasons,
        ["comfy.lock was resolved from other inputs: ComfyUI-Login/requirements.txt changed"]
    );
    assert_eq!(
        p.steps[1].reasons,
        ["comfy.lock is resolved again by the step before"]
    );
}

#[test]
fn locked_refuses_a_stale_lock_and_plans_no_sync() {
    let (d, mut o) = with_python();
    if let LockState::Present(l) = &mut py(&mut o).lock {
        l.resolved_from.python = "3.12".to_owned();
    }
    let locked = Options {
        locked: true,
        ..Default::default()
    };
    let p = plan::plan(&d, &o, &locked);
    assert_eq!(
        actions(&p),
        ["blocked: comfy.lock is not current (--locked)"]
    );
    let text = display::render(&p, "qwen (comfy.toml)", false);
    assert!(text.contains("python.version 3.12 → 3.11"), "{text}");
    assert!(
        text.contains("run `comfyprov lock` and commit comfy.lock"),
        "{text}"
    );
}

#[test]
fn a_lock_with_other_git_pins_is_stale() {
    let (d, mut o) = with_python();
    if let LockState::Present(l) = &mut py(&mut o).lock {
        l.git[0].rev = "v0.3.60".to_owned();
    }
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        p.steps[0].reasons,
        ["comfy.lock records other git pins: ComfyUI v0.3.60 → v0.3.68"]
    );
}

#[test]
fn a_node_cloned_in_this_apply_is_locked_and_synced_before_the_one_restart() {
    let (d, mut o) = with_python();
    o.custom_nodes.retain(|n| n.dir != "ComfyUI-Login");
    let p = plan::plan(&d, &o, &Options::default());
    let a = actions(&p);
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(a[0].starts_with("clone ComfyUI-Login"), "{a:?}");
    assert_eq!(a[1], "resolve the Python requirements into comfy.lock");
    assert_eq!(
        p.steps[1].reasons,
        [
            "custom_nodes/ComfyUI-Login changes in this apply; the lock is checked against its requirements afterwards"
        ]
    );
    assert_eq!(
        a[2],
        "sync the Python environment venv/ to the new comfy.lock"
    );
    assert_eq!(a[3], "restart container qwen");
    // Both reasons on the one restart.
    assert_eq!(p.steps[3].reasons.len(), 2, "{:?}", p.steps[3].reasons);
    // With --locked the lock is only checked after the clone, never rewritten.
    let locked = Options {
        locked: true,
        ..Default::default()
    };
    let a = actions(&plan::plan(&d, &o, &locked));
    assert_eq!(
        a[1],
        "check comfy.lock against the new checkouts (--locked)"
    );
    assert_eq!(a[2], "restart container qwen", "{a:?}");
}

#[test]
fn a_missing_environment_is_created_before_the_container() {
    let (d, mut o) = with_python();
    py(&mut o).env = EnvState::Missing;
    o.container = ContainerState::Missing;
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        actions(&p),
        [
            "create the Python 3.11 environment venv/ and sync it (2 packages)",
            "create and start container qwen"
        ]
    );
    // An environment made with another Python is made afresh.
    let (d, mut o) = with_python();
    if let EnvState::Present { python, .. } = &mut py(&mut o).env {
        *python = Some("3.12.1".to_owned());
    }
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        p.steps[0].reasons,
        ["venv/ was made with Python 3.12.1, the manifest says 3.11"]
    );
    // One comfyprov did not build (a venv made on the host, whose interpreter is the host's)
    // is built afresh too, as is one built in another image.
    for (found, why) in [
        (
            None,
            "venv/ has no build record from comfyprov (made on the host, whose interpreter the container lacks, or a build was interrupted); it is built afresh in nvidia/cuda:12.4.0-devel-ubuntu22.04",
        ),
        (
            Some("python:3.11"),
            "venv/ was built in python:3.11; it is built afresh in nvidia/cuda:12.4.0-devel-ubuntu22.04",
        ),
    ] {
        let (d, mut o) = with_python();
        if let EnvState::Present { built_for, .. } = &mut py(&mut o).env {
            *built_for = found.map(str::to_owned);
        }
        let p = plan::plan(&d, &o, &Options::default());
        assert_eq!(p.steps[0].reasons, [why]);
        assert_eq!(
            p.steps[0].action.describe(),
            "create the Python 3.11 environment venv/ and sync it (2 packages)"
        );
    }
}

#[test]
fn an_unreadable_environment_or_lock_is_never_taken_for_a_match() {
    let (d, mut o) = with_python();
    py(&mut o).env = EnvState::Unreadable {
        error: "permission denied".to_owned(),
    };
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        actions(&p),
        ["blocked: the environment venv/ cannot be read: permission denied"]
    );
    let (d, mut o) = with_python();
    py(&mut o).lock = LockState::Unreadable {
        error: "format version 9 (this comfyprov reads 1)".to_owned(),
    };
    let p = plan::plan(&d, &o, &Options::default());
    assert_eq!(
        p.steps[0].reasons,
        ["comfy.lock cannot be used: format version 9 (this comfyprov reads 1)"]
    );
}

#[test]
fn workspace_only_syncs_and_leaves_the_restart_to_the_user() {
    let (d, mut o) = with_python();
    if let EnvState::Present { packages, .. } = &mut py(&mut o).env {
        packages.remove("numpy");
    }
    let p = plan::plan(
        &d,
        &o,
        &Options {
            workspace_only: true,
            ..Default::default()
        },
    );
    assert_eq!(
        actions(&p),
        ["sync the Python environment venv/ (1 change)"]
    );
    assert!(
        p.notes
            .iter()
            .any(|n| matches!(n, comfyprov::plan::Note::RestartNeeded { .. })),
        "{:?}",
        p.notes
    );
}

/// A container comfyprov created from the manifest's current spec, running since `started_ns`.
fn running_container(d: &Desired) -> ContainerInfo {
    let spec = comfyprov::render::Container::new(d).unwrap().spec;
    ContainerInfo {
        id: "abcdef123456".to_owned(),
        status: "running".to_owned(),
        health: Some("healthy".to_owned()),
        image: spec.image.clone(),
        image_id: "sha256:1".to_owned(),
        started_at: Some("2026-11-21T10:00:00Z".to_owned()),
        started_ns: Some(100),
        finished_ns: None,
        project_label: Some(d.project.clone()),
        spec: Some(spec.label()),
        actual: Some(spec.clone()),
    }
}

/// Reality as `d` declares it, the container included.
fn converged_with_container(d: &Desired) -> Observed {
    let mut o = converged(d);
    o.container = ContainerState::Present(Box::new(running_container(d)));
    o
}

/// The base manifest, converged, with its running container changed by `change`.
fn with_container(change: impl FnOnce(&Desired, &mut ContainerInfo)) -> (Desired, Observed) {
    let d = desired();
    let mut info = running_container(&d);
    change(&d, &mut info);
    let mut o = converged(&d);
    o.container = ContainerState::Present(Box::new(info));
    (d, o)
}

#[test]
fn a_running_container_at_its_spec_plans_nothing() {
    let d = desired();
    let p = plan::plan(&d, &converged_with_container(&d), &Options::default());
    assert!(!p.has_changes(), "{:#?}", p.steps);
}

scenario!(missing_container_is_created_and_started, {
    let d = desired();
    let mut o = converged(&d);
    o.container = ContainerState::Missing;
    run(&d, &o)
});

scenario!(stopped_container_is_started, {
    let (d, o) = with_container(|_d, info| {
        info.status = "exited".to_owned();
    });
    run(&d, &o)
});

scenario!(crash_looping_container_is_noted_not_started, {
    let (d, o) = with_container(|_d, info| {
        info.status = "restarting".to_owned();
    });
    run(&d, &o)
});

scenario!(
    container_with_another_spec_is_recreated_naming_the_fields,
    {
        let (d, o) = with_container(|_d, info| {
            let actual = info.actual.as_mut().unwrap();
            actual.port = 9999;
            actual.image = "old/image:1".to_owned();
        });
        run(&d, &o)
    }
);

// The label is a record, not the truth: a container whose labels say it matches but whose
// command, environment or mount was changed by hand is recreated, naming what differs.
scenario!(
    a_container_changed_by_hand_under_a_matching_label_is_recreated,
    {
        let (d, o) = with_container(|_d, info| {
            let actual = info.actual.as_mut().unwrap();
            actual.command.push("--disable-smart-memory".to_owned());
            actual.env.insert("EXTRA".to_owned(), "1".to_owned());
            actual.mount = "/elsewhere/ComfyUI".to_owned();
        });
        run(&d, &o)
    }
);

scenario!(container_without_spec_label_is_recreated, {
    let (d, o) = with_container(|_d, info| {
        info.spec = None;
        info.actual = None;
    });
    run(&d, &o)
});

scenario!(foreign_container_is_blocked, {
    let (d, o) = with_container(|_d, info| {
        info.project_label = None;
        info.spec = None;
    });
    run(&d, &o)
});

scenario!(foreign_container_with_force_is_replaced, {
    let (d, o) = with_container(|_d, info| {
        info.project_label = None;
        info.spec = None;
    });
    run_forced(&d, &o)
});

scenario!(
    running_server_without_password_is_critical_and_restarts_once_fixed,
    {
        let d = desired();
        let mut o = converged_with_container(&d);
        o.password.file = PasswordFile::Missing;
        run(&d, &o)
    }
);

scenario!(missing_secret_blocks_starting_the_server, {
    let d = desired_from(&BASE.replace("generate = true\n", ""));
    let mut o = converged(&d);
    o.secret = SecretState::Missing;
    o.password.file = PasswordFile::Missing;
    o.container = ContainerState::Missing;
    run(&d, &o)
});

scenario!(inputs_changed_after_start_is_a_pending_restart, {
    let d = desired();
    let mut o = converged_with_container(&d);
    o.inputs_changed_ns = Some(200);
    run(&d, &o)
});

#[test]
fn inputs_older_than_the_start_are_no_pending_restart() {
    let d = desired();
    let mut o = converged_with_container(&d);
    o.inputs_changed_ns = Some(50);
    assert!(!plan::plan(&d, &o, &Options::default()).has_changes());
}

/// A recreate carries the whole container it creates: the executor gets exactly the spec the
/// compose file renders, and the changed fields by name.
#[test]
fn recreate_step_carries_the_spec_the_compose_file_renders() {
    let (d, o) = with_container(|_d, info| {
        info.actual.as_mut().unwrap().port = 9999;
    });
    let p = plan::plan(&d, &o, &Options::default());
    let want = comfyprov::render::Container::new(&d).unwrap();
    let recreate = p
        .steps
        .iter()
        .find_map(|s| match &s.action {
            plan::Action::RecreateContainer {
                container, cause, ..
            } => Some((container, cause)),
            _ => None,
        })
        .expect("a recreate step");
    assert_eq!(**recreate.0, want);
    assert_eq!(
        *recreate.1,
        plan::Recreate::Changed {
            fields: vec!["port".to_owned()]
        }
    );
    let compose = p.steps.iter().any(|s| {
        matches!(&s.action, plan::Action::RenderCompose { content, .. }
            if *content == comfyprov::render::compose::render(&d).unwrap())
    });
    assert!(
        compose
            || !p
                .steps
                .iter()
                .any(|s| matches!(s.action, plan::Action::RenderCompose { .. })),
        "a compose step carries what the manifest renders"
    );
}

scenario!(a_recreate_onto_a_taken_port_is_blocked, {
    let (d, mut o) = with_container(|_d, info| {
        info.actual.as_mut().unwrap().port = 9999;
    });
    o.port = comfyprov::observed::PortState::Taken {
        holder: "container `other`".to_owned(),
    };
    run(&d, &o)
});

/// File modes in `--json` are octal strings, as people write them, and read back the same.
#[test]
fn file_modes_in_json_are_octal_strings() {
    let d = desired();
    let mut o = converged(&d);
    o.password.file = password(HashState::Verified, Some("admin"), 0o644);
    let p = plan::plan(&d, &o, &Options::default());
    let json = display::json(&p, "comfy.toml", "qwen", "f");
    let step = &json["steps"][0];
    assert_eq!(step["action"], "fix_password_mode");
    assert_eq!(step["mode"], "0644");
    assert_eq!(step["causes"][0]["mode"], "0644");
    let back: plan::Step = serde_json::from_value(step.clone()).unwrap();
    assert_eq!(back, p.steps[0]);
}
