//! Observation against real git repositories and real files made in each test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Project, SourceRepo, clone_at, git, source_repo};
use comfyprov::manifest::{self, Desired};
use comfyprov::observe::login::{HashState, PasswordFile};
use comfyprov::observe::{self, DirState, SecretState};
use comfyprov::plan::{self, Options};

struct Env {
    project: Project,
    src: SourceRepo,
}

impl Env {
    fn new() -> Env {
        let project = Project::new();
        let src = source_repo(&project.path("src/Node"), 3);
        std::fs::create_dir_all(project.path("ws/ComfyUI/custom_nodes")).unwrap();
        Env { project, src }
    }

    fn root(&self) -> &Path {
        self.project.root()
    }

    fn nodes(&self) -> std::path::PathBuf {
        self.root().join("ws/ComfyUI/custom_nodes")
    }

    fn comfy(&self) -> std::path::PathBuf {
        self.root().join("ws/ComfyUI")
    }

    /// A manifest declaring `Node` (from the source repo) at `rev`, and the login node.
    fn desired(&self, rev: &str, auth: &str) -> Desired {
        let text = format!(
            r#"
[project]
name = "t"
[workspace]
path = "ws"
[auth]
{auth}
[[nodes]]
name = "Node"
git = "{url}"
rev = "{rev}"
"#,
            url = self.src.url()
        );
        manifest::parse("comfy.toml", text, self.root())
            .unwrap_or_else(|p| panic!("{}", manifest::render_plain(&p, 80)))
    }

    fn no_auth(&self, rev: &str) -> Desired {
        self.desired(rev, "mode = \"none\"")
    }
}

fn checkout(o: &observe::Observed, dir: &str) -> observe::Checkout {
    match o.node_dir(dir).and_then(|d| d.state.clone()) {
        Some(DirState::Git(c)) => c,
        other => panic!("{dir}: expected a git checkout, got {other:?}"),
    }
}

#[test]
fn clean_checkout_reports_head_origin_and_no_changes() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node"), &env.src.v1);
    let d = env.no_auth(&env.src.v1);
    let o = observe::observe(&d);
    let c = checkout(&o, "Node");
    assert_eq!(c.head.as_deref(), Some(env.src.v1.as_str()));
    assert_eq!(c.origin, Some(env.src.url()));
    assert_eq!(c.dirty, None);
    assert_eq!(c.resolved.as_deref(), Some(env.src.v1.as_str()));
    assert!(!plan::plan(&d, &o, &Options::default()).has_changes());
}

#[test]
fn annotated_and_lightweight_tags_resolve_to_their_commits() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node"), "v1");
    let o = observe::observe(&env.no_auth("v1"));
    assert_eq!(
        checkout(&o, "Node").resolved.as_deref(),
        Some(env.src.v1.as_str())
    );
    let d = env.no_auth("v2");
    let o = observe::observe(&d);
    assert_eq!(
        checkout(&o, "Node").resolved.as_deref(),
        Some(env.src.v2.as_str())
    );
    let p = plan::plan(&d, &o, &Options::default());
    assert!(
        matches!(p.steps[0].action, plan::Action::Checkout { .. }),
        "{p:#?}"
    );
}

#[test]
fn branch_resolves_through_the_remote_tracking_ref() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node"), "main");
    let o = observe::observe(&env.no_auth("dev"));
    assert_eq!(
        checkout(&o, "Node").resolved.as_deref(),
        Some(env.src.dev.as_str())
    );
}

#[test]
fn short_commit_pin_matches_head() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node"), &env.src.v2);
    let d = env.no_auth(&env.src.v2[..7]);
    assert!(!plan::plan(&d, &observe::observe(&d), &Options::default()).has_changes());
}

#[test]
fn unknown_tag_is_unresolved_and_planned_as_a_fetching_checkout() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node"), "v1");
    let d = env.no_auth("v9");
    let o = observe::observe(&d);
    assert_eq!(checkout(&o, "Node").resolved, None);
    let p = plan::plan(&d, &o, &Options::default());
    assert!(
        p.steps[0].reasons[0]
            .to_string()
            .contains("not in the checkout yet"),
        "{p:#?}"
    );
}

