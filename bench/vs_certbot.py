#!/usr/bin/env python3
"""Side by side (not a test): `enc365-nginx auto` against certbot's nginx plugin, on the same
generated shared-hosting tree, against the same ACME server (Debian's Pebble, started here on
loopback, `PEBBLE_VA_NOSLEEP=1`, no authorization reuse, no deliberate faults).

Usage: bench/vs_certbot.py [--sites N] [--certbot PATH] [--ours PATH] [--keep DIR]

The tree comes from bench/gen_vhosts.py (ports moved to free loopback ports), built twice from
the same seed: one copy for each tool, each served by its own nginx on the same ports in turn
(Pebble validates HTTP-01 on one port). enc365-nginx runs once (`auto`); certbot runs once per
site, as its users run it (`certbot --nginx -d NAME -d NAME …`), with the names enc365-nginx
found certifiable for that site. Both tools drive nginx through the same wrapper, which counts
`nginx -t` runs and reloads. Afterwards every name is verified by a TLS handshake (openssl,
trusting only Pebble's root, checking the host name) for both.

certbot: pip install certbot-nginx into a venv (e.g. target/certbot-venv) or Debian's
python3-certbot-nginx; pass --certbot PATH when it is not on PATH.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN = "/work/shared/bench/gen_vhosts.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tree(base, name, sites, http, https):
    """Generates the tree, moves its ports and creates its webroots; returns (tree, conf)."""
    gen = GEN if os.path.exists(GEN) else os.path.join(ROOT, "bench", "gen_vhosts.py")
    tree = os.path.join(base, name)
    subprocess.run([sys.executable, gen, tree, str(sites)], check=True, stdout=subprocess.DEVNULL)
    for dirpath, _, files in os.walk(tree):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or f == "expected.json":
                continue
            if not (f.endswith(".conf") or "sites-" in dirpath):
                continue
            text = open(p, encoding="utf-8").read()
            new = text.replace("18080", str(http)).replace("18443", str(https))
            if new != text:
                open(p, "w", encoding="utf-8").write(new)
    out = subprocess.run(["grep", "-rhoE", r"root [^;]+public_html", os.path.join(tree, "sites-available")],
                         capture_output=True, text=True).stdout
    for line in out.split("\n"):
        if line.startswith("root "):
            os.makedirs(line[5:], exist_ok=True)
    return tree, os.path.join(tree, "nginx.conf")


def nginx_wrapper(base, name, tree, nginx):
    """A script that runs nginx with `-p TREE` and logs each invocation (to count -t and
    reloads)."""
    log = os.path.join(base, f"{name}-nginx-calls.log")
    path = os.path.join(base, f"{name}-nginx")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\necho "$*" >> {log}\nexec {nginx} -p {tree} "$@"\n')
    os.chmod(path, 0o755)
    open(log, "w").close()
    return path, log


def count_calls(log):
    lines = open(log).read().splitlines()
    tests = sum(1 for l in lines if " -t" in f" {l}" or l.startswith("-t"))
    reloads = sum(1 for l in lines if "-s reload" in l)
    return tests, reloads


def listener_cert(d):
    """A CA and a 127.0.0.1 certificate for Pebble's own listener (openssl)."""
    run = lambda *a: subprocess.run(a, check=True, cwd=d, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench pebble listener CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(d, "ca.pem")


def start_pebble(base, http):
    d = os.path.join(base, "pebble")
    os.makedirs(d)
    bundle = listener_cert(d)
    listen, mgmt, dns, dns_mgmt, tls = (free_port() for _ in range(5))
    cfg = {"pebble": {"listenAddress": f"127.0.0.1:{listen}", "managementListenAddress": f"127.0.0.1:{mgmt}",
                      "certificate": os.path.join(d, "cert.pem"), "privateKey": os.path.join(d, "key.pem"),
                      "httpPort": http, "tlsPort": tls, "ocspResponderURL": "",
                      "externalAccountBindingRequired": False}}
    json.dump(cfg, open(os.path.join(d, "pebble.json"), "w"))
    dns_proc = subprocess.Popen(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns}", "-management",
                                 f"127.0.0.1:{dns_mgmt}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    peb = subprocess.Popen(["pebble", "-config", os.path.join(d, "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
                           env=env, stdout=open(os.path.join(d, "pebble.log"), "w"), stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", listen), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    root = os.path.join(d, "root.pem")
    time.sleep(0.3)
    subprocess.run(["curl", "-sS", "--fail", "--cacert", bundle, "-o", root,
                    f"https://127.0.0.1:{mgmt}/roots/0"], check=True)
    return [dns_proc, peb], f"https://127.0.0.1:{listen}/dir", bundle, root


def no_webroot(tree, name):
    """True when the server block naming `name` in the tree has no `root` (a proxy or a
    redirect-only site: HTTP-01 goes through a temporary location)."""
    for dirpath, _, files in os.walk(os.path.join(tree, "sites-available")):
        for f in files:
            text = open(os.path.join(dirpath, f), encoding="utf-8", errors="replace").read()
            for block in text.split("server {")[1:]:
                m = re.search(r"server_name\s+([^;]+);", block)
                if m and name in m.group(1).split():
                    return "root " not in block
    return False


def verified(root, port, name):
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                          "-verify_return_error", "-verify_hostname", name, "-CAfile", root],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return out.returncode == 0 and "Verify return code: 0 (ok)" in out.stdout


