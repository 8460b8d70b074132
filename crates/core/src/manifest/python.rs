//! `[python]`: checked into a [`PythonSpec`]. Part of validation (see `validate.rs`), in a file of
//! its own because the section is large.

use super::check::Seg;
use super::desired::{ContainerSpec, FindLinks, PythonSpec, TorchSpec};
use super::raw;
use super::validate::{Ctx, credentials, key};

const INDEX_HELP: &str = "use an `https://` (or `http://`, `file://`) URL without credentials; give a private index's token through uv's own variables (`UV_INDEX_<NAME>_PASSWORD`) or a `.netrc`, never in the manifest";

/// Check `[python]` against the container it builds for.
pub(super) fn python_spec(
    cx: &mut Ctx<'_>,
    py: raw::Python,
    container: Option<&ContainerSpec>,
    has_container: bool,
) -> Option<PythonSpec> {
    let at = |k: &str| vec![key("python"), key(k)];
    let mut ok = true;
    let version_ok = py
        .version
        .strip_prefix("3.")
        .is_some_and(|m| !m.is_empty() && m.len() <= 2 && m.bytes().all(|b| b.is_ascii_digit()));
    if !version_ok {
        cx.err(
            "python_version",
            &at("version"),
            format!(
                "`python.version` \"{}\" is not a Python 3 minor version",
                py.version.escape_debug()
            ),
            "not `3.N`",
            "write the minor version only, e.g. \"3.12\"".to_owned(),
        );
        ok = false;
    }
    let platform_ok = !py.platform.is_empty()
        && py
            .platform
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !platform_ok {
        cx.err(
            "python_platform",
            &at("platform"),
            format!(
                "`python.platform` \"{}\" is not a platform name",
                py.platform.escape_debug()
            ),
            "not a platform",
            "use uv's `--python-platform` spelling, e.g. \"x86_64-manylinux_2_28\"".to_owned(),
        );
        ok = false;
    }
    let torch = py.torch.and_then(|t| {
        let index = t
            .index
            .filter(|i| index_url(cx, &[key("python"), key("torch"), key("index")], i));
        let v_ok = !t.version.is_empty()
            && t.version.starts_with(|c: char| c.is_ascii_digit())
            && t
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+!".contains(&b));
        if !v_ok {
            cx.err(
                "torch_version",
                &[key("python"), key("torch"), key("version")],
                format!(
                    "`python.torch.version` \"{}\" is not a version",
                    t.version.escape_debug()
                ),
                "not a version",
                "write torch's version, e.g. \"2.5.1\" (it also matches the local build `2.5.1+cu124`)".to_owned(),
            );
            return None;
        }
        Some(TorchSpec {
            version: t.version,
            index,
        })
    });
    let index_ok = py
        .index_url
        .as_ref()
        .is_none_or(|u| index_url(cx, &at("index_url"), u));
    let mut extra_ok = true;
    for (i, u) in py.extra_index_urls.iter().enumerate() {
        extra_ok &= index_url(
            cx,
            &[key("python"), key("extra_index_urls"), Seg::Index(i)],
            u,
        );
    }
    let mut find_links = Vec::new();
    for (i, f) in py.find_links.iter().enumerate() {
        let here = [key("python"), key("find_links"), Seg::Index(i)];
        if f.contains("://") {
            if index_url(cx, &here, f) {
                find_links.push(FindLinks::Url(f.clone()));
            } else {
                extra_ok = false;
            }
        } else if f.trim().is_empty() {
            cx.err(
                "find_links",
                &here,
                "`python.find_links` has an empty entry".to_owned(),
                "empty",
                "name a folder of wheels (relative to this manifest) or a URL".to_owned(),
            );
            extra_ok = false;
        } else {
            find_links.push(FindLinks::Dir(cx.path(f)));
        }
    }
    if py.offline {
        if py.find_links.is_empty() {
            cx.err(
                "offline",
                &at("offline"),
                "`python.offline = true` but `python.find_links` names no wheels".to_owned(),
                "no index and no wheels",
                "add the folder that holds the wheels, e.g. `find_links = [\"./wheels\"]`"
                    .to_owned(),
            );
            ok = false;
        }
        let indexes = py.index_url.is_some()
            || !py.extra_index_urls.is_empty()
            || torch.as_ref().is_some_and(|t| t.index.is_some());
        if indexes {
            cx.err(
                "offline",
                &at("offline"),
                "`python.offline = true` with an index URL: offline means no index".to_owned(),
                "offline, yet an index is named",
                "remove `index_url`, `extra_index_urls` and `torch.index`, or set `offline = false`"
                    .to_owned(),
            );
            ok = false;
        }
    }
    for (field, list) in [("packages", &py.packages), ("constraints", &py.constraints)] {
        for (i, r) in list.iter().enumerate() {
            let bad =
                r.trim().is_empty() || r.contains(['\n', '\r']) || r.trim_start().starts_with('-');
            if bad {
                cx.err(
                    "requirement",
                    &[key("python"), key(field), Seg::Index(i)],
                    format!(
                        "`python.{field}` entry \"{}\" is not one requirement",
                        r.escape_debug()
                    ),
                    "not a requirement",
                    "write one requirement in pip's syntax, e.g. \"numpy<2\" (options such as `--index-url` have keys of their own)".to_owned(),
                );
                ok = false;
            }
        }
    }
    if let Some(d) = &py.exclude_newer
        && !date_like(d)
    {
        cx.err(
            "exclude_newer",
            &at("exclude_newer"),
            format!(
                "`python.exclude_newer` \"{}\" is not a date",
                d.escape_debug()
            ),
            "not a date",
            "write `YYYY-MM-DD` (e.g. \"2025-11-06\", the day ComfyUI v0.3.68 was released) or an RFC 3339 time".to_owned(),
        );
        ok = false;
    }
    // The environment lives where the container's interpreter is.
    let env = match container {
        Some(c) => match env_dir(&c.python) {
            Some(env) => Some(env),
            None => {
                cx.err(
                    "python_env",
                    &[key("container"), key("python")],
                    format!(
                        "`container.python` \"{}\" is not inside an environment comfyprov can build",
                        c.python.escape_debug()
                    ),
                    "not `<folder>/bin/python3` under ComfyUI/",
                    "with `[python]`, name the environment's interpreter relative to ComfyUI's folder, e.g. \"venv/bin/python3\"".to_owned(),
                );
                None
            }
        },
        None if !has_container => {
            cx.err_key(
                "python_container",
                &[key("python")],
                "`[python]` needs a `[container]`: the environment is built inside its image"
                    .to_owned(),
                "no container to build in",
                "add `[container]` with the image ComfyUI runs in, or remove `[python]`".to_owned(),
            );
            None
        }
        // The container's own problems are reported already.
        None => None,
    };
    let env = env?;
    (ok && index_ok && extra_ok).then(|| PythonSpec {
        version: py.version,
        platform: py.platform,
        torch,
        index_url: py.index_url,
        extra_index_urls: py.extra_index_urls,
        find_links,
        offline: py.offline,
        packages: py.packages,
        constraints: py.constraints,
        exclude_newer: py.exclude_newer,
        env,
        lock_file: cx.path("comfy.lock"),
    })
}

