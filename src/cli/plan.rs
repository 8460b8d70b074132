//! `comfyprov plan`: observe, plan, print (text or JSON), optionally save.

use std::path::PathBuf;
use std::time::Instant;

use miette::{IntoDiagnostic, WrapErr};

use super::{Cli, EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Ui, emit};
use crate::ops;
use crate::plan::{Options, display};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print the plan as JSON (with a `format_version`).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there is nothing to do, 2 when changes are pending, 1 on error (the container
    /// could not be observed is one).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan, with a fingerprint of what was observed, for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan to replace dirty, non-git and foreign checkouts (old directories are kept aside).
    #[arg(long)]
    pub force: bool,
    /// Plan the workspace only: no container steps.
    #[arg(long)]
    pub workspace_only: bool,
    /// Refuse a comfy.lock that no longer matches the manifest and the requirements, instead
    /// of planning to resolve it again (as `cargo --locked`).
    #[arg(long)]
    pub locked: bool,
}

pub fn run(cli: &Cli, ui: &Ui, args: &PlanArgs) -> miette::Result<u8> {
    let started = Instant::now();
    let ops::Loaded {
        desired,
        sha256: manifest_sha256,
    } = ops::load(&cli.manifest).map_err(miette::Report::new)?;
    let loaded = started.elapsed();
    let ops::Planned { observed, plan } = ops::plan(
        &desired,
        &Options {
            force: args.force,
            workspace_only: args.workspace_only,
            locked: args.locked,
        },
    );
    tracing::info!(
        manifest_ms = loaded.as_secs_f64() * 1e3,
        observe_and_plan_ms = (started.elapsed() - loaded).as_secs_f64() * 1e3,
        "timings"
    );

    let manifest = cli.manifest.display().to_string();
    let fingerprint = observed.fingerprint();
    let doc = (args.json || args.out.is_some())
        .then(|| display::json(&plan, &manifest, &desired.project, &fingerprint));
    match &doc {
        Some(doc) if args.json => {
            emit(&(serde_json::to_string_pretty(doc).into_diagnostic()? + "\n"))?;
        }
        _ => {
            let title = format!("{} ({manifest})", desired.project);
            emit(&display::render(&plan, &title, ui.color_out))?;
        }
    }

    if let (Some(out), Some(mut doc)) = (&args.out, doc) {
        doc["manifest_sha256"] = manifest_sha256.into();
        doc["force"] = args.force.into();
        doc["workspace_only"] = args.workspace_only.into();
        doc["locked"] = args.locked.into();
        let text = serde_json::to_vec_pretty(&doc).into_diagnostic()?;
        crate::fsutil::write_atomic(out, &text, 0o600)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot save the plan to `{}`", out.display()))?;
        ui.info(&format!("saved plan to {}", out.display()));
    }

    // What could not be observed cannot match: an error, whatever else the plan says.
    Ok(if plan.unobserved().is_some() {
        EXIT_ERROR
    } else if args.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}
