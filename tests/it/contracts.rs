//! The product's cross-command contracts (design §3), checked on the real binary against a real
//! nginx and the simulator: secrets never shown and private files private, `--json` printing
//! exactly one JSON object on success and failure, the exit codes of §3.3, and CA data that does
//! not add up refused before anything is written.

use crate::common;
use common::host::ONE_SITE;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::host::Host;
use enc365_sim::Faults;

const PASSWORD: &str = "pw-SENTINEL-7f3a9c";

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The access token `Host` put in the config file.
fn token_of(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("access_token"))
        .expect("a token in the config");
    line.split('"').nth(1).unwrap().to_string()
}

/// The binary with `args` and the host's global options, nginx run through `nginx_bin`.
fn command_with(host: &Host, nginx_bin: &Path, args: &[&str]) -> Command {
    command_at(host, nginx_bin, &host.dir.path().join("config.toml"), args)
}

/// Like [`command_with`], with another config file.
fn command_at(host: &Host, nginx_bin: &Path, config: &Path, args: &[&str]) -> Command {
    command_in(
        host,
        nginx_bin,
        config,
        &host.dir.path().join("state"),
        args,
    )
}

/// Like [`command_with`], with another config file and state directory.
fn command_in(
    host: &Host,
    nginx_bin: &Path,
    config: &Path,
    state: &Path,
    args: &[&str],
) -> Command {
    let d = host.dir.path();
    let mut command = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .arg("--nginx-bin")
        .arg(nginx_bin)
        .arg("--nginx-conf")
        .arg(host.sb.conf_path())
        .arg("--nginx-prefix")
        .arg(host.sb.prefix())
        .args(["--https-port", &host.https.to_string()])
        .env("ENC365_HOSTS_FILE", d.join("hosts"))
        .stdin(Stdio::null());
    command
}

/// Pipeline options (`auto`, `plan`, `renew`, `reissue`) for `command_with`.
fn pipeline(host: &Host) -> Vec<String> {
    vec![
        "--http-port".into(),
        host.http.to_string(),
        "--poll-interval".into(),
        "0.1".into(),
        "--timeout".into(),
        "30".into(),
    ]
}

