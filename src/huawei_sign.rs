//! Huawei Cloud's AK/SK request signing, `SDK-HMAC-SHA256` (providers.md §3.2): the canonical
//! request, the string to sign and the `Authorization` header. Used by the Huawei Cloud DNS
//! publisher, and meant for the SCM provider too (through the signing hook of
//! [`crate::ca::http`]).
//!
//! Not here: sending requests ([`AkSk`] plugs into the transport that does).

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name that starts the string to sign and the header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// One request to sign, as it goes on the wire.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE` (upper-cased here).
    pub method: &'a str,
    /// The path, without the query (`/v2/zones`).
    pub path: &'a str,
    /// The query pairs, not yet encoded.
    pub query: &'a [(String, String)],
    /// The headers to sign, with their values (`host`, `x-sdk-date`, …); `x-sdk-date` must be
    /// among them.
    pub headers: &'a [(String, String)],
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// Percent-encodes everything but `A–Z a–z 0–9 - _ . ~`, upper-case hex.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical URI: each segment encoded, always ending in `/`.
fn canonical_uri(path: &str) -> String {
    let mut uri: String = path.split('/').map(encode).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query: encoded pairs sorted by name then value, joined with `&`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    pairs.sort();
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// The sorted lower-case names and the canonical header block.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    list.sort();
    let block: String = list.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let names: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
    (names.join(";"), block)
}

/// The canonical request (six parts joined by newlines).
pub fn canonical_request(req: &SignRequest) -> String {
    let (signed, block) = canonical_headers(req.headers);
    let body_hash = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-sdk-content-sha256"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| hex(&Sha256::digest(req.body)));
    format!(
        "{}\n{}\n{}\n{block}\n{signed}\n{body_hash}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
    )
}

/// The hex signature of a request with the secret key `sk`.
pub fn signature(req: &SignRequest, sk: &str) -> anyhow::Result<String> {
    let date = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-sdk-date"))
        .map(|(_, v)| v.trim())
        .ok_or_else(|| anyhow::anyhow!("an X-Sdk-Date header must be signed"))?;
    let hashed = hex(&Sha256::digest(canonical_request(req).as_bytes()));
    let to_sign = format!("{ALGORITHM}\n{date}\n{hashed}");
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(sk.as_bytes())
        .map_err(|_| anyhow::anyhow!("the secret key cannot be used as an HMAC key"))?;
    mac.update(to_sign.as_bytes());
    Ok(hex(&mac.finalize().into_bytes()))
}

/// The `Authorization` header value for a request signed with `ak`/`sk`.
pub fn authorization(req: &SignRequest, ak: &str, sk: &str) -> anyhow::Result<String> {
    let (signed, _) = canonical_headers(req.headers);
    Ok(format!(
        "{ALGORITHM} Access={ak}, SignedHeaders={signed}, Signature={}",
        signature(req, sk)?
    ))
}

/// Signs requests of [`crate::ca::http::Transport`] with an AK/SK pair: adds `X-Sdk-Date` and
/// `Authorization`, signing `host`, `content-type` (when sent) and `x-sdk-date`.
pub struct AkSk {
    /// The access key id.
    pub ak: String,
    /// The secret access key.
    pub sk: crate::secret::Secret,
}

impl crate::ca::http::Signer for AkSk {
    fn sign(
        &self,
        request: &crate::ca::http::Outgoing<'_>,
    ) -> Result<Vec<(String, String)>, crate::ca::CaError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let date = sdk_date(now);
        let mut headers: Vec<(String, String)> = (request.headers.iter())
            .filter(|(k, _)| k == "host" || k == "content-type")
            .cloned()
            .collect();
        headers.push(("x-sdk-date".into(), date.clone()));
        let query: Vec<(String, String)> = (request.url.query_pairs())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let path = percent_decode(request.url.path());
        let signed = SignRequest {
            method: request.method,
            path: &path,
            query: &query,
            headers: &headers,
            body: request.body,
        };
        let auth = authorization(&signed, &self.ak, self.sk.expose()).map_err(|e| {
            crate::ca::CaError::Transport {
                endpoint: request.url.path().to_string(),
                detail: format!("could not sign the request: {e}"),
            }
        })?;
        Ok(vec![
            ("X-Sdk-Date".into(), date),
            ("Authorization".into(), auth),
        ])
    }
}

