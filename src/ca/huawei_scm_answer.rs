//! Reading Huawei SCM answers (providers.md §3.5, §3.6): a 2xx body, the `SCM.*` error body, the
//! gateway's 401 `APIGW.*` explained as the key, the clock or the signature ([`explain_auth`]);
//! ShowCertificate's `authentification[]` as challenges, refusing names not ordered; the exported
//! certificate checked like every certificate.
//!
//! Not here: sending requests ([`super::huawei_scm`]).

use serde_json::{Value, json};

use super::envelope::loose_string;
use super::http::Response;
use super::pem::check_downloaded;
use super::{
    CaError, Challenge, IssuedCertificate, NameValidation, PKI_VALIDATION, is_safe_file_name,
};

/// Reads an SCM answer: 2xx is the JSON body (empty is `{}`); an error body
/// `{"error_code","error_msg"}` becomes [`CaError::Api`] (401 `APIGW.*` explained); anything else
/// a transport failure.
pub(super) fn read_answer(
    endpoint: &str,
    response: &Response,
    idempotent: bool,
    clock_offset: i64,
) -> Result<Value, CaError> {
    let status = response.status;
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    if (200..300).contains(&status) {
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        return match parsed {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(malformed(endpoint, "the answer is not a JSON object")),
        };
    }
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("error_code"))
        .and_then(loose_string);
    let msg = (parsed
        .as_ref()
        .and_then(|v| v.get("error_msg"))
        .and_then(loose_string))
    .unwrap_or_default();
    let Some(code) = code else {
        let unsure = if idempotent {
            ""
        } else {
            "; Huawei may have carried out the request anyway, so it was not repeated: check the \
             SCM console before trying again"
        };
        return Err(CaError::Transport {
            endpoint: endpoint.to_string(),
            detail: format!(
                "HTTP {status} without Huawei's error body (check base_url or region under \
                 [huawei_scm]; a proxy may be in the way){unsure}"
            ),
        });
    };
    let msg = super::envelope::clean_message(&msg);
    let message = if status == 401 || code.starts_with("APIGW.") || code.starts_with("APIG.") {
        explain_auth(&code, &msg, server_skew(response, clock_offset))
    } else {
        format!("{msg} ({code}, HTTP {status})")
    };
    Err(CaError::Api {
        endpoint: endpoint.to_string(),
        message,
    })
}

/// How far the server's `Date` is from our (offset) clock, in seconds, if it said.
fn server_skew(response: &Response, clock_offset: i64) -> Option<i64> {
    let date = response.headers.get("date")?.to_str().ok()?;
    let when =
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822).ok()?;
    let ours = time::OffsetDateTime::now_utc().unix_timestamp() + clock_offset;
    Some(ours - when.unix_timestamp())
}

