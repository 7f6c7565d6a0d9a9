//! The one HTTP transport every provider's client sends through: timeouts, a cap on the size of
//! an answer, retries only for requests that create nothing, a signing hook, request bodies as
//! JSON, form-urlencoded, multipart or pre-encoded bytes, and one wording for transport failures.
//!
//! A caller describes a [`Request`]: the method, the endpoint (a path below the base URL), query,
//! extra headers, a [`Body`], whether it is [`Request::idempotent`] (the caller knows: reading an
//! order is, placing one is not), and which HTTP statuses are answers ([`Expect`]). [`Transport::send`]
//! encodes the body once, lets the [`Signer`] (if any) see exactly the method, URL, headers and
//! bytes that go on the wire, and reads at most [`HttpOptions::body_limit`] bytes of the answer.
//!
//! Failures become [`CaError::Unreachable`] (no connection: nothing was sent), [`CaError::Transport`]
//! (timeout, broken connection, a status outside [`Expect`]) or [`CaError::Malformed`] (an answer
//! over the size cap). An idempotent request is retried after `Unreachable`/`Transport` with a
//! doubling delay; any other request is sent exactly once, and its error says the CA may have
//! carried it out anyway — a lost answer to "create an order" must never become a second order.
//!
//! Not here: what an answer means. Each provider parses its own envelope (Encryption365:
//! [`super::envelope`]).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::CaError;

/// The largest answer body read by default; anything longer is refused unread.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How the transport behaves on the wire.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Limit for one whole request, connect to last byte.
    pub timeout: Duration,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
    /// How many times an idempotent request is retried after a transport failure.
    pub retries: u32,
    /// The first retry delay; it doubles each time.
    pub retry_backoff: Duration,
    /// The largest answer body read.
    pub body_limit: usize,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            retries: 3,
            retry_backoff: Duration::from_secs(2),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`, fields in order.
    Form(Vec<(String, String)>),
    /// `multipart/form-data` with text fields, in order (HowSSL).
    Multipart(Vec<(String, String)>),
    /// Bytes already encoded, with their content type (ACME's `application/jose+json`).
    Raw {
        /// The `Content-Type` to send.
        content_type: String,
        /// The body.
        bytes: Vec<u8>,
    },
}

/// Which HTTP statuses are answers; any other is a transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Only this status (Encryption365 always answers 200, errors included).
    Only(u16),
    /// Any 2xx.
    Success,
    /// Every status: the caller reads error bodies itself (Huawei answers 4xx with JSON).
    Any,
}

/// One request, as the caller describes it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`, …
    pub method: reqwest::Method,
    /// The path below the base URL (`/cert/create`); also names the call in errors.
    pub endpoint: String,
    /// Query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Extra headers, in order (the content type comes from the body).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// True when sending it twice does no harm (it creates and changes nothing): only then is it
    /// retried after a transport failure.
    pub idempotent: bool,
    /// Which statuses are answers.
    pub expect: Expect,
}

impl Request {
    /// A `POST` of `body` to `endpoint`, sent once, expecting any 2xx.
    pub fn post(endpoint: &str, body: Body) -> Request {
        Request::new(reqwest::Method::POST, endpoint, body)
    }

    /// A `GET` of `endpoint`, retried after transport failures, expecting any 2xx.
    pub fn get(endpoint: &str) -> Request {
        Request {
            idempotent: true,
            ..Request::new(reqwest::Method::GET, endpoint, Body::Empty)
        }
    }

    /// A request sent once, expecting any 2xx.
    pub fn new(method: reqwest::Method, endpoint: &str, body: Body) -> Request {
        Request {
            method,
            endpoint: endpoint.to_string(),
            query: Vec::new(),
            headers: Vec::new(),
            body,
            idempotent: false,
            expect: Expect::Success,
        }
    }

    /// Marks the request as creating nothing (retried) or not (sent once).
    pub fn idempotent(mut self, idempotent: bool) -> Request {
        self.idempotent = idempotent;
        self
    }

    /// Sets which statuses are answers.
    pub fn expect(mut self, expect: Expect) -> Request {
        self.expect = expect;
        self
    }
}

/// What a [`Signer`] sees: exactly what goes on the wire.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// The method, upper case.
    pub method: &'a str,
    /// The full URL, query included.
    pub url: &'a reqwest::Url,
    /// Every header that will be sent, lower-case names, `host` and `content-type` included.
    pub headers: &'a [(String, String)],
    /// The body bytes.
    pub body: &'a [u8],
}

