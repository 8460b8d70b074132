//! Every manifest in `tests/fixtures/manifests/invalid/` must fail to validate with the exact
//! diagnostics in its snapshot (no colour, 80 columns); every one in `valid/` must pass.

use std::path::{Path, PathBuf};

use comfyprov::manifest::{self, render_plain};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<manifest::Desired, Vec<manifest::Problem>> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = format!("{}.toml", path.file_stem().unwrap().to_string_lossy());
    manifest::parse(&name, text, path.parent().unwrap())
}

#[test]
fn invalid_manifests_report_every_problem_with_a_span_and_help() {
    let files = fixtures("invalid");
    assert!(
        files.len() >= 30,
        "expected at least 30 invalid fixtures, found {}",
        files.len()
    );
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let problems = match load(&path) {
            Ok(_) => panic!("{stem}: expected problems, but the manifest validated"),
            Err(p) => p,
        };
        assert!(!problems.is_empty(), "{stem}: no problem reported");
        for p in &problems {
            assert!(p.help.is_some(), "{stem}: `{}` has no help line", p.message);
        }
        let rendered = render_plain(&problems, 80);
        // No URL credential of the manifest is quoted, whichever problem's snippet shows it.
        let text = std::fs::read_to_string(&path).unwrap();
        for url in text.split('"').filter(|w| w.contains("://")) {
            if let Some(r) = manifest::validate::credentials(url) {
                let secret = &url[r];
                assert!(
                    !rendered.contains(secret),
                    "{stem}: the credentials `{secret}` are shown:\n{rendered}"
                );
            }
        }
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(stem, rendered);
        });
    }
}

#[test]
fn many_problems_are_all_reported_in_one_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/manifests/invalid/many-problems-at-once.toml");
    let problems = load(&path).unwrap_err();
    let codes: Vec<&str> = problems.iter().map(|p| p.code).collect();
    for code in [
        "unknown_key",
        "missing_key",
        "wrong_type",
        "listen",
        "out_of_range",
        "invalid_value",
        "auth_secret",
        "node_name",
        "git_url",
        "rev",
    ] {
        assert!(codes.contains(&code), "missing `{code}` in {codes:?}");
    }
}

#[test]
fn valid_fixtures_and_examples_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = fixtures("valid");
    files.extend(
        std::fs::read_dir(root.join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml")),
    );
    files.push(root.join("comfy.toml"));
    for path in files {
        if let Err(problems) = load(&path) {
            panic!(
                "{} is invalid:\n{}",
                path.display(),
                render_plain(&problems, 80)
            );
        }
    }
}

#[test]
fn secrets_never_appear_in_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let password = "p".repeat(80);
    std::fs::write(dir.path().join("pw"), &password).unwrap();
    let text = r#"
[project]
name = "t"
[workspace]
path = "ws"
[auth]
mode = "login"
password_file = "pw"
[[nodes]]
name = "ComfyUI-Login"
git = "https://github.com/liusida/ComfyUI-Login"
rev = "6910925"
"#;
    let problems = manifest::parse("comfy.toml", text.to_owned(), dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, "password_too_long");
    let rendered = render_plain(&problems, 80);
    assert!(
        !rendered.contains(&password[..20]),
        "the password leaked into:\n{rendered}"
    );
}

/// A problem on (or beside) a line of more than 65,535 bytes used to panic the renderer: now it
/// is reported without a snippet, with its line and column.
#[test]
fn problems_on_very_long_lines_are_reported_without_panicking() {
    let long = "x".repeat(70_000);
    for text in [
        format!("[project]\nname = \"{long}\"\n"),
        format!("[project]\nname = \"ok\"\n# {long}\nbogus = 1\n"),
        format!("[project]\nname = \"{long}"),
    ] {
        let problems = manifest::parse("comfy.toml", text, Path::new("/nonexistent")).unwrap_err();
        let rendered = render_plain(&problems, 80);
        assert!(
            rendered.contains("(at line "),
            "{}",
            &rendered[..rendered.len().min(400)]
        );
        assert!(rendered.len() < 20_000, "the long line is not echoed");
    }
}

/// Credentials inside a git URL are refused, and neither the message nor the snippet shows them.
#[test]
fn credentials_in_git_urls_are_refused_without_being_shown() {
    for fixture in ["git-url-credentials", "git-url-ssh-password"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/manifests/invalid/{fixture}.toml"));
        let problems = load(&path).unwrap_err();
        assert_eq!(problems.len(), 1, "{fixture}");
        assert_eq!(problems[0].code, "git_url_credentials");
        let rendered = render_plain(&problems, 200);
        assert!(
            !rendered.contains("hunter2"),
            "the credentials leaked into:\n{rendered}"
        );
        assert!(rendered.contains("****@github.com/a/foo"), "{rendered}");
        assert!(rendered.contains("credential helper"), "{rendered}");
    }
    // A user name alone over ssh is no secret.
    assert!(manifest::validate::check_git_url("ssh://git@github.com/a/foo").is_ok());
    assert!(manifest::validate::check_git_url("git@github.com:a/foo.git").is_ok());
}

