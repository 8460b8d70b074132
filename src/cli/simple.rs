//! `validate`, `schema` and `render`: commands with little to print.

use miette::miette;

use super::{Cli, EXIT_OK, Ui, emit, load};
use crate::manifest::AuthSpec;

pub fn validate(cli: &Cli, ui: &Ui) -> miette::Result<u8> {
    let d = load(cli)?;
    let auth = match &d.auth {
        AuthSpec::None { .. } => "no auth".to_owned(),
        AuthSpec::Login(l) => format!("login via {}", l.secret.shown()),
    };
    let container = match &d.container {
        Some(c) => format!("container {}", c.image),
        None => "no container".to_owned(),
    };
    if !ui.quiet {
        emit(&format!(
            "{} is valid: project {}, {} node{}, {auth}, {container}\n",
            cli.manifest.display(),
            d.project,
            d.nodes.len(),
            if d.nodes.len() == 1 { "" } else { "s" }
        ))?;
    }
    Ok(EXIT_OK)
}

pub fn schema() -> miette::Result<u8> {
    let text = serde_json::to_string_pretty(&crate::manifest::raw::schema())
        .map_err(|e| miette!("cannot serialise the schema: {e}"))?;
    emit(&format!("{text}\n"))?;
    Ok(EXIT_OK)
}

pub fn render(cli: &Cli) -> miette::Result<u8> {
    let d = load(cli)?;
    let text = crate::render::compose::render(&d).ok_or_else(|| {
        miette!(
            help = "add a [container] table to run ComfyUI in Docker",
            "`{}` has no [container], so there is no compose file to render",
            cli.manifest.display()
        )
    })?;
    emit(&text)?;
    Ok(EXIT_OK)
}

/// `comfyprov lock`: resolve into comfy.lock, under apply's workspace lock.
pub fn lock(cli: &Cli, ui: &Ui) -> miette::Result<u8> {
    let d = load(cli)?;
    let outcome = crate::ops::lock(&d)?;
    ui.info(&match outcome {
        crate::report::Outcome::Done { detail } => format!(
            "wrote {}: {}",
            d.python
                .as_ref()
                .map_or("comfy.lock", |p| p.lock_file.shown.as_str()),
            detail.unwrap_or_default()
        ),
        crate::report::Outcome::AlreadyDone { why } => format!("{why}: nothing rewritten"),
        other => format!("{other:?}"),
    });
    Ok(EXIT_OK)
}

/// `comfyprov show PLAN_FILE`: a saved plan as `plan` prints it, and whether it still applies.
pub fn show(cli: &Cli, ui: &Ui, file: &std::path::Path) -> miette::Result<u8> {
    use crate::plan::{Note, Plan, Step, display};
    let bad = |why: String| {
        miette!(
            help = "save one with `comfyprov plan --out FILE`",
            "`{}` is not a saved plan: {why}",
            file.display()
        )
    };
    let bytes = crate::fsutil::read_regular(file).map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if doc["format_version"] != display::FORMAT_VERSION {
        return Err(bad(format!(
            "format_version is {}, this comfyprov reads {}",
            doc["format_version"],
            display::FORMAT_VERSION
        )));
    }
    let steps: Vec<Step> =
        serde_json::from_value(doc["steps"].clone()).map_err(|e| bad(format!("its steps: {e}")))?;
    let notes: Vec<Note> =
        serde_json::from_value(doc["notes"].clone()).map_err(|e| bad(format!("its notes: {e}")))?;
    let plan = Plan { steps, notes };
    let title = format!(
        "{} ({}), saved in {}",
        doc["project"].as_str().unwrap_or("?"),
        doc["manifest"].as_str().unwrap_or("?"),
        file.display()
    );
    let mut text = display::render(&plan, &title, ui.color_out);
    let options: Vec<&str> = ["force", "workspace_only", "locked"]
        .into_iter()
        .filter(|k| doc[*k].as_bool() == Some(true))
        .collect();
    if !options.is_empty() {
        text.push_str(&format!(
            "Made with: --{}\n",
            options.join(", --").replace('_', "-")
        ));
    }
    let current = crate::ops::load(&cli.manifest)
        .ok()
        .map(|l| Some(l.sha256.as_str()) == doc["manifest_sha256"].as_str());
    text.push_str(match current {
        Some(true) => "The manifest is the one this plan was made from: `comfyprov apply FILE` applies it if nothing it observed has changed since.\n",
        Some(false) => "The manifest changed since this plan was made: `comfyprov apply FILE` will refuse it; make a new one.\n",
        None => "Whether the manifest is still the one it was made from is unknown (it cannot be loaded here).\n",
    });
    emit(&text)?;
    Ok(EXIT_OK)
}

