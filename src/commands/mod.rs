//! The subcommands. Each module has one entry function, `run(args, ctx) -> CommandResult`; this is the
//! only layer where the nginx model and the CA clients meet.

pub mod account;
pub mod agent;
pub mod auto;
pub mod cancel;
pub mod certonly;
pub mod cluster_key;
pub mod delete;
pub mod discover;
pub mod generate;
pub mod products;
pub mod register;
pub mod register_acme;
pub mod register_huawei;
pub mod register_token;
pub mod reissue;
pub mod renew;
pub mod revoke;
pub mod rollback;
pub mod status;

use std::path::{Path, PathBuf};

use crate::ca::CertificateAuthority;
use crate::ca::account::AccountApi;
use crate::ca::factory::{self, ProviderError};
use crate::cli::{Cli, Command, GlobalOpts};
use crate::config::{Config, Provider};
use crate::exit::{CommandResult, Failure};
use crate::install::Environment;
use crate::nginx::control::{NginxBinary, NginxPaths, ReloadMethod};

/// What every command is given: the global options, resolved.
#[derive(Debug, Clone)]
pub struct Context {
    /// The global options exactly as parsed (flags and environment).
    pub global: GlobalOpts,
}

impl Context {
    /// Builds the context from parsed global options.
    pub fn new(global: GlobalOpts) -> Context {
        Context { global }
    }

    /// The config file: `--config` / `ENC365_CONFIG`, else /etc/enc365-nginx/config.toml; made
    /// absolute, since `live/` and `nginx/` beside it are written into nginx's configuration,
    /// where a relative path would be read against nginx's prefix.
    pub fn config_path(&self) -> PathBuf {
        absolute(crate::config::config_path(&self.global))
    }

