//! `comfyprov verify`: probe the running server (also run at the end of `apply`).

use std::time::Duration;

use anstyle::{AnsiColor, Style};
use miette::IntoDiagnostic;

use super::{Cli, EXIT_ERROR, EXIT_OK, Ui, emit, load, parse_seconds};
use crate::verify::Verification;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the server to answer (ComfyUI imports every node before it listens).
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Also submit this API-format workflow (ComfyUI's "Save (API)") with the token and follow
    /// it to completion (120 s); repeatable. `[[checks]]` in the manifest are always run.
    #[arg(long, value_name = "FILE")]
    pub workflow: Vec<std::path::PathBuf>,
}

pub fn run(cli: &Cli, ui: &Ui, args: &VerifyArgs) -> miette::Result<u8> {
    let desired = load(cli)?;
    let v = crate::ops::verify(
        &desired,
        args.timeout,
        crate::ops::Checks::All(&args.workflow),
    )?;
    if args.json {
        emit(&(serde_json::to_string_pretty(&v).into_diagnostic()? + "\n"))?;
    } else {
        emit(&render(&v, ui.color_out))?;
    }
    Ok(if v.ok { EXIT_OK } else { EXIT_ERROR })
}

fn mark(s: &str, color: AnsiColor, on: bool) -> String {
    let style = Style::new().fg_color(Some(color.into())).bold();
    crate::plan::display::paint(s, style, on)
}

/// The verification as people read it: one line per check, then what the server reported.
pub fn render(v: &Verification, color: bool) -> String {
    let mut out = format!(
        "verify {} at {} (answered after {:.1} s)\n",
        v.container,
        v.url,
        v.ready_ms as f64 / 1e3
    );
    for c in &v.checks {
        let mark = if c.ok {
            mark("ok  ", AnsiColor::Green, color)
        } else {
            mark("FAIL", AnsiColor::Red, color)
        };
        out.push_str(&format!("  {mark}  {}: {}\n", c.check, c.detail));
    }
    let devices: Vec<String> = v
        .devices
        .iter()
        .map(|d| match d.vram_total {
            Some(b) if d.kind != "cpu" => format!("{} ({}, {} MiB)", d.name, d.kind, b >> 20),
            _ => format!("{} ({})", d.name, d.kind),
        })
        .collect();
    out.push_str(&format!(
        "  server: ComfyUI {}, Python {}, torch {}, devices: {}\n",
        v.comfyui_version.as_deref().unwrap_or("unknown"),
        v.python_version.as_deref().unwrap_or("unknown"),
        v.torch_version.as_deref().unwrap_or("unknown"),
        if devices.is_empty() {
            "unknown".to_owned()
        } else {
            devices.join(", ")
        }
    ));
    for n in &v.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    let failed = v.checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        out.push_str(&format!("Verified: {} checks passed.\n", v.checks.len()));
    } else {
        out.push_str(&format!(
            "Verify failed: {failed} of {} checks failed.\n",
            v.checks.len()
        ));
    }
    out
}
