#!/usr/bin/env python3
"""Benchmark: cluster mode on etcd — N nginx nodes x S sites (default 3 x 200), one `auto`, the
agents' catch-up.

Usage: bench/cluster_bench.py [--nodes N] [--sites S] [--bin DIR] [--keep DIR]

Builds (release) unless --bin DIR names the binaries, then sets up on this machine: a
three-member etcd from /usr/bin/etcd on loopback high ports (own data dirs, never the system
service); N nodes, each a tree from bench/gen_vhosts.py (same sites, own prefix, own ports, error
log at notice so reloads are counted), its own nginx, config.toml with [cluster] and state dir;
an nginx load balancer (round robin over the nodes' HTTP ports, Host passed through); enc365-sim
validating through the balancer. The cluster key is made with `cluster-key --generate` on node 1
and copied to the others. Agents run on nodes 2..N; `auto --json` runs on node 1.

Prints: the wall time of `auto`, then of `auto` plus the agents' catch-up until
`status --cluster --json` shows every certificate installed on every node, the orders the
simulator received (from its state file), the reloads per node (nginx's "reconfiguring" notices),
and a check by TLS handshake against every node directly that all of them serve the same
certificate for every site. Exits 1 when a run fails, a node never catches up, a site was ordered
twice, or a node serves another certificate.
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "/enc365/bench"
CATCH_UP_TIMEOUT = 1800


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcdctl(endpoints, *args):
    return subprocess.run(["etcdctl", f"--endpoints={','.join(endpoints)}", "--command-timeout=5s",
                           *args], capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})


def start_etcd(base):
    """Three members on loopback high ports; returns (processes, client endpoints)."""
    members = [(f"m{i}", free_port(), free_port()) for i in range(1, 4)]
    initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, _, p in members)
    procs = []
    for name, client, peer in members:
        log = open(os.path.join(base, f"etcd-{name}.log"), "w")
        procs.append(subprocess.Popen(
            ["etcd", "--name", name, "--data-dir", os.path.join(base, f"etcd-{name}"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", initial, "--initial-cluster-token", "enc365-bench",
             "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
            stdout=log, stderr=log))
    endpoints = [f"http://127.0.0.1:{c}" for _, c, _ in members]
    deadline = time.time() + 60
    while etcdctl(endpoints, "endpoint", "health").returncode != 0:
        if time.time() > deadline:
            sys.exit("etcd did not become healthy in 60 s (see etcd-*.log in the work dir)")
        time.sleep(0.2)
    return procs, endpoints


def make_tree(tree, sites, http, https):
    """gen_vhosts.py's tree with this node's ports, webroots created, notices logged."""
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_vhosts.py"), tree, str(sites)],
                   check=True, stdout=subprocess.DEVNULL)
    for dirpath, _, files in os.walk(tree):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or f == "expected.json" or not (f.endswith(".conf") or "sites-" in dirpath):
                continue
            text = open(p, encoding="utf-8").read()
            new = text.replace("18080", str(http)).replace("18443", str(https))
            if f == "nginx.conf" and dirpath == tree:
                new = new.replace("/logs/error.log warn;", "/logs/error.log notice;")
            if new != text:
                open(p, "w", encoding="utf-8").write(new)
    for line in subprocess.run(["grep", "-rhoE", r"root [^;]+public_html", os.path.join(tree, "sites-available")],
                               capture_output=True, text=True).stdout.split("\n"):
        if line.startswith("root "):
            os.makedirs(line[5:], exist_ok=True)


def start_balancer(base, nginx, node_ports):
    lb = os.path.join(base, "lb")
    for d in ("logs", "run", "tmp"):
        os.makedirs(os.path.join(lb, d), exist_ok=True)
    port = free_port()
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in node_ports)
    with open(os.path.join(lb, "nginx.conf"), "w") as f:
        f.write(f"pid run/nginx.pid;\nerror_log logs/error.log;\nevents {{ worker_connections 1024; }}\n"
                f"http {{\n    access_log off;\n    client_body_temp_path tmp;\n    proxy_temp_path tmp;\n"
                f"    upstream nodes {{\n{servers}    }}\n"
                f"    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n"
                f"            proxy_pass http://nodes;\n            proxy_set_header Host $host;\n"
                f"        }}\n    }}\n}}\n")
    subprocess.run([nginx, "-p", lb, "-c", os.path.join(lb, "nginx.conf")], check=True)
    return lb, port


class Node:
    def __init__(self, base, i, sites, nginx, ours):
        self.name = f"web{i}"
        self.dir = os.path.join(base, self.name)
        self.tree = os.path.join(self.dir, "tree")
        self.http, self.https = free_port(), free_port()
        self.nginx, self.ours = nginx, ours
        os.makedirs(self.dir, exist_ok=True)
        make_tree(self.tree, sites, self.http, self.https)
        self.conf = os.path.join(self.tree, "nginx.conf")
        subprocess.run([nginx, "-p", self.tree, "-c", self.conf], check=True)

    def argv(self, sub, *extra):
        return [self.ours, sub, *extra, "--config", os.path.join(self.dir, "config.toml"),
                "--state-dir", os.path.join(self.dir, "state"), "--nginx-bin", self.nginx,
                "--nginx-conf", self.conf, "--nginx-prefix", self.tree,
                "--https-port", str(self.https)]

    def pipeline_argv(self, sub, *extra):
        return self.argv(sub, *extra, "--http-port", str(self.http), "--skip-dns-check",
                         "--poll-interval", "0.05", "--timeout", "900")

    def agent_argv(self, *extra):
        return self.argv("agent", *extra, "--http-port", str(self.http))

    def reloads(self):
        log = os.path.join(self.tree, "logs", "error.log")
        return open(log).read().count("reconfiguring") if os.path.exists(log) else 0

    def stop(self):
        subprocess.run([self.nginx, "-s", "quit", "-p", self.tree, "-c", self.conf], stderr=subprocess.DEVNULL)


def write_configs(nodes, account, base_url, endpoints):
    for n in nodes:
        cfg = os.path.join(n.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'base_url = "{base_url}"\nclient_id = "{account["client_id"]}"\n'
                    f'access_token = "{account["access_token"]}"\nkey_type = "ecdsa-p256"\n\n'
                    f'[cluster]\nbackend = "etcd"\nendpoints = {json.dumps(endpoints)}\n'
                    f'prefix = "{PREFIX}"\nnode = "{n.name}"\n'
                    f'key_file = "{os.path.join(n.dir, "cluster.key")}"\nlease_ttl = 10\nack_timeout = 300\n')
        os.chmod(cfg, 0o600)
    subprocess.run(nodes[0].argv("cluster-key", "--generate"), check=True, stdout=subprocess.DEVNULL)
    for n in nodes[1:]:
        shutil.copy(os.path.join(nodes[0].dir, "cluster.key"), os.path.join(n.dir, "cluster.key"))
        os.chmod(os.path.join(n.dir, "cluster.key"), 0o600)


def cluster_status(node):
    out = subprocess.run(node.argv("status", "--cluster", "--json"), capture_output=True, text=True)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def all_installed(status, names, sites):
    if not status:
        return False
    certs = {c["site"]: c for c in status.get("certificates", [])}
    return all(site in certs and all(
        any(e["node"] == n and e["state"] == "installed" for e in certs[site]["nodes"]) for n in names)
        for site in sites)


def served(port, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
    except OSError:
        return None


def wait_live(endpoints, names):
    deadline = time.time() + 60
    while True:
        keys = etcdctl(endpoints, "get", "--prefix", "--keys-only", f"{PREFIX}/nodes/").stdout.split()
        if all(f"{PREFIX}/nodes/{n}" in keys for n in names):
            return
        if time.time() > deadline:
            sys.exit(f"agents {names} did not register in etcd within 60 s: {keys}")
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--bin", help="directory holding enc365-nginx and enc365-sim (no build)")
    ap.add_argument("--keep", help="build the sandbox here and keep it")
    a = ap.parse_args()

    bindir = a.bin
    if bindir is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bins"], cwd=ROOT, check=True)
        bindir = os.path.join(ROOT, "target", "release")
    ours = os.path.join(bindir, "enc365-nginx")
    sim_bin = os.path.join(bindir, "enc365-sim")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"

    base = a.keep or tempfile.mkdtemp(prefix="enc365-cluster-bench-")
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)  # nginx workers run unprivileged and must reach the webroots
    etcd, nodes, agents, sim, lb = [], [], [], None, None
    try:
        etcd, endpoints = start_etcd(base)
        nodes = [Node(base, i, a.sites, nginx, ours) for i in range(1, a.nodes + 1)]
        lb, lb_port = start_balancer(base, nginx, [n.http for n in nodes])
        sim = subprocess.Popen([sim_bin, "--listen", "127.0.0.1:0", "--connect", f"127.0.0.1:{lb_port}",
                                "--state-dir", os.path.join(base, "sim"),
                                "--account", "bench@example.com:bench-password"],
                               stdout=subprocess.PIPE, text=True)
        start_line = json.loads(sim.stdout.readline())
        write_configs(nodes, start_line["accounts"][0], start_line["base_url"], endpoints)
        for n in nodes[1:]:
            log = open(os.path.join(n.dir, "agent.log"), "w")
            agents.append(subprocess.Popen(n.agent_argv(), stdout=log, stderr=log))
        wait_live(endpoints, [n.name for n in nodes[1:]])
        before = {n.name: n.reloads() for n in nodes}

        start = time.perf_counter()
        with open(os.path.join(base, "auto.json"), "w") as out, open(os.path.join(base, "auto.log"), "w") as log:
            code = subprocess.run(nodes[0].pipeline_argv("auto", "--json"), stdout=out, stderr=log).returncode
        t_auto = time.perf_counter() - start
        doc = json.load(open(os.path.join(base, "auto.json")))
        issued = sorted(s["site"] for s in doc["sites"] if s["names_issued"] and not s["error"])
        first_name = {s["site"]: s["names_issued"][0] for s in doc["sites"] if s["names_issued"]}
        names = [n.name for n in nodes]
        status = None
        while time.perf_counter() - start < CATCH_UP_TIMEOUT:
            status = cluster_status(nodes[0])
            if all_installed(status, names, issued):
                break
            time.sleep(0.5)
        t_all = time.perf_counter() - start
        caught_up = all_installed(status, names, issued)
        orders = json.load(open(os.path.join(base, "sim", "state.json")))["orders"]
        reloads = {n.name: n.reloads() - before[n.name] for n in nodes}
        differ = [site for site in issued
                  if len({served(n.https, first_name[site]) for n in nodes} - {None}) != 1
                  or any(served(n.https, first_name[site]) is None for n in nodes)]
    finally:
        for p in agents:
            p.terminate()
        for p in agents:
            p.wait(timeout=15)
        for n in nodes:
            n.stop()
        if lb:
            subprocess.run([nginx, "-s", "quit", "-p", lb, "-c", os.path.join(lb, "nginx.conf")],
                           stderr=subprocess.DEVNULL)
        if sim:
            sim.kill()
        for p in etcd:
            p.kill()

    print(f"cluster: {a.nodes} nodes x {a.sites} site files; {len(doc['sites'])} sites selected, "
          f"{len(issued)} issued; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f} (1 min) at the end")
    print(f"auto on {nodes[0].name}:      {t_auto:8.2f} s wall   exit {code}   reloads {doc['reloads']}")
    print(f"auto + agents' catch-up: {t_all:8.2f} s wall   every node installed: {'yes' if caught_up else 'NO'}")
    print(f"orders at the simulator: {len(orders)} for {len(issued)} issued sites")
    print("reloads per node:        " + ", ".join(f"{k} {v}" for k, v in reloads.items()))
    print(f"handshake check:         {len(issued) - len(differ)} of {len(issued)} sites serve one "
          f"certificate on every node")
    for site in differ[:5]:
        print(f"  differs or missing: {site}")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    ok = code == 0 and caught_up and len(orders) == len(issued) and not differ
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
