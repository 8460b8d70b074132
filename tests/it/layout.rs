//! The architecture as the compiler sees it: the core crate links no I/O crate.

use std::process::Command;

/// `comfyprov-core` decides and never acts: none of the crates that reach the world (git,
/// Docker, bcrypt, async runtimes, HTTP, libc) is in its dependency tree.
#[test]
fn the_core_crate_links_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "comfyprov-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"comfyprov-core"), "{tree}");
    assert!(crates.contains(&"serde"), "the tree is read: {tree}");
    for banned in [
        "git2",
        "libgit2-sys",
        "bollard",
        "bcrypt",
        "tokio",
        "hyper",
        "hyper-util",
        "libc",
    ] {
        assert!(
            !crates.contains(&banned),
            "comfyprov-core depends on {banned}:\n{tree}"
        );
    }
}
