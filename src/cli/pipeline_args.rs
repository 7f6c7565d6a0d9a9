//! The options of the ordering commands other than `auto` (`plan`, `renew`, `reissue`), each
//! command with only the options it uses, built from small groups ([`OrderArgs`], [`WaitArgs`],
//! [`super::HookArgs`]). Each turns into the [`AutoArgs`] the shared pipeline runs with.
//!
//! Not here: `auto`'s own options ([`AutoArgs`], which has them all) or any behaviour.

use clap::Args;

use super::{AutoArgs, Command, HookArgs, MAX_TIMEOUT_SECS, parse_poll_interval};

/// How names are checked and ordered (`renew`, `reissue`).
#[derive(Debug, Clone, Default, Args)]
pub struct OrderArgs {
    /// The key type for new certificates, instead of the config's `key_type` (rsa2048, rsa3072,
    /// rsa4096, ecdsa-p256, ecdsa-p384).
    #[arg(long, value_name = "TYPE", value_parser = |s: &str| s.parse::<crate::keys::KeyType>())]
    pub key_type: Option<crate::keys::KeyType>,
    /// Do not require each name to resolve in DNS before ordering.
    #[arg(long)]
    pub skip_dns_check: bool,
    /// DNS validation: ask this server (ADDR or ADDR:PORT; repeatable) whether a validation
    /// record has propagated, instead of the zone's authoritative servers.
    #[arg(long = "dns-server", value_name = "ADDR")]
    pub dns_server: Vec<String>,
    /// Fail a site when any of its names fails the preflight checks, instead of leaving it out.
    #[arg(long)]
    pub require_all: bool,
    /// Order anew for a site whose earlier ordering was interrupted before the CA's answer was
    /// saved (check the CA console first: the CA may hold that order).
    #[arg(long)]
    pub discard_interrupted_order: bool,
    /// ACME: install the alternate chain whose topmost certificate was issued by this common
    /// name (as `[acme] preferred_chain`); the CA's default chain when none matches.
    #[arg(long, value_name = "ISSUER_CN")]
    pub preferred_chain: Option<String>,
}

/// How long to wait for the CA (`renew`, `reissue`, `certonly`).
#[derive(Debug, Clone, Default, Args)]
pub struct WaitArgs {
    /// Order and publish validation, then return without waiting for issuance.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for issuance, in seconds (at most 31 days); the order is kept when this
    /// runs out. Default: the provider's (Encryption365: 1800).
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub timeout: Option<u64>,
    /// Seconds between the first status polls of the CA (more than 0, at most 3600), backing off
    /// as the provider says. Default: the provider's.
    #[arg(long, value_name = "SECS", value_parser = parse_poll_interval)]
    pub poll_interval: Option<f64>,
    /// The port the CA fetches validation files on (where no plain-HTTP block answers, a
    /// temporary validation server listens on it).
    #[arg(long, default_value_t = 80, value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
}

/// Options of `plan`: what to show, changing nothing.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Only this site: one of its names, or the file holding its server block (repeatable).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Only this name of the selected site (repeatable).
    #[arg(short = 'd', long = "domain", value_name = "NAME")]
    pub domains: Vec<String>,
    /// Cover all selected sites with one certificate instead of one per site.
    #[arg(long)]
    pub one_certificate: bool,
    /// The port `listen N ssl` would be added for (default: the config's `https_port`, else 443).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub https_port: Option<u16>,
    /// The port the CA would fetch validation files on.
    #[arg(long, default_value_t = 80, value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
    /// Show the redirect of plain HTTP to HTTPS `auto --redirect` would add.
    #[arg(long)]
    pub redirect: bool,
    /// Show the Strict-Transport-Security header `auto --hsts` would add.
    #[arg(long)]
    pub hsts: bool,
}

