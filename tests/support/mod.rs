//! Test support: real git repositories made with the git CLI, isolated from the user's config.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run git in `dir`; panic with its output on failure. Returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A source repository with two commits on `main`: `v1` (annotated tag) and `v2` (lightweight
/// tag, also the branch tip), plus a `dev` branch one commit further.
pub struct SourceRepo {
    pub path: PathBuf,
    pub v1: String,
    pub v2: String,
    pub dev: String,
}

impl SourceRepo {
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
}

pub fn source_repo(path: &Path, files: usize) -> SourceRepo {
    std::fs::create_dir_all(path).unwrap();
    git(path, &["init", "-q", "-b", "main"]);
    std::fs::write(path.join(".gitignore"), "*.log\n").unwrap();
    for i in 0..files {
        std::fs::write(
            path.join(format!("node_{i}.py")),
            format!("# node {i}\nVALUE = {i}\n"),
        )
        .unwrap();
    }
    std::fs::write(path.join("__init__.py"), "NODE_CLASS_MAPPINGS = {}\n").unwrap();
    git(path, &["add", "-A"]);
    git(path, &["commit", "-q", "-m", "v1"]);
    git(path, &["tag", "-a", "v1", "-m", "release 1"]);
    let v1 = git(path, &["rev-parse", "HEAD"]);
    std::fs::write(path.join("__init__.py"), "NODE_CLASS_MAPPINGS = {'X': 1}\n").unwrap();
    git(path, &["commit", "-q", "-am", "v2"]);
    git(path, &["tag", "v2"]);
    let v2 = git(path, &["rev-parse", "HEAD"]);
    git(path, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(path.join("dev.py"), "DEV = True\n").unwrap();
    git(path, &["add", "dev.py"]);
    git(path, &["commit", "-q", "-m", "dev"]);
    let dev = git(path, &["rev-parse", "HEAD"]);
    git(path, &["checkout", "-q", "main"]);
    SourceRepo {
        path: path.to_owned(),
        v1,
        v2,
        dev,
    }
}

/// Clone `src` into `dest` and check out `rev`.
pub fn clone_at(src: &SourceRepo, dest: &Path, rev: &str) {
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    git(
        dest.parent().unwrap(),
        &["clone", "-q", &src.url(), dest.to_str().unwrap()],
    );
    git(dest, &["checkout", "-q", rev]);
}
