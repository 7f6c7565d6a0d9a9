#!/usr/bin/env python3
"""Benchmark: `enc365-nginx discover --json` against `nginx -t` and crossplane on the same tree.

Usage: bench/discover_bench.py [--sites N] [--runs K] [--tree DIR] [--bin FILE] [--before FILE]

Generates an N-site shared-hosting tree with bench/gen_vhosts.py (default N=10000), then runs each
command K times (default 5) in this one invocation and prints the median wall time, the peak RSS,
and the ratios the project holds itself to: discover at most 1/20 of crossplane's time and 1/10 of
`nginx -t`'s, with peak RSS under 100 MiB — and, as the floor, its ratio to `cat` of the same
files (every file nginx reads, fed to one `xargs -0 cat`). `--bin` takes that binary instead of
building target/release; `--before` also measures an older binary on the same tree. crossplane comes from PyPI (nginx-crossplane) into a
venv under target/bench-venv the first time. Exits 1 when a goal is missed.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(argv):
    """Runs argv with output discarded; returns (wall seconds, peak RSS KiB, exit status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def measure(name, argv, runs):
    walls, rss = [], []
    for _ in range(runs):
        wall, peak, code = run_once(argv)
        if code != 0:
            sys.exit(f"{name} failed (exit {code}): {' '.join(argv)}")
        walls.append(wall)
        rss.append(peak)
    med = statistics.median(walls)
    print(f"{name:<28} median {med*1000:9.1f} ms   min {min(walls)*1000:9.1f} ms   "
          f"peak RSS {max(rss)/1024:7.1f} MiB   ({runs} runs)")
    return med, max(rss)


def crossplane_bin():
    venv = os.path.join(ROOT, "target", "bench-venv")
    exe = os.path.join(venv, "bin", "crossplane")
    if not os.path.exists(exe):
        print("installing crossplane (PyPI nginx-crossplane) into", venv, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "nginx-crossplane"],
                       check=True)
    return exe


def nginx_files(nginx, tree, conf):
    """Every file nginx reads for this configuration, from `nginx -T`'s `# configuration file`
    lines (each once)."""
    out = subprocess.run([nginx, "-T", "-q", "-p", tree, "-c", conf], capture_output=True).stdout
    seen = {}
    for line in out.split(b"\n"):
        if line.startswith(b"# configuration file ") and line.endswith(b":"):
            seen.setdefault(line[len(b"# configuration file "):-1].decode(), None)
    return list(seen)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tree", help="reuse or create the tree here instead of a temp dir")
    ap.add_argument("--bin", help="the enc365-nginx binary to measure (no build)")
    ap.add_argument("--before", help="an older enc365-nginx binary to measure beside it")
    a = ap.parse_args()

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ours = a.bin
    if ours is None:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
        ours = os.path.join(ROOT, "target", "release", "enc365-nginx")
    xp = crossplane_bin()

    tmp = None
    tree = a.tree
    if tree is None:
        tmp = tempfile.mkdtemp(prefix="enc365-bench-")
        tree = os.path.join(tmp, "tree")
    if not os.path.exists(os.path.join(tree, "nginx.conf")):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_vhosts.py"), tree,
                        str(a.sites)], check=True, stdout=subprocess.DEVNULL)
    conf = os.path.join(tree, "nginx.conf")
    nfiles = sum(len(f) for _, _, f in os.walk(os.path.join(tree, "sites-enabled")))
    print(f"tree: {tree} ({a.sites} sites, {nfiles} files in sites-enabled); "
          f"{os.cpu_count()} CPUs")

    # Warm the page cache so every contender reads from memory.
    measure("warm-up (discover)", [ours, "discover", "--json", "--nginx-conf", conf], 1)
    t_ours, rss_ours = measure("enc365-nginx discover --json",
                               [ours, "discover", "--json", "--nginx-conf", conf], a.runs)
    if a.before:
        t_before, _ = measure("before: discover --json",
                              [a.before, "discover", "--json", "--nginx-conf", conf], a.runs)
    listing = os.path.join(os.path.dirname(tree), "files-read.lst")
    with open(listing, "wb") as f:
        for path in nginx_files(nginx, tree, conf):
            f.write(path.encode() + b"\0")
    t_cat, _ = measure("cat of the same files", ["sh", "-c", f"xargs -0 cat < '{listing}' > /dev/null"],
                       a.runs)
    t_nginx, _ = measure("nginx -t", [nginx, "-t", "-q", "-p", tree, "-c", conf], a.runs)
    t_xp, _ = measure("crossplane parse", [xp, "parse", conf, "-o", os.devnull], a.runs)

    r_xp, r_nginx = t_xp / t_ours, t_nginx / t_ours
    rss_mib = rss_ours / 1024
    print()
    print(f"crossplane / discover = {r_xp:6.1f}x   (goal >= 20x)   {'ok' if r_xp >= 20 else 'MISSED'}")
    print(f"nginx -t   / discover = {r_nginx:6.1f}x   (goal >= 10x)   {'ok' if r_nginx >= 10 else 'MISSED'}")
    print(f"discover peak RSS     = {rss_mib:6.1f} MiB (goal < 100)   {'ok' if rss_mib < 100 else 'MISSED'}")
    print(f"discover / cat        = {t_ours / t_cat:6.2f}x   (the floor: reading the same files)")
    if a.before:
        print(f"discover / before     = {t_ours / t_before:6.2f}x   (same tree, same invocation)")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if (r_xp >= 20 and r_nginx >= 10 and rss_mib < 100) else 1


if __name__ == "__main__":
    sys.exit(main())