/// Checks stdout is exactly one JSON object and returns it.
fn one_object(out: &Output) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", text(out)));
    assert!(doc.is_object(), "not an object:\n{}", text(out));
    doc
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn no_command_shows_the_token_or_password_and_private_files_stay_private() {
    let host = Host::with_sim_options(
        Faults::default(),
        ONE_SITE,
        "enable_unconfirmed_endpoints = true\n",
        |o| o.unconfirmed_endpoints = true,
    );
    let d = host.dir.path().to_path_buf();
    let mut secrets = vec![token_of(&d.join("config.toml")), PASSWORD.to_string()];
    host.sim
        .add_account("sentinel@example.com", PASSWORD, 100.0);

    // nginx and the deploy hook log their argv and environment.
    let log = d.join("children.log");
    let wrapper = d.join("nginx-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"nginx $*\" >>{log}\nenv >>{log}\nexec {} \"$@\"\n",
            host.sb.nginx_bin().display(),
            log = log.display()
        ),
    )
    .unwrap();
    let hook = d.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"hook $*\" >>{log}\nenv >>{log}\n",
            log = log.display()
        ),
    )
    .unwrap();
    for f in [&wrapper, &hook] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let pipe = pipeline(&host);
    let pipe: Vec<&str> = pipe.iter().map(String::as_str).collect();
    let hook_arg = hook.display().to_string();
    let mut runs: Vec<(String, Output)> = Vec::new();
    let mut run = |args: Vec<&str>, json: bool| {
        for (verbose, log_env) in [("-vv", None), ("-v", Some("trace"))] {
            let mut c = command_with(&host, &wrapper, &args);
            // An admin who exported the password for `register`.
            c.arg(verbose).env("ENC365_PASSWORD", PASSWORD);
            if json {
                c.arg("--json");
            }
            if let Some(level) = log_env {
                c.env("ENC365_LOG", level);
            }
            let out = c.output().unwrap();
            if json {
                one_object(&out);
            }
            runs.push((format!("{args:?} {verbose} {log_env:?}"), out));
        }
    };
    run(vec!["discover"], true);
    // `plan` waits for no CA: only the HTTP port of the pipeline options.
    run([&["plan"][..], &pipe[..2]].concat(), true);
    run(vec!["products"], true);
    run(vec!["account"], true);
    run(
        [&["auto", "--deploy-hook", &hook_arg][..], &pipe].concat(),
        true,
    );
    run(vec!["status"], true);
    run(vec!["history"], true);
    run([&["renew", "--force"][..], &pipe].concat(), true);
    run(
        [&["reissue", "--site", "shop.test"][..], &pipe].concat(),
        true,
    );
    run(vec!["revoke", "--site", "shop.test", "--yes"], true);
    run(vec!["rollback"], true);
    run(vec!["status"], false);
    run(vec!["history"], false);

    // register: a good password (stdin and environment) and a wrong one that contains the
    // sentinel; into a separate config file.
    let reg = d.join("reg/config.toml");
    for (password, via_env, json) in [
        (PASSWORD.to_string(), false, true),
        (PASSWORD.to_string(), true, false),
        (format!("{PASSWORD}-wrong"), false, true),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"));
        c.args(["register", "--username", "sentinel@example.com", "-vv"])
            .arg("--config")
            .arg(&reg)
            .env("ENC365_BASE_URL", host.sim.base_url())
            .env("ENC365_LOG", "trace");
        if json {
            c.arg("--json");
        }
        let out = if via_env {
            c.env("ENC365_PASSWORD", &password)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        } else {
            use std::io::Write;
            let mut child = c
                .arg("--password-stdin")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(password.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        if json {
            one_object(&out);
        }
        if mode(&reg) == 0o600 {
            secrets.push(token_of(&reg));
        }
        runs.push((format!("register {password}"), out));
    }
    assert_eq!(mode(&reg), 0o600);

    for (what, out) in &runs {
        let all = text(out);
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{what} shows a secret:\n{all}"
            );
        }
    }
    let children = std::fs::read_to_string(&log).unwrap();
    assert!(children.contains("hook "), "{children}");
    for secret in &secrets {
        assert!(!children.contains(secret.as_str()), "{children}");
    }

    // Files: private keys, the config and records 0600; orders/ and backups/ 0700; nothing a
    // stranger may read holds a secret.
    let mut files = Vec::new();
    walk(&d, &mut files);
    let mut keys = 0;
    for path in &files {
        let rel = path.strip_prefix(&d).unwrap().display().to_string();
        let meta = std::fs::metadata(path).unwrap();
        let m = meta.permissions().mode() & 0o777;
        if meta.is_file() {
            if rel.ends_with("privkey.pem") || rel.ends_with(".key") {
                keys += 1;
                assert_eq!(m, 0o600, "{rel}");
            }
            if rel.starts_with("state/backups/") && rel.contains("/files/") {
                assert_eq!(m, 0o600, "{rel}");
            }
            if m & 0o044 != 0 {
                let bytes = std::fs::read(path).unwrap();
                let body = String::from_utf8_lossy(&bytes);
                for secret in &secrets {
                    assert!(!body.contains(secret.as_str()), "{rel} (mode {m:o})");
                }
                assert!(!body.contains("PRIVATE KEY"), "{rel} (mode {m:o})");
            }
        }
    }
    assert!(keys >= 2, "{files:?}");
    assert_eq!(mode(&d.join("config.toml")), 0o600);
    assert_eq!(mode(&d.join("state/orders")), 0o700);
    assert_eq!(mode(&d.join("state/backups")), 0o700);
}

