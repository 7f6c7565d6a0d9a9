//! The config template the package ships as /etc/enc365-nginx/config.toml
//! (`packaging/config.toml`): it parses as shipped (every key commented out), and with every key
//! uncommented it still parses and names every key `Config` has — so a new key cannot be left out.

use enc365_nginx::config::{
    AcmeEab, AcmeSettings, Config, Contact, Encryption365Settings, HowSslSettings, HuaweiBuy,
    HuaweiScmSettings,
};
use enc365_nginx::secret::Secret;

const TEMPLATE: &str = include_str!("../../packaging/config.toml");

/// The template with `#key = value` and `#[table]` lines uncommented.
fn uncommented() -> String {
    TEMPLATE
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_shipped_template_parses_to_the_defaults() {
    let config: Config = toml::from_str(TEMPLATE).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn the_template_lists_every_config_key_with_its_default() {
    let text = uncommented();
    let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let defaults = Config::default();
    assert_eq!(config.provider, defaults.provider);
    assert_eq!(
        config.encryption365.base_url,
        defaults.encryption365.base_url
    );
    assert_eq!(config.encryption365.pid, defaults.encryption365.pid);
    assert_eq!(config.key_type, defaults.key_type);
    assert_eq!(config.https_port, defaults.https_port);
    assert_eq!(config.reload_command, defaults.reload_command);
    assert_eq!(
        config.encryption365.enable_unconfirmed_endpoints,
        defaults.encryption365.enable_unconfirmed_endpoints
    );

    // Every key a fully set Config serializes appears uncommented in the template.
    let some = |s: &str| Some(s.to_string());
    let full = Config {
        encryption365: Encryption365Settings {
            client_id: some("id"),
            access_token: Some(Secret::new("token")),
            ..Encryption365Settings::default()
        },
        howssl: Some(HowSslSettings {
            base_url: some("u"),
            token: Some(Secret::new("t")),
            product_code: some("p"),
            validity_period: Some(12),
        }),
        huawei_scm: Some(HuaweiScmSettings {
            base_url: some("u"),
            access_key: some("ak"),
            secret_key: Some(Secret::new("sk")),
            region: some("r"),
            project_id: some("p"),
            certificate_id: some("c"),
            buy: Some(HuaweiBuy {
                cert_brand: some("b"),
                cert_type: some("t"),
                domain_type: some("d"),
                effective_time: Some(1),
                domain_numbers: Some(1),
            }),
            applicant_name: some("n"),
            applicant_phone: some("p"),
            applicant_email: some("e"),
            company_name: some("c"),
            company_unit: some("u"),
            company_province: some("p"),
            company_city: some("c"),
            country: some("CN"),
            auto_dns_auth: Some(true),
            dns: None,
        }),
        acme: Some(AcmeSettings {
            directory: some("d"),
            account_key: Some("k".into()),
            contact: Some(vec!["mailto:a@example.com".into()]),
            ca_bundle: Some("b".into()),
            preferred_chain: some("p"),
            eab: Some(AcmeEab {
                kid: "k".into(),
                hmac_key: Secret::new("h"),
            }),
        }),
        contact: Contact {
            email: Some("e".into()),
            name: Some("n".into()),
            phone: Some("p".into()),
            title: Some("t".into()),
            organization: Some("o".into()),
            country: Some("c".into()),
        },
        ..Config::default()
    };
    let serialized: toml::Table = toml::from_str(&toml::to_string(&full).unwrap()).unwrap();
    let listed: toml::Table = toml::from_str(&text).unwrap();
    for (key, value) in &serialized {
        assert!(listed.contains_key(key), "template lacks {key}");
        if let (Some(inner), Some(listed_inner)) = (value.as_table(), listed[key].as_table()) {
            for sub in inner.keys() {
                assert!(listed_inner.contains_key(sub), "template lacks {key}.{sub}");
            }
        }
    }
}
