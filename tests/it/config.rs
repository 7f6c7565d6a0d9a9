//! The config file: written 0600, loaded back, refused when it holds a token others can read
//! (with the chmod that fixes it), environment overrides, and clear errors for bad content.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use enc365_nginx::config::{Config, ConfigError, Contact, Encryption365Settings};
use enc365_nginx::keys::KeyType;
use enc365_nginx::secret::Secret;

fn with_token() -> Config {
    Config {
        encryption365: Encryption365Settings {
            client_id: Some("efcbbdff-e4e0".into()),
            access_token: Some(Secret::new("032b12f8abcba61c02e0572f476b300")),
            pid: 108,
            ..Encryption365Settings::default()
        },
        key_type: KeyType::EcdsaP384,
        contact: Contact {
            email: Some("ops@example.com".into()),
            ..Contact::default()
        },
        ..Config::default()
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn a_saved_config_is_0600_and_loads_back_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("etc/enc365-nginx/config.toml");
    let config = with_token();
    config.save(&path).expect("saved");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(Config::load(&path).expect("loads"), config);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("key_type = \"ecdsa-p384\""), "{text}");
    assert!(text.contains("[contact]"), "{text}");
}

#[test]
fn a_group_readable_config_holding_a_token_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    with_token().save(&path).expect("saved");
    for open in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).expect("chmod");
        let e = Config::load(&path).expect_err("refused");
        assert!(matches!(e, ConfigError::TooOpen { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{e}"
        );
        assert!(!e.to_string().contains("032b12f8"), "token in error: {e}");
    }
}

#[test]
fn a_readable_config_without_credentials_is_fine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "pid = 100\nkey_type = \"rsa3072\"\nhttps_port = 8443\n",
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let config = Config::load(&path).expect("loads");
    assert_eq!(config.key_type, KeyType::Rsa3072);
    assert_eq!(config.https_port, 8443);
    assert_eq!(
        config.encryption365.base_url,
        "https://encryption365.trustocean.com"
    );
    let e = config
        .encryption365
        .credentials(&path)
        .expect_err("no token");
    assert!(e.to_string().contains("enc365-nginx register"), "{e}");
}

#[test]
fn the_environment_overrides_the_base_url() {
    let mut config = with_token();
    config.apply_env(|k| (k == "ENC365_BASE_URL").then(|| "http://127.0.0.1:9".to_string()));
    assert_eq!(config.encryption365.base_url, "http://127.0.0.1:9");
    config.apply_env(|_| None);
    assert_eq!(config.encryption365.base_url, "http://127.0.0.1:9");
}

#[test]
fn bad_config_content_is_an_error_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    for (text, expected) in [
        ("pid = 100\nkey_typo = \"rsa2048\"\n", "key_typo"),
        ("key_type = \"rsa1024\"\n", "rsa1024"),
        ("provider = \"letsencrypt\"\n", "letsencrypt"),
        ("pid = \"x\n", "config"),
    ] {
        std::fs::write(&path, text).expect("write");
        let e = Config::load(&path).expect_err("invalid");
        assert!(matches!(e, ConfigError::Invalid { .. }), "{text}: {e:?}");
        assert!(e.to_string().contains(expected), "{text}: {e}");
    }
    let e = Config::load(&dir.path().join("absent.toml")).expect_err("missing");
    assert!(e.to_string().contains("register"), "{e}");
    assert!(Config::load_or_default(&dir.path().join("absent.toml")).is_ok());
}

fn run_products(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .arg("--config")
        .arg(config)
        .arg("products")
        .env_remove("ENC365_BASE_URL")
        .env_remove("ENC365_CONFIG")
        .output()
        .expect("runs")
}

#[test]
fn commands_refuse_an_open_config_with_exit_2_and_the_chmod_to_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    with_token().save(&path).expect("saved");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run_products(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 600 {}", path.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn commands_refuse_plain_http_to_a_remote_ca_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let mut config = with_token();
    config.encryption365.base_url = "http://encrypt365.trustocean.com".into();
    config.save(&path).expect("saved");
    let out = run_products(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("use https"), "{stderr}");
}

#[test]
fn commands_without_credentials_say_to_register_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    Config::default().save(&path).expect("saved");
    let out = run_products(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enc365-nginx register"));
    let out = run_products(&dir.path().join("absent.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no config file"));
}

#[test]
fn a_provider_not_built_yet_is_a_configuration_error_and_encryption365_is_served() {
    use enc365_nginx::cli::GlobalOpts;
    use enc365_nginx::commands::Context;
    use enc365_nginx::config::Provider;
    use enc365_nginx::exit::ExitStatus;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    let ctx = Context::new(GlobalOpts {
        config: Some(path.clone()),
        state_dir: None,
        nginx_bin: None,
        nginx_conf: None,
        nginx_prefix: None,
        nginx_pid_file: None,
        https_port: None,
        server: None,
        json: false,
        verbose: 0,
    });
    let config = Config {
        provider: Provider::HuaweiScm,
        ..with_token()
    };
    let failure = ctx
        .certificate_authority(&config)
        .err()
        .expect("not built yet");
    assert_eq!(failure.status, ExitStatus::Usage);
    assert!(failure.to_string().contains("huawei-scm"), "{failure}");
    let ca = ctx
        .certificate_authority(&with_token())
        .expect("encryption365");
    assert_eq!(ca.name(), "encryption365");
}
