//! Every manifest in `tests/fixtures/manifests/invalid/` must fail to validate with the exact
//! diagnostics in its snapshot (no colour, 80 columns); every one in `valid/` must pass.

use std::path::{Path, PathBuf};

use comfyprov::manifest::{self, diag};

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
        let rendered = diag::render_plain(&problems, 80);
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
                diag::render_plain(&problems, 80)
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
    let rendered = diag::render_plain(&problems, 80);
    assert!(
        !rendered.contains(&password[..20]),
        "the password leaked into:\n{rendered}"
    );
}
