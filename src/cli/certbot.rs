//! The options of the commands certbot users reach for: `delete`, `certonly`, and `status`'s
//! filters (`certbot certificates`).
//!
//! Not here: what they do ([`crate::commands::delete`], [`crate::commands::certonly`],
//! [`crate::commands::status`]).

use std::path::PathBuf;

use clap::Args;

use super::WaitArgs;

/// Examples of `delete`.
pub const DELETE_EXAMPLES: &str = "\
Examples:
  enc365-nginx delete --site shop.example.com                  # keeps live/shop.example.com/
  enc365-nginx delete --site shop.example.com --remove-files --json
  enc365-nginx rollback                                        # undoes the delete

Only the lines marked `# managed by enc365-nginx` in the site's server blocks go; certificate
lines our first install replaced come back from its backup, so the file is byte for byte what
it was before, where nothing else changed. `nginx -t` checks the result before the reload.";

/// Examples of `certonly`.
pub const CERTONLY_EXAMPLES: &str = "\
Examples:
  enc365-nginx certonly --webroot /var/www/mail -d mail.example.com
  enc365-nginx certonly --webroot /srv/www -d example.com -d www.example.com \\
      --deploy-hook 'systemctl reload postfix'

The CA fetches http://NAME/.well-known/pki-validation/… from the server that serves DIR for
each name. The files go to live/<first name>/ (cert.pem, chain.pem, fullchain.pem, privkey.pem
0600) beside the config file; nginx's configuration is not read for edits, tested or reloaded.
A rerun orders again only when the certificate is due (30 days) or the names changed.";

/// Options of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only the certificate of this site (its name, or a site whose configuration uses it).
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// Only certificates covering this name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Cluster mode: every certificate on every node (installed, verifying, failed, unreachable),
    /// read from etcd.
    #[arg(long, conflicts_with_all = ["site", "name"])]
    pub cluster: bool,
}

/// Options of `delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// The managed site whose HTTPS lines to take out (its name, or any of its names).
    #[arg(long, value_name = "NAME")]
    pub site: String,
    /// Keep the certificate files under live/<site>/ (the default).
    #[arg(long, conflicts_with = "remove_files")]
    pub keep_files: bool,
    /// Remove the certificate files under live/<site>/ too (journaled: `rollback` puts them
    /// back).
    #[arg(long)]
    pub remove_files: bool,
}

/// Options of `certonly`.
#[derive(Debug, Clone, Args)]
pub struct CertonlyArgs {
    /// The directory served as the web root of every name: validation files are written under
    /// DIR/.well-known/pki-validation/.
    #[arg(long, value_name = "DIR")]
    pub webroot: PathBuf,
    /// A name to order for (repeatable); the first names the lineage, live/<first name>/.
    #[arg(short = 'd', long = "domain", value_name = "NAME", required = true)]
    pub domains: Vec<String>,
    /// Order even when the certificate on hand is not due.
    #[arg(long)]
    pub force: bool,
    /// Run this once after the certificate files were saved, with ENC365_LINEAGE,
    /// ENC365_DOMAINS, ENC365_CERT and ENC365_KEY in its environment.
    #[arg(long, value_name = "COMMAND")]
    pub deploy_hook: Option<String>,
    /// The key type, instead of the config's `key_type` (rsa2048, rsa3072, rsa4096,
    /// ecdsa-p256, ecdsa-p384).
    #[arg(long, value_name = "TYPE", value_parser = |s: &str| s.parse::<crate::keys::KeyType>())]
    pub key_type: Option<crate::keys::KeyType>,
    /// Fetch the validation files back from this host (loopback) instead of the address each
    /// name resolves to.
    #[arg(long)]
    pub skip_dns_check: bool,
    /// Order anew when an earlier ordering was interrupted before the CA's answer was saved
    /// (check the CA console first: the CA may hold that order).
    #[arg(long)]
    pub discard_interrupted_order: bool,
    /// How long to wait for the CA.
    #[command(flatten)]
    pub wait: WaitArgs,
}
