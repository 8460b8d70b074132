//! Workflow checks: submit an API-format workflow with the token, follow it to completion through
//! `/history/<id>`, and report each output file and the time taken, or the server's own error:
//! `node_errors` when ComfyUI refuses the prompt, the failed node's exception when it runs.
//!
//! ComfyUI's API (server.py): `POST /prompt` with `{"prompt": {...}, "client_id": …}` answers
//! `{"prompt_id", "number", "node_errors"}`, or 400 with `{"error": {"type", "message",
//! "details"}, "node_errors": {id: {"errors": [{"message", "details"}], "class_type"}}}`;
//! `GET /history/<id>` is `{}` until the prompt finished, then `{id: {"outputs": {node:
//! {"images": [{"filename", "subfolder", "type"}]}}, "status": {"status_str": "success" |
//! "error", "completed", "messages": [[event, data], …]}}}`, an `execution_error` event's data
//! naming `node_id`, `node_type` and `exception_message`.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::http::Http;

/// A workflow to run: where it came from and its JSON.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// How reports name it: the check's name, or the file as given.
    pub name: String,
    pub json: Value,
    pub timeout: Duration,
}

/// How one workflow went.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowRun {
    pub name: String,
    pub ok: bool,
    /// Submit to completion.
    pub seconds: f64,
    pub prompt_id: Option<String>,
    /// Output files, `subfolder/filename` under their type's folder (`output/`).
    pub outputs: Vec<String>,
    /// The server's error, or the timeout.
    pub error: Option<String>,
}

/// The `prompt` object of an API-format workflow file: the file itself, or its `prompt` key.
/// A workflow saved from the editor (UI format: `nodes` and `links`) is refused with what to do.
pub fn prompt_of(json: &Value) -> Result<Value, String> {
    if json.get("nodes").is_some_and(Value::is_array) && json.get("links").is_some() {
        return Err(
            "this is the editor's workflow format, not the API format: export it with \"Save (API)\" (or \"Export (API)\")"
                .to_owned(),
        );
    }
    let prompt = json.get("prompt").unwrap_or(json);
    let ok = prompt.as_object().is_some_and(|o| {
        !o.is_empty()
            && o.values()
                .all(|n| n.get("class_type").is_some_and(Value::is_string))
    });
    if ok {
        Ok(prompt.clone())
    } else {
        Err(
            "not an API-format workflow: expected an object of nodes, each with a `class_type`"
                .to_owned(),
        )
    }
}

/// Submit `w` and follow it to completion (or `w.timeout`).
pub async fn run(http: &Http, base: &str, token: Option<&str>, w: &Workflow) -> WorkflowRun {
    let start = Instant::now();
    let mut report = WorkflowRun {
        name: w.name.clone(),
        ok: false,
        seconds: 0.0,
        prompt_id: None,
        outputs: Vec::new(),
        error: None,
    };
    let result = follow(http, base, token, w, &mut report, start).await;
    report.seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(outputs) => {
            report.ok = true;
            report.outputs = outputs;
        }
        Err(e) => report.error = Some(crate::secret::mask_tokens(&e)),
    }
    report
}

