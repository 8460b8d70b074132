//! Why a step exists ([`Reason`]) and why apply cannot do something on its own ([`Blocker`]):
//! typed values, turned into text only by their `Display`, which the display layer calls.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::step::{Action, Target, short};
use crate::manifest::SecretSource;

/// One reason for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    WorkspaceMissing {
        path: String,
    },
    /// `<workspace>/ComfyUI` is missing and the manifest has no `[comfyui]`.
    ComfyUiAbsent {
        workspace: String,
    },
    ComposeMissing {
        path: String,
    },
    ComposeDiffers {
        path: String,
    },
    ComposeUnreadable {
        path: String,
        error: String,
    },
    NoContainer {
        name: String,
    },
    /// A container with the project's name that comfyprov did not create; `forced` with `--force`.
    ForeignContainer {
        name: String,
        forced: bool,
    },
    /// The container has no `comfyprov.spec` label.
    NoSpecLabel,
    /// The manifest's run spec differs in these fields.
    SpecChanged {
        fields: Vec<String>,
    },
    ContainerStopped {
        name: String,
        status: String,
    },
    /// Something the server reads at start changed after it started.
    PendingRestart {
        started_at: Option<String>,
    },
    /// A step of this plan changes what the running server read at start.
    ChangedBy {
        action: Box<Action>,
    },
    RequirementsInstalled {
        nodes: Vec<String>,
    },
    NodeChanges {
        node: String,
    },
    RequirementsChanged {
        node: String,
    },
    RequirementsNotInstalled {
        node: String,
    },
    /// A new container whose interpreter comes from the image lacks the node's packages.
    ImagePython {
        node: String,
    },
    Missing {
        target: Target,
    },
    /// The node is missing, but `<node>.disabled` is a clean checkout of it.
    DisabledTwin {
        target: Target,
        from: String,
    },
    NotGit {
        target: Target,
    },
    ForeignOrigin {
        target: Target,
        found: Option<String>,
        url: String,
    },
    Dirty {
        target: Target,
        count: usize,
        sample: Vec<String>,
        /// The rev it must move to, when it is not at its pin.
        move_to: Option<String>,
    },
    /// A checkout in the way, and what happens to it: `forced` keeps it aside and clones afresh.
    Obstructed {
        why: Box<Reason>,
        forced: bool,
    },
    Uninspectable {
        error: String,
    },
    NoCommit {
        target: Target,
    },
    /// At `head`; the named rev is not in the checkout yet.
    NotFetched {
        target: Target,
        head: String,
        rev: String,
    },
    OtherCommit {
        target: Target,
        head: String,
        rev: String,
    },
    LoginNodeWithoutAuth {
        node: String,
    },
    UnmanagedDisabled {
        dir: String,
    },
    GenerateSecret {
        path: String,
    },
    NewPasswordGenerated,
    LegacyHoldsReplacedHash,
    SecretNeeded,
    SecretUnusable {
        error: String,
    },
    LegacyStillMatches,
    PasswordMissing,
    LegacyMismatch {
        source: String,
    },
    PasswordUnreadable {
        error: String,
    },
    PasswordMismatch {
        source: String,
    },
    HashMalformed,
    LegacyBeside,
    PasswordReadable {
        mode: u32,
    },
    UsernameDiffers {
        found: String,
        want: String,
    },
    NoUsername,
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WorkspaceMissing { path } => write!(f, "{path} does not exist"),
            Reason::ComfyUiAbsent { workspace } => write!(
                f,
                "{workspace}/ComfyUI does not exist and the manifest has no [comfyui]"
            ),
            Reason::ComposeMissing { path } => write!(f, "{path} does not exist"),
            Reason::ComposeDiffers { path } => write!(
                f,
                "{path} differs from what the manifest renders (edited by hand, or the manifest changed)"
            ),
            Reason::ComposeUnreadable { path, error } => {
                write!(f, "{path} cannot be read: {error}")
            }
            Reason::NoContainer { name } => write!(f, "no container is named {name}"),
            Reason::ForeignContainer { name, forced } => {
                write!(
                    f,
                    "a container named {name} exists, but comfyprov did not create it (no `comfyprov.project` label)"
                )?;
                if *forced {
                    f.write_str("; --force removes it")?;
                }
                Ok(())
            }
            Reason::NoSpecLabel => f.write_str("it was created without comfyprov's spec label"),
            Reason::SpecChanged { fields } => {
                write!(f, "the manifest changed its {}", fields.join(", "))
            }
            Reason::ContainerStopped { name, status } => {
                write!(f, "container {name} is {status}")
            }
            Reason::PendingRestart { started_at } => write!(
                f,
                "custom nodes or login/PASSWORD changed after the container started at {} (pending restart)",
                started_at.as_deref().unwrap_or("?")
            ),
            Reason::ChangedBy { action } => f.write_str(&action.describe()),
            Reason::RequirementsInstalled { nodes } => write!(
                f,
                "requirements installed for {}: ComfyUI imports nodes only at start",
                nodes.join(", ")
            ),
            Reason::NodeChanges { node } => {
                write!(f, "custom_nodes/{node} changes in this apply")
            }
            Reason::RequirementsChanged { node } => {
                write!(f, "{node}/requirements.txt changed since it was installed")
            }
            Reason::RequirementsNotInstalled { node } => {
                write!(f, "{node}/requirements.txt is not installed")
            }
            Reason::ImagePython { node } => write!(
                f,
                "the new container's interpreter comes from the image, without {node}'s requirements"
            ),
            Reason::Missing { target } => write!(f, "{} is missing", target.shown()),
            Reason::DisabledTwin { target, from } => write!(
                f,
                "{} is missing but custom_nodes/{from} is a clean checkout of it",
                target.shown()
            ),
            Reason::NotGit { target } => {
                write!(f, "{} exists but is not a git checkout", target.shown())
            }
            Reason::ForeignOrigin { target, found, url } => match found {
                Some(o) => write!(f, "{} is a checkout of {o}, not {url}", target.shown()),
                None => write!(f, "{} has no `origin` remote", target.shown()),
            },
            Reason::Dirty {
                target,
                count,
                sample,
                move_to,
            } => {
                write!(
                    f,
                    "{} has {count} local change{} ({})",
                    target.shown(),
                    plural(*count),
                    sample.join(", ")
                )?;
                if let Some(rev) = move_to {
                    write!(f, " and must move to {rev}")?;
                }
                Ok(())
            }
            Reason::Obstructed { why, forced: true } => {
                write!(f, "{why}; --force keeps it aside and clones afresh")
            }
            Reason::Obstructed { why, forced: false } => write!(
                f,
                "{why}; commit, move or delete it, or rerun with --force to keep it aside and re-clone"
            ),
            Reason::Uninspectable { error }
            | Reason::SecretUnusable { error }
            | Reason::PasswordUnreadable { error } => f.write_str(error),
            Reason::NoCommit { target } => {
                write!(f, "{} has no commit checked out", target.shown())
            }
            Reason::NotFetched { target, head, rev } => write!(
                f,
                "{} is at {}; `{rev}` is not in the checkout yet (apply fetches it)",
                target.shown(),
                short(head)
            ),
            Reason::OtherCommit { target, head, rev } => write!(
                f,
                "{} is at {}, the manifest pins {rev}",
                target.shown(),
                short(head)
            ),
            Reason::LoginNodeWithoutAuth { node } => write!(
                f,
                "auth.mode is none, but {node} would still ask for a password"
            ),
            Reason::UnmanagedDisabled { dir } => write!(
                f,
                "custom_nodes/{dir} is not in the manifest (policy.unmanaged_nodes = \"disable\")"
            ),
            Reason::GenerateSecret { path } => {
                write!(f, "{path} does not exist and auth.generate = true")
            }
            Reason::NewPasswordGenerated => f.write_str(
                "a new password is generated; clients need the new token (line 1 of login/PASSWORD)",
            ),
            Reason::LegacyHoldsReplacedHash => {
                f.write_str("the legacy ComfyUI/PASSWORD holds a replaced hash")
            }
            Reason::SecretNeeded => {
                f.write_str("login/PASSWORD cannot be checked or written without it")
            }
            Reason::LegacyStillMatches => f.write_str(
                "login/PASSWORD is missing; the legacy ComfyUI/PASSWORD still matches the secret (token kept)",
            ),
            Reason::PasswordMissing => f.write_str("login/PASSWORD is missing"),
            Reason::LegacyMismatch { source } => {
                write!(f, "the legacy ComfyUI/PASSWORD does not match {source}")
            }
            Reason::PasswordMismatch { source } => write!(
                f,
                "login/PASSWORD does not match the password in {source}; clients need the new token"
            ),
            Reason::HashMalformed => f.write_str("line 1 of login/PASSWORD is not a bcrypt hash"),
            Reason::LegacyBeside => f.write_str(
                "a legacy ComfyUI/PASSWORD sits beside login/PASSWORD; ComfyUI-Login would move it over login/PASSWORD at start",
            ),
            Reason::PasswordReadable { mode } => write!(
                f,
                "login/PASSWORD is readable by other users (mode {mode:04o})"
            ),
            Reason::UsernameDiffers { found, want } => write!(
                f,
                "the username line is `{found}`, the manifest says `{want}`"
            ),
            Reason::NoUsername => f.write_str("login/PASSWORD has no username line"),
        }
    }
}

