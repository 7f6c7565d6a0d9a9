#!/usr/bin/env bash
# Runs README.md's quick start exactly as written, so the README cannot rot (README.zh-CN.md must
# hold the same block): the shell block
# between `<!-- quickstart -->` and `<!-- /quickstart -->` is extracted and run with `bash -e`
# from the repository root (it builds, copies examples/sandbox to ./try, starts its own nginx and
# enc365-sim on loopback, registers, and runs products, plan, auto and discover). Then checks
# that auto issued and installed the sandbox's certificates.
#
# As root it runs in a private network namespace, so the block's fixed loopback ports cannot
# collide with anything else on the machine. Prints "README quick start: PASS" or "... FAIL: why"
# and exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export PATH="$PATH:/usr/sbin:/sbin"

fail() {
    echo "README quick start: FAIL: $*" >&2
    exit 1
}

work=$(mktemp -d /tmp/enc365-quickstart.XXXXXX)
cleanup() {
    nginx -p "$root/try" -c nginx.conf -e logs/error.log -s stop >/dev/null 2>&1 || true
    rm -rf "$work" "$root/try"
}
trap cleanup EXIT

quickstart() {
    awk '/^<!-- quickstart -->$/ {on=1; next} /^<!-- \/quickstart -->$/ {on=0} on' "$1" | sed -e '/^```/d'
}
block=$(quickstart README.md)
[ -n "$block" ] || fail "README.md has no <!-- quickstart --> block"
[ "$(quickstart README.zh-CN.md)" = "$block" ] ||
    fail "README.zh-CN.md's quick start block differs from README.md's; keep the two the same"
{
    echo 'set -euo pipefail'
    # If a line fails, stop what the block started (its last line does that when all goes well).
    echo "trap 'set +e; nginx -p \"$root/try\" -c nginx.conf -e logs/error.log -s stop 2>/dev/null; kill \$(jobs -p) 2>/dev/null; true' EXIT"
    printf '%s\n' "$block"
} >"$work/quickstart.sh"

rm -rf "$root/try"
start=$(date +%s)
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null && command -v ip >/dev/null; then
    unshare --net bash -c 'ip link set lo up && exec bash "$1"' _ "$work/quickstart.sh" >"$work/out" 2>&1
else
    bash "$work/quickstart.sh" >"$work/out" 2>&1
fi
rc=$?
if [ $rc != 0 ]; then
    sed 's/^/  | /' "$work/out" >&2
    fail "the quick start block exited $rc"
fi

for site in shop.example.com blog.example.com app.example.com legacy.example.com; do
    grep -q "HTTPS verified for $site" "$work/out" || {
        sed 's/^/  | /' "$work/out" >&2
        fail "auto did not verify HTTPS for $site"
    }
    [ -s "try/enc365/live/$site/fullchain.pem" ] || fail "no certificate installed for $site"
done
grep -q '1 needs a certificate' "$work/out" || fail "discover after auto does not report 1 site left"

echo "README quick start: PASS ($(($(date +%s) - start)) s)" >&2