async fn follow(
    http: &Http,
    base: &str,
    token: Option<&str>,
    w: &Workflow,
    report: &mut WorkflowRun,
    start: Instant,
) -> Result<Vec<String>, String> {
    let prompt = prompt_of(&w.json)?;
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let body = serde_json::json!({ "prompt": prompt, "client_id": "comfyprov-verify" });
    let resp = http
        .post(
            &format!("{base}/prompt"),
            &headers,
            serde_json::to_vec(&body).unwrap_or_default(),
        )
        .await?;
    let answer: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    if resp.status != 200 {
        return Err(refused(resp.status, &answer));
    }
    let id = answer["prompt_id"]
        .as_str()
        .ok_or_else(|| format!("POST /prompt answered 200 without a prompt_id: {answer}"))?
        .to_owned();
    report.prompt_id = Some(id.clone());
    let history_url = format!("{base}/history/{id}");
    loop {
        let resp = http.get(&history_url, &headers[1..]).await?;
        if resp.status != 200 {
            return Err(format!("GET /history/{id} answered {}", resp.status));
        }
        let history: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let entry = &history[&id];
        let status = &entry["status"];
        match status["status_str"].as_str() {
            Some("success") => return Ok(outputs(&entry["outputs"])),
            Some("error") => return Err(failed(status)),
            _ => {}
        }
        if start.elapsed() >= w.timeout {
            return Err(format!(
                "not finished after {} s (prompt {id}; the server may be busy with other work)",
                w.timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why `/prompt` refused the workflow, in the server's words.
fn refused(status: u16, answer: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = answer["error"]["message"].as_str() {
        let details = answer["error"]["details"].as_str().unwrap_or("");
        parts.push(if details.is_empty() {
            m.to_owned()
        } else {
            format!("{m} ({details})")
        });
    }
    if let Some(nodes) = answer["node_errors"].as_object() {
        for (id, e) in nodes {
            let class = e["class_type"].as_str().unwrap_or("?");
            for err in e["errors"].as_array().into_iter().flatten() {
                parts.push(format!(
                    "node {id} ({class}): {} {}",
                    err["message"].as_str().unwrap_or(""),
                    err["details"].as_str().unwrap_or("")
                ));
            }
        }
    }
    if parts.is_empty() {
        parts.push(answer.to_string());
    }
    format!(
        "POST /prompt refused it ({status}): {}",
        parts.join("; ").trim()
    )
}

/// The failed node and its exception, from the history's `execution_error` event.
fn failed(status: &Value) -> String {
    let error = status["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m[0].as_str() == Some("execution_error"))
        .map(|m| &m[1]);
    match error {
        Some(e) => format!(
            "node {} ({}) failed: {}",
            e["node_id"].as_str().unwrap_or("?"),
            e["node_type"].as_str().unwrap_or("?"),
            e["exception_message"].as_str().unwrap_or("").trim()
        ),
        None => "the server reports an error without an execution_error event".to_owned(),
    }
}

/// Every file the output nodes name (images, videos, audio…), as `subfolder/filename`.
fn outputs(outputs: &Value) -> Vec<String> {
    let mut files = Vec::new();
    for node in outputs.as_object().into_iter().flat_map(|o| o.values()) {
        for list in node.as_object().into_iter().flat_map(|o| o.values()) {
            for f in list.as_array().into_iter().flatten() {
                if let Some(name) = f["filename"].as_str() {
                    let sub = f["subfolder"].as_str().unwrap_or("");
                    files.push(if sub.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{sub}/{name}")
                    });
                }
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_format_is_taken_and_the_editor_format_refused_with_what_to_do() {
        let api = serde_json::json!({"1": {"class_type": "EmptyImage", "inputs": {}}});
        assert_eq!(prompt_of(&api).unwrap(), api);
        let wrapped = serde_json::json!({ "prompt": api });
        assert_eq!(prompt_of(&wrapped).unwrap(), api);
        let ui = serde_json::json!({"nodes": [], "links": []});
        assert!(prompt_of(&ui).unwrap_err().contains("Save (API)"));
        assert!(prompt_of(&serde_json::json!({"1": {}})).is_err());
    }

    #[test]
    fn the_servers_errors_are_quoted() {
        let answer = serde_json::json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": ""},
            "node_errors": {"2": {"errors": [{"message": "Required input is missing", "details": "image"}], "class_type": "ImageInvert"}}
        });
        assert_eq!(
            refused(400, &answer),
            "POST /prompt refused it (400): Prompt outputs failed validation; node 2 (ImageInvert): Required input is missing image"
        );
        let status = serde_json::json!({"status_str": "error", "messages": [
            ["execution_start", {}],
            ["execution_error", {"node_id": "2", "node_type": "ImageInvert", "exception_message": "boom\n"}]
        ]});
        assert_eq!(failed(&status), "node 2 (ImageInvert) failed: boom");
        let out = serde_json::json!({"3": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}, {"filename": "b.png", "subfolder": "x", "type": "output"}]}});
        assert_eq!(outputs(&out), ["a.png", "x/b.png"]);
    }
}
