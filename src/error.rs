//! Typed errors for what touches the world: observation, the steps apply runs, verify. Each
//! names the path, URL or container it concerns and keeps its cause; `help` says what the user
//! can do. They are printed in one place, the CLI's error boundary (miette), and mapped to exit
//! codes there too.

use std::path::{Path, PathBuf};

use crate::plan::Step;

/// Why one step failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StepError {
    /// A file operation failed on `path`.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
        #[help]
        help: Option<String>,
    },
    /// Anything else, said in full.
    #[error("{message}")]
    Failed {
        message: String,
        #[help]
        help: Option<String>,
    },
}

/// What the user can do about an I/O error, by kind.
fn io_help(e: &std::io::Error) -> Option<String> {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            Some("check the owner and permissions of the workspace".to_owned())
        }
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            Some("free some disk space and run apply again".to_owned())
        }
        _ => None,
    }
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        StepError::Failed {
            message: message.into(),
            help: None,
        }
    }

    /// `op` (`cannot write`, `cannot read`, …) failed on `path`.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        let help = io_help(&source);
        StepError::Io {
            op,
            path: path.to_owned(),
            source,
            help,
        }
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            StepError::Io { help, .. } | StepError::Failed { help, .. } => {
                *help = Some(text.into())
            }
        }
        self
    }

    /// The cause as one message (the source's text included).
    pub fn cause(&self) -> String {
        self.to_string()
    }

    pub fn help_text(&self) -> Option<&str> {
        match self {
            StepError::Io { help, .. } | StepError::Failed { help, .. } => help.as_deref(),
        }
    }
}

/// A step that failed: which step, on which object (its description names both), and why.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("failed to {step}")]
pub struct ApplyError {
    pub step: String,
    #[source]
    #[diagnostic_source]
    pub cause: StepError,
}

impl ApplyError {
    pub fn new(step: &Step, cause: StepError) -> Self {
        ApplyError {
            step: step.action.describe(),
            cause,
        }
    }
}

/// `failed to clone ComfyUI-Login @ 6910925` / `caused by: …` / `help: …`, as the apply summary
/// and the reporter show it.
impl ApplyError {
    pub fn message(&self) -> String {
        let mut msg = format!(
            "failed to {}\n  caused by: {}",
            self.step,
            self.cause.cause()
        );
        if let Some(h) = self.cause.help_text() {
            msg.push_str("\n  help: ");
            msg.push_str(h);
        }
        msg
    }
}

/// Why something could not be observed: the daemon, or a runtime for talking to it.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
pub enum ObserveError {
    #[error("the Docker daemon at {host} cannot be reached ({cause})")]
    #[diagnostic(help(
        "start the Docker daemon, or fix DOCKER_HOST or the docker context (`docker context ls`)"
    ))]
    Daemon { host: String, cause: String },
    #[error("the docker context `{name}` (chosen by {by}) cannot be used: {cause}")]
    #[diagnostic(help(
        "`docker context ls` lists the contexts; `docker context use default` or DOCKER_HOST picks another"
    ))]
    Context {
        name: String,
        by: &'static str,
        cause: String,
    },
    #[error("the Docker daemon answered an error: {0}")]
    Api(String),
    #[error("cannot start an async runtime: {0}")]
    Runtime(String),
}
