//! enc365-nginx: HTTPS for every nginx site, with no manual steps.
//!
//! The library holds everything; the binary `enc365-nginx` only parses arguments and calls into it.
//! Modules keep their knowledge to themselves: [`nginx`] (the `nginx-conf` crate of this
//! workspace) reads and edits nginx configuration and knows nothing of certificate authorities; the
//! CA clients know nothing of nginx; [`pipeline`] (the order stages the commands share) and
//! [`commands`] are the only places where both meet. The CA simulator the tests run against is a
//! crate of its own (`enc365-sim`), not part of this library.

pub mod assess;
pub mod bounded;
pub mod ca;
pub mod certificates;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dcv;
pub mod discovery;
pub mod exit;
pub mod fs_safe;
pub mod generate;
pub mod heap;
pub mod hooks;
pub mod huawei_sign;
pub mod install;
pub mod keys;
pub mod lifecycle;
pub mod locale;
pub mod names;
pub use nginx_conf as nginx;
pub mod orders;
pub mod paths;
pub mod pipeline;
pub mod publish;
pub mod secret;
pub mod site;
pub mod store;
pub mod timings;
pub mod tlsinfo;
pub mod uninstall;
pub mod verify;
