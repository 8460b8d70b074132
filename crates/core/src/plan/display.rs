//! A plan as people read it: one line per step (symbol, action, reasons), notes, a summary.
//! Secrets never reach this module: steps name files, not their contents.

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use super::{Kind, Note, Plan, Step};

/// `s` in `style` when `color` is on.
pub fn paint(s: &str, style: Style, color: bool) -> String {
    if color {
        format!("{}{s}{}", style.render(), style.render_reset())
    } else {
        s.to_owned()
    }
}

fn kind_style(kind: Kind) -> Style {
    let c = match kind {
        Kind::Create => AnsiColor::Green,
        Kind::Change => AnsiColor::Yellow,
        Kind::Remove => AnsiColor::Red,
        Kind::Refuse => AnsiColor::Magenta,
    };
    Style::new().fg_color(Some(c.into())).bold()
}

/// The plan as text. `title` names what is compared (`comfyui-qwen (comfy.toml)`).
pub fn render(plan: &Plan, title: &str, color: bool) -> String {
    let dim = Style::new().dimmed();
    let mut out = String::new();
    if plan.steps.is_empty() && plan.unobserved().is_some() {
        // What could not be observed cannot match.
        out.push_str(&format!(
            "{title}: the container could not be observed, so whether the deployment matches the manifest is unknown\n"
        ));
    } else if plan.steps.is_empty() {
        out.push_str(&format!(
            "{title}: nothing to do, reality matches the manifest\n"
        ));
    } else {
        out.push_str(&format!(
            "{title}: {} step{}\n\n",
            plan.steps.len(),
            plural(plan.steps.len())
        ));
        let width = plan
            .steps
            .iter()
            .map(|s| s.action.describe().chars().count())
            .max()
            .unwrap_or(0)
            .min(56);
        for Step { action, reasons } in &plan.steps {
            let kind = action.kind();
            let head = format!("{} {:<width$}", kind.symbol(), action.describe());
            out.push_str(&format!(
                "  {}  {}\n",
                paint(&head, kind_style(kind), color),
                paint(&joined(reasons), dim, color)
            ));
            if let super::Action::RenderCompose {
                previous: Some(previous),
                content,
                ..
            } = action
            {
                for line in diff_lines(previous, content) {
                    let style = if line.starts_with('+') {
                        kind_style(Kind::Create)
                    } else {
                        kind_style(Kind::Remove)
                    };
                    out.push_str(&format!("      {}\n", paint(&line, style, color)));
                }
            }
            if let super::Action::SyncPython { changes, .. } = action {
                for change in changes {
                    let style = match change {
                        crate::lock::PackageChange::Add { .. } => kind_style(Kind::Create),
                        crate::lock::PackageChange::Remove { .. } => kind_style(Kind::Remove),
                        crate::lock::PackageChange::Update { .. } => kind_style(Kind::Change),
                    };
                    out.push_str(&format!(
                        "      {}\n",
                        paint(&change.to_string(), style, color)
                    ));
                }
            }
            if let super::Action::Blocked { blocker } = action {
                out.push_str(&format!(
                    "    {} {}\n",
                    paint("help:", Style::new().bold(), color),
                    blocker.help()
                ));
            }
        }
    }
    if !plan.notes.is_empty() {
        out.push('\n');
        for n in &plan.notes {
            out.push_str(&format!(
                "  {} {}\n",
                paint(
                    "note:",
                    Style::new().fg_color(Some(AnsiColor::Cyan.into())),
                    color
                ),
                n.message()
            ));
        }
    }
    out.push('\n');
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

/// The lines that differ between `old` and `new`, as `- line` and `+ line` in file order (a
/// longest-common-subsequence diff: the compose file is a few dozen lines). At most 40 lines.
pub fn diff_lines(old: &str, new: &str) -> Vec<String> {
    const MAX: usize = 40;
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 1_000_000 {
        return vec![format!(
            "~ {} lines now, {} after (too long to compare line by line)",
            a.len(),
            b.len()
        )];
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    if out.len() > MAX {
        let more = out.len() - MAX;
        out.truncate(MAX);
        out.push(format!("… {more} more changed lines"));
    }
    out
}

/// Reasons as one line of text.
pub fn joined(reasons: &[super::Reason]) -> String {
    let text: Vec<String> = reasons.iter().map(ToString::to_string).collect();
    text.join("; ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `Plan: 2 to create, 1 to change, 0 to disable, 1 refused.`
pub fn summary(plan: &Plan) -> String {
    if let Some(reason) = plan.unobserved().filter(|_| plan.steps.is_empty()) {
        return format!("Not observed: the container ({reason}). No other changes.");
    }
    if plan.steps.is_empty() {
        return "No changes.".to_owned();
    }
    format!(
        "Plan: {} to create, {} to change, {} to disable or remove, {} refused or blocked.",
        plan.count(Kind::Create),
        plan.count(Kind::Change),
        plan.count(Kind::Remove),
        plan.count(Kind::Refuse)
    )
}

/// Version of the `--json` format; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// A step as `--json` shows it: the step itself (action, payload and typed `causes`, exactly
/// what its executor receives) with its symbol, kind, description and reasons as text.
#[derive(Serialize)]
struct JsonStep<'a> {
    symbol: String,
    kind: Kind,
    description: String,
    reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
    #[serde(flatten)]
    step: &'a Step,
}

#[derive(Serialize)]
struct JsonNote<'a> {
    message: String,
    #[serde(flatten)]
    note: &'a Note,
}

#[derive(Serialize)]
struct Counts {
    create: usize,
    change: usize,
    remove: usize,
    refuse: usize,
}

/// The plan as a JSON value for machines (`plan --json`, saved plans).
pub fn json(plan: &Plan, manifest: &str, project: &str, fingerprint: &str) -> serde_json::Value {
    #[derive(Serialize)]
    struct Doc<'a> {
        format_version: u32,
        manifest: &'a str,
        project: &'a str,
        changes_pending: bool,
        /// Why something could not be observed (the plan is then incomplete); absent when
        /// everything was.
        #[serde(skip_serializing_if = "Option::is_none")]
        not_observed: Option<&'a str>,
        summary: Counts,
        steps: Vec<JsonStep<'a>>,
        notes: Vec<JsonNote<'a>>,
        observed_fingerprint: &'a str,
    }
    let doc = Doc {
        format_version: FORMAT_VERSION,
        manifest,
        project,
        changes_pending: plan.has_changes(),
        not_observed: plan.unobserved(),
        summary: Counts {
            create: plan.count(Kind::Create),
            change: plan.count(Kind::Change),
            remove: plan.count(Kind::Remove),
            refuse: plan.count(Kind::Refuse),
        },
        steps: plan
            .steps
            .iter()
            .map(|s| JsonStep {
                symbol: s.action.kind().symbol().to_string(),
                kind: s.action.kind(),
                description: s.action.describe(),
                reasons: s.reasons.iter().map(ToString::to_string).collect(),
                help: match &s.action {
                    super::Action::Blocked { blocker } => Some(blocker.help()),
                    _ => None,
                },
                step: s,
            })
            .collect(),
        notes: plan
            .notes
            .iter()
            .map(|n| JsonNote {
                message: n.message(),
                note: n,
            })
            .collect(),
        observed_fingerprint: fingerprint,
    };
    serde_json::to_value(&doc).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn diff_shows_removed_then_added_lines_in_file_order() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nB\nc\nd\ne\n";
        assert_eq!(diff_lines(old, new), ["- b", "+ B", "+ e"]);
        assert!(diff_lines(new, new).is_empty());
    }
}
