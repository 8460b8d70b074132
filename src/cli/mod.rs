//! The command line: argument parsing and printing only. Each command lives in its own file and
//! returns an exit code; errors travel up as miette reports.

mod apply;
mod plan;
mod reporter;
mod simple;
mod status;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit code: success (and, with `--detailed-exitcode`, nothing to do).
pub const EXIT_OK: u8 = 0;
/// Exit code: an error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code with `--detailed-exitcode`: changes are pending.
pub const EXIT_CHANGES: u8 = 2;

/// Declarative provisioning for ComfyUI deployments.
///
/// comfy.toml declares auth, custom nodes (git + pinned rev), the secret, GPU and image;
/// `plan` shows how reality differs from it; `apply` makes reality match.
#[derive(Debug, Parser)]
#[command(name = "comfyprov", version, about, max_term_width = 100)]
pub struct Cli {
    /// The manifest. Default: `comfy.toml` in this folder or the nearest folder above that has
    /// one (like cargo finds Cargo.toml).
    #[arg(
        short = 'f',
        long = "manifest",
        global = true,
        env = "COMFYPROV_MANIFEST",
        value_name = "PATH"
    )]
    pub manifest_arg: Option<PathBuf>,
    /// The manifest in use: `-f`, `COMFYPROV_MANIFEST`, or the one found (set after parsing).
    #[arg(skip)]
    pub manifest: PathBuf,
    /// Colour: `auto` (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it),
    /// `always` or `never`.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "COMFYPROV_COLOR",
        value_name = "WHEN"
    )]
    pub color: ColorChoice,
    /// Same as `--color never`.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print less: only data and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose", env = "COMFYPROV_QUIET", value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
    /// Print more: what was observed and how long each part took, on stderr.
    #[arg(short, long, global = true, env = "COMFYPROV_VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project here: a commented comfy.toml (never over an existing one), its schema, the
    /// .gitignore lines for secrets and the workspace. Asks nothing; every choice is a flag.
    #[command(
        after_help = "Example: comfyprov init --project comfyui-prod --gpu nvidia --auth login --generate-password"
    )]
    Init(simple::InitArgs),
    /// Write a comfy.toml from a deployment that exists: the workspace (ComfyUI and every
    /// custom_nodes/ checkout), a container, a ComfyUI-Manager snapshot. What a manifest cannot
    /// express is listed, with why; no secret is read.
    #[command(
        after_help = "Example: comfyprov import --workspace ./workspace --container comfyui --out comfy.toml && comfyprov plan"
    )]
    Import(simple::ImportArgs),
    /// Check the manifest; every problem is reported at once, each pointing at its line.
    #[command(after_help = "Example: comfyprov validate && git commit comfy.toml")]
    Validate,
    /// Print the JSON Schema of comfy.toml.
    #[command(after_help = "Example: comfyprov schema > comfy.schema.json")]
    Schema,
    /// Show what `apply` would do, and why.
    #[command(
        after_help = "Example: comfyprov plan --detailed-exitcode || echo \"changes pending (2) or an error (1)\""
    )]
    Plan(plan::PlanArgs),
    /// What is deployed, as observed: ComfyUI, each node, the password, the Python
    /// environment, the compose file and the container, each with what apply would still do.
    /// Exit 0 when it all matches, 2 when something is pending, 1 when it cannot be known.
    #[command(
        after_help = "Example: comfyprov status --json | jq '.parts[] | select(.pending != [])'"
    )]
    Status(status::StatusArgs),
    /// Make the workspace match the manifest: clone, check out, disable, write the password and
    /// the compose file. Shows the plan first; asks on a terminal unless --yes.
    #[command(after_help = "Example: comfyprov apply --yes --locked")]
    Apply(apply::ApplyArgs),
    /// Resolve ComfyUI's and the nodes' Python requirements into comfy.lock (nothing is
    /// installed). Rewrites nothing when the lock already matches. Needs the checkouts
    /// (`comfyprov apply --workspace-only` makes them) and uv.
    #[command(after_help = "Example: comfyprov lock && git add comfy.lock")]
    Lock,
    /// Print a plan saved with `plan --out FILE` for people, and whether the manifest still is
    /// the one it was made from.
    #[command(
        after_help = "Example: comfyprov plan --out tonight.json && comfyprov show tonight.json"
    )]
    Show {
        /// The saved plan.
        #[arg(value_name = "PLAN_FILE")]
        file: PathBuf,
    },
    /// Print the compose file the manifest renders.
    #[command(after_help = "Example: comfyprov render | docker-compose -f - config")]
    Render,
    /// Probe the running server: auth with and without the token, the empty token, the live
    /// argv against the manifest, and whether each declared node loaded. Exit 1 on any mismatch.
    #[command(after_help = "Example: comfyprov verify --workflow checks/smoke.json --json")]
    Verify(verify::VerifyArgs),
    /// Print the API bearer token for clients (line 1 of login/PASSWORD), if it matches the
    /// secret. The only command that prints a secret.
    #[command(
        after_help = "Example: curl -H \"Authorization: Bearer $(comfyprov token)\" http://127.0.0.1:8188/system_stats"
    )]
    Token,
    /// Stop and remove the container (never the workspace, the secret or the compose file).
    #[command(after_help = "Example: comfyprov down")]
    Down,
    /// Print the container's log, with every token masked.
    #[command(after_help = "Example: comfyprov logs --tail 50")]
    Logs {
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Print a shell completion script, e.g. `comfyprov completions bash > /etc/bash_completion.d/comfyprov`.
    #[command(
        after_help = "Example: comfyprov completions bash > /etc/bash_completion.d/comfyprov"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output settings shared by all commands.
pub struct Ui {
    pub color_out: bool,
    pub color_err: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Ui {
    fn new(cli: &Cli) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let force = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
        let choice = if cli.no_color {
            ColorChoice::Never
        } else {
            cli.color
        };
        let on = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if no_color => false,
            ColorChoice::Auto => force || terminal,
        };
        Ui {
            color_out: on(std::io::stdout().is_terminal()),
            color_err: on(std::io::stderr().is_terminal()),
            quiet: cli.quiet,
            verbose: cli.verbose,
        }
    }

    /// An informational line on stderr (suppressed by `-q`).
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

/// Parse arguments, run the command, and return the process exit code.
pub fn main() -> u8 {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1: exit 2 means "changes pending" for `plan --detailed-exitcode`.
            return if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
        }
    };
    cli.manifest = cli.manifest_arg.clone().unwrap_or_else(find_manifest);
    let ui = Ui::new(&cli);
    if ui.verbose {
        // `-v`: spans (load, observe, workspace, login, python, container, plan, each step)
        // print their times when they close; events say what was seen. Nothing is installed
        // without `-v`, so the macros cost a branch.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(ui.color_err)
            .with_target(false)
            .with_timer(tracing_subscriber::fmt::time::Uptime::default())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_max_level(tracing::Level::DEBUG)
            .compact()
            .init();
    }
    let color = ui.color_err;
    let wrap = std::io::stderr().is_terminal();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                // Wrapped lines are for people at a terminal; scripts and logs get whole lines.
                .wrap_lines(wrap)
                .build(),
        )
    }));
    let result = match &cli.command {
        Command::Init(args) => simple::init(&cli, &ui, args),
        Command::Import(args) => simple::import(&ui, args),
        Command::Validate => simple::validate(&cli, &ui),
        Command::Schema => simple::schema(),
        Command::Plan(args) => plan::run(&cli, &ui, args),
        Command::Status(args) => status::run(&cli, args),
        Command::Apply(args) => apply::run(&cli, &ui, args),
        Command::Lock => simple::lock(&cli, &ui),
        Command::Show { file } => simple::show(&cli, &ui, file),
        Command::Render => simple::render(&cli),
        Command::Token => simple::token(&cli),
        Command::Verify(args) => verify::run(&cli, &ui, args),
        Command::Down => simple::down(&cli, &ui),
        Command::Logs { tail } => simple::logs(&cli, *tail),
        Command::Completions { shell } => simple::completions(*shell),
    };
    let json = match &cli.command {
        Command::Plan(a) => a.json,
        Command::Status(a) => a.json,
        Command::Verify(a) => a.json,
        _ => false,
    };
    // The one place errors are printed (and mapped to the exit code): miette on stderr, and with
    // `--json` also a JSON error object on stdout, so a script can tell a refusal from a failure.
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            if json {
                let _ = emit(&format!("{}\n", error_json(report.as_ref())));
            }
            EXIT_ERROR
        }
    }
}

