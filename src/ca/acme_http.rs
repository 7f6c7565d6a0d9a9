//! The HTTP client instant-acme sends through: reqwest over rustls (the project's TLS stack), with
//! the system roots plus any extra roots from a CA bundle (`ENC365_CA_BUNDLE` / `[acme]
//! ca_bundle`), the same timeouts as [`super::http`], and a cap on the size of an answer.
//! Verification is never switched off: a private ACME server (Pebble, an internal CA) is trusted
//! by naming its root.
//!
//! Not here: JWS, nonces and retries on `badNonce` (instant-acme does those).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

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
        Ok(AcmeHttp { client })
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
            let full = http_body_util::Full::new(bytes);
            let response = head
                .body(full)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(response))
        })
    }
}
