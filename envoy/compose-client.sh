#!/bin/sh
# The client of docker-compose.yaml: the calls of envoy/README.md, with their status codes.
# Certificates are in /certs (envoy/certs mounted).
sleep 2
call() { # name, expected status, curl args...
  name="$1"; want="$2"; shift 2
  got="$(curl -s -o /dev/null -w '%{http_code}' "$@")"
  echo "$name: $got (want $want)"
  [ "$got" = "$want" ] || fail=1
}
fail=0
tls="--cacert /certs/ca.pem --resolve localhost:15006:127.0.0.1 --resolve localhost:8443:127.0.0.1"
call "outbound sidecar -> inbound, GET /api/items" 200 http://127.0.0.1:15001/api/items
call "outbound sidecar -> inbound, POST /api/items" 403 -X POST http://127.0.0.1:15001/api/items
call "frontend cert -> inbound, GET /api/admin/users" 403 $tls --cert /certs/frontend.pem --key /certs/frontend-key.pem https://localhost:15006/api/admin/users
call "other cert -> inbound, GET /api/items" 403 $tls --cert /certs/other.pem --key /certs/other-key.pem https://localhost:15006/api/items
call "no client cert -> inbound" 403 $tls https://localhost:15006/api/items
call "alice -> front proxy, GET /" 200 $tls --cert /certs/alice.pem --key /certs/alice-key.pem https://localhost:8443/
call "frontend cert -> front proxy, GET /" 403 $tls --cert /certs/frontend.pem --key /certs/frontend-key.pem https://localhost:8443/
exit $fail