/// Runs the binary with `args` and `config` only (no nginx needed).
fn run_with_config(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("ENC365_BASE_URL")
        .env_remove("ENC365_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_bad_config_file_exits_2_naming_the_key_and_never_echoing_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "tok-SENTINEL-55aa";
    let cases: &[(&str, u32, &str)] = &[
        // a typo after the token, a duplicate token, a wrong type, an unknown key, a bad value
        (
            "client_id = \"c\"\naccess_token = \"{S}\" x\n",
            0o600,
            "line 2, column",
        ),
        (
            "client_id = \"c\"\naccess_token = \"{S}\"\naccess_token = \"{S}\"\n",
            0o600,
            "key `access_token`: duplicate key",
        ),
        (
            "access_token = \"{S}\"\npid = \"abc\"\n",
            0o600,
            "key `pid`: invalid type",
        ),
        (
            "access_token = \"{S}\"\nhttps_prot = 443\n",
            0o600,
            "unknown field `https_prot`",
        ),
        (
            "access_token = \"{S}\"\nkey_type = \"rsa1024\"\n",
            0o600,
            "key `key_type`",
        ),
        (
            "access_token = \"{S}\"\nhttps_port = 0\n",
            0o600,
            "key `https_port`: 0 is not a port",
        ),
        (
            "client_id = \"c\"\naccess_token = \"{S}\"\n",
            0o640,
            "fix it with: chmod 600",
        ),
        // No token, but commands we run as root: nobody else may change them.
        (
            "pre_hook = \"touch /tmp/owned\"\n",
            0o666,
            "can be changed by group or others (mode 666)",
        ),
        (
            "reload_command = \"/bin/true\"\n",
            0o620,
            "fix it with: chmod 600",
        ),
        (
            "client_id = \"c\"\naccess_token = \"{S}\"\nbase_url = \"http://10.0.0.1:8080\"\n",
            0o600,
            "allowed only for loopback hosts",
        ),
    ];
    for (i, (body, m, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("config-{i}.toml"));
        std::fs::write(&path, body.replace("{S}", secret)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*m)).unwrap();
        for args in [&["products", "--json"][..], &["account"][..]] {
            let out = run_with_config(&path, args);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "{body}\n{all}");
            assert!(all.contains(expected), "{body}\n{all}");
            assert!(all.contains(&path.display().to_string()), "{all}");
            assert!(!all.contains(secret), "{body} echoes the token:\n{all}");
            assert!(!all.contains("panicked"), "{all}");
            if args.contains(&"--json") {
                let doc = one_object(&out);
                assert_eq!(doc["exit_code"], 2);
            }
        }
    }
}

#[test]
fn bad_flags_exit_2_with_a_usage_message_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    for args in [
        &["auto", "--timeout", "abc"][..],
        &["auto", "--timeout", "99999999999999999"],
        &["auto", "--poll-interval", "inf"],
        &["auto", "--poll-interval", "nan"],
        &["auto", "--poll-interval", "0"],
        &["plan", "--https-port", "0"],
        &["plan", "--https-port", "70000"],
        &["plan", "--http-port", "0"],
        &["renew", "--days", "-3"],
        &["status", "--no-such-flag"],
        &["revoke"],
    ] {
        let out = run_with_config(&config, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{all}");
        assert!(all.contains("error:"), "{args:?}\n{all}");
        assert!(!all.contains("panicked"), "{args:?}\n{all}");
    }
}

/// Runs a pipeline command (`auto`, `plan`, `renew`) on `host` with `--json` and checks the exit
/// code and that stdout is one JSON object; returns it.
fn pipeline_json(host: &Host, sub: &str, extra: &[&str], code: i32) -> serde_json::Value {
    let out = host
        .pipeline_command(sub, &[&["--json"][..], extra].concat())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let doc = one_object(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{sub} {extra:?}\n{}",
        text(&out)
    );
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    doc
}