/// An error as JSON: `{"format_version", "ok": false, "error": {code, message, help, problems}}`.
fn error_json(d: &dyn miette::Diagnostic) -> String {
    fn one(d: &dyn miette::Diagnostic) -> serde_json::Value {
        serde_json::json!({
            "code": d.code().map(|c| c.to_string()),
            "message": d.to_string(),
            "help": d.help().map(|h| h.to_string()),
        })
    }
    let mut error = one(d);
    let problems: Vec<serde_json::Value> = d.related().into_iter().flatten().map(one).collect();
    if !problems.is_empty() {
        error["problems"] = problems.into();
    }
    let doc = serde_json::json!({ "format_version": 1, "ok": false, "error": error });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// `comfy.toml` here, else in the nearest folder above that has one (its path then), else
/// `comfy.toml` (whose absence the loader reports).
fn find_manifest() -> PathBuf {
    const NAME: &str = "comfy.toml";
    if std::path::Path::new(NAME).is_file() {
        return PathBuf::from(NAME);
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            cwd.ancestors()
                .skip(1)
                .map(|dir| dir.join(NAME))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from(NAME))
}

/// Write command output to stdout. A closed pipe (`comfyprov plan | head`) ends the output
/// quietly; any other write error (a full disk behind `>`) is an error.
pub fn emit(text: &str) -> miette::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(miette::miette!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Load the manifest named on the command line.
/// A number of seconds from the command line (`10`, `0.5`).
fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a number of seconds"))
}

pub fn load(cli: &Cli) -> miette::Result<crate::manifest::Desired> {
    crate::manifest::load(&cli.manifest).map_err(miette::Report::new)
}
