#!/usr/bin/env bash
# The .deb end to end, on this machine: build it (packaging/build-deb.sh), check its file list,
# modes and control fields, install it with dpkg (a policy-rc.d that exits 101 keeps every service
# stopped), run the installed binary against a copy of examples/sandbox, check the manual pages,
# completions, timer enablement (and the cluster agent's unit installed, not enabled), reinstall over a changed config (kept), remove (config kept),
# then purge it and check nothing is left.
#
# Needs root (dpkg). Refuses to run when enc365-nginx is already installed from elsewhere.
# ENC365_DEB_PROFILE=release tests the release build (default here: dev, which the test suite has
# already compiled). lintian runs when it is installed (errors fail; ENC365_LINTIAN=0 skips it).
# Prints "package test: PASS" or "package test: FAIL: why" and exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/sbin:/sbin"

fail() {
    echo "package test: FAIL: $*" >&2
    exit 1
}
step() { echo "package test: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    echo "package test: SKIP: installing a package needs root" >&2
    exit 0
fi
if dpkg-query -W -f '${Status}' enc365-nginx 2>/dev/null | grep -q 'install ok'; then
    fail "enc365-nginx is already installed here; this test installs and purges it." \
        "Remove it first (dpkg --purge enc365-nginx) or run the other tests alone."
fi

work=$(mktemp -d /tmp/enc365-deb-test.XXXXXX)
installed=0
created_policy=0
cleanup() {
    if [ "$installed" = 1 ]; then
        dpkg --purge enc365-nginx >/dev/null 2>&1 || true
    fi
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$work"
}
trap cleanup EXIT

# dpkg with a wait for the lock another apt/dpkg run (another test's deps.sh) may hold.
run_dpkg() {
    local tries=0 log=$work/dpkg.log
    until dpkg "$@" >"$log" 2>&1; do
        if grep -q 'lock' "$log" && [ $tries -lt 60 ]; then
            tries=$((tries + 1))
            sleep 2
            continue
        fi
        cat "$log" >&2
        return 1
    done
    cat "$log" >&2
}

start=$(date +%s)
step "building the package (profile ${ENC365_DEB_PROFILE:=dev})"
export ENC365_DEB_PROFILE
deb=$(packaging/build-deb.sh "$work/out") || fail "packaging/build-deb.sh failed"
[ -f "$deb" ] || fail "build-deb.sh printed no package path"
step "built $(basename "$deb"): $(du -k "$deb" | cut -f1) KiB in $(($(date +%s) - start)) s"

# --- the archive: control fields, file list, owners and modes -------------------------------
dpkg-deb --info "$deb" >"$work/info" || fail "dpkg-deb --info cannot read $deb"
version=$(dpkg-deb --field "$deb" Version)
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "${version%-*}" = "$cargo_version" ] || fail "package version $version is not Cargo's $cargo_version"
depends=$(dpkg-deb --field "$deb" Depends)
case "$depends" in *libc6*) ;; *) fail "Depends lacks libc6: $depends" ;; esac
case "$depends" in *ca-certificates*) ;; *) fail "Depends lacks ca-certificates: $depends" ;; esac
recommends=$(dpkg-deb --field "$deb" Recommends)
[ "$recommends" = "nginx | nginx-full | nginx-light | openresty" ] || fail "Recommends is $recommends"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$work/conffiles"
grep -qx /etc/enc365-nginx/config.toml "$work/conffiles" || fail "config.toml is not a conffile"

dpkg-deb --contents "$deb" | awk '{print $1, $2, $6}' >"$work/contents"
expect() { # MODE PATH
    grep -qx -- "$1 root/root ./$2" "$work/contents" ||
        fail "expected $1 root/root ./$2 in the package; it has: $(grep -F -- "./$2" "$work/contents" || echo nothing)"
}
expect -rwxr-xr-x usr/bin/enc365-nginx
expect -rwxr-xr-x usr/bin/enc365-sim
expect -rw------- etc/enc365-nginx/config.toml
expect -rw-r--r-- lib/systemd/system/enc365-nginx-renew.service
expect -rw-r--r-- lib/systemd/system/enc365-nginx-renew.timer
expect -rw-r--r-- lib/systemd/system/enc365-nginx-agent.service
expect -rw-r--r-- usr/share/doc/enc365-nginx/copyright
expect -rw-r--r-- usr/share/doc/enc365-nginx/changelog.Debian.gz
for page in enc365-nginx enc365-nginx-discover enc365-nginx-register enc365-nginx-products \
    enc365-nginx-account enc365-nginx-auto enc365-nginx-plan enc365-sim; do
    expect -rw-r--r-- "usr/share/man/man1/$page.1.gz"
done
for bin in enc365-nginx enc365-sim; do
    expect -rw-r--r-- "usr/share/bash-completion/completions/$bin"
    expect -rw-r--r-- "usr/share/zsh/vendor-completions/_$bin"
    expect -rw-r--r-- "usr/share/fish/vendor_completions.d/$bin.fish"
