//! `enc365-sim`: run the Encryption365 simulator on a loopback port (see the `enc365_sim` library).
//!
//! Prints one JSON line on stdout once listening — `{"base_url", "accounts":[{username,
//! client_id, access_token}], "root_ca"}` — then serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use enc365_sim::{self as sim, Faults, SimOptions, SimProvider};
use serde_json::json;

/// An Encryption365 API simulator with real DCV checks, real X.509 issuance and fault switches.
#[derive(Debug, Parser)]
#[command(name = "enc365-sim", version, about, after_help = EXAMPLES)]
struct Args {
    /// Loopback address to listen on (port 0 picks a free port; the startup line says which).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,
    /// Connect here for DCV fetches (e.g. the test nginx), sending the name as Host.
    #[arg(long, value_name = "ADDR")]
    connect: Option<SocketAddr>,
    /// Validate names by DNS too: ask this authoritative server (ADDR:PORT) for the CNAME of
    /// providers.md §1.6.3 (Encryption365) or §2.4 (HowSSL, names switched to DNS); wildcards
    /// are then validated by DNS only.
    #[arg(long, value_name = "ADDR")]
    dns_server: Option<SocketAddr>,
    /// Keep accounts, orders and the CA key here across restarts.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Validity of issued certificates instead of the product's term, e.g. 90d, 12h, 300s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    validity: Option<Duration>,
    /// Re-check pending orders this often (seconds; 0 = only on /cert/challenge).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    recheck_secs: u64,
    /// Create a TrustOcean account USER:PASSWORD and a device for it (repeatable).
    #[arg(long, value_name = "USER:PASSWORD")]
    account: Vec<String>,
    /// Give every new order this unique_id (e.g. cab202166585, the docs' example).
    #[arg(long, value_name = "ID")]
    unique_id: Option<String>,
    /// Answer the guessed endpoints /cert/revoke and /cert/change_dcv.
    #[arg(long)]
    unconfirmed_endpoints: bool,
    /// Fault: delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    latency_ms: u64,
    /// Fault: answer with this HTTP status (e.g. 503).
    #[arg(long, value_name = "CODE")]
    http_status: Option<u16>,
    /// Fault: answer with an HTML error page.
    #[arg(long)]
    html_error: bool,
    /// Fault: cut JSON answers in half.
    #[arg(long)]
    truncated_json: bool,
    /// Fault: do the work, then drop the connection mid-answer.
    #[arg(long)]
    drop_connection: bool,
    /// Fault: do the work, then hold the answer this many milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    answer_delay_ms: u64,
    /// Fault: use the `status` envelope instead of `result`.
    #[arg(long)]
    status_envelope: bool,
    /// Fault: send every number as a string.
    #[arg(long)]
    string_numbers: bool,
    /// Fault: refuse every call with this message.
    #[arg(long, value_name = "MESSAGE")]
    reject: Option<String>,
    /// Fault: orders end as `rejected` after validation.
    #[arg(long)]
    reject_orders: bool,
    /// Fault: issue this many seconds after validation (slow issuance).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    issuance_delay_secs: u64,
    /// Fault: report this cert_status for every order (expired, revoked, ...).
    #[arg(long, value_name = "STATUS")]
    force_status: Option<String>,
    /// Fault: send cert_code/ca_code with CRLF line endings.
    #[arg(long)]
    crlf_pem: bool,
    /// Fault: answer with a 5 MiB body.
    #[arg(long)]
    oversize_body: bool,
    /// Fault: answer with an endless chunked body.
    #[arg(long)]
    endless_body: bool,
    /// Fault: put this in every DCV file name.
    #[arg(long, value_name = "NAME")]
    dcv_filename: Option<String>,
    /// Fault: drop this field from successful answers.
    #[arg(long, value_name = "FIELD")]
    drop_field: Option<String>,
    /// Fault: add a dcv_info entry for this never-ordered name.
    #[arg(long, value_name = "NAME")]
    foreign_dcv_name: Option<String>,
    /// Fault: issue certificates for another key than the CSR's.
    #[arg(long)]
    foreign_key: bool,
    /// Fault: issue certificates without the last name ordered.
    #[arg(long)]
    drop_issued_name: bool,
    /// Fault: send an unrelated certificate as the chain of issued orders.
    #[arg(long)]
    unrelated_chain: bool,
    /// Apply faults only to this CA path (repeatable), e.g. /cert/create.
    #[arg(long = "fault-path", value_name = "PATH")]
    fault_paths: Vec<String>,
    /// Write the manual page to DIR/man and shell completions to DIR/{bash,zsh,fish}, then exit
    /// (used by the package build).
    /// Which CA API to speak: encryption365 (the default), howssl (HowSSL's `/Home/...`
    /// multipart API; tokens come from --howssl-token) or huawei-scm (AK/SK-signed SCM API; keys
    /// from --scm-key, purchased certificates from --scm-stock).
    #[arg(long, default_value = "encryption365", value_name = "NAME", value_parser = ["encryption365", "howssl", "huawei-scm"])]
    provider: String,
    /// SCM mode: the access key pair requests must be signed with, as AK:SK.
    #[arg(long, value_name = "AK:SK")]
    scm_key: Option<String>,
    /// SCM mode: the project id the v2 paths (revoke) must carry.
    #[arg(long, value_name = "ID", default_value = "sim-project")]
    scm_project_id: String,
    /// SCM mode: a purchased, unused certificate, as TYPE:DOMAIN_TYPE:COUNT:WILDCARDS (e.g.
    /// DV_SSL_CERT:MULTI_DOMAIN:2:1); repeat for several.
    #[arg(long, value_name = "SPEC")]
    scm_stock: Vec<String>,
    /// HowSSL mode: an API token to accept, as TOKEN or TOKEN:AMOUNT (the account balance,
    /// default 1000); repeat for several.
    #[arg(long, value_name = "TOKEN[:AMOUNT]")]
    howssl_token: Vec<String>,
    #[arg(long, hide = true, value_name = "DIR")]
    generate_docs: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  enc365-sim --listen 127.0.0.1:18365 --connect 127.0.0.1:18080 --account dev@example.com:secret
  enc365-sim --state-dir /tmp/sim --validity 1h
  curl -s -X POST http://127.0.0.1:18365/_sim/faults -d '{\"http_status\":503,\"paths\":[\"/cert/details\"]}'

Runtime control (same port): GET/POST /_sim/faults, GET /_sim/requests, GET /_sim/ca.pem,
POST /_sim/accounts {username,password}, POST /_sim/devices {username}, POST /_sim/recheck.
HowSSL mode: enc365-sim --provider howssl --howssl-token dev-token:50 --connect 127.0.0.1:18080;
POST /_sim/howssl/tokens {token,email,amount}, GET/POST /_sim/howssl/faults.
SCM mode: enc365-sim --provider huawei-scm --scm-key AK:SK --scm-stock DV_SSL_CERT:MULTI_DOMAIN:2:0;
GET/POST /_sim/scm/faults, POST /_sim/scm/certificates {cert_type,domain_type,domain_count,...}.";

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .len(),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 90d, 12h, 30m, 300s"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(dir) = &args.generate_docs {
        std::process::exit(generate_docs(dir));
    }
    init_logging();
    if let Err(e) = run(args).await {
        eprintln!("enc365-sim: {e}");
        std::process::exit(2);
    }
}