/// A gateway authentication error in words that say what is at fault: the key, the clock or the
/// signature.
pub fn explain_auth(code: &str, msg: &str, skew: Option<i64>) -> String {
    // The gateway may quote its canonical request, which names x-sdk-date: not a hint.
    let lower = (msg.split("canonical request").next().unwrap_or(msg)).to_ascii_lowercase();
    let clock = skew.is_some_and(|s| s.abs() > 10 * 60)
        || ["x-sdk-date is", "expired", "minutes off", "clock", "skew"]
            .iter()
            .any(|w| lower.contains(w));
    let key = [
        "access key",
        "ak ",
        "not found",
        "unknown",
        "does not exist",
        "invalid ak",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let what = if clock {
        let by = skew
            .filter(|s| s.abs() >= 60)
            .map_or_else(String::new, |s| {
                format!(
                    " (this host's clock is {} minutes {})",
                    s.abs() / 60,
                    if s > 0 { "ahead" } else { "behind" }
                )
            });
        format!(
            "the request's date (X-Sdk-Date) is too far from Huawei's clock{by}: Huawei refuses \
             requests more than 15 minutes off. Set this host's clock right (NTP: `timedatectl \
             set-ntp true`) and run again"
        )
    } else if key {
        "Huawei does not know the access key: check access_key under [huawei_scm] (run \
         `enc365-nginx register --provider huawei-scm --access-key AK` again with a key from the \
         console's \"My Credentials\" page)"
            .to_string()
    } else {
        "the signature does not match: the secret key under [huawei_scm] does not belong to the \
         access key (or was copied incompletely); register again with the right pair"
            .to_string()
    };
    format!("{what} [{code}: {msg}]")
}

/// What to publish for each name, from `authentification[]`; entries for names not ordered are
/// refused.
pub(super) fn validations(
    endpoint: &str,
    shown: &Value,
    names: &[String],
) -> Result<Vec<NameValidation>, CaError> {
    let entries = match shown.get("authentification") {
        Some(Value::Array(entries)) => entries.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(malformed(endpoint, "authentification is not a list")),
    };
    let mut out: Vec<NameValidation> = (names.iter())
        .map(|n| NameValidation {
            name: n.clone(),
            validated: false,
            challenges: Vec::new(),
        })
        .collect();
    for entry in &entries {
        let field = |key: &str| entry.get(key).and_then(loose_string).unwrap_or_default();
        let domain = field("domain");
        let Some(slot) = out
            .iter_mut()
            .find(|v| v.name.eq_ignore_ascii_case(&domain))
        else {
            return Err(malformed(
                endpoint,
                &format!("authentification holds {domain:?}, which is not among the names ordered"),
            ));
        };
        slot.challenges.push(challenge(
            endpoint,
            &domain,
            &field("record_type"),
            &field("record_name"),
            &field("record_value"),
        )?);
    }
    Ok(out)
}

/// One `authentification` entry as a challenge. FILE entries (not documented, providers.md §3.5)
/// are read with `record_name` a path, URL or file name under `/.well-known/pki-validation/`.
pub(super) fn challenge(
    endpoint: &str,
    domain: &str,
    rtype: &str,
    name: &str,
    value: &str,
) -> Result<Challenge, CaError> {
    let upper = rtype.to_ascii_uppercase();
    if upper == "FILE" || name.contains(PKI_VALIDATION) {
        let file = name.rsplit('/').next().unwrap_or_default();
        if !is_safe_file_name(file)
            || value.is_empty()
            || value.len() > 4096
            || value.contains('\0')
        {
            return Err(malformed(
                endpoint,
                &format!("the FILE record for {domain} ({name:?}) is not a usable validation file"),
            ));
        }
        return Ok(Challenge::HttpFile {
            path: format!("{PKI_VALIDATION}{file}"),
            content: value.to_string(),
        });
    }
    let owner = name.trim_end_matches('.').to_ascii_lowercase();
    let base = domain
        .strip_prefix("*.")
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let inside = owner == base || owner.ends_with(&format!(".{base}"));
    let plain = |s: &str| s.len() <= 512 && s.bytes().all(|b| b.is_ascii_graphic());
    if !matches!(upper.as_str(), "TXT" | "CNAME") || !inside || !plain(&owner) || !plain(value) {
        return Err(malformed(
            endpoint,
            &format!("the {rtype} record {name:?} for {domain} is not a usable validation record"),
        ));
    }
    Ok(Challenge::DnsRecord {
        host: owner,
        record_type: upper,
        value: value.to_string(),
    })
}

/// The exported certificate, checked: leaf and chain parse, the chain is put in order, the leaf
/// covers every ordered name. `entire_certificate` is not trusted (providers.md §3.5).
pub(super) fn checked_certificate(
    endpoint: &str,
    cert: &str,
    chain: &str,
    names: &[String],
) -> Result<IssuedCertificate, CaError> {
    let fields = ("certificate", "certificate_chain");
    check_downloaded(cert, chain, names, fields).map_err(|detail| malformed(endpoint, &detail))
}

/// An id safe to put in a path: letters, digits, `-`/`_`, at most 64.
pub(super) fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && (id.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

pub(super) fn check_id(id: &str) -> Result<(), CaError> {
    if is_plain_id(id) {
        Ok(())
    } else {
        Err(CaError::Invalid(format!(
            "{id:?} is not a Huawei certificate id (scs…)"
        )))
    }
}

pub(super) fn malformed(endpoint: &str, detail: &str) -> CaError {
    CaError::Malformed {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::ValidationMethod;

    #[test]
    fn auth_errors_name_the_clock_the_key_or_the_signature() {
        let m = explain_auth("APIGW.0301", "verify aksk signature fail", Some(1200));
        assert!(m.contains("clock") && m.contains("20 minutes ahead"), "{m}");
        let m = explain_auth("APIGW.0301", "verify aksk signature fail", Some(3));
        assert!(m.contains("secret key") && !m.contains("clock"), "{m}");
        let m = explain_auth(
            "APIGW.0301",
            "verify aksk signature fail, canonical request: GET|/|x-sdk-date:2024",
            Some(0),
        );
        assert!(m.contains("signature does not match"), "{m}");
        let m = explain_auth("APIGW.0301", "unknown access key", None);
        assert!(m.contains("access key"), "{m}");
    }

    #[test]
    fn authentification_records_become_challenges_and_foreign_names_are_refused() {
        let shown = json!({"authentification": [
            {"domain": "a.test", "record_type": "FILE",
             "record_name": "/.well-known/pki-validation/fileauth.txt", "record_value": "xyz"},
            {"domain": "*.a.test", "record_type": "TXT",
             "record_name": "_dnsauth.a.test", "record_value": "v1"}]});
        let names = vec!["a.test".to_string(), "*.a.test".to_string()];
        let v = validations("x", &shown, &names).expect("read");
        assert_eq!(
            v[0].challenges[0].http_path().as_deref(),
            Some("/.well-known/pki-validation/fileauth.txt")
        );
        assert_eq!(v[1].challenges[0].method(), ValidationMethod::Dns);
        let e = validations("x", &shown, &names[..1]).unwrap_err();
        assert!(e.to_string().contains("not among the names ordered"), "{e}");
        let bad = json!({"authentification": [{"domain": "a.test", "record_type": "TXT",
            "record_name": "_dnsauth.evil.test", "record_value": "v"}]});
        assert!(validations("x", &bad, &names).is_err());
    }
}