/// `comfyprov token`: the API bearer token (line 1 of `login/PASSWORD`), and only when it
/// matches the secret, so a client is never handed a token the server will reject after its next
/// restart. The only command that prints a secret.
pub fn token(cli: &Cli) -> miette::Result<u8> {
    let d = load(cli)?;
    let token = crate::ops::verified_token(&d)?;
    emit(&format!("{}\n", String::from_utf8_lossy(token.expose())))?;
    Ok(EXIT_OK)
}

/// `comfyprov completions <shell>`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> miette::Result<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "comfyprov", &mut out);
    emit(&String::from_utf8_lossy(&out))?;
    Ok(EXIT_OK)
}

/// `comfyprov down`: stop and remove the manifest's container; the workspace stays.
pub fn down(cli: &Cli, ui: &Ui) -> miette::Result<u8> {
    let d = load(cli)?;
    let removed = crate::ops::down(&d)?;
    ui.info(&if removed {
        format!(
            "removed container {} (the workspace is left as it is)",
            d.project
        )
    } else {
        format!("no container is named {}: nothing to do", d.project)
    });
    Ok(EXIT_OK)
}

/// `comfyprov logs`: the container's log on stdout, tokens masked.
pub fn logs(cli: &Cli, tail: Option<usize>) -> miette::Result<u8> {
    let d = load(cli)?;
    emit(&crate::ops::logs(&d, tail)?)?;
    Ok(EXIT_OK)
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Container and compose project name. Default: this folder's name, made lowercase.
    #[arg(long)]
    pub project: Option<String>,
    /// The image ComfyUI runs in.
    #[arg(long, default_value = "nvidia/cuda:12.4.0-devel-ubuntu22.04")]
    pub image: String,
    /// `login` protects ComfyUI with ComfyUI-Login; `none` keeps it on 127.0.0.1.
    #[arg(long, value_parser = ["login", "none"], default_value = "login")]
    pub auth: String,
    /// `nvidia` reserves a GPU; `none` runs ComfyUI with --cpu.
    #[arg(long, value_parser = ["nvidia", "none"], default_value = "nvidia")]
    pub gpu: String,
    /// Host port.
    #[arg(long, default_value_t = 8188)]
    pub port: u16,
    /// Generate the password now (mode 0600) instead of on the first apply.
    #[arg(long)]
    pub generate_password: bool,
}

/// A project name from a folder name: lowercase letters, digits, `-` and `_`.
fn project_name(folder: &str) -> String {
    let name: String = folder
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if name.is_empty() {
        "comfyui".to_owned()
    } else {
        name.chars().take(63).collect()
    }
}