/// Adds authentication headers computed from the request (Huawei's AK/SK `Authorization`).
/// Called once per attempt, so a date it signs is fresh on a retry.
pub trait Signer: Send + Sync {
    /// The headers to add to `request`; an error stops the request before it is sent.
    fn sign(&self, request: &Outgoing<'_>) -> Result<Vec<(String, String)>, CaError>;
}

impl<F> Signer for F
where
    F: Fn(&Outgoing<'_>) -> Result<Vec<(String, String)>, CaError> + Send + Sync,
{
    fn sign(&self, request: &Outgoing<'_>) -> Result<Vec<(String, String)>, CaError> {
        self(request)
    }
}

/// An answer within the size cap, with a status [`Expect`] accepts.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The transport: one HTTP client for one base URL.
pub struct Transport {
    client: reqwest::Client,
    base: reqwest::Url,
    options: HttpOptions,
    signer: Option<Box<dyn Signer>>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("options", &self.options)
            .field("signed", &self.signer.is_some())
            .finish()
    }
}

impl Transport {
    /// A transport for `base_url` (validated: https, or http on loopback). Endpoints are joined
    /// below it: `https://proxy/enc365` serves `/enc365/cert/create`.
    pub fn new(base_url: &str, options: HttpOptions) -> Result<Transport, CaError> {
        let mut base = crate::config::validate_base_url(base_url)
            .map_err(|e| CaError::Invalid(e.to_string()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("enc365-nginx/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CaError::Invalid(format!("could not set up the HTTP client: {e}")))?;
        Ok(Transport {
            client,
            base,
            options,
            signer: None,
        })
    }

    /// Signs every request with `signer`.
    pub fn with_signer(mut self, signer: impl Signer + 'static) -> Transport {
        self.signer = Some(Box::new(signer));
        self
    }

    /// The base URL, ending in `/`.
    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// The options.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// The URL of `endpoint` below the base.
    pub fn url(&self, endpoint: &str) -> Result<reqwest::Url, CaError> {
        self.base
            .join(endpoint.trim_start_matches('/'))
            .map_err(|e| CaError::Invalid(format!("bad endpoint URL: {e}")))
    }

    /// Sends `request`, retrying an idempotent one after transport failures.
    pub async fn send(&self, request: &Request) -> Result<Response, CaError> {
        let mut url = self.url(&request.endpoint)?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let (content_type, body) = encode(&request.body)?;
        let mut delay = self.options.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            tracing::info!(endpoint = %request.endpoint, attempt, "calling the CA");
            let result = self
                .send_once(request, &url, content_type.as_deref(), &body)
                .await;
            let retryable = request.idempotent
                && matches!(
                    result,
                    Err(CaError::Transport { .. } | CaError::Unreachable { .. })
                );
            match result {
                Err(CaError::Transport { detail, .. } | CaError::Unreachable { detail, .. })
                    if retryable && attempt <= self.options.retries =>
                {
                    tracing::info!(
                        endpoint = %request.endpoint,
                        "transport failure ({detail}); retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(CaError::Transport { endpoint, detail }) if retryable => {
                    return Err(CaError::Transport {
                        endpoint,
                        detail: format!("{detail} (gave up after {attempt} attempts)"),
                    });
                }
                Err(CaError::Unreachable { endpoint, detail }) if retryable => {
                    return Err(CaError::Unreachable {
                        endpoint,
                        detail: format!("{detail} (gave up after {attempt} attempts)"),
                    });
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        request: &Request,
        url: &reqwest::Url,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Response, CaError> {
        let endpoint = request.endpoint.as_str();
        let unsure = if request.idempotent {
            ""
        } else {
            "; the CA may have carried out the request anyway, so it was not repeated: check \
             before trying again"
        };
        let transport = |detail: String| CaError::Transport {
            endpoint: endpoint.to_string(),
            detail,
        };
        let headers = self.headers(request, url, content_type, body)?;
        let mut builder = self
            .client
            .request(request.method.clone(), url.clone())
            .body(body.to_vec());
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| CaError::Invalid(format!("bad header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| CaError::Invalid(format!("bad value for header {name}: {e}")))?;
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| {
            if e.is_connect() {
                // No connection, so no request: nothing happened at the CA.
                return CaError::Unreachable {
                    endpoint: endpoint.to_string(),
                    detail: format!(
                        "could not connect to {} ({}); nothing was sent, try again later",
                        host_of(url),
                        without_url(&e)
                    ),
                };
            }
            let what = if e.is_timeout() {
                "no answer in time"
            } else {
                "the request failed"
            };
            transport(format!("{what} ({}){unsure}", without_url(&e)))
        })?;
        let status = response.status().as_u16();
        if let Some(detail) = unexpected_status(request.expect, status, endpoint, url) {
            return Err(transport(format!("{detail}{unsure}")));
        }
        let headers = response.headers().clone();
        let body = read_capped(endpoint, response, self.options.body_limit)
            .await
            .map_err(|e| match e {
                CaError::Transport { endpoint, detail } => CaError::Transport {
                    endpoint,
                    detail: format!("{detail}{unsure}"),
                },
                other => other,
            })?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Every header of the request, lower-case names: `host`, the content type, the caller's,
    /// then the signer's.
    fn headers(
        &self,
        request: &Request,
        url: &reqwest::Url,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, CaError> {
        let mut headers = vec![("host".to_string(), host_of(url))];
        if let Some(content_type) = content_type {
            headers.push(("content-type".to_string(), content_type.to_string()));
        }
        for (name, value) in &request.headers {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
        if let Some(signer) = &self.signer {
            let added = signer.sign(&Outgoing {
                method: request.method.as_str(),
                url,
                headers: &headers,
                body,
            })?;
            for (name, value) in added {
                headers.push((name.to_ascii_lowercase(), value));
            }
        }
        Ok(headers)
    }
}

/// Why `status` is not an answer under `expect`, or `None` when it is.
fn unexpected_status(
    expect: Expect,
    status: u16,
    endpoint: &str,
    url: &reqwest::Url,
) -> Option<String> {
    let host = host_of(url);
    let accepted = match expect {
        Expect::Only(code) => status == code,
        Expect::Success => (200..300).contains(&status),
        Expect::Any => true,
    };
    if accepted {
        return None;
    }
    let status_text = reqwest::StatusCode::from_u16(status)
        .map_or_else(|_| status.to_string(), |s| s.to_string());
    Some(match expect {
        _ if status == 404 => {
            format!("HTTP 404 from {host}: the CA has no {endpoint} endpoint (check base_url)")
        }
        Expect::Only(code) => format!(
            "HTTP {status_text} from {host} (the API always answers {code}, so the CA or a proxy \
             in between is failing; try again later)"
        ),
        _ => format!(
            "HTTP {status_text} from {host} (the CA or a proxy in between is failing; try again \
             later)"
        ),
    })
}

/// The body's content type and bytes.
fn encode(body: &Body) -> Result<(Option<String>, Vec<u8>), CaError> {
    Ok(match body {
        Body::Empty => (None, Vec::new()),
        Body::Json(value) => (
            Some("application/json".to_string()),
            serde_json::to_vec(value)
                .map_err(|e| CaError::Invalid(format!("could not encode the request: {e}")))?,
        ),
        Body::Form(fields) => {
            let text: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
                .collect();
            (
                Some("application/x-www-form-urlencoded".to_string()),
                text.join("&").into_bytes(),
            )
        }
        Body::Raw {
            content_type,
            bytes,
        } => (Some(content_type.clone()), bytes.clone()),
        Body::Multipart(fields) => {
            let boundary = boundary(fields);
            let mut out = Vec::new();
            for (name, value) in fields {
                out.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                        name.replace('"', "%22").replace(['\r', '\n'], " ")
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            (
                Some(format!("multipart/form-data; boundary={boundary}")),
                out,
            )
        }
    })
}

/// A multipart boundary that occurs in no field.
fn boundary(fields: &[(String, String)]) -> String {
    loop {
        let random = |_| RandomState::new().build_hasher().finish();
        let candidate = format!("enc365-{:016x}{:016x}", random(0), random(1));
        if !fields
            .iter()
            .any(|(k, v)| k.contains(&candidate) || v.contains(&candidate))
        {
            return candidate;
        }
    }
}

/// `application/x-www-form-urlencoded` escaping: unreserved bytes kept, space as `+`.
fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Reads a response body, refusing bodies over `limit` bytes (by `Content-Length` or while reading).
async fn read_capped(
    endpoint: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, CaError> {
    let too_large = || CaError::Malformed {
        endpoint: endpoint.to_string(),
        detail: format!("the answer is larger than {limit} bytes; refusing to read it"),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(CaError::Transport {
                    endpoint: endpoint.to_string(),
                    detail: format!("the connection broke while reading the answer ({e})"),
                });
            }
        }
    }
}

/// `host[:port]` of a URL (the port only when it is not the scheme's default).
fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.to_string(),
    }
}

/// A reqwest error's text without the URL (kept short; the URL is already named).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

// Beside this file, not below it: src/ca holds only files (tests/enc365_contract.rs reads them all).
#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
