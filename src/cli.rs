//! Command-line definitions (clap). Parsing only: each subcommand's work lives in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod certbot;
mod pipeline_args;

pub use certbot::{CERTONLY_EXAMPLES, CertonlyArgs, DELETE_EXAMPLES, DeleteArgs, StatusArgs};
pub use pipeline_args::{OrderArgs, PlanArgs, ReissuePipeline, RenewPipeline, WaitArgs};

/// HTTPS for every nginx site: discover sites, order certificates, install, verify, renew.
#[derive(Debug, Parser)]
#[command(name = "enc365-nginx", version, about, long_about = None, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    /// Options every command understands.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const MAIN_EXAMPLES: &str = "\
Examples (a first run, as root):
  enc365-nginx register --username you@example.com   # once: this server's device token
  enc365-nginx products                              # the product to order (config key `pid`)
  enc365-nginx plan                                  # what would change, touching nothing
  enc365-nginx auto                                  # order, validate, install, reload, verify

Settings live in /etc/enc365-nginx/config.toml (--config). Exit codes: 0 done or nothing to do,
1 some site failed, 2 usage or configuration error, 3 another run holds the lock.
Environment: each option's variable (shown with it), ENC365_BASE_URL, ENC365_PASSWORD (register),
ENC365_HOSTS_FILE (names from a hosts file instead of DNS), ENC365_LOG or RUST_LOG (log filter).
`enc365-nginx COMMAND --help` (or `man enc365-nginx-COMMAND`) tells more.";

