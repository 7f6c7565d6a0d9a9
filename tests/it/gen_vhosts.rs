//! Discovery on realistic shared-hosting trees made by bench/gen_vhosts.py (N=1000, two seeds):
//! the servers must equal the generator's ground truth (file, listen, server_name, root), the file
//! list must equal what `nginx -T` dumps, and every file must re-render byte for byte.

use crate::common;

use std::path::Path;
use std::process::Command;

use enc365_nginx::commands::discover::to_json;
use enc365_nginx::discovery;

fn generate(dir: &Path, n: usize, seed: u64) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/gen_vhosts.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(n.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

fn check_tree(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    let mut expected = generate(&dir, 1000, seed);
    common::relativize(&mut expected, &dir.display().to_string());
    let conf = dir.join("nginx.conf");

    let found = discovery::discover(&conf, 0, 30).unwrap();
    let mut got = serde_json::to_value(to_json(conf.display().to_string(), &found)).unwrap();
    common::relativize(&mut got, &dir.display().to_string());

    // Ground truth lists servers in generation order; nginx reads the glob sorted. Within a file
    // the order is the file's own, so a stable sort by file gives nginx's order.
    let mut want: Vec<&serde_json::Value> =
        expected["servers"].as_array().unwrap().iter().collect();
    want.sort_by_key(|s| s["file"].as_str().unwrap().as_bytes().to_vec());
    let ours = got["servers"].as_array().unwrap();
    assert_eq!(ours.len(), want.len(), "number of server blocks");
    for (o, w) in ours.iter().zip(&want) {
        for key in ["file", "listen", "server_name", "root"] {
            assert_eq!(
                o[key], w[key],
                "{key} of the server at {}:{}",
                o["file"], o["line"]
            );
        }
    }

    let files: Vec<String> = found
        .config
        .paths()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(files, common::nginx_dump_files(&dir, &conf));

    for file in &found.config.files {
        assert_eq!(file.render(), file.bytes, "{}", file.path.display());
    }
}

#[test]
fn discovery_matches_ground_truth_seed_1() {
    check_tree(1);
}

#[test]
fn discovery_matches_ground_truth_seed_2() {
    check_tree(2);
}
