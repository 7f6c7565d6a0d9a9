#!/usr/bin/env python3
"""Benchmark: `enc365-nginx auto` on an N-site shared-hosting tree (default 200) against the
built-in CA simulator with instant validation.

Usage: bench/auto_bench.py [--sites N] [--key-type T] [--bin DIR] [--keep DIR]

Generates the tree with bench/gen_vhosts.py (ports moved to free loopback ports), starts a real
nginx on it and `enc365-sim`, runs `auto --json` once with keys of type T (default ecdsa-p256),
and prints the wall time, the per-phase times the tool records in its `--json` `timings`
(discover+preflight, keys, ordering, validation, polling, install prep, nginx -t, reload+verify),
the nginx reloads and `nginx -t` runs, the tool's own peak RSS (its VmHWM from `timings`, not
Python's, not nginx's), what was issued — then the nothing-to-do runs a timer makes (`renew`,
`auto` again, and `status`), once with the files just read and once with every file of the
sandbox dropped from the page cache first (`POSIX_FADV_DONTNEED`: a timer's run hours after the
last one finds its files on the disk; directories and inodes stay cached, so a truly cold run
costs somewhat more) — and, as references measured in the same invocation, `nginx -t` and one
`nginx -s reload` on the same tree. It builds both binaries as released first:

    cargo build --release --locked -p enc365-nginx -p enc365-sim --bins

(`--bin DIR` takes them from DIR instead). Exits 1 when the run fails or reloads nginx more
than twice.

On ext4 without a journal, a file created within a minute or so of many files being deleted
(up to six while the deleted inodes' blocks are not yet written back) makes the kernel look at
every one of those inodes first: a run started right after another run's sandbox was deleted
spends seconds of CPU in the kernel that a run on a settled file system does not. The bench
says so when its sandbox is on such a file system; keep sandboxes (`--keep`) and delete them
after a series, or wait five minutes between a deletion and a run.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def drop_from_page_cache(top):
    """Asks the kernel to drop every regular file under `top` from the page cache (no root
    needed, nothing else on the machine touched): the next read of each comes from the disk."""
    for dirpath, _, files in os.walk(top):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv, **kw):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    timed.cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status), proc


TICK = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """Seconds of CPU the whole machine has spent busy (all cores, not idle or waiting on I/O)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def nginx_cpu(pid_file):
    """CPU seconds of nginx so far: its master, the workers it reaped and the workers alive."""
    try:
        master = int(open(pid_file).read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(stat[1])
        if pid == master:
            total += sum(int(x) for x in stat[11:15])  # utime stime cutime cstime
        elif ppid == master:
            total += int(stat[11]) + int(stat[12])
    return total / TICK


def process_cpu(pid):
    """CPU seconds of one process so far (user + system)."""
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICK


def ext4_without_journal(path):
    """Whether `path` is on an ext4 file system without a journal (see the module's doc)."""
    try:
        st = os.stat(path)
        dev = os.path.basename(os.readlink(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
    except OSError:
        return False
    if not os.path.isdir(f"/proc/fs/ext4/{dev}"):
        return False
    journals = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
    return not any(j.rsplit("-", 1)[0] == dev for j in journals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--key-type", default="ecdsa-p256",
                    help="rsa2048, rsa3072, rsa4096, ecdsa-p256 or ecdsa-p384")
    ap.add_argument("--bin", help="directory holding enc365-nginx and enc365-sim (no build)")
    ap.add_argument("--keep", help="build the sandbox here and keep it")
    a = ap.parse_args()

    bindir = a.bin
    if bindir is None:
        build = ["cargo", "build", "--release", "--locked", "--quiet", "-p", "enc365-nginx",
                 "-p", "enc365-sim", "--bins"]
        print("building:", " ".join(build), file=sys.stderr)
        subprocess.run(build, cwd=ROOT, check=True)
        bindir = os.path.join(ROOT, "target", "release")
    ours = os.path.join(bindir, "enc365-nginx")
    sim_bin = os.path.join(bindir, "enc365-sim")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"

    load_before = os.getloadavg()[0]
    base = a.keep or tempfile.mkdtemp(prefix="enc365-auto-bench-")
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)  # nginx workers run unprivileged and must reach the webroots
    if ext4_without_journal(base):
        print(f"note: {base} is on ext4 without a journal: a run started within minutes of a "
              "large deletion (another run's sandbox) measures the file system too; see this "
              "script's doc", file=sys.stderr)
    tree = os.path.join(base, "tree")
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_vhosts.py"), tree, str(a.sites)],
                   check=True, stdout=subprocess.DEVNULL)
    http, https = free_port(), free_port()
    for dirpath, _, files in os.walk(tree):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or f == "expected.json" or not (f.endswith(".conf") or "sites-" in dirpath):
                continue
            text = open(p, encoding="utf-8").read()
            new = text.replace("18080", str(http)).replace("18443", str(https))
            if new != text:
                open(p, "w", encoding="utf-8").write(new)
    # Webroots exist on a real host; create them so static and PHP sites validate from their root.
    for line in subprocess.run(["grep", "-rhoE", r"root [^;]+public_html", os.path.join(tree, "sites-available")],
                               capture_output=True, text=True).stdout.split("\n"):
        if line.startswith("root "):
            os.makedirs(line[5:], exist_ok=True)
    conf = os.path.join(tree, "nginx.conf")
    subprocess.run([nginx, "-p", tree, "-c", conf], check=True)
    sim = None
    try:
        sim = subprocess.Popen([sim_bin, "--listen", "127.0.0.1:0", "--connect", f"127.0.0.1:{http}",
                                "--account", "bench@example.com:bench-password"],
                               stdout=subprocess.PIPE, text=True)
        start_line = json.loads(sim.stdout.readline())
        account = start_line["accounts"][0]
        cfg = os.path.join(base, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'base_url = "{start_line["base_url"]}"\nclient_id = "{account["client_id"]}"\n'
                    f'access_token = "{account["access_token"]}"\nkey_type = "{a.key_type}"\n')
        os.chmod(cfg, 0o600)

        t_test, _, code, _ = timed([nginx, "-t", "-q", "-p", tree, "-c", conf])
        t_reload, _, code, _ = timed([nginx, "-s", "reload", "-p", tree, "-c", conf])
        time.sleep(1)

        argv = [ours, "auto", "--json", "--skip-dns-check", "--config", cfg,
                "--state-dir", os.path.join(base, "state"), "--nginx-bin", nginx,
                "--nginx-conf", conf, "--nginx-prefix", tree, "--https-port", str(https),
                "--http-port", str(http), "--poll-interval", "0.05", "--timeout", "600"]
        # ENC365_BENCH_WRAP="perf record -g -o FILE" profiles the first run (not the others).
        wrap = os.environ.get("ENC365_BENCH_WRAP", "").split()
        out_path = os.path.join(base, "auto.json")
        pid_file = os.path.join(tree, "run", "nginx.pid")
        before = (machine_busy(), nginx_cpu(pid_file), process_cpu(sim.pid))
        with open(out_path, "w") as out, open(os.path.join(base, "auto.log"), "w") as log:
            wall, rss, code, _ = timed(wrap + argv, stdout=out, stderr=log)
        tool_cpu = timed.cpu
        cpu = {"machine": machine_busy() - before[0], "nginx": nginx_cpu(pid_file) - before[1],
               "simulator": process_cpu(sim.pid) - before[2], "the tool": tool_cpu}
        doc = json.load(open(out_path))
        # The runs a timer makes afterwards: nothing is due, nothing to do; then the same with
        # the sandbox's files on the disk only.
        status = [ours, "status", "--json", "--config", cfg, "--state-dir",
                  os.path.join(base, "state"), "--nginx-conf", conf, "--nginx-prefix", tree]
        again = {}
        for cache in ("cached", "dropped"):
            for sub in ("renew", "auto", "status"):
                if cache == "dropped":
                    drop_from_page_cache(base)
                command = status if sub == "status" else [ours, sub] + argv[2:]
                with open(os.path.join(base, f"{sub}-again-{cache}.json"), "w") as out:
                    again[(sub, cache)] = timed(command, stdout=out, stderr=subprocess.DEVNULL)
    finally:
        subprocess.run([nginx, "-s", "quit", "-p", tree, "-c", conf], stderr=subprocess.DEVNULL)
        if sim:
            sim.kill()

    if "sites" not in doc:
        print(f"auto failed (exit {code}): {doc.get('error', doc)}", file=sys.stderr)
        return 1
    sites = doc["sites"]
    issued = [s for s in sites if s["names_issued"] and not s["error"]]
    failed = [s for s in sites if s["error"]]
    names = sum(len(s["names_issued"]) for s in issued)
    t = doc.get("timings", {})
    own_rss = t.get("peak_rss_kib")
    print(f"tree: {a.sites} site files, {len(sites)} sites selected; key type {a.key_type}; "
          f"{os.cpu_count()} CPUs; load (1 min) {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} at the end")
    print(f"auto:      {wall:8.2f} s wall   exit {code}   reloads {doc['reloads']}   "
          f"nginx -t runs {doc.get('nginx_tests', '?')}")
    print(f"peak RSS:  the tool itself {own_rss/1024 if own_rss else float('nan'):6.1f} MiB   "
          f"(wait4 on the tool, its nginx -t children included: {rss/1024:6.1f} MiB)")
    # keys_wait is summed over the orders placed at once (8 for Encryption365): it can exceed
    # the wall time; the wall time spent ordering (keys waited for included) is `ordering`.
    phases = [("discover+preflight", t.get("discover_ms", 0) + t.get("preflight_ms", 0)),
              ("keys (waited, sum)", t.get("keys_wait_ms", 0)),
              ("ordering", t.get("ordering_ms", 0)),
              ("validation", t.get("validation_ms", 0)),
              ("polling", t.get("polling_ms", 0)),
              ("temporary removed", t.get("remove_temporary_ms", 0)),
              ("key pair checks", t.get("pair_check_ms", 0)),
              ("install prep", t.get("install_prep_ms", 0)),
              ("  of it live files", t.get("live_files_ms", 0)),
              ("nginx -t", t.get("nginx_t_ms", 0)),
              ("reload+verify", t.get("reload_verify_ms", 0)),
              ("  of it verify", t.get("verify_ms", 0)),
              ("records", t.get("records_ms", 0))]
    for name, ms in phases:
        print(f"  {name:<20} {ms/1000:8.2f} s   {ms/max(wall*1000, 1)*100:5.1f} %")
    peaks = [(name, t[f"{key}_peak_rss_kib"]) for name, key in
             [("discover", "discover"), ("preflight", "preflight"), ("ordering", "ordering"),
              ("validation", "validation"), ("polling", "polling"),
              ("install prep", "install_prep"), ("nginx -t", "nginx_t"),
              ("reload+verify", "reload_verify"), ("records", "records")]
             if f"{key}_peak_rss_kib" in t]
    if peaks:
        print("peak RSS by phase (MiB): " + ", ".join(f"{n} {k/1024:.1f}" for n, k in peaks))
    print(f"  {'keys (CPU, all cores)':<20} {t.get('keys_ms', 0)/1000:8.2f} s   "
          f"(overlapped with ordering; {t.get('keys_ms', 0)/max(len(issued), 1):.1f} ms per key)")
    if "after_last_key_ms" in t:
        keys_s = t.get("keys_ms", 0) / 1000
        goal = keys_s / os.cpu_count() + 10
        print(f"  {'after the last key':<20} {t['after_last_key_ms']/1000:8.2f} s   "
              f"(no key generation overlaps it)")
        if a.key_type.startswith("rsa"):
            print(f"RSA goal:  wall {wall:.2f} s against key CPU / {os.cpu_count()} cores + 10 s "
                  f"= {goal:.2f} s: {'met' if wall <= goal else 'NOT met'} "
                  f"({goal - wall:+.2f} s)")
    print(f"CPU:       the machine was busy {cpu['machine']:.2f} s of {wall * os.cpu_count():.2f} s "
          f"({os.cpu_count()} cores x wall): the tool {cpu['the tool']:.2f} s (its nginx -t runs "
          f"included), nginx {cpu['nginx']:.2f} s, the simulator {cpu['simulator']:.2f} s")
    for (sub, cache), (w, _, c, _) in again.items():
        print(f"nothing to do: {sub:<6} {w:6.2f} s   exit {c}   ({w/t_test:.2f} x nginx -t)   "
              f"files {'just read' if cache == 'cached' else 'dropped from the page cache'}")
    print(f"issued:    {len(issued)} certificates covering {names} names; {len(failed)} failed; "
          f"{wall/max(len(issued),1)*1000:.1f} ms per certificate")
    print(f"reference: nginx -t {t_test:.2f} s; one nginx -s reload {t_reload:.2f} s "
          f"(auto = {wall/t_test:.1f} x nginx -t)")
    for s in failed[:5]:
        print(f"  failed {s['site']}: {s['error']}")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if code == 0 and doc["reloads"] <= 2 and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
