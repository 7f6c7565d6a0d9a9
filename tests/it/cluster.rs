//! Cluster mode end to end (issue 18): three nginx nodes on their own loopback addresses behind
//! an nginx load balancer, a real three-member etcd, the simulator validating through the
//! balancer, and the real binary on every node — `auto` on one, `agent` on the others (see
//! [`common::cluster`]).
//!
//! What each test claims: one `auto` orders once per site and every node then serves the same
//! certificate (handshake against each node directly); a kill -9 of the orderer mid-order is
//! finished by another node without a second order; a node whose install fails rolls back alone
//! and `status --cluster` names the reason; with etcd down `auto` exits 1 saying so and changes
//! nothing; with one etcd member down (the first endpoint) everything works as usual; a node that
//! was away (agent stopped, nginx unreachable) catches up with `agent --once`.

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{CONVERGE_TIMEOUT, Cluster, SITES, normalize_serial};
use common::etcd::EtcdCluster;
use enc365_sim::Faults;

/// Every node of a three-node cluster.
const ALL: [&str; 3] = ["web1", "web2", "web3"];

/// Runs `command`; kills it and panics when it takes longer than `limit`.
fn output_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the command ran longer than {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// stdout and stderr of a run, as one text.
fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `status --cluster --json`'s entry for `node` in `site`'s certificate: (state, reason).
fn node_state(status: &serde_json::Value, site: &str, node: &str) -> Option<(String, String)> {
    let cert = status["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["site"] == site)?;
    let entry = cert["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["node"] == node)?;
    Some((
        entry["state"].as_str().unwrap_or_default().to_string(),
        entry["reason"].as_str().unwrap_or_default().to_string(),
    ))
}

/// `status --cluster --json`'s serial for `site`'s certificate, normalized.
fn status_serial(status: &serde_json::Value, site: &str) -> Option<String> {
    status["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["site"] == site)?["serial"]
        .as_str()
        .map(normalize_serial)
}

/// Runs `auto --json` on web1 and asserts it exits 0 with one order per site, that every node
/// serves every site's certificate (by handshake) and that `status --cluster` shows them
/// installed everywhere.
fn auto_orders_once_and_every_node_installs(cluster: &Cluster) {
    let out = cluster.nodes[0].auto(&["--json"]);
    let doc = cluster.expect_exit(&out, 0);
    assert_eq!(
        cluster.sim.request_count("/cert/create"),
        SITES.len() as u64,
        "one order per site: {doc:#}"
    );
    let serials = cluster.wait_served_everywhere(&ALL);
    wait_installed(cluster, &serials, &ALL);
}

/// Waits until `status --cluster` on web1 shows every site's certificate installed on every node
/// of `nodes` (an agent writes `verifying` while it checks, then `installed`), then asserts it
/// with `serials` — the ones the nodes were seen serving — as the certificates' serials.
fn wait_installed(cluster: &Cluster, serials: &BTreeMap<String, String>, nodes: &[&str]) {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let (_, status) = cluster.status_with_code("web1");
        let done = SITES.iter().all(|(site, _)| {
            nodes
                .iter()
                .all(|node| node_state(&status, site, node).is_some_and(|(s, _)| s == "installed"))
        });
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_installed(&cluster.status("web1"), serials, nodes);
}

/// Asserts that `status` lists `site`'s certificate with `serial` and `nodes` all installed.
fn assert_installed(
    status: &serde_json::Value,
    serials: &BTreeMap<String, String>,
    nodes: &[&str],
) {
    for (site, _) in SITES {
        assert_eq!(
            status_serial(status, site).as_ref(),
            serials.get(*site),
            "{site}'s serial in {status:#}"
        );
        for node in nodes {
            let (state, reason) = node_state(status, site, node)
                .unwrap_or_else(|| panic!("{node} is missing for {site}: {status:#}"));
            assert_eq!(state, "installed", "{node}/{site}: {reason}\n{status:#}");
        }
    }
}

/// Validation files still in any node's webroots, and temporary validation locations still in
/// any node's configuration.
fn validation_files_left(cluster: &Cluster) -> Vec<String> {
    let mut left = Vec::new();
    for node in &cluster.nodes {
        for (path, bytes) in node.conf_snapshot() {
            if bytes.windows(14).any(|w| w == b"pki-validation") {
                left.push(format!(
                    "{}: a validation location in {}",
                    node.name,
                    path.display()
                ));
            }
        }
        for (site, _) in SITES {
            let dir = node
                .sb
                .path(&format!("www/{site}/.well-known/pki-validation"));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                left.extend(
                    entries.map(|e| format!("{}: {}", node.name, e.unwrap().path().display())),
                );
            }
        }
    }
    left
}

/// The harness itself: the three-member etcd keeps a quorum with one member killed, is down with
/// all three killed, and comes back with its data on the same ports.
#[test]
fn the_test_etcd_survives_one_member_killed_and_keeps_its_data_across_restarts() {
    let mut etcd = EtcdCluster::start();
    etcd.put("/harness/a", "1").unwrap();
    etcd.kill(0);
    assert!(!etcd.member_healthy(0));
    etcd.wait_healthy(); // the other two elect a leader if the killed one was it
    etcd.put("/harness/b", "2").unwrap();
    etcd.kill_all();
    assert!(etcd.put("/harness/c", "3").is_err(), "etcd is down");
    etcd.restart_all();
    assert!((0..3).all(|i| etcd.member_healthy(i)));
    let kept: Vec<(String, String)> = etcd.get_prefix("/harness/").into_iter().collect();
    assert_eq!(
        kept,
        [
            ("/harness/a".into(), "1".into()),
            ("/harness/b".into(), "2".into())
        ]
    );
}

#[test]
fn auto_on_one_node_orders_once_per_site_and_every_node_serves_the_certificate() {
    let mut cluster = Cluster::start(3);
    cluster.nodes[1].start_agent();
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web2", "web3"]);

    // Every node serves every name with the same certificate, proven by a handshake with it.
    auto_orders_once_and_every_node_installs(&cluster);

    // The CA's checks went through the balancer (which serves the sites over HTTP as before),
    // which spread them over the nodes, and every node it picked served the file.
    let fetches = cluster.validation_fetches();
    let names: usize = SITES.iter().map(|(_, names)| names.len()).sum();
    assert!(fetches.len() >= names, "{fetches:?}");
    assert!(
        fetches.iter().all(|(_, status, _)| *status == 200),
        "{fetches:?}"
    );
    let answering: std::collections::BTreeSet<&str> =
        fetches.iter().map(|(node, _, _)| node.as_str()).collect();
    assert!(
        answering.len() >= 2,
        "one node answered every check: {fetches:?}"
    );
    let page = common::http_get(cluster.lb_port, "blog.test", "/").unwrap();
    assert_eq!((page.status, page.text()), (200, "blog.test".to_string()));

    // Private keys are sealed in etcd, the cluster key is not there, the validation entries are
    // gone, and so are the files the agents published.
    let everything = cluster.etcd_keys("");
    assert!(
        everything.keys().any(|k| k.contains("/certs/")),
        "{everything:?}"
    );
    let key = std::fs::read(cluster.nodes[0].key_file()).unwrap();
    for (k, v) in &everything {
        assert!(
            !v.contains("PRIVATE KEY"),
            "a private key in the clear at {k}"
        );
        let key_text = String::from_utf8_lossy(&key);
        assert!(
            key_text.trim().is_empty() || !v.contains(key_text.trim()),
            "the cluster key at {k}"
        );
    }
    assert!(cluster.etcd_keys("/dcv/").is_empty(), "{everything:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !validation_files_left(&cluster).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(validation_files_left(&cluster), Vec::<String>::new());

    // A second run has nothing to order.
    let again = cluster.nodes[0].auto(&["--json"]);
    cluster.expect_exit(&again, 0);
    assert_eq!(
        cluster.sim.request_count("/cert/create"),
        SITES.len() as u64
    );
    assert!(cluster.nodes[1].agent_running() && cluster.nodes[2].agent_running());
}

#[test]
fn a_kill_9_of_the_orderer_mid_order_is_finished_by_another_node_with_one_order() {
    let mut cluster = Cluster::start(3);
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web3"]);

    // The CA does the check and holds its answer: the orders are placed and persisted, the run
    // waits in the middle.
    cluster.sim.set_faults(Faults {
        paths: vec!["/cert/challenge".into()],
        answer_delay_ms: 60_000,
        ..Faults::default()
    });
    let mut orderer = cluster.nodes[0]
        .pipeline_command("auto", &["--timeout", "90"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let persisted = |c: &Cluster| {
        c.etcd_keys("/orders/")
            .keys()
            .filter(|k| !k.ends_with(".key"))
            .count()
    };
    while !(cluster.sim.request_count("/cert/create") == SITES.len() as u64
        && cluster.sim.request_count("/cert/challenge") > 0
        && persisted(&cluster) == SITES.len())
    {
        assert!(
            Instant::now() < deadline && orderer.try_wait().unwrap().is_none(),
            "the orderer never got to the CA's check with every order persisted in etcd \
             (creates {}, checks {}, records {})",
            cluster.sim.request_count("/cert/create"),
            cluster.sim.request_count("/cert/challenge"),
            persisted(&cluster)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The ordering node dies: its run is killed with SIGKILL, its nginx is gone (the balancer
    // sends nothing there).
    orderer.kill().unwrap();
    orderer.wait().unwrap();
    cluster.nodes[0].sb.stop();
    cluster.sim.set_faults(Faults::default());

    // Once the dead orderer's lease has run out, node 2 takes over and finishes the orders.
    cluster.wait_unlocked();
    let out = cluster.nodes[1].auto(&["--json"]);
    let doc = cluster.expect_exit(&out, 0);
    assert_eq!(
        cluster.sim.request_count("/cert/create"),
        SITES.len() as u64,
        "no second order: {doc:#}"
    );
    let serials = cluster.wait_served_everywhere(&["web2", "web3"]);

    // The node that died comes back (with its run's leftovers) and catches up from etcd.
    cluster.nodes[0].sb.start();
    let once = cluster.nodes[0].agent_once();
    assert_eq!(once.status.code(), Some(0), "{}", said(&once));
    assert_eq!(cluster.wait_served_everywhere(&ALL), serials);
    assert_eq!(
        cluster.sim.request_count("/cert/create"),
        SITES.len() as u64
    );
}

#[test]
fn a_node_whose_install_fails_rolls_back_alone_and_status_says_why() {
    let mut cluster = Cluster::start(3);
    // web3's blog.test asks for DH parameters from a file that does not exist: harmless while
    // the site has no certificate, refused by web3's own `nginx -t` once the splice adds one.
    let node3 = &cluster.nodes[2];
    let blog = std::fs::read_to_string(node3.vhost_path("blog.test")).unwrap();
    let broken = blog.replacen(
        "server_name blog.test;\n",
        &format!(
            "server_name blog.test;\n    ssl_dhparam {};\n",
            node3.sb.path("missing-dhparam.pem").display()
        ),
        1,
    );
    assert_ne!(broken, blog);
    std::fs::write(node3.vhost_path("blog.test"), &broken).unwrap();
    node3.sb.reload();
    let before = node3.conf_snapshot();

    cluster.nodes[1].start_agent();
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web2", "web3"]);
    let out = cluster.nodes[0].auto(&["--json"]);
    cluster.expect_exit(&out, 0);
    let serials = cluster.wait_served_everywhere(&["web1", "web2"]);

    // Wait for web3's verdict on blog.test.
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let status = loop {
        let (code, status) = cluster.status_with_code("web1");
        // Done when web3 has a final state for every site (a failed batch is retried site by
        // site) and blog.test's is failed.
        let settled = SITES.iter().all(|(site, _)| {
            node_state(&status, site, "web3")
                .is_some_and(|(s, _)| s == "installed" || s == "failed")
        });
        if settled && node_state(&status, "blog.test", "web3").is_some_and(|(s, _)| s == "failed") {
            assert_eq!(code, Some(1), "status exits 1 when a node failed");
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "web3 never settled with blog.test failed: {status:#}\n{}",
            cluster.agent_logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let (_, reason) = node_state(&status, "blog.test", "web3").unwrap();
    assert!(reason.contains("missing-dhparam.pem"), "{reason}");
    for node in ["web1", "web2"] {
        for (site, _) in SITES {
            let (state, reason) = node_state(&status, site, node).unwrap();
            assert_eq!(state, "installed", "{node}/{site}: {reason}");
        }
    }

    // web3 rolled back: blog.test's file is byte-identical, and every other site there either
    // serves the new certificate or is byte-identical too (failed with it in one batch).
    let node3 = &cluster.nodes[2];
    let after = node3.conf_snapshot();
    assert_eq!(
        after[&node3.vhost_path("blog.test")],
        before[&node3.vhost_path("blog.test")]
    );
    for (site, names) in SITES.iter().filter(|(s, _)| *s != "blog.test") {
        let (state, _) = node_state(&status, site, "web3").unwrap();
        if state == "installed" {
            assert_eq!(node3.served_serial(names[0]).as_ref(), serials.get(*site));
        } else {
            assert_eq!(state, "failed", "{site} on web3");
            assert_eq!(
                after[&node3.vhost_path(site)],
                before[&node3.vhost_path(site)]
            );
        }
    }
    if SITES
        .iter()
        .all(|(site, _)| node_state(&status, site, "web3").unwrap().0 == "failed")
    {
        assert_eq!(after, before, "web3's whole configuration is as before");
    }
    // (A handshake for blog.test may get another site's certificate, nginx's default for the
    // address; never blog.test's new one.)
    assert_ne!(
        node3.served_serial("blog.test").as_ref(),
        serials.get("blog.test"),
        "web3 serves blog.test's new certificate"
    );
    let page = node3.http_get("blog.test", "/").unwrap();
    assert_eq!((page.status, page.text()), (200, "blog.test".to_string()));
    // The others keep the new certificate.
    assert_eq!(cluster.wait_served_everywhere(&["web1", "web2"]), serials);
}

#[test]
fn with_etcd_down_auto_exits_1_saying_so_and_changes_nothing() {
    let mut cluster = Cluster::start(3);
    cluster.nodes[1].start_agent();
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web2", "web3"]);
    let before: Vec<_> = cluster.nodes.iter().map(|n| n.conf_snapshot()).collect();
    let endpoint = cluster.etcd.endpoints()[0].clone();
    cluster.etcd.kill_all();

    let out = output_within(
        cluster.nodes[0].pipeline_command("auto", &["--json"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let text = said(&out);
    assert!(text.contains("etcd"), "{text}");
    assert!(text.contains("down"), "{text}");
    assert!(
        text.contains(endpoint.trim_start_matches("http://")),
        "names the endpoints: {text}"
    );
    assert_eq!(cluster.sim.request_count("/cert/create"), 0);
    let after: Vec<_> = cluster.nodes.iter().map(|n| n.conf_snapshot()).collect();
    assert_eq!(after, before, "no node's configuration changed");
    assert!(!cluster.nodes[0].dir.path().join("live").exists());
    assert_eq!(validation_files_left(&cluster), Vec::<String>::new());
    // nginx keeps serving what it has.
    let page = cluster.nodes[0].http_get("shop.test", "/").unwrap();
    assert_eq!((page.status, page.text()), (200, "shop.test".to_string()));

    // The agents kept nginx as it was through the outage.
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<_> = cluster.nodes.iter().map(|n| n.conf_snapshot()).collect();
    assert_eq!(after, before, "no agent changed its node's configuration");

    // Once etcd is back, the agents reconnect and the same command works everywhere.
    cluster.etcd.restart_all();
    cluster.wait_live(&["web2", "web3"]);
    auto_orders_once_and_every_node_installs(&cluster);
}

#[test]
fn with_one_etcd_member_down_the_cluster_orders_and_installs_as_usual() {
    let mut cluster = Cluster::start(3);
    // The member behind the first endpoint of every node's config is gone; two of three are a
    // quorum.
    cluster.etcd.kill(0);
    cluster.etcd.wait_healthy();
    cluster.nodes[1].start_agent();
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web2", "web3"]);
    auto_orders_once_and_every_node_installs(&cluster);
}

#[test]
fn a_node_that_was_away_catches_up_with_agent_once() {
    let mut cluster = Cluster::start(3);
    cluster.nodes[1].start_agent();
    cluster.nodes[2].start_agent();
    cluster.wait_live(&["web2", "web3"]);
    // web3 goes away: its agent stops and its nginx is unreachable (the balancer sends
    // nothing there).
    cluster.nodes[2].stop_agent();
    cluster.nodes[2].sb.stop();
    cluster.wait_live(&["web2"]);

    let out = cluster.nodes[0].auto(&["--json"]);
    cluster.expect_exit(&out, 0);
    let serials = cluster.wait_served_everywhere(&["web1", "web2"]);
    // web3 comes back with what it had: no certificate.
    cluster.nodes[2].sb.start();
    for (_, names) in SITES {
        assert_eq!(
            cluster.nodes[2].served_serial(names[0]),
            None,
            "web3 was away"
        );
    }
    let status = cluster.status("web1");
    for (site, _) in SITES {
        assert!(
            node_state(&status, site, "web3").is_none_or(|(state, _)| state != "installed"),
            "{status:#}"
        );
    }

    let once = cluster.nodes[2].agent_once();
    assert_eq!(once.status.code(), Some(0), "{}", said(&once));
    assert_eq!(cluster.wait_served_everywhere(&ALL), serials);
    wait_installed(&cluster, &serials, &ALL);
    assert_eq!(
        cluster.sim.request_count("/cert/create"),
        SITES.len() as u64
    );
}
