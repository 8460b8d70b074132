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