/// Logs at `info` (or as `ENC365_LOG` says) on stderr, as `enc365-nginx -v` does.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENC365_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Writes the manual page and completions under `dir`; returns the exit code.
fn generate_docs(dir: &std::path::Path) -> i32 {
    use clap::CommandFactory;
    let result = clap_docs::man_pages(Args::command(), &dir.join("man")).and_then(|mut written| {
        written.extend(clap_docs::completions(Args::command(), dir)?);
        Ok(written)
    });
    match result {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            0
        }
        Err(e) => {
            eprintln!("enc365-sim: {e:#}");
            1
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let faults = Faults {
        latency_ms: args.latency_ms,
        http_status: args.http_status,
        html_error: args.html_error,
        truncated_json: args.truncated_json,
        drop_connection: args.drop_connection,
        answer_delay_ms: args.answer_delay_ms,
        status_envelope: args.status_envelope,
        string_numbers: args.string_numbers,
        reject: args.reject,
        reject_orders: args.reject_orders,
        issuance_delay_secs: args.issuance_delay_secs,
        force_status: args.force_status,
        crlf_pem: args.crlf_pem,
        oversize_body: args.oversize_body,
        endless_body: args.endless_body,
        dcv_filename: args.dcv_filename,
        drop_field: args.drop_field,
        foreign_dcv_name: args.foreign_dcv_name,
        foreign_key: args.foreign_key,
        drop_issued_name: args.drop_issued_name,
        unrelated_chain: args.unrelated_chain,
        // --validity sets the start-up validity; POST /_sim/faults can change it at run time.
        validity_secs: None,
        paths: args.fault_paths,
    };
    let provider = match args.provider.as_str() {
        "howssl" => SimProvider::HowSsl,
        "huawei-scm" => SimProvider::HuaweiScm,
        _ => SimProvider::Encryption365,
    };
    let huawei_scm = match &args.scm_key {
        Some(pair) => {
            let (ak, sk) = (pair.split_once(':'))
                .ok_or_else(|| format!("--scm-key {pair:?}: expected AK:SK"))?;
            let inventory = (args.scm_stock.iter())
                .map(|spec| sim::scm_state::Stock::parse(spec))
                .collect::<Result<Vec<_>, _>>()?;
            Some(sim::scm_state::ScmSimOptions {
                ak: ak.into(),
                sk: sk.into(),
                project_id: args.scm_project_id.clone(),
                inventory,
            })
        }
        None => None,
    };
    let options = SimOptions {
        provider,
        listen: args.listen,
        connect: args.connect,
        state_dir: args.state_dir.clone(),
        validity: args.validity,
        recheck_interval: (args.recheck_secs > 0).then(|| Duration::from_secs(args.recheck_secs)),
        unconfirmed_endpoints: args.unconfirmed_endpoints,
        faults,
        fixed_unique_id: args.unique_id,
        dns_server: args.dns_server,
        huawei_scm,
        ..SimOptions::default()
    };
    let handle = sim::start(options).await.map_err(|e| e.to_string())?;
    let mut accounts = Vec::new();
    for spec in &args.account {
        let (user, password) = spec
            .split_once(':')
            .ok_or_else(|| format!("--account {spec:?}: expected USER:PASSWORD"))?;
        handle.add_account(user, password, 1000.0);
        let (client_id, access_token) = handle.add_device(user).map_err(|e| e.to_string())?;
        accounts
            .push(json!({"username": user, "client_id": client_id, "access_token": access_token}));
    }
    for spec in &args.howssl_token {
        let (token, amount) = match spec.split_once(':') {
            Some((token, amount)) => (
                token,
                amount
                    .parse()
                    .map_err(|_| format!("--howssl-token {spec:?}: AMOUNT is not a number"))?,
            ),
            None => (spec.as_str(), 1000.0),
        };
        handle.add_howssl_token(token, "dev@example.com", amount);
    }
    println!(
        "{}",
        json!({"base_url": handle.base_url(), "provider": args.provider, "accounts": accounts,
            "root_ca": handle.root_ca_pem()})
    );
    wait_for_signal().await;
    handle.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
