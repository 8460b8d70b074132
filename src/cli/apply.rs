//! `comfyprov apply [PLAN_FILE]`: lock, observe, plan, show, confirm, execute, summarise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::{Diagnostic, IntoDiagnostic, WrapErr};

use super::reporter::{Bars, Lines};
use super::{Cli, EXIT_ERROR, EXIT_OK, Ui, emit, parse_seconds};
use crate::apply::{self, lock};
use crate::manifest::Desired;
use crate::ops;
use crate::plan::{Options, Phase, display};
use crate::report::{Outcome, Reporter, Silent};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan saved by `comfyprov plan --out FILE`. It is applied only if nothing it was made
    /// from has changed since (the manifest and everything observed).
    #[arg(value_name = "PLAN_FILE")]
    pub plan_file: Option<PathBuf>,
    /// Apply without asking. Without a terminal (cron, CI) apply refuses unless this is given.
    #[arg(short, long)]
    pub yes: bool,
    /// Replace dirty, non-git and foreign checkouts; the old directory is kept aside as
    /// `<dir>.<timestamp>.disabled`, never deleted.
    #[arg(long, conflicts_with = "plan_file")]
    pub force: bool,
    /// Converge the workspace only; leave the container as it is (and restart it yourself).
    #[arg(long, conflicts_with = "plan_file")]
    pub workspace_only: bool,
    /// Refuse a comfy.lock that no longer matches the manifest and the requirements; never
    /// rewrite it (for CI and production: deploy exactly what was committed).
    #[arg(long, conflicts_with = "plan_file")]
    pub locked: bool,
    /// Seconds to wait for another apply on the same workspace before giving up.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub lock_timeout: Duration,
    /// How many clones and fetches run at once.
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Do not probe the server after applying (see `comfyprov verify`).
    #[arg(long)]
    pub no_verify: bool,
    /// Seconds to wait for the server to answer before verifying it.
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = parse_seconds)]
    pub verify_timeout: Duration,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum SavedPlanError {
    #[error("`{path}` is not a plan saved by `comfyprov plan --out`: {why}")]
    #[diagnostic(code(comfyprov::apply::bad_plan_file))]
    Unreadable { path: String, why: String },
    #[error("the plan `{path}` is stale: {what} changed since it was saved")]
    #[diagnostic(
        code(comfyprov::apply::stale_plan),
        help("review the new plan with `comfyprov plan --out {path}`, then apply that")
    )]
    Stale { path: String, what: String },
}

/// `apply` without a terminal to ask on and without `--yes`.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("apply needs a yes, and there is no terminal to ask on: nothing was changed")]
#[diagnostic(
    code(comfyprov::apply::unattended),
    help(
        "pass --yes to apply without asking (cron, CI), or save the plan with `comfyprov plan --out FILE` and run `comfyprov apply FILE`"
    )
)]
pub struct Unattended;

/// A saved plan: its JSON document and the choices it was made with.
struct Saved {
    path: String,
    doc: serde_json::Value,
    force: bool,
    workspace_only: bool,
    locked: bool,
}

fn read_saved(path: &Path, manifest_sha256: &str) -> Result<Saved, SavedPlanError> {
    let shown = path.display().to_string();
    let bad = |why: String| SavedPlanError::Unreadable {
        path: shown.clone(),
        why,
    };
    let text = crate::fsutil::read_regular(path).map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if doc["format_version"] != display::FORMAT_VERSION {
        return Err(bad(format!(
            "format_version is {}, this comfyprov reads {}",
            doc["format_version"],
            display::FORMAT_VERSION
        )));
    }
    let (Some(saved_sha), Some(_)) = (
        doc["manifest_sha256"].as_str(),
        doc["observed_fingerprint"].as_str(),
    ) else {
        return Err(bad(
            "it has no fingerprint (was it printed with --json instead of saved with --out?)"
                .to_owned(),
        ));
    };
    if saved_sha != manifest_sha256 {
        return Err(SavedPlanError::Stale {
            path: shown,
            what: "the manifest".to_owned(),
        });
    }
    let force = doc["force"].as_bool().unwrap_or(false);
    let workspace_only = doc["workspace_only"].as_bool().unwrap_or(false);
    let locked = doc["locked"].as_bool().unwrap_or(false);
    Ok(Saved {
        path: shown,
        doc,
        force,
        workspace_only,
        locked,
    })
}

