//! Command-line definitions (clap). Parsing only: each subcommand's work lives in
//! [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// HTTPS for every nginx site: discover sites, order certificates, install, verify, renew.
#[derive(Debug, Parser)]
#[command(name = "enc365-nginx", version, about, long_about = None)]
pub struct Cli {
    /// Options every command understands.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (design §3.1). A flag wins over its environment variable, which
/// wins over the config file.
#[derive(Debug, Clone, Args)]
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
    /// The port `auto` adds as `listen N ssl` (default 443).
    #[arg(long, global = true, value_name = "N")]
    pub https_port: Option<u16>,
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
    Products,
    /// Show the account balance.
    Account,
}

const REGISTER_EXAMPLES: &str = "\
Examples:
  enc365-nginx register --username you@example.com
  printf '%s' \"$PASSWORD\" | enc365-nginx register --username you@example.com --password-stdin
  ENC365_PASSWORD=... enc365-nginx register --username you@example.com --servername web-01

The password is read from a prompt (no echo), from standard input with --password-stdin, or from
ENC365_PASSWORD; it is never a command-line flag, and it is not stored.";

/// Options of `register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Your TrustOcean account e-mail.
    #[arg(long, value_name = "EMAIL")]
    pub username: String,
    /// A label for this server in the TrustOcean console (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
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
