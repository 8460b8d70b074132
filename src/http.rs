//! The download client: HTTP/1.1 over plain TCP or TLS (rustls, the system's roots, which
//! honour `SSL_CERT_FILE`), built only when a model is downloaded: `plan` never initialises TLS.
//! Redirects are followed here, not by the client, so that the bearer token goes only to the
//! URL's own host (never after a redirect to another host, never over a downgrade to http).

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type DownloadClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Connect and response-header deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

pub fn download_client() -> DownloadClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    http.enforce_http(false);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(std::sync::Arc::clone(&provider))
    {
        Ok(b) => b,
        // No usable roots on this system: https fails with a clear error; http still works.
        Err(e) => {
            tracing::warn!(error = %e, "no TLS roots");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls' default protocol versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = tls.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

pub enum GetError {
    /// Worth another attempt (connection refused or reset, timeout).
    Transient(String),
    Fatal(String),
}

/// `GET url` (with `Range: bytes=from-` and `If-Range` when resuming), following redirects;
/// the response is the first that is not one. The token is sent as `Authorization: Bearer`
/// only to `url`'s own scheme, host and port.
pub async fn get_following(
    client: &DownloadClient,
    url: &str,
    token: Option<&str>,
    range_from: Option<u64>,
    validator: Option<&str>,
) -> Result<hyper::Response<Incoming>, GetError> {
    let origin = origin_of(url).ok_or_else(|| GetError::Fatal(format!("{url} is not a URL")))?;
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let uri: hyper::Uri = current
            .parse()
            .map_err(|_| GetError::Fatal(format!("cannot use the URL {}", shown(url, &current))))?;
        let mut req = hyper::Request::get(uri).header(
            hyper::header::USER_AGENT,
            concat!("comfyprov/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(t) = token
            && origin_of(&current).as_ref() == Some(&origin)
        {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(from) = range_from {
            req = req.header(hyper::header::RANGE, format!("bytes={from}-"));
            if let Some(v) = validator {
                req = req.header(hyper::header::IF_RANGE, v);
            }
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| GetError::Fatal(format!("cannot build a request: {e}")))?;
        let resp = match tokio::time::timeout(CONNECT_TIMEOUT, client.request(req)).await {
            Err(_) => {
                return Err(GetError::Transient(format!(
                    "{} did not answer within {} s",
                    shown(url, &current),
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => {
                return Err(GetError::Transient(format!(
                    "{}: {}",
                    shown(url, &current),
                    crate::observe::container::innermost_cause(&e)
                )));
            }
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_redirection() || resp.status() == hyper::StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                GetError::Fatal(format!(
                    "{} redirected without a Location",
                    shown(url, &current)
                ))
            })?;
        current = resolve(&current, location).ok_or_else(|| {
            GetError::Fatal(format!(
                "{} redirected to an unusable Location",
                shown(url, &current)
            ))
        })?;
        if !(current.starts_with("https://") || current.starts_with("http://")) {
            return Err(GetError::Fatal(format!(
                "{url} redirected to a scheme comfyprov does not follow"
            )));
        }
    }
    Err(GetError::Fatal(format!(
        "{url}: more than {MAX_REDIRECTS} redirects"
    )))
}

/// A URL for messages: the manifest's, or the host a redirect went to (never its query,
/// which for signed download URLs is a credential).
fn shown(original: &str, current: &str) -> String {
    if original == current {
        return original.to_owned();
    }
    match origin_of(current) {
        Some((scheme, host)) => format!("{original} (redirected to {scheme}://{host})"),
        None => original.to_owned(),
    }
}

/// `(scheme, host[:port])`, lowercased.
pub fn origin_of(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    let host = host.strip_suffix(default).unwrap_or(host);
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// A Location header resolved against the URL it came from.
fn resolve(base: &str, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if let Some(path) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{path}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = &rest[authority.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_the_same_origin() {
        let o = origin_of("https://huggingface.co/a/resolve/main/x").unwrap();
        assert_eq!(
            origin_of("https://HuggingFace.co:443/other"),
            Some(o.clone())
        );
        assert_ne!(
            origin_of("https://cdn-lfs.huggingface.co/x"),
            Some(o.clone())
        );
        assert_ne!(origin_of("http://huggingface.co/x"), Some(o.clone()));
        assert_ne!(origin_of("https://huggingface.co.evil.example/x"), Some(o));
    }

    #[test]
    fn locations_resolve_like_a_browser() {
        assert_eq!(
            resolve("http://127.0.0.1:8/a/b?x=1", "/c").as_deref(),
            Some("http://127.0.0.1:8/c")
        );
        assert_eq!(
            resolve("http://127.0.0.1:8/a/b", "c").as_deref(),
            Some("http://127.0.0.1:8/a/c")
        );
        assert_eq!(
            resolve("https://h/a", "//cdn/x").as_deref(),
            Some("https://cdn/x")
        );
    }
}