/// Compare with the text people read (for tests and for finding a reason in a list).
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        let text = self.to_string();
        text.as_str() == *other
    }
}

/// Something apply cannot do on its own; the user must act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "blocker", rename_all = "snake_case")]
pub enum Blocker {
    ComfyUiNotInstalled,
    Uninspectable {
        target: Target,
    },
    SecretMissing {
        source: SecretSource,
    },
    SecretUnusable {
        source: String,
        error: String,
    },
    PasswordUnreadable,
    ForeignContainer {
        name: String,
    },
    /// A step that would start the server while `login/PASSWORD` would not be valid.
    PasswordInvalid {
        action: Box<Action>,
    },
}

impl Blocker {
    /// What is blocked.
    pub fn subject(&self) -> String {
        match self {
            Blocker::ComfyUiNotInstalled => "ComfyUI is not installed".to_owned(),
            Blocker::Uninspectable { target } => {
                format!("{} cannot be inspected", target.shown())
            }
            Blocker::SecretMissing { source } => {
                format!("the secret {} is missing", source.shown())
            }
            Blocker::SecretUnusable { source, .. } => format!("the secret {source} is unusable"),
            Blocker::PasswordUnreadable => "login/PASSWORD cannot be read".to_owned(),
            Blocker::ForeignContainer { name } => format!("container {name} is not comfyprov's"),
            Blocker::PasswordInvalid { action } => {
                format!("{} (login/PASSWORD would not be valid)", action.describe())
            }
        }
    }