#[test]
fn modified_tracked_file_makes_the_checkout_dirty() {
    let env = Env::new();
    let node = env.nodes().join("Node");
    clone_at(&env.src, &node, "v1");
    std::fs::write(node.join("node_0.py"), "# edited by hand\n").unwrap();
    let c = checkout(&observe::observe(&env.no_auth("v1")), "Node");
    let dirty = c.dirty.expect("dirty");
    assert_eq!(dirty.count, 1);
    assert_eq!(dirty.tracked, 1, "a tracked change");
    assert_eq!(dirty.sample, vec!["node_0.py".to_owned()]);
}

#[test]
fn untracked_file_makes_the_checkout_dirty_but_ignored_files_do_not() {
    let env = Env::new();
    let node = env.nodes().join("Node");
    clone_at(&env.src, &node, "v1");
    std::fs::write(node.join("debug.log"), "ignored by .gitignore\n").unwrap();
    assert_eq!(
        checkout(&observe::observe(&env.no_auth("v1")), "Node").dirty,
        None
    );
    std::fs::create_dir(node.join("extra")).unwrap();
    std::fs::write(node.join("extra/config.json"), "{}\n").unwrap();
    let dirty = checkout(&observe::observe(&env.no_auth("v1")), "Node")
        .dirty
        .expect("dirty");
    assert_eq!(dirty.sample, vec!["extra/".to_owned()]);
    assert_eq!(dirty.tracked, 0, "untracked files only");
}

#[test]
fn python_caches_and_the_login_session_key_are_not_local_changes() {
    let env = Env::new();
    let node = env.nodes().join("Node");
    clone_at(&env.src, &node, "v1");
    std::fs::create_dir(node.join("__pycache__")).unwrap();
    std::fs::write(node.join("__pycache__/node_0.cpython-311.pyc"), [0u8; 8]).unwrap();
    std::fs::write(node.join("stray.pyc"), [0u8; 8]).unwrap();
    std::fs::write(node.join(".secret-key.txt"), "key,2026-01-01T00:00:00").unwrap();
    assert_eq!(
        checkout(&observe::observe(&env.no_auth("v1")), "Node").dirty,
        None
    );
}

#[test]
fn plain_directory_is_not_a_git_checkout_even_inside_comfyui_repo() {
    let env = Env::new();
    // ComfyUI itself is a git checkout; a plain dir below it must not be taken for it.
    git(&env.comfy(), &["init", "-q"]);
    std::fs::create_dir(env.nodes().join("Node")).unwrap();
    std::fs::write(env.nodes().join("Node/__init__.py"), "").unwrap();
    let o = observe::observe(&env.no_auth("v1"));
    assert_eq!(
        o.node_dir("Node").and_then(|d| d.state.clone()),
        Some(DirState::NotGit)
    );
}

#[test]
fn declared_nodes_and_their_disabled_twins_are_inspected_others_only_listed() {
    let env = Env::new();
    clone_at(&env.src, &env.nodes().join("Node.disabled"), "v1");
    clone_at(&env.src, &env.nodes().join("Other"), "v1");
    std::fs::create_dir(env.nodes().join("__pycache__")).unwrap();
    std::fs::write(env.nodes().join("websocket_image_save.py"), "").unwrap();
    let d = env.no_auth("v2");
    let o = observe::observe(&d);
    let dirs: Vec<&str> = o.custom_nodes.iter().map(|n| n.dir.as_str()).collect();
    assert_eq!(dirs, ["Node.disabled", "Other"]);
    assert!(matches!(
        o.node_dir("Node.disabled").unwrap().state,
        Some(DirState::Git(_))
    ));
    assert_eq!(o.node_dir("Other").unwrap().state, None);
    let p = plan::plan(&d, &o, &Options::default());
    let kinds: Vec<String> = p.steps.iter().map(|s| s.action.describe()).collect();
    assert_eq!(kinds[0], "enable Node (rename Node.disabled)");
    assert!(kinds[1].starts_with("checkout Node"), "{kinds:?}");
}

