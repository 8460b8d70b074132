//! `[[models]]`: model files, each a URL, a place under `ComfyUI/models/`, and what it must hash to.

use serde_json::Value;

use super::check::Seg;
use super::desired::{ModelSpec, TokenSource};
use super::raw;
use super::validate::{Ctx, key};

/// Check every `[[models]]` entry; the valid ones, in manifest order.
pub(super) fn models(cx: &mut Ctx<'_>, value: &Value) -> Vec<ModelSpec> {
    let mut out: Vec<ModelSpec> = Vec::new();
    let entries = value
        .get("models")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, mv) in entries.iter().enumerate() {
        let Ok(m) = serde_json::from_value::<raw::Model>(mv.clone()) else {
            continue;
        };
        let at = |k: &str| [key("models"), Seg::Index(i), key(k)];
        let mut ok = true;
        if let Err(why) = check_url(&m.url) {
            cx.err(
                "model_url",
                &at("url"),
                format!("`models.url` {why}"),
                "this URL",
                "use an https:// (or http://, file:///absolute/path) URL without credentials; a gated download takes `token_env` or `token_file`".to_owned(),
            );
            ok = false;
        }
        if let Err(why) = check_path(&m.path) {
            cx.err(
                "model_path",
                &at("path"),
                format!("`models.path` \"{}\" {why}", m.path.escape_debug()),
                "this path",
                "name a model folder and a file under ComfyUI/models/, e.g. \"diffusion_models/qwen_image_fp8_e4m3fn.safetensors\"".to_owned(),
            );
            ok = false;
        } else if out.iter().any(|o| o.path == m.path) {
            cx.err(
                "duplicate_model",
                &at("path"),
                format!("two models are placed at `{}`", m.path),
                "duplicate path",
                "give each `[[models]]` entry its own `path`".to_owned(),
            );
            ok = false;
        }
        let sha256 = m.sha256.as_deref().map(str::to_ascii_lowercase);
        if let Some(h) = &sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            cx.err(
                "model_sha256",
                &at("sha256"),
                "`models.sha256` is not a SHA-256 (64 hex digits)".to_owned(),
                "not 64 hex digits",
                "copy the file's SHA-256 from its host (Hugging Face shows it on the file's page), or leave it out: the first download's is recorded in comfy.lock".to_owned(),
            );
            ok = false;
        }
        if m.size == Some(0) {
            cx.err(
                "model_size",
                &at("size"),
                "`models.size` is 0".to_owned(),
                "empty",
                "give the file's size in bytes, or leave it out".to_owned(),
            );
            ok = false;
        }
        let token = match (&m.token_env, &m.token_file) {
            (Some(_), Some(_)) => {
                cx.err_key(
                    "model_token",
                    &at("token_file"),
                    "`token_env` and `token_file` are both set".to_owned(),
                    "one too many",
                    "keep one of them".to_owned(),
                );
                ok = false;
                None
            }
            (Some(v), None) => {
                let valid = !v.is_empty()
                    && !v.starts_with(|c: char| c.is_ascii_digit())
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    cx.err(
                        "model_token",
                        &at("token_env"),
                        format!(
                            "`models.token_env` \"{}\" is not a variable name",
                            v.escape_debug()
                        ),
                        "not a name",
                        "name the environment variable that holds the token, e.g. \"HF_TOKEN\""
                            .to_owned(),
                    );
                    ok = false;
                }
                Some(TokenSource::Env(v.clone()))
            }
            (None, Some(f)) if f.trim().is_empty() => {
                cx.err(
                    "model_token",
                    &at("token_file"),
                    "`models.token_file` is empty".to_owned(),
                    "empty",
                    "name the file that holds the token, e.g. \".secrets/hf_token\"".to_owned(),
                );
                ok = false;
                None
            }
            (None, Some(f)) => Some(TokenSource::File(cx.path(f))),
            (None, None) => None,
        };
        if ok {
            out.push(ModelSpec {
                url: m.url.clone(),
                path: m.path.clone(),
                sha256,
                size: m.size,
                token,
            });
        }
    }
    out
}

/// A download URL: http, https or file, no credentials, a host for the network ones.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not a URL".to_owned());
    };
    match scheme {
        "https" | "http" => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.contains('@') {
                return Err("has credentials in it".to_owned());
            }
            if authority.is_empty() {
                return Err("has no host".to_owned());
            }
            if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("has a space or control character in it".to_owned());
            }
            Ok(())
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err("is a file:// URL without an absolute path (file:///…)".to_owned());
            }
            Ok(())
        }
        other => Err(format!(
            "has the scheme `{other}`, which comfyprov does not download"
        )),
    }
}

/// A path under `models/`: relative, `/`-separated, a folder then a file, plain names only.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.starts_with('/') {
        return Err("is absolute");
    }
    if path.contains('\\') {
        return Err("has a backslash (use `/`)");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 2 {
        return Err("names no model folder (ComfyUI finds models by folder)");
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err("has an empty, `.` or `..` part");
    }
    if parts.iter().any(|p| p.chars().any(char::is_control)) {
        return Err("has a control character");
    }
    if parts.last().is_some_and(|f| f.starts_with('.')) {
        return Err("names a hidden file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_stay_under_models() {
        assert!(check_path("diffusion_models/x.safetensors").is_ok());
        assert!(check_path("loras/sub/x.safetensors").is_ok());
        for bad in [
            "x.safetensors",
            "/etc/passwd",
            "vae/../../x",
            "vae//x",
            "vae/./x",
            "vae\\x",
            "vae/.x",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn model_urls_carry_no_credentials() {
        assert!(check_url("https://huggingface.co/a/b/resolve/main/x.safetensors").is_ok());
        assert!(check_url("file:///srv/models/x").is_ok());
        assert!(check_url("https://user:tok@host/x").is_err());
        assert!(check_url("ftp://host/x").is_err());
        assert!(check_url("file://relative/x").is_err());
        assert!(check_url("https:///x").is_err());
    }
}