done
expect -rw-r--r-- usr/share/enc365-nginx/ssl-params.conf
if grep -v '^d' "$work/contents" | grep -v -e ' root/root ' >/dev/null; then
    fail "files not owned by root: $(grep -v ' root/root ' "$work/contents")"
fi

# The units say what the design asks for.
unit=packaging/systemd/enc365-nginx-renew.service
timer=packaging/systemd/enc365-nginx-renew.timer
for line in 'Type=oneshot' 'ExecStart=/usr/bin/enc365-nginx renew' 'ProtectSystem=strict' \
    'PrivateTmp=yes' 'ProtectHome=read-only' 'NoNewPrivileges=yes'; do
    grep -qx -- "$line" "$unit" || fail "$unit lacks $line"
done
for line in 'OnCalendar=*-*-* 00,12:00:00' 'RandomizedDelaySec=1h' 'Persistent=true'; do
    grep -qxF -- "$line" "$timer" || fail "$timer lacks $line"
done
# The cluster agent: a long-running service, hardened exactly like the renewal service (every
# sandboxing line of the one is in the other).
agent=packaging/systemd/enc365-nginx-agent.service
for line in 'Type=simple' 'ExecStart=/usr/bin/enc365-nginx agent' 'Restart=on-failure' \
    'WantedBy=multi-user.target'; do
    grep -qx -- "$line" "$agent" || fail "$agent lacks $line"
done
sed -n '/^ProtectSystem=/,/^RestrictAddressFamilies=/p' "$unit" | grep -v '^#' >"$work/hardening"
[ "$(wc -l <"$work/hardening")" -ge 15 ] || fail "could not read the renewal service's hardening"
while read -r line; do
    grep -qxF -- "$line" "$agent" || fail "$agent lacks the renewal service's $line"
done <"$work/hardening"

# --- lintian (when installed): errors fail, warnings are printed -----------------------------
if [ "${ENC365_LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
    lstart=$(date +%s)
    lintian --tag-display-limit 0 "$deb" >"$work/lintian" 2>&1
    sed 's/^/  lintian: /' "$work/lintian" >&2
    if grep -q '^E:' "$work/lintian"; then
        fail "lintian reports errors"
    fi
    step "lintian: no errors, $(grep -c '^W:' "$work/lintian") warnings ($(($(date +%s) - lstart)) s)"
fi

# --- install, with every service start refused -----------------------------------------------
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
step "installing with dpkg"
installed=1
run_dpkg --install "$deb" || fail "dpkg --install failed"

mode() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
[ "$(mode /usr/bin/enc365-nginx)" = "755 root:root" ] || fail "/usr/bin/enc365-nginx is $(mode /usr/bin/enc365-nginx)"
[ "$(mode /usr/bin/enc365-sim)" = "755 root:root" ] || fail "/usr/bin/enc365-sim is $(mode /usr/bin/enc365-sim)"
[ "$(mode /etc/enc365-nginx/config.toml)" = "600 root:root" ] ||
    fail "/etc/enc365-nginx/config.toml is $(mode /etc/enc365-nginx/config.toml)"
[ "$(mode /var/lib/enc365-nginx)" = "711 root:root" ] || fail "/var/lib/enc365-nginx is $(mode /var/lib/enc365-nginx)"
for dir in orders backups; do
    [ "$(mode /var/lib/enc365-nginx/$dir)" = "700 root:root" ] ||
        fail "/var/lib/enc365-nginx/$dir is $(mode /var/lib/enc365-nginx/$dir)"
done
[ -L /etc/systemd/system/timers.target.wants/enc365-nginx-renew.timer ] ||
    fail "the renewal timer is not enabled (no timers.target.wants link)"
if [ -e /etc/systemd/system/multi-user.target.wants/enc365-nginx-agent.service ]; then
    fail "the cluster agent is enabled by the package; it must wait for [cluster] and the key"
fi

if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --man=no /lib/systemd/system/enc365-nginx-renew.service \
        /lib/systemd/system/enc365-nginx-renew.timer \
        /lib/systemd/system/enc365-nginx-agent.service >"$work/verify" 2>&1 ||
        fail "systemd-analyze verify rejects the units: $(cat "$work/verify")"
fi

got=$(/usr/bin/enc365-nginx --version) || fail "enc365-nginx --version failed"
[ "$got" = "enc365-nginx $cargo_version" ] || fail "--version says '$got'"
/usr/bin/enc365-sim --version >/dev/null || fail "enc365-sim --version failed"

# The installed template config parses: a command that reads it gets as far as asking for
# credentials (exit 2 with the register hint), not a parse error.
products_err=$(/usr/bin/enc365-nginx products 2>&1 >/dev/null)
products_rc=$?
[ $products_rc = 2 ] || fail "products with the fresh config exits $products_rc: $products_err"
case "$products_err" in
    *"enc365-nginx register"*) ;;
    *) fail "products with the fresh config does not point at register: $products_err" ;;
