//! The commented `comfy.toml` that `comfyprov init` writes: valid as written, every choice a
//! flag, nothing secret in it.

use std::fmt::Write;

/// What `init` was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub project: String,
    pub image: String,
    /// Protect ComfyUI with ComfyUI-Login (a generated password in `.secrets/`).
    pub login: bool,
    /// Reserve NVIDIA GPUs (else `--cpu`).
    pub gpu: bool,
    pub port: u16,
}

/// ComfyUI-Login, pinned: the node `auth.mode = "login"` needs.
pub const LOGIN_URL: &str = "https://github.com/liusida/ComfyUI-Login";
pub const LOGIN_PIN: &str = "69109257f4629a11ebe26cd65667536c4f8dddcb";
/// Where `init` keeps the password (gitignored).
pub const PASSWORD_FILE: &str = ".secrets/comfyui.password";
/// The schema's file name beside the manifest (editors read it through the `#:schema` line).
pub const SCHEMA_FILE: &str = "comfy.schema.json";

/// The manifest text for `choices`.
pub fn manifest(c: &Choices) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "#:schema ./{SCHEMA_FILE}");
    let _ = writeln!(
        w,
        "# Written by `comfyprov init`. `comfyprov plan` shows what differs from this; `comfyprov apply`"
    );
    let _ = writeln!(w, "# makes it so. Every key is described in {SCHEMA_FILE}.");
    let _ = writeln!(w);
    let _ = writeln!(w, "[project]");
    let _ = writeln!(
        w,
        "name = \"{}\"                  # container name and compose project",
        c.project
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "[workspace]");
    let _ = writeln!(
        w,
        "path = \"./workspace\"             # host folder that holds ComfyUI/ (gitignored)"
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "[comfyui]                          # ComfyUI itself, pinned like a node"
    );
    let _ = writeln!(w, "git = \"https://github.com/comfyanonymous/ComfyUI\"");
    let _ = writeln!(w, "rev = \"v0.3.68\"");
    let _ = writeln!(w);
    let _ = writeln!(w, "[container]");
    let _ = writeln!(w, "image = \"{}\"", c.image);
    if c.login {
        let _ = writeln!(
            w,
            "listen = \"0.0.0.0\"                 # reachable from the network: the password protects it"
        );
    } else {
        let _ = writeln!(
            w,
            "listen = \"127.0.0.1\"               # this machine only: there is no password"
        );
    }
    let _ = writeln!(w, "port = {}", c.port);
    let _ = writeln!(
        w,
        "python = \"venv/bin/python3\"        # relative to ComfyUI/, inside the container"
    );
    let _ = writeln!(
        w,
        "args = []                          # extra main.py arguments"
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "[python]                           # the environment, built by comfyprov inside the image (comfy.lock)"
    );
    let _ = writeln!(
        w,
        "version = \"3.12\"                   # uv installs a standalone CPython when the image has none"
    );
    if c.gpu {
        let _ = writeln!(
            w,
            "torch = {{ version = \"2.6.0\", index = \"https://download.pytorch.org/whl/cu124\" }}   # match the image's CUDA"
        );
    }
    let _ = writeln!(
        w,
        "exclude_newer = \"2025-11-06\"       # resolve as PyPI stood when this ComfyUI was released"
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "[gpu]");
    if c.gpu {
        let _ = writeln!(
            w,
            "mode = \"nvidia\"                     # needs the NVIDIA Container Toolkit"
        );
        let _ = writeln!(w, "count = 1");
    } else {
        let _ = writeln!(
            w,
            "mode = \"none\"                       # ComfyUI runs with --cpu"
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "[auth]");
    if c.login {
        let _ = writeln!(
            w,
            "mode = \"login\"                      # ComfyUI-Login: login/PASSWORD"
        );
        let _ = writeln!(w, "username = \"admin\"");
        let _ = writeln!(
            w,
            "password_file = \"{PASSWORD_FILE}\"   # gitignored; never committed"
        );
        let _ = writeln!(
            w,
            "generate = true                    # a strong random password if the file is missing"
        );
        let _ = writeln!(w);
        let _ = writeln!(w, "[[nodes]]");
        let _ = writeln!(w, "name = \"ComfyUI-Login\"");
        let _ = writeln!(w, "git = \"{LOGIN_URL}\"");
        let _ = writeln!(w, "rev = \"{LOGIN_PIN}\"");
        let _ = writeln!(
            w,
            "requirements = true                # resolved with ComfyUI's into comfy.lock"
        );
    } else {
        let _ = writeln!(w, "mode = \"none\"");
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# More nodes: one [[nodes]] table each, pinned to a commit (preferred), tag or branch."
    );
    let _ = writeln!(w, "# [[nodes]]");
    let _ = writeln!(w, "# name = \"rgthree-comfy\"");
    let _ = writeln!(w, "# git = \"https://github.com/rgthree/rgthree-comfy\"");
    let _ = writeln!(w, "# rev = \"<commit>\"");
    let _ = writeln!(w, "# requirements = true");
    let _ = writeln!(w);
    let _ = writeln!(w, "[policy]");
    let _ = writeln!(
        w,
        "unmanaged_nodes = \"keep\"           # or \"disable\": rename nodes the manifest does not name"
    );
    t
}

/// The lines `init` makes sure `.gitignore` has: the secrets, the workspace, the lock file and
/// what apply leaves beside the compose file.
pub const GITIGNORE: &[&str] = &[
    "/.secrets/",
    "/workspace/",
    "/.workspace.comfyprov-lock",
    "*.yml.bak",
];
