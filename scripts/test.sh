#!/usr/bin/env bash
# Runs every test: installs the Debian packages the tests need, then the whole cargo test suite
# (unit tests, integration tests against real nginx, fixture and fuzz-corpus replays), the package
# test and README's quick start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PATH:/usr/sbin"
cargo test --locked --all-targets -- --test-threads="${TEST_THREADS:-4}"
# The .deb: build, inspect, install with dpkg, run, purge (tests/package/test-deb.sh).
tests/package/test-deb.sh
# README's quick start, run exactly as written (tests/docs/readme-quickstart.sh).
tests/docs/readme-quickstart.sh
