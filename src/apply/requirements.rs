//! Executor for node requirements: `<python> -m pip install -r …/requirements.txt` through
//! `docker exec` in the running container, with the container's own interpreter, then recorded
//! (see [`crate::observe::requirements`]) so the same content is never installed twice. A failed
//! install is not recorded: the next apply tries again.

use std::time::Duration;

use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::StreamExt;

use super::container::{api, block_on, docker};
use super::{Env, Exec, StepError};
use crate::observe::container::inspect;
use crate::observe::requirements::{Installed, record_path};
use crate::render::CONTAINER_ROOT;
use crate::report::Outcome;

/// pip may build wheels for minutes; a whole install gets an hour.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// Lines of pip's output shown when it fails.
const TAIL: usize = 15;

pub(super) fn install(env: &Env, node: &str, name: &str, python: &str) -> Exec {
    let file = env.custom_nodes().join(node).join("requirements.txt");
    let bytes = match crate::fsutil::read_regular(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Outcome::AlreadyDone {
                why: format!("custom_nodes/{node} has no requirements.txt"),
            });
        }
        Err(e) => return Err(StepError::io("cannot read", &file, e)),
    };
    let sha256 = crate::observe::sha256_hex(&bytes);
    let ws = &env.workspace;
    block_on(async {
        let docker = docker(INSTALL_TIMEOUT).await?;
        let info = inspect(&docker, name)
            .await
            .map_err(|e| StepError::new(e.to_string()))?
            .ok_or_else(|| StepError::new(format!("container {name} does not exist")))?;
        // Under apply's lock, and installs run one at a time: this record is current.
        let mut record = crate::observe::requirements::load_record(ws);
        if record.holds(node, &sha256, python, Some(&info.id)) {
            return Ok(Outcome::AlreadyDone {
                why: "this requirements.txt is installed".to_owned(),
            });
        }
        if info.liveness() == comfyprov_core::observed::Liveness::Stopped {
            return Err(StepError::new(format!(
                "container {name} is {}: requirements install into a running container",
                info.status
            )));
        }
        let target = format!("{CONTAINER_ROOT}/custom_nodes/{node}/requirements.txt");
        let cmd = vec![
            python.to_owned(),
            "-m".into(),
            "pip".into(),
            "install".into(),
            "-r".into(),
            target,
        ];
        let exec = docker
            .create_exec(
                name,
                ExecConfig {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    working_dir: Some(CONTAINER_ROOT.to_owned()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| api(&e))?;
        let mut log = String::new();
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| api(&e))?
        {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(|e| api(&e))?;
                log.push_str(&String::from_utf8_lossy(chunk.as_ref()));
            }
        }
        let code = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| api(&e))?
            .exit_code;
        if code != Some(0) {
            let lines: Vec<&str> = log.trim_end().lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL)..];
            return Err(StepError::new(format!(
                "`{python} -m pip install -r custom_nodes/{node}/requirements.txt` exited with {}; its last lines:\n    {}",
                code.map_or_else(|| "no code".to_owned(), |c| c.to_string()),
                tail.join("\n    ")
            ))
            .help("fix the requirement (or the network), then run apply again: the install is retried"));
        }
        record.nodes.insert(
            node.to_owned(),
            Installed {
                sha256,
                python: python.to_owned(),
                container: info.id.clone(),
            },
        );
        // pip succeeded: from here a failure is the record's, not the install's.
        let path = record_path(ws);
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| StepError::new(format!("cannot serialise the record: {e}")))?;
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| crate::fsutil::write_atomic(&path, &json, 0o644))
            .map_err(|e| StepError::record(&path, e))?;
        let installed = log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Successfully installed "))
            .map(|p| format!("installed {}", p.trim()));
        Ok(Outcome::Done {
            detail: installed.or_else(|| Some("nothing new to install".to_owned())),
        })
    })
}
