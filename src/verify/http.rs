//! A minimal HTTP/1.1 client for probing ComfyUI (GET, and POST for workflows), with a timeout
//! on every request.
//! hyper and hyper-util are the ones bollard already builds.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::observe::container::innermost_cause;

/// How long one request may take, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// ComfyUI's `/system_stats` is a few hundred bytes; `/object_info` can be megabytes.
const MAX_BODY: usize = 64 << 20;

/// What came back.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    pub body: Bytes,
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        connector.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// `GET url` with `headers`. The error names the URL and the cause, never a header value
    /// (one of them may be the token).
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
        self.send("GET", url, headers, Bytes::new()).await
    }

    /// `POST url` with `headers` and `body`; errors as [`Http::get`]'s.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response, String> {
        self.send("POST", url, headers, Bytes::from(body)).await
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, String> {
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            let value = hyper::header::HeaderValue::from_str(v)
                .map_err(|_| format!("the {k} header for {url} is not a valid header value"))?;
            req = req.header(*k, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("cannot build a request for {url}: {e}"))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| innermost_cause(&e))?;
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>(Response {
                status,
                location,
                body,
            })
        };
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, work).await;
        tracing::debug!(
            status = ?answer.as_ref().ok().and_then(|r| r.as_ref().ok()).map(|r| r.status),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "{method} {url}"
        );
        match answer {
            Ok(r) => r.map_err(|e| format!("{method} {url}: {e}")),
            Err(_) => Err(format!(
                "{method} {url}: no answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
        }
    }
}