esac

cp -r examples/sandbox "$work/sandbox"
out=$(/usr/bin/enc365-nginx discover --nginx-conf "$work/sandbox/nginx.conf" --nginx-prefix "$work/sandbox") ||
    fail "installed enc365-nginx discover failed on the sandbox"
grep -q 'shop.example.com' <<<"$out" || fail "discover did not list shop.example.com: $out"
/usr/bin/enc365-nginx discover --json --nginx-conf "$work/sandbox/nginx.conf" --nginx-prefix "$work/sandbox" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["servers"] and not d["errors"]' ||
    fail "discover --json on the sandbox is not the expected JSON"

if command -v man >/dev/null; then
    man -w enc365-nginx >/dev/null 2>&1 || fail "man -w enc365-nginx finds no page"
    LC_ALL=C MANWIDTH=100 man enc365-nginx-auto 2>/dev/null | grep -q 'enc365-nginx auto --site' ||
        fail "man enc365-nginx-auto lacks the examples"
else
    zcat /usr/share/man/man1/enc365-nginx.1.gz | grep -q '^\.TH' || fail "enc365-nginx.1.gz is not a manual page"
fi
bash -c 'source /usr/share/bash-completion/completions/enc365-nginx && complete -p enc365-nginx' >/dev/null 2>&1 ||
    fail "the bash completion does not register for enc365-nginx"
# The hidden command is not completed (`cluster-key --generate` is a flag, not it).
if grep -qE ',generate\)|subcmd__generate' /usr/share/bash-completion/completions/enc365-nginx; then
    fail "the bash completion offers the hidden generate command"
fi
grep -q 'discover' /usr/share/zsh/vendor-completions/_enc365-nginx || fail "zsh completion lacks discover"
grep -q 'discover' /usr/share/fish/vendor_completions.d/enc365-nginx.fish || fail "fish completion lacks discover"
zcat /usr/share/doc/enc365-nginx/changelog.Debian.gz | head -n 1 | grep -q "($version)" ||
    fail "changelog.Debian.gz does not start at $version"
grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
    /usr/share/doc/enc365-nginx/copyright || fail "copyright is not DEP-5"
grep -qx 'License: MIT or Apache-2.0' /usr/share/doc/enc365-nginx/copyright ||
    fail "copyright does not give the licence MIT or Apache-2.0"
want_maintainer="enc365-nginx maintainers <maintainers@enc365-nginx.invalid>"
[ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ] && want_maintainer="$DEBFULLNAME <$DEBEMAIL>"
[ "$(dpkg-deb -f "$deb" Maintainer)" = "$want_maintainer" ] ||
    fail "Maintainer is $(dpkg-deb -f "$deb" Maintainer), not $want_maintainer (DEBFULLNAME/DEBEMAIL)"

# --- reinstall keeps a changed config; remove keeps it; purge removes everything -------------
echo 'pid = 108' >>/etc/enc365-nginx/config.toml
step "reinstalling over a changed config"
run_dpkg --install "$deb" || fail "dpkg --install over the installed package failed"
grep -qx 'pid = 108' /etc/enc365-nginx/config.toml || fail "reinstalling replaced the changed config"
[ "$(mode /etc/enc365-nginx/config.toml)" = "600 root:root" ] ||
    fail "after reinstalling, config.toml is $(mode /etc/enc365-nginx/config.toml)"

dpkg-query -L enc365-nginx | while read -r path; do [ -f "$path" ] && echo "$path"; done >"$work/files"
step "removing"
run_dpkg --remove enc365-nginx || fail "dpkg --remove failed"
[ ! -e /usr/bin/enc365-nginx ] || fail "/usr/bin/enc365-nginx is left after remove"
grep -qx 'pid = 108' /etc/enc365-nginx/config.toml || fail "remove did not keep the config"

# --- purge: every file gone, the timer forgotten ---------------------------------------------
step "purging"
run_dpkg --purge enc365-nginx || fail "dpkg --purge failed"
installed=0
while read -r path; do
    [ -e "$path" ] && fail "$path is left after purge"
done <"$work/files"
for path in /etc/enc365-nginx /var/lib/enc365-nginx /usr/bin/enc365-nginx \
    /etc/systemd/system/timers.target.wants/enc365-nginx-renew.timer \
    /etc/systemd/system/enc365-nginx-renew.timer \
    /etc/systemd/system/multi-user.target.wants/enc365-nginx-agent.service \
    /etc/systemd/system/enc365-nginx-agent.service; do
    if [ -e "$path" ] || [ -L "$path" ]; then fail "$path is left after purge"; fi
done
if dpkg-query -W -f '${Status}' enc365-nginx 2>/dev/null | grep -q 'installed'; then
    fail "dpkg still lists enc365-nginx after purge"
fi

echo "package test: PASS ($(basename "$deb"), $(du -k "$deb" | cut -f1) KiB, $(($(date +%s) - start)) s)" >&2
