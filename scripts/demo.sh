#!/usr/bin/env bash
# The main job on an embedded default: a sandboxed nginx tree with sample sites, read by
# `enc365-nginx discover`. Everything it writes stays under ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PATH:/usr/sbin"
cargo build --release --locked --quiet
rm -rf demo && mkdir -p demo && cp -r examples/sandbox demo/nginx
./target/release/enc365-nginx discover --nginx-conf demo/nginx/nginx.conf --nginx-prefix demo/nginx
