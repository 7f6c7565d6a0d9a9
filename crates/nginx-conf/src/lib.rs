//! The nginx model: read configuration exactly as nginx does (byte-exact lexer, directive tree with
//! spans, include resolution), find the sites in it, and run the nginx binary.
//!
//! Knows nothing of certificate authorities.

pub mod control;
pub mod edit;
pub mod fast_hash;
pub mod https;
pub mod lexer;
pub mod process;
pub mod reader;
pub mod signal_conf;
pub mod sites;
pub mod tree;
pub mod unmanage;