pub fn run(cli: &Cli, ui: &Ui, args: &ApplyArgs) -> miette::Result<u8> {
    let loaded = ops::load(&cli.manifest).map_err(miette::Report::new)?;
    let desired = &loaded.desired;
    let saved = match &args.plan_file {
        Some(p) => Some(read_saved(p, &loaded.sha256)?),
        None => None,
    };
    let plan_opts = Options {
        force: saved.as_ref().map_or(args.force, |s| s.force),
        workspace_only: saved
            .as_ref()
            .map_or(args.workspace_only, |s| s.workspace_only),
        locked: saved.as_ref().map_or(args.locked, |s| s.locked),
    };

    let lock = lock::acquire(&desired.workspace.path, args.lock_timeout, |holder| {
        ui.info(&format!(
            "waiting up to {:.0} s for another apply on this workspace ({})",
            args.lock_timeout.as_secs_f64(),
            holder.map_or_else(|| "holder unknown".to_owned(), ToString::to_string)
        ));
    })?;
    if let Some(h) = &lock.took_over {
        ui.info(&format!(
            "took over the lock of an apply that did not finish ({h})"
        ));
    }
    for dir in apply::sweep_leftovers(desired) {
        ui.info(&format!(
            "removed {dir}: a partial clone left by an interrupted apply"
        ));
    }

    let planned = ops::plan(desired, &plan_opts);
    let manifest = cli.manifest.display().to_string();
    if let Some(saved) = &saved {
        check_saved(saved, &planned, &manifest, &desired.project)?;
    }

    let title = format!("{} ({manifest})", desired.project);
    emit(&display::render(&planned.plan, &title, ui.color_out))?;
    if !planned.plan.has_changes() {
        bcrypt_detail();
        drop(lock);
        return verify_after(ui, args, desired, plan_opts.workspace_only);
    }
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // A saved plan was reviewed when it was saved; anything else needs a yes, and without a
    // terminal nobody can give one (cron, CI): refuse rather than change things unasked.
    if !args.yes && saved.is_none() {
        if !interactive {
            return Err(Unattended.into());
        }
        if !confirm(planned.plan.steps.len())? {
            eprintln!("nothing was changed");
            return Ok(EXIT_ERROR);
        }
    }

    let reporter: Box<dyn Reporter> = if ui.quiet {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::new())
    };
    let opts = apply::Options {
        jobs: usize::from(args.jobs),
    };
    let applied = ops::apply(desired, &planned, &plan_opts, &opts, reporter.as_ref());
    drop(reporter);
    drop(lock);
    bcrypt_detail();
    let container_managed = desired.container.is_some() && !plan_opts.workspace_only;
    emit(&summary(desired, &applied, container_managed))?;
    if !applied.converged() {
        return Ok(EXIT_ERROR);
    }
    verify_after(ui, args, desired, plan_opts.workspace_only)
}

/// A saved plan applies only while what it was made from is unchanged: the workspace (the
/// observed fingerprint) and the steps.
fn check_saved(
    saved: &Saved,
    planned: &ops::Planned,
    manifest: &str,
    project: &str,
) -> Result<(), SavedPlanError> {
    let now = display::json(
        &planned.plan,
        manifest,
        project,
        &planned.observed.fingerprint(),
    );
    let what = if saved.doc["observed_fingerprint"] != now["observed_fingerprint"] {
        "the workspace"
    } else if saved.doc["steps"] != now["steps"] {
        "the plan"
    } else {
        return Ok(());
    };
    Err(SavedPlanError::Stale {
        path: saved.path.clone(),
        what: what.to_owned(),
    })
}