/// Options shared by every command (design §3.1). A flag wins over its environment variable, which
/// wins over the config file.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Configuration file with credentials and settings.
    #[arg(long, global = true, env = "ENC365_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for orders, backups, DCV files and the lock.
    #[arg(long, global = true, env = "ENC365_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The nginx binary (default: `nginx` from PATH, then /usr/sbin/nginx).
    #[arg(long, global = true, env = "ENC365_NGINX_BIN", value_name = "PATH")]
    pub nginx_bin: Option<PathBuf>,
    /// The main nginx configuration file (default: --conf-path from `nginx -V`, else
    /// /etc/nginx/nginx.conf).
    #[arg(long, global = true, env = "ENC365_NGINX_CONF", value_name = "FILE")]
    pub nginx_conf: Option<PathBuf>,
    /// nginx's prefix directory, passed to nginx as `-p` (default: nginx's compiled-in prefix).
    #[arg(long, global = true, env = "ENC365_NGINX_PREFIX", value_name = "DIR")]
    pub nginx_prefix: Option<PathBuf>,
    /// The pid file of the running nginx master, used to reload it (default: the `pid` directive
    /// of the configuration, else nginx's compiled-in --pid-path).
    #[arg(
        long,
        global = true,
        env = "ENC365_NGINX_PID_FILE",
        value_name = "FILE"
    )]
    pub nginx_pid_file: Option<PathBuf>,
    /// The port `auto` adds as `listen N ssl` (default 443). Hidden here: shown (and taken) by
    /// the commands that use it ([`Command::https_port`]); still accepted anywhere, for scripts.
    #[arg(long, global = true, hide = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub https_port: Option<u16>,
    /// The CA server for this run: the selected provider's base URL, or for ACME its directory
    /// URL or preset (letsencrypt, letsencrypt-staging, zerossl); wins over the config file and
    /// ENC365_BASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Print one JSON object on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every nginx server block, its names and TLS state, and whether it needs a certificate.
    #[command(after_help = DISCOVER_EXAMPLES)]
    Discover(DiscoverArgs),
    /// Register this server as a device of your Encryption365 account and save its token.
    #[command(after_help = REGISTER_EXAMPLES)]
    Register(RegisterArgs),
    /// List the certificate products your account may order.
    #[command(after_help = PRODUCTS_EXAMPLES)]
    Products,
    /// Show the account balance.
    #[command(after_help = ACCOUNT_EXAMPLES)]
    Account,
    /// Give every site that needs it a verified HTTPS certificate: order, validate, install, reload,
    /// prove by handshake; roll back on any failure.
    ///
    /// `nginx -t` passes before anything is ordered: when temporary validation locations are
    /// needed, their own `nginx -t` is that check (if it fails, the original configuration is
    /// tested to tell which is at fault); with nothing to do it is skipped (reading the
    /// configuration already refuses one that does not parse).
    #[command(after_help = AUTO_EXAMPLES)]
    Auto(AutoArgs),
    /// Show what `auto` would do — sites, names kept and left out, the exact config diff — touching
    /// nothing.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Renew every managed certificate that is due (expiring, or the site's names changed), and
    /// put our certificate back into sites whose configuration was regenerated; quiet when
    /// nothing is due.
    ///
    /// When nothing is due, `nginx -t` is not run (reading the configuration already refuses one
    /// that does not parse), so a timer run on thousands of sites takes well under a second.
    #[command(after_help = RENEW_EXAMPLES)]
    Renew(RenewArgs),
    /// Show every managed certificate and pending order (like `certbot certificates`): names,
    /// key type, expiry, files, the sites using it, last result, and sites whose configuration
    /// no longer points at our certificate.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// List the backup transactions (every change we made to files), newest last.
    #[command(after_help = HISTORY_EXAMPLES)]
    History,
    /// Put back the files of the last (or the given) transaction byte for byte, check with
    /// `nginx -t`, reload.
    #[command(after_help = ROLLBACK_EXAMPLES)]
    Rollback(RollbackArgs),
    /// Replace a managed certificate with one for a new key on the same order (the provider's
    /// reissue), validated and installed like a renewal.
    #[command(after_help = REISSUE_EXAMPLES)]
    Reissue(ReissueArgs),
    /// Revoke a managed certificate at the CA, where the provider can (asks first unless --yes).
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke(RevokeArgs),
    /// Cancel a site's pending order at the CA (HowSSL cancelOrder), remove what was published
    /// for it, and mark it cancelled so the next run orders anew.
    #[command(after_help = CANCEL_EXAMPLES)]
    Cancel(CancelArgs),
    /// Take a site's HTTPS lines out of its nginx configuration, byte for byte, reload, and
    /// stop managing it (like `certbot delete`); the change is journaled (`rollback` undoes it).
    #[command(after_help = DELETE_EXAMPLES)]
    Delete(DeleteArgs),
    /// Order a certificate and save cert.pem, chain.pem, fullchain.pem and privkey.pem, validated
    /// through a webroot, without touching the nginx configuration (like `certbot certonly`).
    #[command(after_help = CERTONLY_EXAMPLES)]
    Certonly(CertonlyArgs),
    /// Write manual pages or shell completions (used by the package build).
    #[command(hide = true)]
    Generate(GenerateArgs),
    /// Cluster mode: serve the validation files the ordering node publishes, install the
    /// certificates it shares (same transaction as `auto`), report this node's state to etcd.
    #[command(after_help = AGENT_EXAMPLES)]
    Agent(AgentArgs),
    /// Cluster mode: make the cluster key that seals private keys in etcd.
    #[command(name = "cluster-key", after_help = CLUSTER_KEY_EXAMPLES)]
    ClusterKey(ClusterKeyArgs),
}

const AGENT_EXAMPLES: &str = "\
Examples:
  enc365-nginx agent            # the systemd service: watch etcd, serve, install, report
  enc365-nginx agent --once     # one pass (a node catching up); exit 1 if something failed

Needs [cluster] backend = \"etcd\" in the config file; `status --cluster` shows every node.";

/// Options of `agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Make one pass (validation files, then certificates) and exit.
    #[arg(long)]
    pub once: bool,
    /// The port a temporary validation server listens on for a name no plain-HTTP block answers
    /// (as `auto --http-port`).
    #[arg(long, default_value_t = 80, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
}

