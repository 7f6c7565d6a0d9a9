//! [`Secret`]: a string that must never be shown — access tokens and passwords.
//!
//! Its `Debug` and `Display` print `[redacted]`, so a secret that ends up in a log line, an error or a
//! `{:?}` dump stays hidden. The only way to the value is [`Secret::expose`], which the few places that
//! must send or store it call by name. It serialises as the plain string (the config file holds the
//! token); JSON output types never contain a `Secret`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Environment variables that may hold a credential (`register` reads the password from
/// `ENC365_PASSWORD`); they are removed from the environment of every process we start.
pub const SECRET_ENV_VARS: &[&str] = &["ENC365_PASSWORD"];

/// Removes [`SECRET_ENV_VARS`] from the environment `command` will run with (hooks, reload
/// commands and nginx need none of them).
pub fn scrub_env(command: &mut std::process::Command) -> &mut std::process::Command {
    for var in SECRET_ENV_VARS {
        command.env_remove(var);
    }
    command
}

/// A credential (access token, password) that is never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The credential itself, for sending it to the CA or writing it to the 0600 config file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the credential is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2-token");
    }
}
