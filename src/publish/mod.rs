//! Where validation goes. A CA says, per name, what must be published ([`Challenge`]: an HTTP
//! file at a URL path, or a DNS record); the pipeline picks the challenge for the method chosen
//! for the name ([`method_for`]) and hands it to the [`Publisher`] for that method: [`http`]
//! (files in a webroot, or under a temporary nginx location) or [`dns`] (a slot, not configured
//! yet).
//!
//! Not here: planning which nginx block serves a name ([`crate::dcv`]) or talking to the CA.

pub mod dns;
pub mod http;

use std::path::PathBuf;

use crate::ca::{Challenge, NameValidation, ValidationMethod};

/// What was put where for a site, so it can be removed once the order is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Directories created for them (removed when empty).
    pub dirs: Vec<PathBuf>,
}

/// Publishes what a CA asks for, one way.
pub trait Publisher {
    /// The method this publisher proves names by.
    fn method(&self) -> ValidationMethod;

    /// Publishes `challenge` for `name` and checks it is visible the way the CA will look. What
    /// it wrote is added to `out` even when the check then fails, so it can be removed.
    fn publish(&self, name: &str, challenge: &Challenge, out: &mut Published)
    -> anyhow::Result<()>;
}

/// The method chosen for a name: HTTP file (DNS validation is not configured yet; the
/// DNS-validation work chooses DNS where it is, and for wildcards).
pub fn method_for(_name: &str) -> ValidationMethod {
    ValidationMethod::HttpFile
}

/// The first challenge the CA offers for a name by `method`.
pub fn challenge_for(validation: &NameValidation, method: ValidationMethod) -> Option<&Challenge> {
    validation.challenges.iter().find(|c| c.method() == method)
}
