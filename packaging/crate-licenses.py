#!/usr/bin/env python3
"""Reads `cargo metadata --format-version 1` on stdin and prints the crates linked into the
binaries (the normal-dependency closure of the workspace's members — the tool, the simulator and
the crates they share — for the platform metadata was filtered to), one per line as a DEP-5
continuation line: " name version: license". The workspace's own crates are the package itself
and are not listed."""
import json
import sys

meta = json.load(sys.stdin)
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
packages = {p["id"]: p for p in meta["packages"]}
members = set(meta["workspace_members"])
seen, todo = set(), list(members)
while todo:
    node = todo.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(kind["kind"] is None for kind in dep["dep_kinds"]):
            todo.append(dep["pkg"])
seen -= members
for name, version, license in sorted(
    (packages[i]["name"], packages[i]["version"], packages[i].get("license") or "see crate")
    for i in seen
):
    print(f" {name} {version}: {license}")