const CLUSTER_KEY_EXAMPLES: &str = "\
Examples:
  enc365-nginx cluster-key --generate   # once, on the first node; then copy the file (0600)
                                        # to the same path on every other node

The key file is [cluster] key_file (default: cluster.key beside the config file). The key is
never printed; an existing file is never overwritten.";

/// Options of `cluster-key`.
#[derive(Debug, Clone, Args)]
pub struct ClusterKeyArgs {
    /// Write a new random key to the key file (0600); refuses to overwrite one.
    #[arg(long)]
    pub generate: bool,
}

const CANCEL_EXAMPLES: &str = "\
Examples:
  enc365-nginx cancel --site shop.example.com
  enc365-nginx cancel --order wcvt0va3wq --json
  enc365-nginx cancel --site shop.example.com --forget   # the provider has no cancel call

HowSSL cancels through its API (cancelOrder). Encryption365 and ACME have no cancel call: the
order is left at the CA (cancel it in the provider's console; an ACME order expires by itself),
and --forget drops it here. The validation files and DNS records published for the order are
removed either way, and the next `auto` or `renew` orders anew.";

/// Options of `cancel`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["site", "order"])))]
pub struct CancelArgs {
    /// The site whose pending order to cancel (its name, or any of its names).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// The pending order to cancel, by the CA's order id (or HowSSL check_id).
    #[arg(long, value_name = "ID")]
    pub order: Option<String>,
    /// Drop the order here without asking the CA to cancel it (for a provider that cannot, after
    /// cancelling it in the provider's console).
    #[arg(long)]
    pub forget: bool,
}

const PRODUCTS_EXAMPLES: &str = "\
Examples:
  enc365-nginx products          # the PID marked * is the one `auto` orders
  enc365-nginx products --json

Set the product to order with `pid = N` in the config file.";

const ACCOUNT_EXAMPLES: &str = "\
Examples:
  enc365-nginx account
  enc365-nginx account --json";

/// Options of the hidden `generate` command.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to write.
    #[command(subcommand)]
    pub what: GenerateWhat,
}

