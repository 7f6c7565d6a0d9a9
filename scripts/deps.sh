#!/usr/bin/env bash
# Installs what the tests and the demo need from Debian's packages, when it is missing:
# nginx (with the Lua module, for the lua-block fixtures), openssl, and for the package test
# dpkg-dev and lintian, for the ACME tests pebble and curl, and BIND for the DNS tests. No system
# service (nginx, named) is ever started: a policy-rc.d that exits 101 stops invoke-rc.d for the
# length of the install.
set -euo pipefail

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need+=(libnginx-mod-http-lua)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The package test: dpkg-deb and dpkg-shlibdeps (dpkg-dev), lintian.
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
# The ACME tests: Pebble (test-only ACME server) with pebble-challtestsrv as its DNS; curl fetches
# Pebble's root from its management endpoint.
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The DNS-validation tests: BIND's named as the authoritative server of the test zones (started
# by the tests on a loopback port, never as the system service), and dig for debugging.
command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ] || need+=(bind9)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]} — install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