def run_ours(a, base, pebble_dir, bundle, nginx, http, https):
    tree, conf = make_tree(base, "ours", a.sites, http, https)
    wrapper, log = nginx_wrapper(base, "ours", tree, nginx)
    subprocess.run([nginx, "-p", tree, "-c", conf], check=True)
    open(log, "w").close()
    cfg = os.path.join(base, "ours-config.toml")
    with open(cfg, "w") as f:
        f.write(f'provider = "acme"\nkey_type = "ecdsa-p256"\n[acme]\ndirectory = "{pebble_dir}"\n')
    os.chmod(cfg, 0o600)
    env = dict(os.environ, ENC365_CA_BUNDLE=bundle)
    common = ["--config", cfg, "--state-dir", os.path.join(base, "ours-state")]
    subprocess.run([a.ours, "register", "--email", "bench@example.com", "--agree-tos"] + common,
                   env=env, check=True, stdout=subprocess.DEVNULL)
    argv = [a.ours, "auto", "--json", "--skip-dns-check"] + common + [
        "--nginx-bin", wrapper, "--nginx-conf", conf, "--nginx-prefix", tree, "--https-port", str(https),
        "--http-port", str(http), "--poll-interval", "0.2", "--timeout", "600"]
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    doc = json.loads(out.stdout)
    json.dump(doc, open(os.path.join(base, "ours-auto.json"), "w"), indent=1)
    return tree, conf, wall, doc, log


def run_certbot(a, base, pebble_dir, bundle, nginx, http, https, sites):
    tree, conf = make_tree(base, "certbot", a.sites, http, https)
    wrapper, log = nginx_wrapper(base, "certbot", tree, nginx)
    subprocess.run([nginx, "-p", tree, "-c", conf], check=True)
    open(log, "w").close()
    env = dict(os.environ, REQUESTS_CA_BUNDLE=bundle)
    cb = os.path.join(base, "certbot-dirs")
    dirs = ["--config-dir", f"{cb}/config", "--work-dir", f"{cb}/work", "--logs-dir", f"{cb}/logs"]
    failures = []
    start = time.perf_counter()
    for names in sites:
        argv = [a.certbot, "--nginx", "--non-interactive", "--agree-tos", "-m", "bench@example.com",
                "--server", pebble_dir, "--nginx-server-root", tree, "--nginx-ctl", wrapper,
                "--https-port", str(https), "--http-01-port", str(http), "--key-type", "ecdsa",
                "--no-redirect"] + dirs
        for n in names:
            argv += ["-d", n]
        r = subprocess.run(argv, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            failures.append((names[0], (r.stderr or r.stdout).strip().splitlines()[-1:]))
    wall = time.perf_counter() - start
    return tree, conf, wall, failures, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--certbot", default=shutil.which("certbot")
                    or os.path.join(ROOT, "target", "certbot-venv", "bin", "certbot"))
    ap.add_argument("--ours", default=os.path.join(ROOT, "target", "release", "enc365-nginx"))
    ap.add_argument("--keep", help="work here and keep it")
    a = ap.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    base = a.keep or tempfile.mkdtemp(prefix="enc365-vs-certbot-")
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    http, https = free_port(), free_port()
    procs, pebble_dir, bundle, root = start_pebble(base, http)
    trees = []
    try:
        tree, conf, ours_wall, doc, ours_log = run_ours(a, base, pebble_dir, bundle, nginx, http, https)
        trees.append((tree, conf))
        issued = [s for s in doc["sites"] if s.get("names_issued") and not s.get("error")]
        missed = [s for s in doc["sites"] if not (s.get("names_issued") and not s.get("error"))]
        sites = [s["names_issued"] for s in issued]
        names = [n for s in sites for n in s]
        ours_ok = sum(verified(root, https, n) for n in names)
        ours_tests, ours_reloads = count_calls(ours_log)
        subprocess.run([nginx, "-p", tree, "-c", conf, "-s", "stop"], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        tree, conf, cb_wall, failures, cb_log = run_certbot(a, base, pebble_dir, bundle, nginx, http, https, sites)
        trees.append((tree, conf))
        cb_ok = sum(verified(root, https, n) for n in names)
        cb_tests, cb_reloads = count_calls(cb_log)
    finally:
        for tree, conf in trees:
            subprocess.run([nginx, "-p", tree, "-c", conf, "-s", "stop"], stderr=subprocess.DEVNULL)
        for p in procs:
            p.kill()
    n = max(len(sites), 1)
    proxied = sum(1 for t, _ in trees[:1] for s in sites if no_webroot(t, s[0]))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"tree: {a.sites} site files; {len(sites)} sites ({proxied} without a webroot: proxy or "
          f"redirect), {len(names)} names certified; {len(missed)} sites not certified by "
          f"enc365-nginx; Pebble, {os.cpu_count()} CPUs, load average {load}")
    print(f"{'tool':<22}{'wall s':>9}{'s/site':>9}{'reloads':>9}{'nginx -t':>10}{'verified':>12}")
    print(f"{'certbot --nginx':<22}{cb_wall:>9.2f}{cb_wall / n:>9.3f}{cb_reloads:>9}{cb_tests:>10}"
          f"{cb_ok:>7}/{len(names)}")
    print(f"{'enc365-nginx auto':<22}{ours_wall:>9.2f}{ours_wall / n:>9.3f}{ours_reloads:>9}{ours_tests:>10}"
          f"{ours_ok:>7}/{len(names)}")
    print(f"ratio (certbot / enc365-nginx, per site): {cb_wall / max(ours_wall, 1e-9):.1f}x")
    for s in missed[:5]:
        print(f"  enc365-nginx left {s.get('site')}: {s.get('error') or s.get('skipped')}")
    for site, why in failures[:5]:
        print(f"  certbot failed {site}: {why}")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if ours_ok == len(names) and doc["reloads"] <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
