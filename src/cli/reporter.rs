//! The command line's [`Reporter`]s: indicatif bars on a terminal, plain lines elsewhere. Both
//! write to stderr; stdout is for the plan and the summary.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::Step;
use crate::report::{Outcome, Progress, Reporter, StepId};

/// One finished step as a line: `done     clone X @ abc1234 (v1 → abc1234, 0.4 s)`.
pub fn line(step: &Step, outcome: &Outcome, took: Option<Duration>) -> String {
    let what = step.action.describe();
    let secs = took
        .filter(|d| d.as_millis() >= 100)
        .map(|d| format!("{:.1} s", d.as_secs_f64()));
    match outcome {
        Outcome::Done { detail } => {
            let extra: Vec<String> = detail.iter().cloned().chain(secs).collect();
            if extra.is_empty() {
                format!("done     {what}")
            } else {
                format!("done     {what} ({})", extra.join(", "))
            }
        }
        Outcome::AlreadyDone { why } => format!("already  {what}: {why}"),
        Outcome::Left { why } => format!("left     {what}: {why}"),
        Outcome::Failed { error } => format!("FAILED   {error}"),
    }
}

/// Plain lines, one per finished step, and for downloads one every 10 % (or 1 GB).
pub struct Lines {
    started: Mutex<HashMap<StepId, Instant>>,
    shown: Mutex<HashMap<StepId, u64>>,
}

impl Lines {
    pub fn new() -> Self {
        Lines {
            started: Mutex::new(HashMap::new()),
            shown: Mutex::new(HashMap::new()),
        }
    }
}

/// `1.20 GB of 20.43 GB (5 %), 110.3 MB/s, 3 min left`.
fn download_text(done: u64, total: Option<u64>, rate: u64) -> String {
    let mut s = format!("{}", HumanBytes(done));
    if let Some(t) = total.filter(|&t| t > 0) {
        s.push_str(&format!(" of {} ({} %)", HumanBytes(t), done * 100 / t));
    }
    s.push_str(&format!(", {}/s", HumanBytes(rate)));
    if let Some(t) = total.filter(|&t| t > done && rate > 0) {
        let secs = (t - done) / rate;
        s.push_str(&if secs >= 120 {
            format!(", {} min left", secs / 60)
        } else {
            format!(", {secs} s left")
        });
    }
    s
}

impl Reporter for Lines {
    fn on_step_start(&self, id: StepId, _: &Step) {
        if let Ok(mut m) = self.started.lock() {
            m.insert(id, Instant::now());
        }
    }

    fn on_progress(&self, id: StepId, progress: Progress) {
        let Progress::Download { done, total, rate } = progress else {
            return;
        };
        let step = total.map_or(1 << 30, |t| (t / 10).max(1));
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        let last = shown.entry(id).or_insert(0);
        if done / step > *last / step || (*last == 0 && done > 0) {
            *last = done;
            eprintln!("         downloading: {}", download_text(done, total, rate));
        }
    }

    fn on_step_finish(&self, id: StepId, step: &Step, outcome: &Outcome) {
        let took = self
            .started
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(Instant::elapsed));
        eprintln!("{}", line(step, outcome, took));
    }

    fn on_message(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// A bar per clone or fetch in flight, drawn only on a terminal; finished steps become lines.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<StepId, (ProgressBar, Instant)>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn on_step_start(&self, id: StepId, step: &Step) {
        let bar = if step.action.transfers() {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(step.action.describe());
            bar.set_message("connecting");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        if let Ok(mut m) = self.bars.lock() {
            m.insert(id, (bar, Instant::now()));
        }
    }

    fn on_progress(&self, id: StepId, progress: Progress) {
        let Ok(m) = self.bars.lock() else { return };
        let Some((bar, _)) = m.get(&id) else { return };
        match progress {
            Progress::Transfer {
                received_objects,
                total_objects,
                received_bytes,
            } => bar.set_message(format!(
                "{received_objects}/{total_objects} objects, {}",
                HumanBytes(received_bytes as u64)
            )),
            Progress::Checkout { done, total } => {
                bar.set_message(format!("checking out {done}/{total} files"));
            }
            Progress::Pull {
                layers_done,
                layers,
                bytes_done,
                bytes_total,
            } => bar.set_message(format!(
                "pulling: {layers_done}/{layers} layers, {} of {}",
                HumanBytes(bytes_done),
                HumanBytes(bytes_total)
            )),
            Progress::Download { done, total, rate } => {
                bar.set_message(download_text(done, total, rate));
            }
        }
    }

    fn on_step_finish(&self, id: StepId, step: &Step, outcome: &Outcome) {
        let entry = self.bars.lock().ok().and_then(|mut m| m.remove(&id));
        let took = entry.as_ref().map(|(_, t)| t.elapsed());
        if let Some((bar, _)) = entry {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self.multi.println(line(step, outcome, took));
    }

    fn on_message(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}