/// What `generate` writes.
#[derive(Debug, Clone, Subcommand)]
pub enum GenerateWhat {
    /// Manual pages (section 1), one per command, into DIR.
    Man {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
    /// bash, zsh and fish completions, into DIR/bash, DIR/zsh and DIR/fish.
    Completions {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

const STATUS_EXAMPLES: &str = "\
Examples:
  enc365-nginx status
  enc365-nginx status --json          # for a panel: one object, every certificate and order
  enc365-nginx status --site shop.example.com   # one site's certificate (like certbot certificates)
  enc365-nginx status --name www.shop.example.com

A site whose configuration no longer points at our certificate (a panel regenerated it) shows
as `regenerated`; the next `renew` or `auto` puts the certificate back without a new order.";

const HISTORY_EXAMPLES: &str = "\
Examples:
  enc365-nginx history
  enc365-nginx history --json
  enc365-nginx rollback TXN           # put back the files of one of the listed transactions";

const REISSUE_EXAMPLES: &str = "\
Examples:
  enc365-nginx reissue --site shop.example.com      # e.g. after the private key leaked

The certificate keeps its names and order; the new key never leaves this host. The old
certificate stays installed until the new one is proven served.";

const REVOKE_EXAMPLES: &str = "\
Examples:
  enc365-nginx revoke --site shop.example.com
  enc365-nginx revoke --site shop.example.com --yes && enc365-nginx renew --site shop.example.com

Encryption365 documents no revoke call: the tool tries the guessed /cert/revoke only when the
config sets enable_unconfirmed_endpoints = true, and otherwise says to revoke in the TrustOcean
console. nginx keeps serving a revoked certificate until `renew` replaces it (it is due at once).";

/// Options of `reissue`.
#[derive(Debug, Clone, Args)]
pub struct ReissueArgs {
    /// The order, validation and install options shared with `renew` (`--site NAME` is
    /// required, once).
    #[command(flatten)]
    pub pipeline: ReissuePipeline,
}

/// Options of `revoke`.
#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// The managed site whose certificate to revoke (its name, or any of its names).
    #[arg(long, value_name = "NAME")]
    pub site: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// The revocation reason (RFC 5280), for CAs that take one (ACME): unspecified,
    /// key-compromise, affiliation-changed, superseded, cessation-of-operation.
    #[arg(long, value_name = "REASON", default_value = "unspecified")]
    pub reason: RevokeReason,
}

/// Why a certificate is revoked (RFC 5280 reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RevokeReason {
    /// 0: no reason given.
    Unspecified,
    /// 1: the private key was exposed.
    KeyCompromise,
    /// 3: the names no longer belong to you.
    AffiliationChanged,
    /// 4: replaced by another certificate.
    Superseded,
    /// 5: the site is gone.
    CessationOfOperation,
}

impl RevokeReason {
    /// The RFC 5280 reason code.
    pub fn code(self) -> u8 {
        match self {
            RevokeReason::Unspecified => 0,
            RevokeReason::KeyCompromise => 1,
            RevokeReason::AffiliationChanged => 3,
            RevokeReason::Superseded => 4,
            RevokeReason::CessationOfOperation => 5,
        }
    }
}

const RENEW_EXAMPLES: &str = "\
Examples:
  enc365-nginx renew                       # what the systemd timer runs, twice a day
  enc365-nginx renew --days 20 --json
  enc365-nginx renew --force --site shop.example.com
  enc365-nginx renew --deploy-hook 'systemctl reload postfix'

Orders an earlier run left pending are resumed first. A renewal replaces the files under
live/<site>/ that nginx already points at, so the nginx configuration does not change: one
reload, then a handshake proves the new certificate is served. When a renewal fails, the old
certificate stays in place and nginx keeps serving it.";

const ROLLBACK_EXAMPLES: &str = "\
Examples:
  enc365-nginx history
  enc365-nginx rollback                    # the last install or renewal
  enc365-nginx rollback 20261201T101500.482913004Z-4242";

/// Options of `renew`: which certificates are due, and the options of the `auto` pipeline they
/// go through.
#[derive(Debug, Clone, Args)]
pub struct RenewArgs {
    /// Renew certificates that expire within this many days.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub days: u32,
    /// Renew every selected managed certificate now, due or not.
    #[arg(long)]
    pub force: bool,
    /// Print nothing when nothing is due (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// The order, validation and install options of a renewal.
    #[command(flatten)]
    pub pipeline: RenewPipeline,
}

/// Options of `rollback`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The transaction to undo (an id from `enc365-nginx history`); default: the newest
    /// committed install or renewal.
    #[arg(value_name = "TXN")]
    pub txn: Option<String>,
}

/// Commands run around the install step (like certbot's hooks). Each may also be set in the
/// config file (`pre_hook`, `post_hook`, `deploy_hook`); a flag wins.
#[derive(Debug, Clone, Default, Args)]
pub struct HookArgs {
    /// Run this once before a run installs anything (only in runs that install something).
    #[arg(long, value_name = "COMMAND")]
    pub pre_hook: Option<String>,
    /// Run this once after the install step of a run in which the pre-hook ran.
    #[arg(long, value_name = "COMMAND")]
    pub post_hook: Option<String>,
    /// Run this once per certificate installed, with ENC365_LINEAGE, ENC365_DOMAINS,
    /// ENC365_CERT and ENC365_KEY in its environment.
    #[arg(long, value_name = "COMMAND")]
    pub deploy_hook: Option<String>,
}

const AUTO_EXAMPLES: &str = "\
Examples:
  enc365-nginx auto
  enc365-nginx auto --site shop.example.com --json      # from a panel's post-deploy hook
  enc365-nginx auto --dry-run                           # test the run; no live file changes

