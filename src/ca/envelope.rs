//! The Encryption365 response envelope, read tolerantly (providers.md §1.4), and loosely typed fields.
//!
//! An answer (already read within the size cap by [`super::http`]) is accepted only if it is a
//! JSON object and its envelope says success: `result == "success"`, or no `result` and
//! `status == "success"`. `result == "error"` or
//! `status == "error"` is an API error carrying the API's `message`. Anything else (HTML, truncated
//! JSON, an array) is a clear "unexpected answer" naming what was expected. Numbers may arrive as
//! strings and booleans as `"true"`/`"false"`; [`Fields`] accepts both.
//!
//! Not here: what each endpoint's fields mean (see [`super::enc365`]).

use serde_json::{Map, Value};

use super::CaError;

/// The fields of a successful answer.
#[derive(Debug, Clone)]
pub struct Fields {
    endpoint: String,
    map: Map<String, Value>,
}

/// Parses a body into [`Fields`], turning an error envelope into [`CaError::Api`].
pub fn parse(endpoint: &str, body: &[u8]) -> Result<Fields, CaError> {
    let malformed = |detail: String| CaError::Malformed {
        endpoint: endpoint.to_string(),
        detail,
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let start = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
            let trimmed = start.trim_start().to_ascii_lowercase();
            let what = if trimmed.starts_with("<!doctype") || trimmed.starts_with("<html") {
                "an HTML page".to_string()
            } else if body.is_empty() {
                "an empty body".to_string()
            } else {
                format!("malformed JSON ({e})")
            };
            return Err(malformed(format!(
                "expected a JSON object, got {what} starting {start:?}; the CA or a proxy in \
                 between is failing, try again later"
            )));
        }
    };
    let Value::Object(map) = value else {
        return Err(malformed("expected a JSON object".to_string()));
    };
    let result = map.get("result").and_then(Value::as_str);
    let status = map.get("status").and_then(Value::as_str);
    let message = map
        .get("message")
        .map(|m| match m {
            Value::String(s) => clean_message(s),
            other => clean_message(&other.to_string()),
        })
        .filter(|m| !m.is_empty());
    if result == Some("error") || status == Some("error") {
        return Err(CaError::Api {
            endpoint: endpoint.to_string(),
            message: message.unwrap_or_else(|| "(the CA gave no message)".to_string()),
        });
    }
    let ok = result == Some("success") || (result.is_none() && status == Some("success"));
    if !ok {
        let mut detail = format!(
            "expected \"result\":\"success\" or \"result\":\"error\", got result={} status={}",
            json_or_absent(map.get("result")),
            json_or_absent(map.get("status")),
        );
        if let Some(message) = message {
            detail.push_str(&format!(" (message: {message})"));
        }
        return Err(malformed(detail));
    }
    Ok(Fields {
        endpoint: endpoint.to_string(),
        map,
    })
}

/// The CA's message made safe to print: control characters (terminal escapes) replaced, at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn clean_message(text: &str) -> String {
    let cleaned: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS + 1)
        .collect();
    if cleaned.chars().count() > MAX_MESSAGE_CHARS {
        format!(
            "{}…",
            cleaned.chars().take(MAX_MESSAGE_CHARS).collect::<String>()
        )
    } else {
        cleaned
    }
}

/// The longest CA message quoted in an error.
pub const MAX_MESSAGE_CHARS: usize = 500;

fn json_or_absent(v: Option<&Value>) -> String {
    v.map_or_else(|| "absent".to_string(), Value::to_string)
}

