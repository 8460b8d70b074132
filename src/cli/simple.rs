//! `validate`, `schema` and `render`: commands with little to print.

use miette::miette;

use super::{Cli, EXIT_OK, Ui, emit, load};
use crate::manifest::{AuthSpec, Desired};
use crate::secret::Secret;

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

/// `comfyprov token`: the API bearer token (line 1 of `login/PASSWORD`), and only when it
/// matches the secret, so a client is never handed a token the server will reject after its next
/// restart. The only command that prints a secret.
pub fn token(cli: &Cli) -> miette::Result<u8> {
    let d = load(cli)?;
    let token = verified_token(&d)?;
    emit(&format!("{}\n", String::from_utf8_lossy(token.expose())))?;
    Ok(EXIT_OK)
}

/// Line 1 of `login/PASSWORD`, when it verifies against the secret; else why not.
pub fn verified_token(d: &Desired) -> miette::Result<Secret> {
    use crate::observe::login::{HashState, PasswordFile};
    if !matches!(d.auth, AuthSpec::Login(_)) {
        return Err(miette!(
            help = "set `mode = \"login\"` in [auth] to protect ComfyUI with ComfyUI-Login",
            "auth.mode is none: the server takes no token"
        ));
    }
    let comfy = d.workspace.path.join("ComfyUI");
    let (_, password) = crate::observe::login::observe(d, &comfy);
    let apply = "run `comfyprov apply` to write it";
    match password.file {
        PasswordFile::Present {
            hash: HashState::Verified,
            ..
        } => {}
        PasswordFile::Missing => {
            return Err(miette!(help = apply, "login/PASSWORD does not exist"));
        }
        PasswordFile::Unreadable { error } => {
            return Err(miette!("login/PASSWORD cannot be read: {error}"));
        }
        PasswordFile::Present {
            hash: HashState::Unchecked { reason },
            ..
        } => {
            return Err(miette!(
                help = "see `comfyprov plan`",
                "login/PASSWORD cannot be checked against the secret: {reason}"
            ));
        }
        PasswordFile::Present { .. } => {
            return Err(miette!(
                help = apply,
                "login/PASSWORD does not match the secret: its token is stale"
            ));
        }
    }
    let path = comfy.join("login").join("PASSWORD");
    let bytes = std::fs::read(&path).map_err(|e| miette!("cannot read login/PASSWORD: {e}"))?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Secret::new(line.to_vec()))
}