A rerun resumes any order an earlier run left pending (after a crash, Ctrl-C or --timeout); it
never orders the same certificate twice.

--dry-run tests the run as certbot's does: against a test endpoint (enc365-sim via --server or
ENC365_BASE_URL, an ACME staging directory) the full order, validation and issuance, then
`nginx -t` on a staged copy of the edited configuration; against a commercial CA with no test
endpoint (Encryption365) everything up to the order, saying which steps were not exercised.
No live file changes, nginx is not reloaded. `plan` only shows what would change.";

const PLAN_EXAMPLES: &str = "\
Examples:
  enc365-nginx plan
  enc365-nginx plan --site shop.example.com --json";

/// Options of `auto`, and the options every ordering command's pipeline runs with (the others'
/// options are turned into these: [`PlanArgs::to_auto`], [`RenewPipeline::to_auto`]).
#[derive(Debug, Clone, Args)]
pub struct AutoArgs {
    /// Only this site: one of its names, or the file holding its server block (repeatable).
    #[arg(long = "site", value_name = "NAME")]
    pub sites: Vec<String>,
    /// Order for just this name of the selected site (repeatable); the site's other names are
    /// left out.
    #[arg(short = 'd', long = "domain", value_name = "NAME")]
    pub domains: Vec<String>,
    /// The port `listen N ssl` is added for (default: the config's `https_port`, else 443).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub https_port: Option<u16>,
    /// Cover all selected sites with one certificate instead of one per site.
    #[arg(long)]
    pub one_certificate: bool,
    /// The key type for new certificates, instead of the config's `key_type` (rsa2048, rsa3072,
    /// rsa4096, ecdsa-p256, ecdsa-p384).
    #[arg(long, value_name = "TYPE", value_parser = |s: &str| s.parse::<crate::keys::KeyType>())]
    pub key_type: Option<crate::keys::KeyType>,
    /// ACME: install the alternate chain whose topmost certificate was issued by this common
    /// name (as `[acme] preferred_chain`); the CA's default chain when none matches.
    #[arg(long, value_name = "ISSUER_CN")]
    pub preferred_chain: Option<String>,
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
    /// Test the run without changing a live file or reloading nginx: against a test endpoint
    /// (enc365-sim, ACME staging) the full order/validation/issue cycle, else everything up to
    /// the order (`plan` only shows what would change).
    #[arg(long)]
    pub dry_run: bool,
    /// Commands to run around the install step.
    #[command(flatten)]
    pub hooks: HookArgs,
    /// Order and publish validation, then return without waiting for issuance.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for issuance, in seconds (at most 31 days); the order is kept when this
    /// runs out. Default: the provider's (Encryption365: 1800).
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub timeout: Option<u64>,
    /// Seconds between the first status polls of the CA (more than 0, at most 3600), backing off
    /// as the provider says. Default: the provider's (Encryption365: 30, backing off to 120, as
    /// it asks for no more than one poll per 30 s).
    #[arg(long, value_name = "SECS", value_parser = parse_poll_interval)]
    pub poll_interval: Option<f64>,
    /// The port a temporary validation server listens on, for names no plain-HTTP block answers.
    #[arg(long, default_value_t = 80, value_name = "PORT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
    /// Redirect plain-HTTP requests to HTTPS (301) in the sites given certificates; the
    /// validation path /.well-known/pki-validation/ stays on plain HTTP for renewals.
    #[arg(long)]
    pub redirect: bool,
    /// Send Strict-Transport-Security (max-age one year) from the HTTPS side of those sites. Like
    /// every server-level add_header, it is not sent from a location with add_header of its own.
    #[arg(long)]
    pub hsts: bool,
    /// Order anew for a site whose earlier ordering was interrupted before the CA's answer was
    /// saved (check the CA console first: the CA may hold that order).
    #[arg(long)]
    pub discard_interrupted_order: bool,
}