/// The pipeline options of `renew`: no config edits of its own (no redirect, HSTS or merging
/// certificates), so none of those options.
#[derive(Debug, Clone, Args)]
pub struct RenewPipeline {
    /// Only the certificate of this site: one of its names, or its file (repeatable).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Test the renewal without changing a live file or reloading nginx: against a test
    /// endpoint (enc365-sim, ACME staging) the full order/validation/issue cycle, else
    /// everything up to the order.
    #[arg(long)]
    pub dry_run: bool,
    /// The HTTPS port a reinstalled site listens on (default: the config's `https_port`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub https_port: Option<u16>,
    /// How names are checked and ordered.
    #[command(flatten)]
    pub order: OrderArgs,
    /// How long to wait for the CA.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Commands to run around the install step.
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// The pipeline options of `reissue`: one site, the same order, nothing else changed.
#[derive(Debug, Clone, Args)]
pub struct ReissuePipeline {
    /// The managed site whose certificate to reissue (one of its names).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// The HTTPS port the site listens on (default: the config's `https_port`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub https_port: Option<u16>,
    /// How names are checked and ordered.
    #[command(flatten)]
    pub order: OrderArgs,
    /// How long to wait for the CA.
    #[command(flatten)]
    pub wait: WaitArgs,
    /// Commands to run around the install step.
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// `auto`'s options with nothing selected or changed beyond the defaults.
pub(super) fn base(sites: Vec<String>, https_port: Option<u16>, http_port: u16) -> AutoArgs {
    AutoArgs {
        sites,
        domains: Vec::new(),
        https_port,
        one_certificate: false,
        key_type: None,
        skip_dns_check: false,
        dns_server: Vec::new(),
        require_all: false,
        dry_run: false,
        hooks: HookArgs::default(),
        no_wait: false,
        timeout: None,
        poll_interval: None,
        http_port,
        redirect: false,
        hsts: false,
        discard_interrupted_order: false,
        preferred_chain: None,
    }
}

/// `auto`'s options with the order and wait groups filled in.
pub(super) fn with_groups(
    mut args: AutoArgs,
    order: &OrderArgs,
    wait: &WaitArgs,
    hooks: &HookArgs,
) -> AutoArgs {
    args.key_type = order.key_type;
    args.skip_dns_check = order.skip_dns_check;
    args.dns_server = order.dns_server.clone();
    args.require_all = order.require_all;
    args.discard_interrupted_order = order.discard_interrupted_order;
    args.preferred_chain = order.preferred_chain.clone();
    args.no_wait = wait.no_wait;
    args.timeout = wait.timeout;
    args.poll_interval = wait.poll_interval;
    args.hooks = hooks.clone();
    args
}

impl PlanArgs {
    /// The pipeline options of `auto --dry-run` with these choices.
    pub fn to_auto(&self) -> AutoArgs {
        let mut args = base(self.sites.clone(), self.https_port, self.http_port);
        args.domains = self.domains.clone();
        args.one_certificate = self.one_certificate;
        args.redirect = self.redirect;
        args.hsts = self.hsts;
        args.dry_run = true;
        args
    }
}

impl RenewPipeline {
    /// The pipeline options a renewal runs with.
    pub fn to_auto(&self) -> AutoArgs {
        let args = base(self.sites.clone(), self.https_port, self.wait.http_port);
        let mut args = with_groups(args, &self.order, &self.wait, &self.hooks);
        args.dry_run = self.dry_run;
        args
    }
}

impl ReissuePipeline {
    /// The pipeline options a reissue runs with.
    pub fn to_auto(&self) -> AutoArgs {
        let args = base(self.sites.clone(), self.https_port, self.wait.http_port);
        with_groups(args, &self.order, &self.wait, &self.hooks)
    }
}

impl Command {
    /// The command's own `--https-port`, for the commands that take one.
    pub fn https_port(&self) -> Option<u16> {
        match self {
            Command::Auto(a) => a.https_port,
            Command::Plan(a) => a.https_port,
            Command::Renew(a) => a.pipeline.https_port,
            Command::Reissue(a) => a.pipeline.https_port,
            _ => None,
        }
    }
}

impl super::CertonlyArgs {
    /// The pipeline options `certonly` orders and validates with.
    pub fn to_auto(&self) -> AutoArgs {
        let args = base(self.domains.clone(), None, self.wait.http_port);
        let hooks = HookArgs {
            deploy_hook: self.deploy_hook.clone(),
            ..HookArgs::default()
        };
        let order = OrderArgs {
            key_type: self.key_type,
            skip_dns_check: self.skip_dns_check,
            discard_interrupted_order: self.discard_interrupted_order,
            ..OrderArgs::default()
        };
        with_groups(args, &order, &self.wait, &hooks)
    }
}