impl Fields {
    /// The endpoint these fields came from.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The raw value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required string field.
    pub fn string(&self, key: &str) -> Result<String, CaError> {
        self.opt_string(key)?
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// An optional string field (a number is accepted and rendered as text).
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, CaError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => loose_string(v)
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a string", v)),
        }
    }

    /// A required unsigned integer (JSON number or numeric string).
    pub fn u64(&self, key: &str) -> Result<u64, CaError> {
        self.opt_u64(key)?
            .ok_or_else(|| self.missing(key, "an integer"))
    }

    /// An optional unsigned integer (JSON number or numeric string).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, CaError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => loose_u64(v)
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer", v)),
        }
    }

    /// An optional number (JSON number or numeric string).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, CaError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => loose_f64(v)
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }

    /// A required object field.
    pub fn object(&self, key: &str) -> Result<&Map<String, Value>, CaError> {
        match self.get(key) {
            None => Err(self.missing(key, "an object")),
            Some(Value::Object(m)) => Ok(m),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }

    /// An optional list of strings (a comma-separated string is accepted too).
    pub fn opt_string_list(&self, key: &str) -> Result<Option<Vec<String>>, CaError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| loose_string(v).ok_or_else(|| self.wrong(key, "a list of strings", v)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
            Some(v) => Err(self.wrong(key, "a list of strings", v)),
        }
    }

    /// A "missing field" error for this endpoint.
    pub fn missing(&self, key: &str, expected: &str) -> CaError {
        CaError::Malformed {
            endpoint: self.endpoint.clone(),
            detail: format!("the field {key:?} ({expected}) is missing"),
        }
    }

    /// A "wrong type" error for this endpoint.
    pub fn wrong(&self, key: &str, expected: &str, got: &Value) -> CaError {
        CaError::Malformed {
            endpoint: self.endpoint.clone(),
            detail: format!(
                "the field {key:?} should be {expected}, got {}",
                abbreviate(got)
            ),
        }
    }
}

/// A value as text: strings as they are, numbers and booleans rendered.
pub fn loose_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An unsigned integer from a number or a numeric string.
pub fn loose_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A signed integer from a number or a numeric string.
pub fn loose_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number from a number or a numeric string.
pub fn loose_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean from `true`/`false`, `"true"`/`"false"`, `1`/`0`.
pub fn loose_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" | "" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

/// A short rendering of a value for error messages.
fn abbreviate(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_style_envelope_is_accepted() {
        let f = parse("x", br#"{"status":"success","trustocean_id":"42"}"#).expect("ok");
        assert_eq!(f.u64("trustocean_id").ok(), Some(42));
    }

    #[test]
    fn client_create_status_active_with_result_success_is_ok() {
        assert!(parse("x", br#"{"result":"success","status":"active"}"#).is_ok());
    }

    #[test]
    fn error_quotes_message() {
        let e = parse(
            "x",
            r#"{"result":"error","message":"账户或密码错误"}"#.as_bytes(),
        )
        .expect_err("error");
        assert!(e.to_string().contains("账户或密码错误"), "{e}");
        let e = parse("x", br#"{"status":"error","message":"nope"}"#).expect_err("error");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn html_and_truncated_json_are_named() {
        let e = parse("x", b"<!DOCTYPE html><html>502</html>").expect_err("html");
        assert!(e.to_string().contains("HTML page"), "{e}");
        let e = parse("x", br#"{"result":"succ"#).expect_err("trunc");
        assert!(e.to_string().contains("malformed JSON"), "{e}");
        let e = parse("x", br#"{"foo":1}"#).expect_err("no envelope");
        assert!(e.to_string().contains("result"), "{e}");
    }

    #[test]
    fn messages_lose_terminal_escapes_and_are_capped() {
        let e = parse(
            "x",
            b"{\"result\":\"error\",\"message\":\"bad\\u001b[31m red\"}",
        )
        .expect_err("error");
        assert!(!e.to_string().contains('\u{1b}'), "{e:?}");
        assert!(e.to_string().contains("bad [31m red"), "{e}");
        assert_eq!(
            clean_message(&"x".repeat(2000)).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn loose_values() {
        assert_eq!(loose_bool(&Value::from("false")), Some(false));
        assert_eq!(loose_i64(&Value::from("-1")), Some(-1));
        assert_eq!(loose_f64(&Value::from("2.5")), Some(2.5));
        assert_eq!(loose_u64(&Value::from("x")), None);
    }
}
