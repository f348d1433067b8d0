#!/usr/bin/env bash
# Regenerates the demo PKI in envoy/certs with `peerguard cert` (run from anywhere).
# These files are committed so the configs in envoy/ work from a fresh clone; they are DEMO
# credentials (10-year validity, private keys in git): never use them outside a laptop.
#   ca.pem / ca-key.pem          the demo CA (CN=peerguard demo CA,O=cluster.local)
#   server.pem / server-key.pem  inbound sidecar and front proxy: DNS localhost, IP 127.0.0.1,
#                                spiffe://cluster.local/ns/backend/sa/api
#   frontend.pem                 workload spiffe://cluster.local/ns/frontend/sa/web (allowed)
#   other.pem                    workload spiffe://cluster.local/ns/other/sa/batch  (denied)
#   alice.pem                    CN-only client certificate (seed-article style) for the front proxy
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
pg="${PEERGUARD:-}"
if [[ -z "$pg" ]]; then
  (cd "$repo" && cargo build -q -p peerguard-cli --bin peerguard)
  pg="${CARGO_TARGET_DIR:-$repo/target}/debug/peerguard"
fi
ttl="${TTL:-87600h}"
q() { "$pg" "$@" >/dev/null; }
q cert ca --out-dir "$here" --cn "peerguard demo CA" --ttl "$ttl"
issue() { q cert issue --ca "$here/ca.pem" --ca-key "$here/ca-key.pem" --out-dir "$here" --ttl "$ttl" "$@"; }
issue --name server --workload backend/api --dns localhost --ip 127.0.0.1 --cn localhost
issue --name frontend --workload frontend/web
issue --name other --workload other/batch
issue --name alice --cn alice --usage client
chmod 0644 "$here"/*.pem   # docker containers run Envoy as a non-root user
echo "envoy/certs: demo PKI written (ttl $ttl)" >&2
