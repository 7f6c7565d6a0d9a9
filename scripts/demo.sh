#!/usr/bin/env bash
# The main job on an embedded default, end to end: a sandboxed nginx with sample sites (on
# 127.0.0.1:18080/18443, never 80/443), the built-in Encryption365 simulator issuing real
# certificates, and `enc365-nginx` registering, planning, then giving every site that needs it a
# verified certificate. Everything it writes stays under ./demo; nginx and the simulator are
# stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PATH="$PATH:/usr/sbin"
echo "Building the release binaries (cargo's progress below; a first build takes several minutes on a small machine) …"
cargo build --release --locked --bins
bin="$PWD/target/release"

for port in 18080 18443; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port on 127.0.0.1 is in use; stop what listens there (an earlier demo?) and run again" >&2
        exit 1
    fi
done

rm -rf demo && mkdir -p demo && cp -r examples/sandbox demo/nginx
demo="$PWD/demo"
chmod 755 "$demo" # nginx workers run unprivileged and read the webroots
nginx_args=(-p "$demo/nginx/" -c "$demo/nginx/nginx.conf" -e "$demo/nginx/logs/error.log")
sim_pid=
cleanup() {
    nginx "${nginx_args[@]}" -s quit 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "nginx on the sandbox tree"
nginx "${nginx_args[@]}"
echo "started: nginx -p demo/nginx -c demo/nginx/nginx.conf (127.0.0.1:18080 plain, :18443 TLS)"

step "the CA simulator"
"$bin/enc365-sim" --listen 127.0.0.1:0 --connect 127.0.0.1:18080 \
    --state-dir "$demo/sim" --account demo@example.com:demo-password >"$demo/sim.json" 2>"$demo/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$demo/sim.json" ] && break; sleep 0.1; done
base_url=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["base_url"])' "$demo/sim.json")
echo "enc365-sim speaks the Encryption365 API at $base_url and validates by fetching from 127.0.0.1:18080"

# The sandbox's names resolve to this host (as a real server's DNS would).
printf '127.0.0.1 %s\n' shop.example.com www.shop.example.com blog.example.com app.example.com \
    legacy.example.com >"$demo/hosts"
export ENC365_HOSTS_FILE="$demo/hosts"
mkdir -p "$demo/enc365"
export ENC365_CONFIG="$demo/enc365/config.toml" ENC365_STATE_DIR="$demo/state"
export ENC365_NGINX_CONF="$demo/nginx/nginx.conf" ENC365_NGINX_PREFIX="$demo/nginx/"
ours() { "$bin/enc365-nginx" "$@" --https-port 18443; }

step "enc365-nginx register (the token is saved to demo/enc365/config.toml, 0600)"
printf 'demo-password' | ENC365_BASE_URL="$base_url" ours register --username demo@example.com \
    --servername demo --password-stdin

step "enc365-nginx discover"
ours discover

step "enc365-nginx plan (changes nothing)"
ours plan --http-port 18080

step "enc365-nginx auto"
ours auto --http-port 18080 --poll-interval 0.2 --timeout 120

step "what nginx serves now (TLS handshake with SNI on 127.0.0.1:18443)"
for name in shop.example.com www.shop.example.com blog.example.com app.example.com legacy.example.com; do
    printf '%-22s ' "$name"
    openssl s_client -connect 127.0.0.1:18443 -servername "$name" </dev/null 2>/dev/null |
        openssl x509 -noout -issuer -enddate | tr '\n' ' '
    echo
done

step "a second run has nothing to do"
ours auto --http-port 18080 --poll-interval 0.2

step "the configuration changes: every line added (+) or removed (-), each real file once"
# --no-dereference: sites-enabled/ holds symlinks to sites-available/; compare them as links, so
# each file's changes show once.
diff -ru --no-dereference examples/sandbox demo/nginx --exclude=logs --exclude=run --exclude=tmp || true