/// Deterministic mangling (delete, duplicate, replace, truncate) of every fixture: the loader
/// must answer with a manifest or problems, never panic, and every span must lie in the text.
#[test]
fn mangled_manifests_never_panic_and_spans_stay_in_bounds() {
    let mut files = fixtures("invalid");
    files.extend(fixtures("valid"));
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("comfy.toml"));
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let noise = [
        "\"", "=", "[", "]", "[[", "\n", "#", "$", "é", "\\", "0x", "{", "}", ",", "\u{0}", "'''",
    ];
    let mut runs = 0;
    for path in files {
        let original: Vec<char> = std::fs::read_to_string(&path).unwrap().chars().collect();
        for _ in 0..60 {
            let mut text = original.clone();
            for _ in 0..1 + next(4) {
                let at = next(text.len() + 1);
                match next(4) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 => text
                        .splice(at..at, noise[next(noise.len())].chars())
                        .for_each(drop),
                    2 if at < text.len() => text.truncate(at),
                    _ => text
                        .splice(
                            at..at,
                            original[next(original.len())..].iter().take(12).copied(),
                        )
                        .for_each(drop),
                }
            }
            let text: String = text.into_iter().collect();
            let len = text.len();
            let result = std::panic::catch_unwind(|| {
                manifest::parse("m.toml", text.clone(), path.parent().unwrap())
            });
            match result {
                Err(_) => panic!("the loader panicked on:\n{text}"),
                Ok(Err(problems)) => {
                    for p in problems {
                        assert!(
                            p.span.end <= len && p.span.start <= p.span.end,
                            "span {:?} outside {len}: {}",
                            p.span,
                            p.message
                        );
                        let _ = render_plain(&[p], 80);
                    }
                }
                Ok(Ok(_)) => {}
            }
            runs += 1;
        }
    }
    assert!(runs > 3000, "{runs}");
}

/// Inputs that used to pass `validate` and fail later, or be used as given: each is an error now,
/// naming what is wrong.
#[test]
fn questionable_inputs_are_refused_at_validate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blank"), "   \n").unwrap();
    std::fs::write(dir.path().join("nul"), b"pass\0word\n").unwrap();
    std::fs::write(
        dir.path().join("weak.hash"),
        // A valid bcrypt hash at cost 4.
        "$2b$04$abcdefghijklmnopqrstuu5jz0BXPBPixq9UdCbrx5UpCQ6PbSGnq\n",
    )
    .unwrap();
    let base = |auth: &str, nodes: &str, args: &str| {
        format!(
            "[project]\nname = \"t\"\n[workspace]\npath = \"ws\"\n[container]\nimage = \"i:1\"\nargs = [{args}]\n[auth]\n{auth}\n[[nodes]]\nname = \"ComfyUI-Login\"\ngit = \"https://github.com/liusida/ComfyUI-Login\"\nrev = \"6910925\"\n{nodes}"
        )
    };
    let login = |secret: &str| format!("mode = \"login\"\n{secret}");
    let node = |name: &str| {
        format!("[[nodes]]\nname = \"{name}\"\ngit = \"https://example.com/x\"\nrev = \"v1\"\n")
    };
    let cases = [
        (
            base(&login("password_file = \"blank\""), "", ""),
            "password_empty",
            "only whitespace",
        ),
        (
            base(&login("password_file = \"nul\""), "", ""),
            "password_bytes",
            "NUL byte",
        ),
        (
            base(&login("hash_file = \"weak.hash\""), "", ""),
            "hash_cost",
            "cost under 10",
        ),
        (
            base(&login("password_env = \"A=B\""), "", ""),
            "password_env",
            "not an environment variable name",
        ),
        (
            base(&login("password_env = \"PW\""), &node(&"n".repeat(240)), ""),
            "node_name",
            "longer than 200 bytes",
        ),
        (
            base(
                &login("password_env = \"PW\""),
                &format!("{}{}", node("Foo"), node("foo")),
                "",
            ),
            "duplicate_node",
            "only in case",
        ),
        (
            base(
                &login("password_env = \"PW\""),
                &node("Evil\u{202E}txt.py"),
                "",
            ),
            "node_name",
            "bidirectional control",
        ),
        (
            base(&login("password_env = \"PW\""), "", "\"--por\", \"9000\""),
            "managed_arg",
            "is `--port` to ComfyUI",
        ),
    ];
    for (text, code, says) in cases {
        let problems = manifest::parse("comfy.toml", text.clone(), dir.path()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.code == code && p.message.contains(says)),
            "expected {code} ({says}) for:\n{text}\ngot: {:?}",
            problems
                .iter()
                .map(|p| (&p.code, &p.message))
                .collect::<Vec<_>>()
        );
    }
}