#[test]
fn exit_codes_and_json_for_each_kind_of_failure() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    let d = host.dir.path().to_path_buf();

    // A --site typo: 2, for every command taking --site.
    for sub in ["auto", "plan", "renew", "reissue"] {
        let doc = pipeline_json(&host, sub, &["--site", "shpo.test"], 2);
        assert!(
            doc["error"].as_str().unwrap().contains("shpo.test"),
            "{doc}"
        );
    }
    // Nothing done yet: plan lists the site; status and history are empty, exit 0.
    pipeline_json(&host, "plan", &[], 0);
    // Missing credentials: 2, naming `register` (`renew` with nothing managed is quiet: the
    // package's timer runs before anyone registered).
    let bare = d.join("bare/config.toml");
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    std::fs::write(&bare, "").unwrap();
    for args in [&["auto"][..], &["products"], &["account"]] {
        let out = command_at(&host, host.sb.nginx_bin(), &bare, args)
            .arg("--json")
            .output()
            .unwrap();
        let doc = one_object(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", text(&out));
        assert!(doc["error"].as_str().unwrap().contains("register"), "{doc}");
    }

    // The lock held: 3, and one JSON object saying so.
    {
        let _held = enc365_nginx::store::RunLock::acquire(&d.join("state")).unwrap();
        for sub in ["auto", "renew"] {
            let doc = pipeline_json(&host, sub, &[], 3);
            assert_eq!(doc["exit_code"], 3, "{doc}");
        }
    }

    // The CA down: the site fails (1), one JSON object says why, nothing is changed.
    let conf_before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = host
        .pipeline_command("auto", &["--json"])
        .env("ENC365_BASE_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(doc["sites"][0]["error"].is_string(), "{doc:#}");
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), conf_before);
    assert!(!d.join("live").exists());
    let out = command_with(&host, host.sb.nginx_bin(), &["products", "--json"])
        .env("ENC365_BASE_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        doc["error"].as_str().unwrap().contains("127.0.0.1:1"),
        "{doc}"
    );

    // A CA never reached holds no order: the next run orders without
    // --discard-interrupted-order, and succeeds; then there is nothing to do: 0.
    pipeline_json(&host, "auto", &[], 0);
    pipeline_json(&host, "auto", &[], 0);
    pipeline_json(&host, "renew", &[], 0);

    // nginx -t failing before anything is touched: 2, nothing changed.
    let conf = host.sb.conf_path();
    let good = std::fs::read(&conf).unwrap();
    let broken = String::from_utf8_lossy(&good).replace("root ", "no_such_directive x;\n root ");
    std::fs::write(&conf, &broken).unwrap();
    for (sub, args) in [
        ("renew", &["--force"][..]),
        ("renew", &["--force", "--dry-run"][..]),
    ] {
        let doc = pipeline_json(&host, sub, args, 2);
        assert!(doc["error"].as_str().unwrap().contains("nginx -t"), "{doc}");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), broken);
    }
    // With nothing to do, nothing will be changed: no nginx -t (it would fail: exit 2), exit 0;
    // discover's parse still refuses an unreadable configuration (below).
    for sub in ["auto", "renew"] {
        let doc = pipeline_json(&host, sub, &[], 0);
        assert_eq!(doc["nginx_tests"].as_u64().unwrap_or(0), 0, "{doc}");
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), broken);
    }
    // Unparseable: 2 with file:line:column.
    std::fs::write(
        &conf,
        String::from_utf8_lossy(&good).replace("root ", "root { "),
    )
    .unwrap();
    let place = regex_lite_place(&conf);
    for sub in ["auto", "plan", "renew"] {
        let doc = pipeline_json(&host, sub, &[], 2);
        let error = doc["error"].as_str().unwrap();
        assert!(
            place(error) && error.contains("Nothing was changed"),
            "{sub}: {doc}"
        );
    }
    let out = host.command(&["discover", "--json"]);
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(doc["errors"][0]["line"].is_u64(), "{doc}");
    assert!(
        place(&String::from_utf8_lossy(&out.stderr)),
        "{}",
        text(&out)
    );
    std::fs::write(&conf, &good).unwrap();

    // A damaged order record and a damaged lineage: a clear message naming the file, no panic.
    let states = d.join("state");
    let mut records = Vec::new();
    walk(&states, &mut records);
    let record = records
        .iter()
        .find(|p| {
            p.starts_with(states.join("orders")) && p.extension().is_some_and(|e| e == "json")
        })
        .expect("an order record")
        .clone();
    let lineage = records
        .iter()
        .find(|p| p.starts_with(states.join("certs")) && p.extension().is_some_and(|e| e == "json"))
        .expect("a lineage record")
        .clone();
    let manifest = records
        .iter()
        .find(|p| p.starts_with(states.join("backups")) && p.ends_with("manifest.json"))
        .expect("a backup manifest")
        .clone();
    for damaged in [&record, &lineage, &manifest] {
        let saved = std::fs::read(damaged).unwrap();
        for garbage in [&b""[..], b"{\"site\": 5", b"\xff\xfe garbage"] {
            std::fs::write(damaged, garbage).unwrap();
            for args in [
                vec!["status", "--json"],
                vec!["history", "--json"],
                vec!["revoke", "--site", "shop.test", "--yes", "--json"],
            ] {
                let out = host.command(&args);
                let all = text(&out);
                assert!(!all.contains("panicked"), "{args:?}\n{all}");
                one_object(&out);
            }
            for sub in ["auto", "renew", "plan"] {
                let out = host
                    .pipeline_command(sub, &["--json"])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let all = text(&out);
                assert!(!all.contains("panicked"), "{sub}\n{all}");
                let doc = one_object(&out);
                if out.status.code() != Some(0) {
                    let message = doc["error"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(doc.to_string());
                    let told = if damaged == &manifest {
                        format!("{} cannot be used", damaged.display())
                    } else {
                        format!("{} is damaged; move it away", damaged.display())
                    };
                    assert!(message.contains(&told), "{sub}: {message}");
                }
            }
        }
        std::fs::write(damaged, saved).unwrap();
    }
}