#[test]
fn missing_workspace_is_observed_without_error() {
    let env = Env::new();
    std::fs::remove_dir_all(env.root().join("ws")).unwrap();
    let d = env.no_auth("v1");
    let o = observe::observe(&d);
    assert!(!o.workspace_exists);
    assert_eq!(o.comfyui, DirState::Missing);
    assert!(o.custom_nodes.is_empty());
    assert!(
        !env.root().join("ws").exists(),
        "observation must not create the workspace"
    );
}

// --- login/PASSWORD -------------------------------------------------------------------------

const PW: &str = "correct horse battery staple";

fn login_env(env: &Env, extra: &str) -> Desired {
    std::fs::create_dir_all(env.root().join(".secrets")).unwrap();
    let text = format!(
        r#"
[project]
name = "t"
[workspace]
path = "ws"
[auth]
mode = "login"
{extra}
[[nodes]]
name = "ComfyUI-Login"
git = "https://github.com/liusida/ComfyUI-Login"
rev = "6910925"
"#
    );
    manifest::parse("comfy.toml", text, env.root()).unwrap()
}

fn write_secret(env: &Env, pw: &str) {
    let f = env.root().join(".secrets/pw");
    std::fs::write(&f, format!("{pw}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn write_password(path: &Path, hash: &str, username: Option<&str>, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text = match username {
        Some(u) => format!("{hash}\n{u}"),
        None => format!("{hash}\n"),
    };
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn hash(pw: &str) -> String {
    bcrypt::hash(pw, 4).unwrap()
}

#[test]
fn password_that_verifies_with_username_and_mode_0600_needs_nothing() {
    let env = Env::new();
    let d = login_env(&env, "password_file = \".secrets/pw\"");
    write_secret(&env, PW);
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &hash(PW),
        Some("admin"),
        0o600,
    );
    let o = observe::observe(&d);
    assert_eq!(o.secret, SecretState::Present { mode: Some(0o600) });
    assert_eq!(
        o.password.file,
        PasswordFile::Present {
            hash: HashState::Verified,
            username: Some("admin".to_owned()),
            mode: 0o600
        }
    );
    assert_eq!(o.password.legacy, PasswordFile::Missing);
}

#[test]
fn stale_hash_missing_username_and_loose_mode_are_observed() {
    let env = Env::new();
    let d = login_env(&env, "password_file = \".secrets/pw\"");
    write_secret(&env, PW);
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &hash("old password"),
        None,
        0o644,
    );
    write_password(
        &env.comfy().join("PASSWORD"),
        "not a hash",
        Some("admin"),
        0o644,
    );
    let o = observe::observe(&d);
    assert_eq!(
        o.password.file,
        PasswordFile::Present {
            hash: HashState::Mismatch,
            username: None,
            mode: 0o644
        }
    );
    assert!(matches!(
        o.password.legacy,
        PasswordFile::Present {
            hash: HashState::Malformed,
            ..
        }
    ));
}

#[test]
fn ready_hash_file_is_compared_by_bytes() {
    let env = Env::new();
    let d = login_env(&env, "hash_file = \".secrets/hash\"");
    let h = hash(PW);
    std::fs::write(env.root().join(".secrets/hash"), format!("{h}\n")).unwrap();
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &h,
        Some("admin"),
        0o600,
    );
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        }
    ));
    // Same password, new salt: a different token, so it must be replaced.
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &hash(PW),
        Some("admin"),
        0o600,
    );
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Mismatch,
            ..
        }
    ));
}

#[test]
fn missing_secret_is_observed_as_missing() {
    let env = Env::new();
    let d = login_env(&env, "password_file = \".secrets/pw\"");
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &hash(PW),
        Some("admin"),
        0o600,
    );
    let o = observe::observe(&d);
    assert_eq!(o.secret, SecretState::Missing);
    assert!(matches!(
        o.password.file,
        PasswordFile::Present {
            hash: HashState::Unchecked { .. },
            ..
        }
    ));
}

