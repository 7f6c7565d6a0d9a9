//! Issue 15, a newcomer's first hour: what a new user runs into with the README open, each
//! through the real binary (and a real nginx where it touches nginx).

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::host::{Host, expect_exit};
use enc365_sim::Faults;

/// A webroot nginx's workers (`nobody` under a root master) cannot enter: the site fails (exit
/// 1, the reason in `--json`) with the permission and the fix named, not a guess at a CDN.
#[test]
fn a_webroot_the_workers_cannot_read_fails_the_site_with_the_permission_and_the_fix() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: only a root master switches its workers to another user"
    );
    let host = Host::new(Faults::default());
    let php = host.sb.path("www/php");
    std::fs::set_permissions(&php, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = host.auto(&["--json"]);
    let doc = expect_exit(&out, 1);
    let sites = doc["sites"].as_array().unwrap();
    let site = |name: &str| sites.iter().find(|s| s["site"] == name).unwrap().clone();
    let error = site("php.test")["error"].as_str().unwrap().to_string();
    assert!(error.contains("cannot enter"), "{error}");
    assert!(
        error.contains(&format!("chmod o+x {}", php.display())),
        "{error}"
    );
    assert!(!error.contains("CDN"), "{error}");
    assert!(site("shop.test")["error"].is_null(), "{doc:#}");
    assert!(
        !site("shop.test")["names_issued"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// `discover` refuses a directive that lost its `;` before a block, as `nginx -t` and `plan` do,
/// with nginx's words and the line.
#[test]
fn discover_refuses_a_missing_semicolon_that_nginx_t_refuses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad-semicolon-before-block");
    let conf = dir.join("nginx.conf");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["discover", "--nginx-conf"])
        .arg(&conf)
        .arg("--nginx-prefix")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:7:9: directive \"index\" is not terminated by \";\"",
            conf.display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no table for a broken configuration");
}

/// `auto --site` for a site none of whose names can be validated over HTTP: one verdict (FAILED
/// and exit 1), not also "Nothing to do".
#[test]
fn auto_for_a_site_it_cannot_certify_gives_one_verdict() {
    let sites = format!(
        "{}\n    server {{\n        listen 127.0.0.1:{{port.0}};\n        server_name ~^(?<u>.+)\\.only\\.test$ *.only.test;\n        root {{prefix}}/www/shop;\n    }}\n",
        common::host::SITES
    );
    let host = Host::with(Faults::default(), &sites, "");
    let out = host.auto(&["--site", "*.only.test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(!stderr.contains("Nothing to do"), "{stderr}");
}

/// The advice for an nginx we cannot find names an option that exists: `--nginx-pid-file`
/// reaches an nginx whose pid file is not where its configuration says.
#[test]
fn nginx_pid_file_reaches_an_nginx_whose_pid_file_moved() {
    let host = Host::new(Faults::default());
    let moved = host.dir.path().join("elsewhere.pid");
    std::fs::rename(host.sb.path("run/nginx.pid"), &moved).unwrap();
    let out = host.auto(&["--json", "--site", "shop.test"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("--nginx-pid-file"), "{said}");

    let pid_file = moved.display().to_string();
    let out = host.auto(&[
        "--json",
        "--site",
        "shop.test",
        "--nginx-pid-file",
        &pid_file,
    ]);
    let doc = expect_exit(&out, 0);
    assert!(doc["reloads"].as_u64().unwrap() >= 1, "{doc:#}");
    std::fs::rename(&moved, host.sb.path("run/nginx.pid")).unwrap();
}

/// A wrong password: the message says the CA refused the account's login, names the account (not
/// the machine's device label as if it were the user) and the exit status is the documented 1.
#[test]
fn a_wrong_password_names_the_account_and_what_was_refused() {
    use std::io::Write;
    let host = Host::new(Faults::default());
    let config = host.dir.path().join("fresh.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args([
            "register",
            "--username",
            "admin@example.com",
            "--servername",
            "vm",
        ])
        .arg("--password-stdin")
        .env("ENC365_CONFIG", &config)
        .env("ENC365_BASE_URL", host.sim.base_url())
        .env_remove("ENC365_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"not-the-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused to register this server"),
        "{stderr}"
    );
    assert!(stderr.contains("\"admin@example.com\""), "{stderr}");
    assert!(!stderr.contains("could not register \"vm\""), "{stderr}");
    assert!(!config.exists());
}

/// The owner's licence decision is written down everywhere it belongs: both licence files, every
/// crate's Cargo.toml, the Debian copyright; the Maintainer comes from DEBFULLNAME/DEBEMAIL.
#[test]
fn the_licence_is_mit_or_apache_2_in_every_place_it_is_declared() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    assert!(read("LICENSE-MIT").starts_with("MIT License"));
    assert!(read("LICENSE-APACHE").contains("Apache License"));
    assert!(read("LICENSE-APACHE").contains("Version 2.0, January 2004"));
    assert!(read("Cargo.toml").contains("\nlicense = \"MIT OR Apache-2.0\"\n"));
    for krate in [
        ".",
        "crates/nginx-conf",
        "crates/enc365-sim",
        "crates/clap-docs",
    ] {
        let manifest = read(&format!("{krate}/Cargo.toml"));
        let package = &manifest[manifest.find("[package]").unwrap()..];
        assert!(package.contains("\nlicense.workspace = true\n"), "{krate}");
    }
    assert!(read("fuzz/Cargo.toml").contains("\nlicense = \"MIT OR Apache-2.0\"\n"));
    let copyright = read("packaging/debian/copyright");
    assert!(copyright.contains("\nLicense: MIT or Apache-2.0\n"));
    assert!(
        copyright.contains("\nLicense: MIT\n") && copyright.contains("\nLicense: Apache-2.0\n")
    );
    assert!(!copyright.contains("UNDECLARED"));
    assert!(read("packaging/debian/control").contains("Maintainer: @MAINTAINER@\n"));
    let build = read("packaging/build-deb.sh");
    assert!(build.contains("maintainer=\"$DEBFULLNAME <$DEBEMAIL>\""));
    assert!(build.contains("<maintainers@enc365-nginx.invalid>"));
}

/// Help that fits: a mistyped command is never offered the hidden `generate` (while a real
/// suggestion still comes), and every command's help groups the global options apart from its
/// own.
#[test]
fn help_never_offers_the_hidden_generate_and_groups_the_global_options() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
            .args(args)
            .output()
            .unwrap()
    };
    for typo in ["generat", "genrate"] {
        let out = run(&[typo]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
        assert!(!stderr.contains("generate"), "{stderr}");
        assert!(!stderr.contains("\n\n\n"), "{stderr}");
    }
    let out = run(&["dicover"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'discover'"));
    for command in ["status", "plan", "register", "rollback"] {
        let out = run(&[command, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        let global = help.find("\nGlobal options:\n").expect(&help);
        assert!(help[global..].contains("--state-dir <DIR>"), "{help}");
        assert!(!help[..global].contains("--state-dir"), "{help}");
    }
}

/// `-v`/`-vv` show our own steps (CA calls, probes, nginx -t, reloads, handshakes), not the
/// libraries' debug lines, and no colour codes when stderr is not a terminal.
#[test]
fn verbose_shows_our_steps_without_library_debug_or_colour() {
    let host = Host::new(Faults::default());
    let out = host.auto(&["-vv", "--site", "shop.test"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for step in [
        "calling the CA",
        "preflight: probing the validation path",
        "published the validation file",
        "nginx -t on the installed configuration",
        "reloading nginx",
        "TLS handshake",
    ] {
        assert!(stderr.contains(step), "{step}: {stderr}");
    }
    assert!(!stderr.contains('\x1b'), "{stderr}");
    for library in ["rustls", "hyper", "reqwest"] {
        assert!(!stderr.contains(library), "{library}: {stderr}");
    }
}

/// The manual pages: SYNOPSIS with value names, ENVIRONMENT (the options' variables and the
/// others), FILES, EXIT STATUS; the main `--help` names the same variables.
#[test]
fn man_pages_have_value_names_environment_files_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["generate", "man"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "enc365-nginx.1",
        "enc365-nginx-renew.1",
        "enc365-nginx-status.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        let synopsis = &text[text.find(".SH SYNOPSIS").expect(page)..];
        let synopsis = &synopsis[..synopsis.find(".SH DESCRIPTION").expect(page)];
        assert!(
            synopsis.contains("[\\-\\-config FILE]"),
            "{page}: {synopsis}"
        );
        for section in [".SH ENVIRONMENT", ".SH FILES", ".SH \"EXIT STATUS\""] {
            assert!(text.contains(section), "{page} lacks {section}");
        }
        for var in [
            "ENC365_CONFIG",
            "ENC365_STATE_DIR",
            "ENC365_BASE_URL",
            "ENC365_HOSTS_FILE",
        ] {
            assert!(text.contains(var), "{page} lacks {var}");
        }
        for var in ["ENC365_LOG", "ENC365_PASSWORD", "ENC365_NGINX_CONF"] {
            assert!(text.contains(var), "{page} lacks {var}");
        }
    }
    let renew = std::fs::read_to_string(dir.path().join("enc365-nginx-renew.1")).unwrap();
    assert!(renew.contains("[\\-\\-site NAME]..."), "{renew}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in [
        "ENC365_BASE_URL",
        "ENC365_PASSWORD",
        "ENC365_HOSTS_FILE",
        "ENC365_LOG",
    ] {
        assert!(help.contains(var), "--help lacks {var}: {help}");
    }
}

/// The discover table keeps its columns aligned when a site has a long list of names (they go on
/// continuation lines), and the summary counts in the singular when there is one.
#[test]
fn discover_table_stays_aligned_and_counts_one_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let long: Vec<String> = (0..8)
        .map(|i| format!("name-{i}.long-domain.example.com"))
        .collect();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "events {{}}\nhttp {{\n    server {{\n        listen 127.0.0.1:18099;\n        server_name {};\n    }}\n}}\n",
            long.join(" ")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["discover", "--nginx-conf"])
        .arg(dir.path().join("nginx.conf"))
        .arg("--nginx-prefix")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    let column = lines[0].find("CERTIFICATE").unwrap();
    assert_eq!(lines[1].find("NEEDS CERT").unwrap(), column, "{text}");
    let names_at = lines[0].find("NAMES").unwrap();
    for line in &lines[2..] {
        assert!(line[..names_at].trim().is_empty(), "continuation: {text}");
        assert!(line.len() <= column, "names stay in their column: {text}");
    }
    let shown: Vec<&str> = lines[1..]
        .iter()
        .flat_map(|l| l[names_at..column.min(l.len())].split_whitespace())
        .collect();
    assert_eq!(shown, long, "{text}");
    assert!(lines.len() > 2, "the long list wraps: {text}");
    assert!(
        text.contains("1 file read from")
            && text.contains("; 1 server block, 1 needs a certificate."),
        "{text}"
    );
}

/// README truth: the first paragraph's list of working CAs is exactly the providers this build
/// accepts (the coordinator extends it as providers land), in both languages; the .deb build's
/// tools, `account`, `--servername` and `revoke --yes` are documented.
#[test]
fn the_readme_names_exactly_the_cas_that_work_and_documents_what_newcomers_reach_for() {
    use enc365_nginx::ca::factory::check_available;
    use enc365_nginx::config::Provider;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (readme, marker) in [
        ("README.md", "CAs that work today:"),
        ("README.zh-CN.md", "目前可用的 CA："),
    ] {
        let text = std::fs::read_to_string(root.join(readme)).unwrap();
        let intro = &text[..text.find("\n## ").unwrap()];
        let line = intro
            .lines()
            .find(|l| l.starts_with(marker))
            .unwrap_or_else(|| panic!("{readme}: no `{marker}` line in the introduction"));
        let line = &line[..line
            .find('.')
            .or_else(|| line.find('。'))
            .unwrap_or(line.len())];
        for (provider, shown) in [
            (Provider::Encryption365, "Encryption365"),
            (Provider::HowSsl, "HowSSL"),
            (Provider::HuaweiScm, "Huawei"),
            (Provider::Acme, "ACME"),
        ] {
            assert_eq!(
                line.contains(shown),
                check_available(provider).is_ok(),
                "{readme}: {shown} in `{line}`"
            );
            if check_available(provider).is_err() {
                assert!(
                    !intro.contains(shown),
                    "{readme}: the introduction names {shown}"
                );
            }
        }
        assert!(
            text.contains("`python3`"),
            "{readme}: build-deb.sh needs python3"
        );
        assert!(text.contains("--servername"), "{readme}");
        assert!(text.contains("enc365-nginx account"), "{readme}");
        assert!(text.contains("--yes"), "{readme}");
    }
}

/// The demo shows cargo's progress (no `--quiet` build), and its final diff, run as the script
/// runs it, shows a changed site once (not again through its sites-enabled symlink) under a
/// heading that does not claim lines were only added.
#[test]
fn the_demo_build_is_not_silent_and_its_diff_shows_each_real_file_once() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    let build = demo.lines().find(|l| l.starts_with("cargo build")).unwrap();
    assert!(!build.contains("--quiet"), "{build}");
    assert!(
        !demo.contains("only lines marked"),
        "the heading must not claim only additions"
    );
    let diff_line = demo.lines().find(|l| l.starts_with("diff ")).unwrap();

    let work = tempfile::tempdir().unwrap();
    let copy = |to: &str| {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(root.join("examples/sandbox"))
            .arg(work.path().join(to))
            .status()
            .unwrap();
        assert!(status.success());
    };
    std::fs::create_dir_all(work.path().join("examples")).unwrap();
    copy("examples/sandbox");
    std::fs::create_dir_all(work.path().join("demo")).unwrap();
    copy("demo/nginx");
    let site = work
        .path()
        .join("demo/nginx/sites-available/blog.example.com.conf");
    let text = std::fs::read_to_string(&site).unwrap();
    std::fs::write(
        &site,
        text.replacen("server {", "server {\n    # changed", 1),
    )
    .unwrap();
    let out = std::process::Command::new("bash")
        .args(["-c", diff_line])
        .current_dir(work.path())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.matches("+    # changed").count(), 1, "{shown}");
}

/// `--server URL` points the run at another CA address, winning over the config file and over
/// `ENC365_BASE_URL`.
#[test]
fn server_flag_overrides_the_config_and_the_environment() {
    let host = Host::new(Faults::default());
    let nowhere = "http://127.0.0.1:7";
    let out = host.command(&["products", "--json", "--server", nowhere]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("127.0.0.1:7"),
        "the run went to --server: {said}"
    );

    let base = host.sim.base_url();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
    command
        .args(["products", "--json", "--server", &base, "--config"])
        .arg(host.dir.path().join("config.toml"))
        .env("ENC365_BASE_URL", nowhere);
    let out = command.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--key-type` on the command line wins over the config's `key_type` (ecdsa-p256 here).
#[test]
fn key_type_flag_overrides_the_config() {
    let host = Host::new(Faults::default());
    let out = host.auto(&["--json", "--site", "shop.test", "--key-type", "rsa2048"]);
    expect_exit(&out, 0);
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(host.live("shop.test"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("rsaEncryption"), "{text}");
    assert!(text.contains("2048 bit"), "{text}");
    let bad = host.auto(&["--site", "shop.test", "--key-type", "dsa"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ecdsa-p256"));
}