/// Decodes `%XX` escapes (the path as sent, back to what is signed).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYYMMDDTHHMMSSZ` in UTC for Unix seconds `now`, the `X-Sdk-Date` format.
pub fn sdk_date(now: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_apig_guide_example_signs_as_published() {
        let query = h(&[
            ("limit", "2"),
            ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
        ]);
        let headers = h(&[
            ("Content-Type", "application/json"),
            ("Host", "service.region.example.com"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let req = SignRequest {
            method: "GET",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&req);
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a",
            "{canonical}"
        );
        assert_eq!(
            authorization(
                &req,
                "QTWAOYTTINDUT2QVKYUC",
                "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
            )
            .unwrap(),
            "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, \
             SignedHeaders=content-type;host;x-sdk-date, \
             Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
        );
    }

    #[test]
    fn the_go_sdk_vectors_sign_as_published() {
        let headers = h(&[("X-Sdk-Date", "20060102T150405Z")]);
        let get = SignRequest {
            method: "GET",
            path: "/path",
            query: &h(&[("limit", "1")]),
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            signature(&get, "SecretKey").unwrap(),
            "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
        let query = h(&[("key", "value")]);
        let mut post = SignRequest {
            method: "POST",
            path: "/path",
            query: &query,
            headers: &headers,
            body: b"{\"Name\":\"test\",\"Id\":1}\n",
        };
        assert_eq!(
            signature(&post, "SecretKey").unwrap(),
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
        post.body = b"{\"Name\":\"test\",\"Id\":1}";
        assert_ne!(
            signature(&post, "SecretKey").unwrap(),
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    #[test]
    fn the_scm_fixtures_sign_as_published() {
        let sk = "SKEXAMPLE0000000000000000000000000000000";
        let host = "scm.cn-north-4.myhuaweicloud.com";
        let plain = h(&[("host", host), ("x-sdk-date", "20240102T030405Z")]);
        let show = SignRequest {
            method: "GET",
            path: "/v3/scm/certificates/scs1554192131150",
            query: &[],
            headers: &plain,
            body: b"",
        };
        assert_eq!(
            signature(&show, sk).unwrap(),
            "d6dceac0cd6dad76b322916e20d2194705b52d17f990708af9e6aa7891445544"
        );
        let list = SignRequest {
            query: &h(&[("limit", "10"), ("offset", "0"), ("status", "ALL")]),
            path: "/v3/scm/certificates",
            ..show.clone()
        };
        assert_eq!(
            signature(&list, sk).unwrap(),
            "1d79e998011d7a91b428a78e262767bc338060f83b416339a116279c3faf6738"
        );
        let json = h(&[
            ("content-type", "application/json"),
            ("host", host),
            ("x-sdk-date", "20240102T030405Z"),
        ]);
        let body = br#"{"domain":"www.example.com","applicant_name":"Zhang San","applicant_phone":"13212345678","applicant_email":"admin@example.com","agree_privacy_protection":true,"domain_method":"DNS"}"#;
        let apply = SignRequest {
            method: "POST",
            path: "/v3/scm/certificates/scs1554192131150/apply",
            query: &[],
            headers: &json,
            body,
        };
        assert_eq!(
            hex(&Sha256::digest(body)),
            "e4a54a153f70104a2d9825ca1eac1bf642909ba8d90c71ffef3f803c34d97ee9"
        );
        assert_eq!(
            signature(&apply, sk).unwrap(),
            "72aea4cc9db2f9693ce8dc9439421a73cab570f5fbbb4de0ffad9e1b222ebc51"
        );
    }

    #[test]
    fn dates_and_encoding_follow_the_rules() {
        assert_eq!(sdk_date(1_704_164_645), "20240102T030405Z");
        assert_eq!(canonical_uri("/a b/c"), "/a%20b/c/");
        assert_eq!(
            canonical_query(&h(&[("b", "x y"), ("a", "2"), ("a", "1")])),
            "a=1&a=2&b=x%20y"
        );
    }
}