    /// The directory of the config file: `live/` and `nginx/` go under it (design §3.4).
    pub fn config_dir(&self) -> PathBuf {
        self.config_path()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The state directory: orders, backups, validation files, the lock; made absolute (its
    /// paths go into records that a later run, from another directory, reads).
    pub fn state_dir(&self) -> PathBuf {
        absolute(
            self.global
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/lib/enc365-nginx")),
        )
    }

    /// Loads the config file with environment overrides applied; every problem is exit 2.
    pub fn load_config(&self) -> Result<Config, Failure> {
        let mut config = Config::load(&self.config_path()).map_err(Failure::usage)?;
        config.apply_env(|k| std::env::var(k).ok());
        config.apply_server(self.global.server.as_deref());
        Ok(config)
    }

    /// The configured CA behind the provider-neutral trait, built by [`crate::ca::factory`]
    /// (exit 2 for a provider not built yet, missing credentials or a bad base URL).
    pub fn certificate_authority(
        &self,
        config: &Config,
    ) -> Result<Box<dyn CertificateAuthority>, Failure> {
        factory::certificate_authority(&config.provider_settings(), &self.config_path())
            .map_err(|e| self.provider_failure(e, None))
    }

    /// The configured provider's account operations (register, products, account), built by
    /// [`crate::ca::factory`]. `with_credentials` false is for `register`; `provider` overrides
    /// the config's choice (`register --provider`).
    pub fn account_api(
        &self,
        config: &Config,
        provider: Option<Provider>,
        with_credentials: bool,
    ) -> Result<Box<dyn AccountApi>, Failure> {
        let mut chosen = config.clone();
        if let Some(provider) = provider {
            chosen.provider = provider;
        }
        factory::account_api(
            &chosen.provider_settings(),
            &self.config_path(),
            with_credentials,
        )
        .map_err(|e| self.provider_failure(e, provider))
    }

    /// Refuses, before anything else happens, a command that would use a provider this version
    /// cannot talk to: `flag` when given (`register --provider`), else the config file's
    /// `provider`. A config file that cannot be read is left for the command to report.
    pub fn check_provider(&self, flag: Option<Provider>) -> Result<(), Failure> {
        let Some(provider) = flag.or_else(|| crate::config::provider_in(&self.config_path()))
        else {
            return Ok(());
        };
        factory::check_available(provider).map_err(|e| self.provider_failure(e, flag))
    }

    /// A factory error as exit 2, saying where the choice came from and how to change it.
    fn provider_failure(&self, error: ProviderError, flag: Option<Provider>) -> Failure {
        let hint = match (&error, flag) {
            (ProviderError::NotAvailable(p), Some(_)) => {
                format!("; drop `--provider {p}` (or use --provider encryption365)")
            }
            (ProviderError::NotAvailable(_), None) => format!(
                "; set provider = \"encryption365\" in {} (or remove the provider line)",
                self.config_path().display()
            ),
            _ => String::new(),
        };
        Failure::usage(anyhow::anyhow!("{error}{hint}"))
    }

    /// The nginx binary to run: `--nginx-bin`, else `nginx` from PATH, else /usr/sbin/nginx. It
    /// runs nginx (and reload commands) without our secrets in their environment, and stops an
    /// `nginx -t` that runs longer than `ENC365_NGINX_TIMEOUT` seconds (default 120).
    pub fn nginx_binary(&self) -> NginxBinary {
        let timeout = std::env::var("ENC365_NGINX_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(
                crate::nginx::control::NGINX_TIMEOUT,
                std::time::Duration::from_secs_f64,
            );
        NginxBinary::locate(self.global.nginx_bin.clone())
            .without_env(crate::secret::SECRET_ENV_VARS.iter().copied())
            .with_timeout(timeout)
    }

    /// The main config file alone (what `discover` reads): `--nginx-conf` when given — then
    /// without running `nginx -V`, whose prefix discover does not use — else as
    /// [`Context::nginx_paths`] finds it.
    pub fn nginx_conf(&self) -> Result<PathBuf, Failure> {
        match &self.global.nginx_conf {
            Some(conf) => Ok(absolute(conf.clone())),
            None => Ok(self.nginx_paths()?.conf),
        }
    }

    /// The main config file and prefix, resolved as design §3.1 says. Asks `nginx -V` only for what
    /// the options leave open.
    pub fn nginx_paths(&self) -> Result<NginxPaths, Failure> {
        let given_conf = self.global.nginx_conf.clone().map(absolute);
        let given_prefix = self.global.nginx_prefix.clone().map(absolute);
        if let (Some(conf), Some(prefix)) = (&given_conf, &given_prefix) {
            return Ok(NginxPaths {
                conf: conf.clone(),
                prefix: Some(prefix.clone()),
            });
        }
        let compiled = self.nginx_binary().compiled_paths().ok();
        let prefix = given_prefix.or_else(|| compiled.as_ref().and_then(|c| c.prefix.clone()));
        let conf = match given_conf {
            Some(conf) => conf,
            None => match compiled.and_then(|c| c.conf_path) {
                Some(conf) if conf.is_absolute() => conf,
                Some(conf) => prefix.clone().unwrap_or_default().join(conf),
                None => PathBuf::from("/etc/nginx/nginx.conf"),
            },
        };
        Ok(NginxPaths { conf, prefix })
    }
}

impl Context {
    /// Where nginx and our files are and how to reload, from the global options and `config`
    /// (`reload_command`, `https_port`); `redirect` and `hsts` off — a command that offers them
    /// sets them.
    pub fn environment(&self, config: &Config) -> Result<Environment, Failure> {
        let paths = self.nginx_paths()?;
        let reload_argv = crate::nginx::control::parse_reload_command(&config.reload_command)
            .map_err(Failure::usage)?;
        let pid_file = self.pid_file(&paths);
        Ok(Environment {
            nginx: self.nginx_binary(),
            reload: self.reload_method(&reload_argv, &pid_file),
            paths,
            pid_file,
            config_dir: self.config_dir(),
            state_dir: self.state_dir(),
            https_port: self.global.https_port.unwrap_or(config.https_port),
            verify_timeout: std::time::Duration::from_secs(15),
            redirect: false,
            hsts: false,
        })
    }

    /// The running master's pid file: `--nginx-pid-file`, else the configuration's `pid`
    /// directive (relative to the prefix), else nginx's compiled-in `--pid-path`, else
    /// `PREFIX/logs/nginx.pid`.
    pub fn pid_file(&self, paths: &NginxPaths) -> PathBuf {
        if let Some(given) = &self.global.nginx_pid_file {
            return given.clone();
        }
        let prefix = paths.prefix_or_root();
        // `pid` is read from the main file alone: its includes are not needed (a 10,000-site
        // host's would be read twice per run).
        let main = crate::nginx::reader::read_config_file(&paths.conf).ok();
        if let Some(Ok(main)) =
            main.map(|b| crate::nginx::tree::ConfigFile::parse(paths.conf.clone(), b))
            && let Some(d) = main.directives().iter().find(|d| d.is("pid", &main.bytes))
            && let Some(arg) = main.args(d).first()
        {
            return prefix.join(arg.text(&main.bytes));
        }
        self.nginx_binary()
            .compiled_paths()
            .ok()
            .and_then(|c| c.pid_path)
            .map(|p| prefix.join(p))
            .unwrap_or_else(|| prefix.join("logs/nginx.pid"))
    }

    /// How to reload nginx: `reload_command` when set; with `--nginx-pid-file` (which
    /// `nginx -s reload` would not read) SIGHUP to the master it names; else
    /// [`ReloadMethod::detect`].
    pub fn reload_method(&self, reload_argv: &[String], pid_file: &Path) -> ReloadMethod {
        let master = crate::nginx::control::master_pid(pid_file);
        match (&self.global.nginx_pid_file, master) {
            (Some(_), Some(pid)) if reload_argv.is_empty() => {
                ReloadMethod::Command(vec!["kill".into(), "-HUP".into(), pid.to_string()])
            }
            _ => ReloadMethod::detect(Some(reload_argv), pid_file),
        }
    }

    /// The current time in Unix seconds; `ENC365_NOW` overrides it (for tests of expiry).
    pub fn now(&self) -> i64 {
        if let Some(now) = std::env::var("ENC365_NOW")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            return now;
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// Makes a user-given path absolute against the current directory (lexically; symlinks are kept).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> CommandResult {
    let mut global = cli.global;
    // `--https-port` is each ordering command's own option (a global one is still read).
    global.https_port = cli.command.https_port().or(global.https_port);
    let ctx = Context::new(global);
    // Every command that would reach a CA refuses a provider not built yet, the same way.
    let provider_flag = match &cli.command {
        Command::Register(args) => Some(args.provider),
        Command::Products
        | Command::Account
        | Command::Auto(_)
        | Command::Plan(_)
        | Command::Renew(_)
        | Command::Status(_)
        | Command::Reissue(_)
        | Command::Certonly(_)
        | Command::Revoke(_)
        | Command::Cancel(_) => Some(None),
        Command::Discover(_)
        | Command::Generate(_)
        | Command::History
        | Command::Rollback(_)
        | Command::Delete(_)
        | Command::Agent(_)
        | Command::ClusterKey(_) => None,
    };
    if let Some(flag) = provider_flag {
        ctx.check_provider(flag)?;
    }
    match cli.command {
        Command::Discover(args) => discover::run(&args, &ctx),
        Command::Register(args) => register::run(&args, &ctx),
        Command::Products => products::run(&ctx),
        Command::Account => account::run(&ctx),
        Command::Auto(args) => auto::run(&args, &ctx),
        Command::Plan(args) => auto::plan(&args.to_auto(), &ctx),
        Command::Generate(args) => generate::run(&args),
        Command::Renew(args) => renew::run(&args, &ctx),
        Command::Status(args) => status::run(&args, &ctx),
        Command::Delete(args) => delete::run(&args, &ctx),
        Command::Certonly(args) => certonly::run(&args, &ctx),
        Command::History => rollback::history(&ctx),
        Command::Rollback(args) => rollback::run(&args, &ctx),
        Command::Reissue(args) => reissue::run(&args, &ctx),
        Command::Revoke(args) => revoke::run(&args, &ctx),
        Command::Cancel(args) => cancel::run(&args, &ctx),
        Command::Agent(args) => agent::run(&args, &ctx),
        Command::ClusterKey(args) => cluster_key::run(&args, &ctx),
    }
}

/// Runs a future to completion on a fresh single-threaded runtime (commands are synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(anyhow::anyhow!("could not start the async runtime: {e}")))?;
    Ok(runtime.block_on(future))
}

/// Prints one JSON object on stdout (for `--json`).
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Sets up `tracing` output on stderr; `-v` raises the level to info, `-vv` to debug.
pub fn init_logging(verbose: u8) {
    // -v and -vv show our own steps; the libraries (rustls, hyper, …) stay at warnings unless
    // ENC365_LOG or RUST_LOG (a tracing filter such as `debug`) asks for them.
    let level = match verbose {
        0 => "warn",
        1 => "warn,enc365_nginx=info,nginx_conf=info",
        _ => "warn,enc365_nginx=debug,nginx_conf=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENC365_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}
