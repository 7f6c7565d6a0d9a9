//! The HTTP client instant-acme sends through: reqwest over rustls (the project's TLS stack), with
//! the system roots plus any extra roots from a CA bundle (`ENC365_CA_BUNDLE` / `[acme]
//! ca_bundle`), the same timeouts as [`super::http`], and a cap on the size of an answer.
//! Verification is never switched off: a private ACME server (Pebble, an internal CA) is trusted
//! by naming its root.
//!
//! When asked to ([`AcmeHttp::keep_chains`]), it also keeps the certificate chains the CA
//! answers with and the alternate chains each names (`Link: <url>;rel="alternate"`, RFC 8555
//! §7.4.2), which instant-acme does not expose: that is how a preferred chain is chosen.
//!
//! Not here: JWS, nonces and retries on `badNonce` (instant-acme does those).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use super::CaError;
use super::http::{DEFAULT_BODY_LIMIT, HttpOptions};

/// The environment variable naming extra trusted roots (PEM) for the ACME directory's TLS.
pub const CA_BUNDLE_ENV: &str = "ENC365_CA_BUNDLE";

/// reqwest as instant-acme's HTTP client.
#[derive(Debug, Clone)]
pub struct AcmeHttp {
    client: reqwest::Client,
    chains: Option<Arc<Mutex<Chains>>>,
}

/// Certificate chains the CA answered with, by URL, and the alternate chain URLs each named.
#[derive(Debug, Default)]
struct Chains {
    bodies: HashMap<String, String>,
    alternates: HashMap<String, Vec<String>>,
}

impl AcmeHttp {
    /// A client trusting the system roots and, when given, the PEM certificates in `ca_bundle`.
    pub fn new(ca_bundle: Option<&Path>) -> Result<AcmeHttp, CaError> {
        let options = HttpOptions::default();
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("enc365-nginx/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                CaError::Invalid(format!(
                    "could not read the CA bundle {}: {e}; fix {CA_BUNDLE_ENV} or `ca_bundle` \
                     under [acme]",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    CaError::Invalid(format!(
                        "the CA bundle {} holds no PEM certificate",
                        path.display()
                    ))
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| CaError::Invalid(format!("could not set up the HTTP client: {e}")))?;
        Ok(AcmeHttp {
            client,
            chains: None,
        })
    }

    /// The same client, keeping every certificate chain the CA answers with (for
    /// [`AcmeHttp::take_chain`] and [`AcmeHttp::alternates`]).
    pub fn keep_chains(mut self) -> AcmeHttp {
        self.chains = Some(Arc::default());
        self
    }

    /// The alternate chain URLs the CA named when answering `url` with a chain.
    pub fn alternates(&self, url: &str) -> Vec<String> {
        (self.chains.as_ref())
            .and_then(|c| c.lock().unwrap().alternates.get(url).cloned())
            .unwrap_or_default()
    }

    /// The chain (PEM) the CA answered `url` with, forgotten once taken.
    pub fn take_chain(&self, url: &str) -> Option<String> {
        self.chains.as_ref()?.lock().unwrap().bodies.remove(url)
    }

    /// Fetches `url` with a plain GET and parses the JSON answer (the directory).
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, CaError> {
        let transport = |detail: String| CaError::Transport {
            endpoint: url.to_string(),
            detail,
        };
        let response = (self.client.get(url).send().await)
            .map_err(|e| transport(format!("{e}; check the ACME directory URL")))?;
        if !response.status().is_success() {
            return Err(transport(format!("HTTP {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| CaError::Malformed {
            endpoint: url.to_string(),
            detail: format!("not a JSON directory: {e}"),
        })
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let chains = self.chains.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                .to_bytes();
            let url = parts.uri.to_string();
            let response = client
                .request(parts.method, &url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut head = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                head = head.header(name, value);
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            if bytes.len() > DEFAULT_BODY_LIMIT {
                return Err(instant_acme::Error::Str("the ACME answer is too large"));
            }
            if let Some(chains) = &chains {
                keep_chain(chains, &url, head.headers_ref(), &bytes);
            }
            let full = http_body_util::Full::new(bytes);
            let response = head
                .body(full)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(response))
        })
    }
}

/// Keeps `body` when it is a certificate chain, with the alternates its `Link` headers name.
fn keep_chain(chains: &Mutex<Chains>, url: &str, headers: Option<&http::HeaderMap>, body: &[u8]) {
    let Some(headers) = headers else { return };
    let is_chain = (headers.get(http::header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/pem-certificate-chain"));
    let Some(text) = is_chain
        .then(|| String::from_utf8(body.to_vec()).ok())
        .flatten()
    else {
        return;
    };
    let links = (headers.get_all(http::header::LINK).iter()).filter_map(|v| v.to_str().ok());
    let alternates = alternate_links(links);
    let mut chains = chains.lock().unwrap();
    chains.bodies.insert(url.to_string(), text);
    chains.alternates.insert(url.to_string(), alternates);
}

/// The URLs of `Link` header values with `rel="alternate"`, in order.
fn alternate_links<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for link in values.flat_map(|v| v.split(',')) {
        let link = link.trim();
        let Some((target, params)) = link.strip_prefix('<').and_then(|l| l.split_once('>')) else {
            continue;
        };
        let alternate = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"alternate\"") || p.eq_ignore_ascii_case("rel=alternate")
        });
        if alternate {
            out.push(target.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_links_are_read_from_every_link_header() {
        let values = [
            "<https://ca.test/cert/1/1>;rel=\"alternate\"",
            "<https://ca.test/dir>;rel=\"index\", <https://ca.test/cert/1/2> ; rel=alternate",
        ];
        assert_eq!(
            alternate_links(values.into_iter()),
            vec!["https://ca.test/cert/1/1", "https://ca.test/cert/1/2"]
        );
        assert!(alternate_links(["<https://ca.test/dir>;rel=\"up\""].into_iter()).is_empty());
    }
}