/// Every file under `dir`, relative, sorted (for "nothing was written here" checks).
fn tree(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut rel: Vec<String> = files
        .iter()
        .filter(|p| !p.starts_with(dir.join("logs")) && !p.starts_with(dir.join("tmp")))
        .filter(|p| !p.starts_with(dir.join("run")))
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    rel.sort();
    rel
}

/// CA data that does not add up (the fault that makes the simulator send it), and what the site's
/// error must tell for the cases the CA answers wrongly while we wait.
struct BadCaData {
    what: &'static str,
    faults: Faults,
    told: Option<&'static str>,
}

#[test]
fn ca_data_that_does_not_add_up_is_refused_with_nothing_written() {
    let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases = vec![
        BadCaData {
            what: "a DCV file name with ..",
            faults: Faults {
                dcv_filename: Some("../../escape.txt".into()),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "a DCV file name with /",
            faults: Faults {
                dcv_filename: Some("sub/dir.txt".into()),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "a DCV file name with odd characters",
            faults: Faults {
                dcv_filename: Some("a b;$(id)\n.txt".into()),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "validation data for a name never ordered",
            faults: Faults {
                foreign_dcv_name: Some("evil.test".into()),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "no certificate in the issued answer",
            faults: Faults {
                drop_field: Some("cert_code".into()),
                paths: paths(&["/cert/details"]),
                ..Faults::default()
            },
            told: Some("cert_code"),
        },
        BadCaData {
            what: "no chain in the issued answer",
            faults: Faults {
                drop_field: Some("ca_code".into()),
                paths: paths(&["/cert/details"]),
                ..Faults::default()
            },
            told: Some("without its chain"),
        },
        BadCaData {
            what: "a chain without the certificate's issuer",
            faults: Faults {
                unrelated_chain: true,
                ..Faults::default()
            },
            told: Some("does not hold the certificate's issuer"),
        },
        BadCaData {
            what: "a certificate for another key",
            faults: Faults {
                foreign_key: true,
                ..Faults::default()
            },
            told: Some("does not match our private key"),
        },
        BadCaData {
            what: "a certificate that leaves out a name",
            faults: Faults {
                drop_issued_name: true,
                ..Faults::default()
            },
            told: Some("does not cover www.shop.test"),
        },
        BadCaData {
            what: "truncated JSON",
            faults: Faults {
                truncated_json: true,
                paths: paths(&["/cert/details"]),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "an HTML error page",
            faults: Faults {
                html_error: true,
                paths: paths(&["/cert/create"]),
                ..Faults::default()
            },
            told: None,
        },
        BadCaData {
            what: "an oversize answer",
            faults: Faults {
                oversize_body: true,
                paths: paths(&["/cert/details"]),
                ..Faults::default()
            },
            told: None,
        },
    ];
    for BadCaData { what, faults, told } in cases {
        let host = Host::with(faults, ONE_SITE, "");
        let prefix = host.sb.prefix().to_path_buf();
        let before = tree(&prefix);
        let conf_before = std::fs::read(host.sb.conf_path()).unwrap();
        let out = host
            .auto_command(&["--json", "--timeout", "5"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let doc = one_object(&out);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}\n{all}");
        assert!(!all.contains("panicked"), "{what}\n{all}");
        let site = &doc["sites"][0];
        assert!(site["error"].is_string(), "{what}: {doc:#}");
        assert!(site["cert_path"].is_null(), "{what}: {doc:#}");
        if let Some(told) = told {
            assert!(
                site["error"].as_str().unwrap().contains(told),
                "{what}: {doc:#}"
            );
        }
        assert!(
            !host.dir.path().join("live").exists(),
            "{what}: live/ written"
        );
        // Once validation data passed the checks, its file stays published while the order is
        // pending (a rerun resumes it); nothing else is left.
        let left: Vec<String> = tree(&prefix)
            .into_iter()
            .filter(|p| !p.starts_with("www/shop/.well-known"))
            .collect();
        assert_eq!(left, before, "{what}: files left in the nginx prefix");
        assert_eq!(
            std::fs::read(host.sb.conf_path()).unwrap(),
            conf_before,
            "{what}"
        );
        assert!(!prefix.parent().unwrap().join("escape.txt").exists());
    }
}

#[test]
fn a_chain_with_crlf_line_ends_installs() {
    let host = Host::with(
        Faults {
            crlf_pem: true,
            ..Faults::default()
        },
        ONE_SITE,
        "",
    );
    let out = host.auto(&["--json"]);
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", text(&out));
    assert!(host.live("shop.test").exists());
}

#[test]
fn config_and_state_directories_with_nginx_syntax_in_their_names_are_quoted() {
    let sites = format!(
        "{ONE_SITE}
    server {{
        listen 127.0.0.1:{{port.0}};
        server_name app.test;
        location / {{ proxy_pass http://127.0.0.1:9; }}
    }}
"
    );
    let host = Host::with(Faults::default(), &sites, "");
    let d = host.dir.path();
    let odd = d.join("my sites; {x} #1 \"q\"");
    std::fs::create_dir_all(&odd).unwrap();
    let config = odd.join("config.toml");
    std::fs::rename(d.join("config.toml"), &config).unwrap();
    let state = odd.join("state");
    let pipe = pipeline(&host);
    let pipe: Vec<&str> = pipe.iter().map(String::as_str).collect();
    let out = command_in(
        &host,
        host.sb.nginx_bin(),
        &config,
        &state,
        &[&["auto", "--json"][..], &pipe].concat(),
    )
    .output()
    .unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", text(&out));
    for site in ["shop.test", "app.test"] {
        assert!(odd.join("live").join(site).join("fullchain.pem").exists());
        let served = common::host::served(&host, site);
        assert_eq!(
            served.fingerprint,
            common::host::pem_fingerprint(&odd.join("live").join(site).join("fullchain.pem")),
            "{site}"
        );
    }

    // A `$` would be read by nginx as a variable: refused up front, exit 2, nothing changed.
    let dollar = d.join("state$x");
    let conf_before = std::fs::read(host.sb.conf_path()).unwrap();
    let out = command_in(
        &host,
        host.sb.nginx_bin(),
        &config,
        &dollar,
        &[&["auto", "--json"][..], &pipe].concat(),
    )
    .output()
    .unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(2), "{doc:#}");
    assert!(
        doc["error"].as_str().unwrap().contains("--state-dir"),
        "{doc}"
    );
    assert!(!dollar.exists());
    assert_eq!(std::fs::read(host.sb.conf_path()).unwrap(), conf_before);
}

/// A check that a message names `file:LINE:COLUMN:`.
fn regex_lite_place(file: &Path) -> impl Fn(&str) -> bool {
    let prefix = format!("{}:", file.display());
    move |message: &str| {
        message.match_indices(&prefix).any(|(at, _)| {
            let rest = &message[at + prefix.len()..];
            let mut parts = rest.splitn(3, ':');
            let line = parts.next().unwrap_or("");
            let column = parts.next().unwrap_or("");
            !line.is_empty()
                && line.bytes().all(|b| b.is_ascii_digit())
                && !column.is_empty()
                && column.bytes().all(|b| b.is_ascii_digit())
        })
    }
}

#[test]
fn discover_reads_no_device_or_fifo_named_as_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cert.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "events {{}}\nhttp {{\n\
             server {{ listen 127.0.0.1:1 ssl; server_name a.test; ssl_certificate /dev/zero; ssl_certificate_key /dev/zero; }}\n\
             server {{ listen 127.0.0.1:2 ssl; server_name b.test; ssl_certificate {f}; ssl_certificate_key {f}; }}\n\
             }}\n",
            f = fifo.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_enc365-nginx"))
        .args(["discover", "--json", "--nginx-conf"])
        .arg(&conf)
        .arg("--nginx-prefix")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("discover hangs on a device or FIFO named as a certificate");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for server in doc["servers"].as_array().unwrap() {
        assert_eq!(server["needs_certificate"], true, "{server}");
        assert!(
            server["reason"]
                .as_str()
                .unwrap()
                .contains("not a regular file"),
            "{server}"
        );
    }
}

#[test]
fn a_link_planted_in_a_webroot_is_never_written_through() {
    let host = Host::with(
        Faults {
            dcv_filename: Some("planted.txt".into()),
            ..Faults::default()
        },
        ONE_SITE,
        "",
    );
    let victim = host.dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let dir = host.sb.path("www/shop/.well-known/pki-validation");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("planted.txt")).unwrap();
    let out = host.auto(&["--json", "--timeout", "5"]);
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        doc["sites"][0]["error"]
            .as_str()
            .unwrap()
            .contains("symbolic link"),
        "{doc:#}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!host.dir.path().join("live").exists());
}

#[test]
fn a_config_file_and_state_directory_given_relative_to_the_current_directory_install() {
    let host = Host::with(Faults::default(), ONE_SITE, "");
    let d = host.dir.path();
    let pipe = pipeline(&host);
    let pipe: Vec<&str> = pipe.iter().map(String::as_str).collect();
    let out = command_in(
        &host,
        host.sb.nginx_bin(),
        Path::new("config.toml"),
        Path::new("state"),
        &[&["auto", "--json"][..], &pipe].concat(),
    )
    .current_dir(d)
    .output()
    .unwrap();
    let doc = one_object(&out);
    assert_eq!(out.status.code(), Some(0), "{doc:#}\n{}", text(&out));
    let live = d.join("live/shop.test/fullchain.pem");
    let served = common::host::served(&host, "shop.test");
    assert_eq!(served.fingerprint, common::host::pem_fingerprint(&live));
    // nginx reads relative paths against its own prefix, not our current directory: every
    // path we wrote into its configuration is absolute.
    let conf = std::fs::read_to_string(host.sb.conf_path()).unwrap();
    for line in conf
        .lines()
        .filter(|l| l.contains("# managed by enc365-nginx"))
    {
        for word in line
            .split_whitespace()
            .filter(|w| w.contains("live/") || w.contains(".pem"))
        {
            assert!(word.starts_with('/') || word.starts_with("\"/"), "{line}");
        }
    }
    assert!(d.join("state/orders").is_dir());
}
