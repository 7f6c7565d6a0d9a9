#!/usr/bin/env bash
# Installs what the tests and the demo need from Debian's packages, when it is missing:
# nginx (with the Lua module, for the lua-block fixtures), openssl, and for the package test
# dpkg-dev and lintian, for the ACME tests pebble and curl, BIND for the DNS tests, and for cluster
# mode etcd (server and etcdctl) and protoc (the etcd-client crate's build needs it). No system
# service (nginx, named, etcd) is ever started: a policy-rc.d that exits 101 stops invoke-rc.d for
# the length of the install, and etcd's service, which its package enables, is disabled again.
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
# Cluster mode: the tests start their own three-member etcd on loopback ports (never the system
# service); protoc builds the etcd-client crate's protocol code.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# protoc's well-known types (google/protobuf/descriptor.proto, struct.proto) that etcd's protocol
# files import: protobuf-compiler only recommends them, and recommends are not installed here.
[ -e /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)

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

# etcd-server's postinst enables its service (policy-rc.d only kept it from starting): disable it
# again, and stop it in case something started it anyway, so no system etcd holds port 2379 or
# starts at the next boot.
if [[ " ${need[*]} " == *" etcd-server "* ]]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now etcd.service >/dev/null 2>&1 || true
    else
        command -v deb-systemd-helper >/dev/null && deb-systemd-helper disable etcd.service >/dev/null 2>&1 || true
        command -v update-rc.d >/dev/null && update-rc.d etcd disable >/dev/null 2>&1 || true
        [ -x /etc/init.d/etcd ] && /etc/init.d/etcd stop >/dev/null 2>&1 || true
    fi
fi