/// The cache file's single entry, as JSON.
fn cache_entries(env: &Env) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(observe::login::cache_path(&env.root().join("ws"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_array().unwrap().clone()
}

#[test]
fn bcrypt_verdict_is_cached_until_the_secret_or_password_file_changes() {
    let env = Env::new();
    let d = login_env(&env, "password_file = \".secrets/pw\"");
    write_secret(&env, PW);
    let password_file = env.comfy().join("login/PASSWORD");
    write_password(&password_file, &hash(PW), Some("admin"), 0o600);
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        }
    ));

    let cache = observe::login::cache_path(&env.root().join("ws"));
    let entries = cache_entries(&env);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["verified"], true);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(!text.contains(PW), "the cache must not hold the password");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Flip the cached verdict: if observe consults the cache instead of bcrypt, it reports the
    // (false) cached verdict.
    std::fs::write(
        &cache,
        text.replace("\"verified\": true", "\"verified\": false"),
    )
    .unwrap();
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Mismatch,
            ..
        }
    ));

    // Rewriting the secret file (new inode and times) invalidates the entry: bcrypt runs again.
    write_secret(&env, PW);
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        }
    ));

    // A changed PASSWORD file is a new key too.
    write_password(&password_file, &hash("another"), Some("admin"), 0o600);
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Mismatch,
            ..
        }
    ));
}

#[test]
fn password_from_an_environment_variable_is_verified_without_cache() {
    let env = Env::new();
    let var = format!("COMFYPROV_TEST_PW_{}", std::process::id());
    // SAFETY: the variable name is unique to this test; no other thread reads it.
    unsafe { std::env::set_var(&var, PW) };
    let d = login_env(&env, &format!("password_env = \"{var}\""));
    write_password(
        &env.comfy().join("login/PASSWORD"),
        &hash(PW),
        Some("admin"),
        0o600,
    );
    assert!(matches!(
        observe::observe(&d).password.file,
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        }
    ));
    assert!(!observe::login::cache_path(&env.root().join("ws")).exists());
}

#[test]
fn fingerprint_changes_with_password_content_and_node_commits() {
    let env = Env::new();
    let d = login_env(&env, "password_file = \".secrets/pw\"");
    write_secret(&env, PW);
    let f = env.comfy().join("login/PASSWORD");
    write_password(&f, &hash(PW), Some("admin"), 0o600);
    let a = observe::observe(&d).fingerprint();
    assert_eq!(
        a,
        observe::observe(&d).fingerprint(),
        "stable when nothing changed"
    );
    write_password(&f, &hash(PW), Some("admin"), 0o600);
    let b = observe::observe(&d).fingerprint();
    assert_ne!(a, b, "a new hash of the same password is a different token");

    let d2 = env.no_auth("v1");
    clone_at(&env.src, &env.nodes().join("Node"), "v1");
    let c = observe::observe(&d2).fingerprint();
    git(&env.nodes().join("Node"), &["checkout", "-q", "v2"]);
    assert_ne!(c, observe::observe(&d2).fingerprint());
}

#[test]
fn stat_fast_path_engages_after_a_refresh_and_never_hides_a_change() {
    use comfyprov::observe::workspace::clean_by_stat;
    let env = Env::new();
    let node = env.nodes().join("Node");
    clone_at(&env.src, &node, "v1");
    let d = env.no_auth("v1");
    // Files written in the same clock tick as the index are racily clean: only content can
    // tell, so the fast path must not answer. A full status refreshes the index, after which
    // stat data suffices.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(checkout(&observe::observe(&d), "Node").dirty, None);
    assert_eq!(
        clean_by_stat(&node),
        Some(true),
        "stat data should prove a refreshed checkout clean"
    );

    // Same size, new content: stat data differs, so the fast path defers to libgit2.
    let f = node.join("node_0.py");
    let original = std::fs::read(&f).unwrap();
    let mut changed = original.clone();
    changed[0] = b'!';
    std::fs::write(&f, &changed).unwrap();
    assert_ne!(clean_by_stat(&node), Some(true));
    assert!(checkout(&observe::observe(&d), "Node").dirty.is_some());

    // Content restored (new mtime): not clean by stat, clean by content; the refresh then lets
    // the fast path answer again.
    std::fs::write(&f, &original).unwrap();
    assert_ne!(clean_by_stat(&node), Some(true));
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(checkout(&observe::observe(&d), "Node").dirty, None);
    assert_eq!(clean_by_stat(&node), Some(true));

    // An untracked file the fast path cannot prove ignored: it must defer.
    std::fs::write(node.join("notes.md"), "x").unwrap();
    assert_ne!(clean_by_stat(&node), Some(true));
}