/// Probe the server once apply converged, unless told not to or there is none to probe.
fn verify_after(
    ui: &Ui,
    args: &ApplyArgs,
    desired: &Desired,
    workspace_only: bool,
) -> miette::Result<u8> {
    if args.no_verify || workspace_only || desired.container.is_none() {
        return Ok(EXIT_OK);
    }
    ui.info("verifying the server…");
    let v = ops::verify(desired, args.verify_timeout, ops::Checks::OnApply)?;
    emit(&format!("\n{}", super::verify::render(&v, ui.color_out)))?;
    Ok(if v.ok { EXIT_OK } else { EXIT_ERROR })
}

/// With `-v`: how many bcrypt hashes or verifies this run cost (none when nothing changed).
fn bcrypt_detail() {
    tracing::info!(
        bcrypt_operations = crate::observe::login::bcrypt_runs(),
        "bcrypt"
    );
}

fn confirm(steps: usize) -> miette::Result<bool> {
    use std::io::Write;
    eprint!(
        "Apply {steps} step{}? [y/N] ",
        if steps == 1 { "" } else { "s" }
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .into_diagnostic()
        .wrap_err("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// What was done, what was left, what a restart would pick up, and whether reality matches now.
fn summary(desired: &Desired, applied: &ops::Applied, container_managed: bool) -> String {
    let (report, after) = (&applied.report, &applied.after);
    let count = |f: fn(&Outcome) -> bool| report.results.iter().filter(|r| f(&r.outcome)).count();
    let mut out = format!(
        "\nApplied: {} done, {} already done, {} failed, {} left.\n",
        count(|o| matches!(o, Outcome::Done { .. })),
        count(|o| matches!(o, Outcome::AlreadyDone { .. })),
        count(|o| matches!(o, Outcome::Failed { .. })),
        count(|o| matches!(o, Outcome::Left { .. })),
    );
    for r in report.failed() {
        if let Outcome::Failed { error } = &r.outcome {
            out.push_str(&format!("\nerror: {error}\n"));
        }
    }
    let left: Vec<_> = report.left().collect();
    if !left.is_empty() {
        out.push_str("\nLeft as they are:\n");
        for r in left {
            if let Outcome::Left { why } = &r.outcome {
                out.push_str(&format!("  {}: {why}\n", r.step.action.describe()));
            }
        }
    }
    // Without a container step (no [container], or the daemon unreachable) the restart is the
    // user's to do.
    let restart = report.restart_reasons();
    let container_step = report
        .results
        .iter()
        .any(|r| r.step.action.phase() == Phase::Container);
    if !restart.is_empty() && !container_step {
        out.push_str(&format!(
            "\nRestart needed: ComfyUI reads custom nodes and login/PASSWORD only at start. It picks up on restart: {}.\n",
            restart.join("; ")
        ));
        if desired.container.is_none() {
            out.push_str(
                "  comfyprov does not run ComfyUI here (no [container]): restart it yourself.\n",
            );
        }
    }
    if after.has_changes() {
        out.push_str(&format!(
            "\nNot converged: {} step{} remain{}; see `comfyprov plan`.\n",
            after.steps.len(),
            if after.steps.len() == 1 { "" } else { "s" },
            if after.steps.len() == 1 { "s" } else { "" }
        ));
    } else if applied.unobserved.is_some() {
        // The workspace steps are done, but whether the server runs what they made is unknown:
        // never "converged".
        out.push_str(
            "\nNot converged: the workspace matches the manifest; the container is unknown.\n",
        );
    } else {
        out.push_str(if container_managed {
            "\nConverged: the workspace and the container match the manifest.\n"
        } else {
            "\nConverged: the workspace matches the manifest.\n"
        });
    }
    if let Some(reason) = &applied.unobserved {
        out.push_str(&format!(
            "error: the container cannot be observed: {reason}\n  help: start the Docker daemon, or fix DOCKER_HOST or the docker context, then run apply again\n"
        ));
    }
    out
}