    /// What the user can do.
    pub fn help(&self) -> String {
        match self {
            Blocker::ComfyUiNotInstalled => "add a `[comfyui]` table with `git` and `rev`, or install ComfyUI into the workspace".to_owned(),
            Blocker::Uninspectable { .. } => {
                "check its permissions and that it is a healthy git checkout".to_owned()
            }
            Blocker::SecretMissing { source } => match source {
                SecretSource::PasswordFile(f) => format!(
                    "write the password into {} (mode 0600), or set `generate = true` in [auth] to create one",
                    f.shown
                ),
                SecretSource::HashFile(f) => format!("write a bcrypt hash into {}", f.shown),
                SecretSource::PasswordEnv(v) => format!("export {v}=… before running comfyprov"),
            },
            Blocker::SecretUnusable { source, error } => format!("fix {source}: {error}"),
            Blocker::PasswordUnreadable => "check the file's owner and permissions".to_owned(),
            Blocker::ForeignContainer { .. } => {
                "remove or rename it, or rerun with --force to replace it".to_owned()
            }
            Blocker::PasswordInvalid { .. } => "make login/PASSWORD valid first (see the blocked password step): without it ComfyUI-Login accepts an empty token".to_owned(),
        }
    }

    /// Whether this leaves `login/PASSWORD` unverified, so the server must not start.
    pub fn leaves_password_invalid(&self) -> bool {
        match self {
            Blocker::SecretMissing { .. }
            | Blocker::SecretUnusable { .. }
            | Blocker::PasswordUnreadable => true,
            Blocker::ComfyUiNotInstalled
            | Blocker::Uninspectable { .. }
            | Blocker::ForeignContainer { .. }
            | Blocker::PasswordInvalid { .. } => false,
        }
    }
}