/// The environment folder of an interpreter `<env>/bin/python[3[.N]]` relative to ComfyUI's
/// folder, if it is one.
fn env_dir(python: &str) -> Option<String> {
    let (dir, exe) = python.rsplit_once('/')?;
    let env = dir.strip_suffix("/bin")?;
    let exe_ok = exe == "python"
        || exe.strip_prefix("python").is_some_and(|v| {
            v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && v.starts_with('3')
        });
    let env_ok = !env.is_empty()
        && !env.starts_with('/')
        && env
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    (exe_ok && env_ok).then(|| env.to_owned())
}

/// An index URL: a scheme uv fetches from, no credentials.
fn index_url(cx: &mut Ctx<'_>, at: &[Seg], url: &str) -> bool {
    let scheme_ok = ["https://", "http://", "file://"]
        .iter()
        .any(|s| url.starts_with(s) && url.len() > s.len())
        && !url.chars().any(char::is_whitespace);
    let why = if !scheme_ok {
        "is not an http(s) or file URL"
    } else if credentials(url).is_some() {
        "carries credentials (they would be shown in plans and in comfy.lock)"
    } else {
        return true;
    };
    cx.err(
        "index_url",
        at,
        format!(
            "\"{}\" {why}",
            super::validate::mask_credentials(url).escape_debug()
        ),
        "not a usable index",
        INDEX_HELP.to_owned(),
    );
    false
}

/// `YYYY-MM-DD`, optionally followed by an RFC 3339 time (`T…`).
fn date_like(s: &str) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    date && (b.len() == 10 || (b[10] == b'T' && b.len() > 11 && s.is_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_dir_takes_an_interpreter_inside_a_relative_folder() {
        assert_eq!(env_dir("venv/bin/python3").as_deref(), Some("venv"));
        assert_eq!(env_dir(".venv/bin/python3.12").as_deref(), Some(".venv"));
        assert_eq!(env_dir("envs/a/bin/python").as_deref(), Some("envs/a"));
        assert_eq!(env_dir("/usr/bin/python3"), None);
        assert_eq!(env_dir("../venv/bin/python3"), None);
        assert_eq!(env_dir("venv/python3"), None);
        assert_eq!(env_dir("venv/bin/perl"), None);
    }

    #[test]
    fn dates_are_days_or_rfc3339_times() {
        assert!(date_like("2025-11-06"));
        assert!(date_like("2025-11-06T00:00:00Z"));
        assert!(!date_like("2025-11-6"));
        assert!(!date_like("yesterday"));
        assert!(!date_like("2025-11-06 00:00"));
    }
}
