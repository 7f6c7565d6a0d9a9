//! The integration tests, one module per area, linked into one test binary (as cargo and ripgrep
//! do): the crate is linked once instead of once per file. Shared helpers live in [`common`] (a
//! real nginx in its own prefix, the simulator, HTTP and certificate helpers).
//!
//! Run one area with its module path as the filter, e.g. `cargo test --test it renew::`.

mod common;
#[path = "../../fuzz/fuzz_targets/check.rs"]
mod fuzz_check;

mod account_commands;
mod acme;
mod auto;
mod auto_edge_cases;
mod auto_failures;
mod auto_options;
mod cancel;
mod cluster;
mod cluster_core;
mod config;
mod contracts;
mod control;
mod discover_cli;
mod dns;
mod dns_cases;
mod early_work;
mod enc365_contract;
mod fault_matrix;
mod fixtures;
mod fuzz_corpus;
mod gen_vhosts;
mod hardening;
mod hardening_fs;
mod harness;
mod help_examples;
mod howssl;
mod howssl_dns;
mod https_edit;
mod install_flow;
mod install_streamed;
mod keys;
mod lifecycle;
mod newcomer;
mod newcomer_certbot;
mod newcomer_runs;
mod order_steps;
mod package_template;
mod preflight_many;
mod providers;
mod renew;
mod scm;
mod sim_dcv;
mod sim_process;
mod verify;