/// The longest `--timeout`: 31 days, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 31 * 24 * 3600;

/// Parses `--poll-interval`: a number of seconds, more than 0 and at most one hour.
pub(crate) fn parse_poll_interval(value: &str) -> Result<f64, String> {
    let secs: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds (e.g. 30 or 0.5)"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
        Ok(secs)
    } else {
        Err(format!(
            "{value} is not more than 0 and at most 3600 seconds"
        ))
    }
}

const REGISTER_EXAMPLES: &str = "\
Examples:
  enc365-nginx register --username you@example.com
  printf '%s' \"$PASSWORD\" | enc365-nginx register --username you@example.com --password-stdin
  ENC365_PASSWORD=... enc365-nginx register --username you@example.com --servername web-01
  printf '%s' \"$TOKEN\" | enc365-nginx register --provider howssl --token-stdin

The password is read from a prompt (no echo), from standard input with --password-stdin, or from
ENC365_PASSWORD; it is never a command-line flag, and it is not stored. HowSSL has no registration
call: its API token (from the HowSSL site) is read from standard input with --token-stdin or from a
prompt, checked with the account call, and saved in [howssl] (mode 0600).

Huawei Cloud SCM (access keys come from the console; the secret key never goes in argv):
  printf '%s' \"$SK\" | enc365-nginx register --provider huawei-scm --access-key AK \\
      --secret-key-stdin --region cn-north-4 --project-id PROJECT_ID

ACME (Let's Encrypt, ZeroSSL, any RFC 8555 CA):
  enc365-nginx register --provider acme --email you@example.com --agree-tos
  printf '%s' \"$HMAC\" | enc365-nginx register --provider acme --server zerossl \\
      --email you@example.com --agree-tos --eab-kid KID     # EAB: HMAC key on stdin";

/// Options of `register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Your TrustOcean account e-mail (Encryption365; not used by HowSSL or ACME).
    #[arg(
        long,
        value_name = "EMAIL",
        default_value = "",
        hide_default_value = true
    )]
    pub username: String,
    /// ACME: the account's contact e-mail.
    #[arg(long, value_name = "ADDR")]
    pub email: Option<String>,
    /// ACME: you agree to the CA's terms of service (registering refuses without it and shows
    /// where they are).
    #[arg(long)]
    pub agree_tos: bool,
    /// ACME: the external account binding key id (ZeroSSL and others); the HMAC key is read from
    /// standard input (first line).
    #[arg(long, value_name = "KID")]
    pub eab_kid: Option<String>,
    /// A label for this server in the TrustOcean console (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// HowSSL: read the API token from standard input (first line) instead of a prompt.
    #[arg(long)]
    pub token_stdin: bool,
    /// Huawei Cloud SCM: the access key (AK); the secret key is read from standard input with
    /// --secret-key-stdin, else from a prompt (never from a flag).
    #[arg(long, value_name = "AK")]
    pub access_key: Option<String>,
    /// Huawei Cloud SCM: read the secret key (SK) from standard input (first line).
    #[arg(long)]
    pub secret_key_stdin: bool,
    /// Huawei Cloud SCM: the region (cn-north-4, the default; ap-southeast-1 for the
    /// international site).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Huawei Cloud SCM: the project id of the region, which revoking (a v2 call) needs.
    #[arg(long, value_name = "ID")]
    pub project_id: Option<String>,
    /// Which provider's table to write (default: the config's `provider`): encryption365,
    /// howssl, huawei-scm or acme.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<crate::config::Provider>,
}

const DISCOVER_EXAMPLES: &str = "\
Examples:
  enc365-nginx discover
  enc365-nginx discover --json
  enc365-nginx discover --nginx-conf /etc/nginx/nginx.conf --nginx-prefix /usr/share/nginx";

/// Options of `discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Certificates expiring within this many days are reported as needing renewal.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub days: u32,
}
