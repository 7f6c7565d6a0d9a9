#!/usr/bin/env python3
"""Benchmark: `enc365-nginx discover --json` against `nginx -t` and crossplane on the same tree.

Usage: bench/discover_bench.py [--sites N] [--runs K] [--tree DIR] [--bin FILE] [--before FILE]
                               [--reference-runs R]

Generates an N-site shared-hosting tree with bench/gen_vhosts.py (default N=10000), then runs each
command K times (default 5) in this one invocation and prints the median wall time, the median
CPU time (user and system: steadier than wall time on a shared machine), the peak RSS, and the
ratios the project holds itself to: discover at most 1/20 of crossplane's time and 1/10 of
`nginx -t`'s, with peak RSS under 100 MiB up to 10,000 sites — and, as the floor, its ratio to `cat` of the same
files (every file nginx reads, fed to one `xargs -0 cat`). `--bin` takes that binary instead of
building target/release; `--before` also measures an older binary on the same tree, its runs
taken in turn with ours (so a machine that slows down during the series weighs on both alike),
and prints both peak RSS figures. `--reference-runs` runs `cat`, `nginx -t` and crossplane fewer
(or more) times than discover.
crossplane comes from PyPI (nginx-crossplane) into a venv under target/bench-venv the first time. A reference that fails on the tree (`nginx -t`
rejecting it) is reported as unavailable with its reason, and the run goes on. Exits 1 when a goal
is missed.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(argv):
    """Runs argv with stdout discarded; returns (wall seconds, peak RSS KiB, exit status, the
    line of stderr that says why it failed: nginx's last `[emerg]`, else the last line, CPU
    seconds: user and system, the process's own)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    lines = err.decode(errors="replace").strip().splitlines() or [""]
    # nginx's reason is its `[emerg]` line; its last line only says the test failed.
    last = next((l for l in reversed(lines) if "[emerg]" in l), lines[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status), last, cpu


def report(name, walls, rss, cpus):
    """Prints one contender's line: median and fastest wall time, median CPU, peak RSS."""
    med = statistics.median(walls)
    print(f"{name:<28} median {med*1000:9.1f} ms   min {min(walls)*1000:9.1f} ms   "
          f"CPU {statistics.median(cpus)*1000:8.1f} ms   peak RSS {max(rss)/1024:7.1f} MiB   "
          f"({len(walls)} runs)")
    return med, max(rss), statistics.median(cpus)


def measure(name, argv, runs, required=True):
    """Median wall time and peak RSS of `runs` runs of argv. A reference that fails (`nginx -t`
    on a tree it rejects) is reported as unavailable with its reason: (None, reason)."""
    walls, rss, cpus = [], [], []
    for _ in range(runs):
        wall, peak, code, last, cpu = run_once(argv)
        if code != 0:
            if required:
                sys.exit(f"{name} failed (exit {code}): {' '.join(argv)}\n{last}")
            print(f"{name:<28} unavailable: exit {code}: {last}")
            return None, last or f"exit {code}"
        walls.append(wall)
        rss.append(peak)
        cpus.append(cpu)
    med, peak, _ = report(name, walls, rss, cpus)
    return med, peak


def measure_pair(contenders, runs):
    """`runs` runs of each (name, argv) in `contenders`, taken in turn (one of each, then the
    next round), so a machine that slows down or speeds up during the series weighs on each
    alike. Returns (median wall, peak RSS, median CPU) per contender, in order."""
    results = [([], [], []) for _ in contenders]
    for _ in range(runs):
        for (name, argv), (walls, rss, cpus) in zip(contenders, results):
            wall, peak, code, last, cpu = run_once(argv)
            if code != 0:
                sys.exit(f"{name} failed (exit {code}): {' '.join(argv)}\n{last}")
            walls.append(wall)
            rss.append(peak)
            cpus.append(cpu)
    return [report(name, *r) for (name, _), r in zip(contenders, results)]


def crossplane_bin():
    venv = os.path.join(ROOT, "target", "bench-venv")
    exe = os.path.join(venv, "bin", "crossplane")
    if not os.path.exists(exe):
        print("installing crossplane (PyPI nginx-crossplane) into", venv, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "nginx-crossplane"],
                       check=True)
    return exe


def nginx_files(nginx, tree, conf, ours):
    """Every file nginx reads for this configuration, from `nginx -T`'s `# configuration file`
    lines (each once); when nginx rejects the tree (and so dumps nothing), the `files` list of
    `discover --json` (the same list and order, as the fixture tests check). Returns the files
    and where the list came from."""
    out = subprocess.run([nginx, "-T", "-q", "-p", tree, "-c", conf], capture_output=True).stdout
    seen = {}
    for line in out.split(b"\n"):
        if line.startswith(b"# configuration file ") and line.endswith(b":"):
            seen.setdefault(line[len(b"# configuration file "):-1].decode(), None)
    if seen:
        return list(seen), "nginx -T"
    doc = json.loads(subprocess.run([ours, "discover", "--json", "--nginx-conf", conf],
                                    capture_output=True, check=True).stdout)
    return doc["files"], "discover --json (nginx -T dumped nothing)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tree", help="reuse or create the tree here instead of a temp dir")
    ap.add_argument("--bin", help="the enc365-nginx binary to measure (no build)")
    ap.add_argument("--before", help="an older enc365-nginx binary to measure beside it")
    ap.add_argument("--reference-runs", type=int,
                    help="runs of `cat`, `nginx -t` and crossplane (default: --runs; crossplane "
                         "takes about 30 s a run at 50,000 sites)")
    a = ap.parse_args()
    ref_runs = a.reference_runs or a.runs

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
          f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f} (1 min) at the start")

    # Warm the page cache so every contender reads from memory.
    measure("warm-up (discover)", [ours, "discover", "--json", "--nginx-conf", conf], 1)
    contenders = [("enc365-nginx discover --json",
                   [ours, "discover", "--json", "--nginx-conf", conf])]
    if a.before:
        contenders.append(("before: discover --json",
                           [a.before, "discover", "--json", "--nginx-conf", conf]))
    measured = measure_pair(contenders, a.runs)
    t_ours, rss_ours, cpu_ours = measured[0]
    if a.before:
        t_before, rss_before, cpu_before = measured[1]
    listing = os.path.join(os.path.dirname(tree), "files-read.lst")
    files, source = nginx_files(nginx, tree, conf, ours)
    with open(listing, "wb") as f:
        for path in files:
            f.write(path.encode() + b"\0")
    print(f"files for cat: {len(files)}, listed by {source}")
    t_cat, _ = measure("cat of the same files", ["sh", "-c", f"xargs -0 cat < '{listing}' > /dev/null"],
                       ref_runs)
    t_nginx, why_nginx = measure("nginx -t", [nginx, "-t", "-q", "-p", tree, "-c", conf], ref_runs,
                                 required=False)
    t_xp, why_xp = measure("crossplane parse", [xp, "parse", conf, "-o", os.devnull], ref_runs,
                           required=False)

    rss_mib = rss_ours / 1024
    print()
    missed = False
    for label, t_ref, why, goal in (("crossplane", t_xp, why_xp, 20), ("nginx -t  ", t_nginx, why_nginx, 10)):
        if t_ref is None:
            print(f"{label} / discover = unavailable ({why})")
            continue
        ratio = t_ref / t_ours
        missed |= ratio < goal
        print(f"{label} / discover = {ratio:6.1f}x   (goal >= {goal}x)   {'ok' if ratio >= goal else 'MISSED'}")
    if a.sites <= 10000:
        missed |= rss_mib >= 100
        print(f"discover peak RSS     = {rss_mib:6.1f} MiB (goal < 100 up to 10,000 sites)   "
              f"{'ok' if rss_mib < 100 else 'MISSED'}")
    else:
        print(f"discover peak RSS     = {rss_mib:6.1f} MiB (the < 100 MiB goal is for up to 10,000 "
              f"sites)")
    print(f"discover / cat        = {t_ours / t_cat:6.2f}x   (the floor: reading the same files; "
          f"cat {t_cat*1000:.1f} ms)")
    if a.before:
        print(f"discover / before     = {t_ours / t_before:6.2f}x   (same tree, same invocation; "
              f"CPU {cpu_ours / cpu_before:.2f}x; peak RSS {rss_mib:.1f} vs "
              f"{rss_before / 1024:.1f} MiB)")
    print(f"load: {os.getloadavg()[0]:.2f} (1 min) at the end")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
