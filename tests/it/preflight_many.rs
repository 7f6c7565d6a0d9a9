//! The preflight over many sites at once (its probes run concurrently, bounded): every failing
//! name is reported exactly once, on its own site, with its own reason; a site that answers
//! wrongly fails only itself; probes that share a webroot (and make its validation directories)
//! leave nothing behind. Real nginx, the simulator in process, the real binary.

use crate::common;

use common::host::{Host, expect_exit, pem_fingerprint, served};
use enc365_sim::Faults;

/// Sites with a webroot of their own (their validation directories do not exist yet).
const OWN_ROOT: usize = 40;
/// Sites sharing one webroot.
const SHARED_ROOT: usize = 8;

/// The failing names, each with its site and what its reason must say.
const FAILING: [(&str, &str, &str); 4] = [
    ("wrong.many.test", "wrong.many.test", "served other content"),
    (
        "missing.many.test",
        "missing.many.test",
        "answered HTTP 404",
    ),
    (
        "www.half.many.test",
        "half.many.test",
        "could not be fetched through 127.0.0.2",
    ),
    ("nodns.many.test", "nodns.many.test", "does not resolve"),
];

fn server(name: &str, root: &str, extra: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{{port.0}};\n    server_name {name};\n    \
         root {{prefix}}/www/{root};\n    {extra}\n}}\n"
    )
}

fn good_names() -> Vec<String> {
    let own = (0..OWN_ROOT).map(|i| format!("s{i}.many.test"));
    own.chain((0..SHARED_ROOT).map(|i| format!("shared{i}.many.test")))
        .collect()
}

fn many_sites_host() -> Host {
    let mut body = String::new();
    for i in 0..OWN_ROOT {
        body += &server(&format!("s{i}.many.test"), &format!("s{i}"), "");
    }
    for i in 0..SHARED_ROOT {
        // Each logs its own requests: which probe file it fetched.
        let log = format!("access_log logs/shared{i}.access.log;");
        body += &server(&format!("shared{i}.many.test"), "shared", &log);
    }
    let wrong = r#"location ^~ /.well-known/ { return 200 "not the file"; }"#;
    body += &server("wrong.many.test", "wrong", wrong);
    body += &server(
        "missing.many.test",
        "missing",
        "location ^~ /.well-known/ { return 404; }",
    );
    // www.half resolves to an address this nginx does not listen on.
    body += &server("half.many.test www.half.many.test", "half", "");
    body += &server("nodns.many.test", "nodns", "");
    let host = Host::with(Faults::default(), &body, "");
    for dir in ["shared", "wrong", "missing", "half", "nodns"]
        .into_iter()
        .map(String::from)
        .chain((0..OWN_ROOT).map(|i| format!("s{i}")))
    {
        host.sb.write_file(&format!("www/{dir}/index.html"), "site");
    }
    // Every name resolves here but nodns.many.test.
    let hosts = host.dir.path().join("hosts");
    let mut text = std::fs::read_to_string(&hosts).unwrap();
    let resolving = good_names()
        .into_iter()
        .chain(["wrong", "missing", "half"].map(|n| format!("{n}.many.test")));
    for name in resolving {
        text += &format!("127.0.0.1 {name}\n");
    }
    text += "127.0.0.2 www.half.many.test\n";
    std::fs::write(&hosts, text).unwrap();
    host
}

fn site<'d>(doc: &'d serde_json::Value, name: &str) -> &'d serde_json::Value {
    (doc["sites"].as_array().unwrap().iter())
        .find(|s| s["site"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {doc:#}"))
}

#[test]
fn many_sites_probed_at_once_report_each_failing_name_once_and_fail_only_themselves() {
    let host = many_sites_host();
    let out = host.auto(&["--json"]);
    // Sites whose only name is not served fail (their names point here); the rest is issued.
    let doc = expect_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);

    let left_out: Vec<(String, String, String)> = (doc["sites"].as_array().unwrap().iter())
        .flat_map(|s| {
            let site = s["site"].as_str().unwrap().to_string();
            (s["names_left_out"].as_array().unwrap().iter()).map(move |l| {
                let name = l["name"].as_str().unwrap().to_string();
                (
                    site.clone(),
                    name,
                    l["reason"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert_eq!(left_out.len(), FAILING.len(), "{left_out:#?}");
    for (name, on_site, says) in FAILING {
        let found: Vec<_> = left_out.iter().filter(|(_, n, _)| n == name).collect();
        assert_eq!(found.len(), 1, "{name} reported once: {left_out:#?}");
        let (site_name, _, reason) = found[0];
        assert_eq!(site_name, on_site, "{name}");
        assert!(reason.contains(says), "{name}: {reason}");
        if name != "nodns.many.test" {
            // Its own probe's URL, not another name's.
            assert!(
                reason.contains(&format!("http://{name}/")),
                "{name}: {reason}"
            );
        }
    }
    for failed in ["wrong.many.test", "missing.many.test"] {
        let error = site(&doc, failed)["error"].as_str().unwrap_or_default();
        assert!(error.contains(failed), "{failed}: {error}");
        let told = stderr.lines().filter(|l| l.contains(failed)).count();
        assert_eq!(told, 1, "{failed} told once:\n{stderr}");
        assert!(!host.live(failed).exists());
    }
    assert!(
        site(&doc, "nodns.many.test")["names_issued"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Every other site (and the name of the half-served one that is served) is issued, served.
    let mut issued = good_names();
    issued.push("half.many.test".into());
    for name in &issued {
        let result = site(&doc, name);
        assert_eq!(
            result["error"],
            serde_json::Value::Null,
            "{name}: {result:#}"
        );
        assert_eq!(result["names_issued"], serde_json::json!([name]), "{name}");
        assert_eq!(
            served(&host, name).fingerprint,
            pem_fingerprint(&host.live(name))
        );
    }
    assert_eq!(host.sim.request_count("/cert/create"), issued.len() as u64);
    assert_eq!(doc["reloads"], 1, "{doc:#}");

    // The names one webroot serves share one probe file, each fetching it under its own name.
    let probes: std::collections::BTreeSet<String> = (0..SHARED_ROOT)
        .map(|i| {
            let log = host.sb.path(&format!("logs/shared{i}.access.log"));
            let log = std::fs::read_to_string(&log).unwrap();
            let fetched: Vec<&str> = (log.lines())
                .filter_map(|l| l.split('"').nth(1))
                .filter(|request| request.contains("enc365-probe-"))
                .collect();
            assert_eq!(fetched.len(), 1, "shared{i}: {log}");
            fetched[0].to_string()
        })
        .collect();
    assert_eq!(probes.len(), 1, "{probes:#?}");

    // No probe file and no directory made for one is left in any webroot.
    let www = host.sb.path("www");
    for entry in std::fs::read_dir(&www).unwrap() {
        let root = entry.unwrap().path();
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["index.html"], "{}", root.display());
    }
}