/// `comfyprov init`.
pub fn init(cli: &Cli, ui: &Ui, args: &InitArgs) -> miette::Result<u8> {
    // Here (or where -f says), never a manifest found in a folder above.
    let path = cli
        .manifest_arg
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("comfy.toml"));
    let folder = std::fs::canonicalize(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    )
    .ok()
    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    .unwrap_or_default();
    let choices = crate::manifest::template::Choices {
        project: args
            .project
            .clone()
            .unwrap_or_else(|| project_name(&folder)),
        image: args.image.clone(),
        login: args.auth == "login",
        gpu: args.gpu == "nvidia",
        port: args.port,
    };
    let inited = crate::ops::init(&path, &choices, args.generate_password)?;
    for line in &inited.done {
        ui.info(line);
    }
    ui.info("next: `comfyprov plan` shows what apply would do");
    Ok(EXIT_OK)
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The folder that holds ComfyUI/ (default: `./workspace` when no other source is named).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<std::path::PathBuf>,
    /// A container to import (image, command arguments, port and address, GPUs, env names,
    /// extra mounts); its ComfyUI/ mount names the workspace when --workspace is not given.
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// A ComfyUI-Manager snapshot (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<std::path::PathBuf>,
    /// A compose file that runs ComfyUI (instead of --container): its service's image,
    /// command, port, volumes, GPUs and environment. A bcrypt hash in it is reported, never
    /// copied.
    #[arg(long, value_name = "FILE", conflicts_with = "container")]
    pub compose: Option<std::path::PathBuf>,
    /// The compose file's service (default: the only one, or `comfyui`).
    #[arg(long, value_name = "NAME", requires = "compose")]
    pub service: Option<String>,
    /// The project name (default: the container's name, else `comfyui`).
    #[arg(long)]
    pub project: Option<String>,
    /// How the manifest names the password's file in login mode (import never reads a secret).
    #[arg(long, value_name = "PATH", default_value = ".secrets/comfyui.password")]
    pub password_file: String,
    /// Write the manifest to FILE (never over an existing one) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

/// `comfyprov import`: a manifest from what exists, validated before it is printed or written.
pub fn import(ui: &Ui, args: &ImportArgs) -> miette::Result<u8> {
    use std::io::Write;
    let dir = match args.out.as_deref().and_then(std::path::Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let workspace = args.workspace.clone().or_else(|| {
        (args.container.is_none() && args.snapshot.is_none() && args.compose.is_none())
            .then(|| std::path::PathBuf::from("workspace"))
    });
    let workspace = workspace.map(|w| std::fs::canonicalize(&w).unwrap_or(w));
    let shown = |w: &std::path::Path| match w.strip_prefix(&dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => format!("./{}", rel.display()),
        _ => w.display().to_string(),
    };
    let sources = crate::import::Sources {
        workspace_shown: workspace
            .as_deref()
            .map(shown)
            .unwrap_or_else(|| "./workspace".to_owned()),
        workspace,
        project: args.project.clone(),
        password_file: args.password_file.clone(),
        lock: match crate::observe::python::lock_state(&dir.join("comfy.lock"), None) {
            crate::observed::LockState::Present(l) => Some(*l),
            _ => None,
        },
        models: crate::fsutil::read_regular_nofollow(&dir.join("comfy.lock"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| comfyprov_core::lock::parse_models(&t).ok())
            .unwrap_or_default(),
        ..Default::default()
    };
    let (mut text, left_out) = crate::ops::import(
        sources,
        args.container.as_deref(),
        args.snapshot.as_deref(),
        args.compose
            .as_deref()
            .map(|f| (f, args.service.as_deref())),
        &dir,
    )?;
    // A workspace found through the container's mount is named as the manifest will see it.
    if let Some(ws) = text
        .lines()
        .find_map(|l| l.strip_prefix("path = \"/"))
        .map(|rest| format!("/{}", rest.trim_end_matches('"')))
        && let Ok(rel) = std::path::Path::new(&ws).strip_prefix(&dir)
        && !rel.as_os_str().is_empty()
    {
        text = text.replacen(
            &format!("path = \"{ws}\""),
            &format!("path = \"./{}\"", rel.display()),
            1,
        );
    }
    match &args.out {
        None => emit(&text)?,
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| {
                    miette!(
                        help = "import never overwrites a file: name another, or move it away",
                        "cannot create `{}`: {e}",
                        path.display()
                    )
                })?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| miette!("cannot write `{}`: {e}", path.display()))?;
            ui.info(&format!("wrote {}", path.display()));
        }
    }
    for l in &left_out {
        if l.starts_with("DANGER: ") {
            // Never silenced by -q.
            eprintln!("{l}");
        } else {
            ui.info(&format!("not expressed: {l}"));
        }
    }
    Ok(EXIT_OK)
}
