#!/usr/bin/env bash
# Prints the directory holding `promtool` and `prometheus` (Debian's `prometheus` package), installing
# the package with apt-get when they are missing.
#   1. $PROMETHEUS_BIN_DIR, if set (must hold both executables)
#   2. promtool and prometheus on PATH
#   3. otherwise: `apt-get install -y prometheus` (after `apt-get update` when apt-cache does not know it),
#      as root or through sudo; the package's service is not started (policy-rc.d / no init here)
# Progress goes to stderr; stdout is only the directory, so `PROM_DIR=$(scripts/ensure-prometheus.sh)` works.
set -euo pipefail

log() { echo "==> $*" >&2; }
have_both() { [[ -x "$1/promtool" && -x "$1/prometheus" ]]; }

if [[ -n "${PROMETHEUS_BIN_DIR:-}" ]]; then
  if have_both "$PROMETHEUS_BIN_DIR"; then
    echo "$PROMETHEUS_BIN_DIR"
    exit 0
  fi
  echo "ensure-prometheus: PROMETHEUS_BIN_DIR=$PROMETHEUS_BIN_DIR lacks promtool or prometheus" >&2
  exit 1
fi

find_dir() {
  local p
  p="$(command -v promtool || true)"
  if [[ -n "$p" ]] && have_both "$(dirname "$p")"; then
    dirname "$p"
    return 0
  fi
  return 1
}

if dir="$(find_dir)"; then
  echo "$dir"
  exit 0
fi

sudo=""
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "ensure-prometheus: promtool/prometheus not found and not root: install Debian's 'prometheus' package (apt-get install prometheus) or set PROMETHEUS_BIN_DIR" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show prometheus >/dev/null 2>&1; then
  log "apt-get update (apt-cache does not know 'prometheus')"
  timeout 300 $sudo apt-get update -qq >&2
fi
log "apt-get install prometheus (promtool and the Prometheus server)"
# No daemon is wanted: the tests start their own server on a free loopback port.
policy_rc=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  policy_rc=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy_rc" >/dev/null
  $sudo chmod +x "$policy_rc"
fi
status=0
timeout 600 $sudo apt-get install -y -qq --no-install-recommends prometheus >&2 || status=$?
if [[ -n "$policy_rc" ]]; then $sudo rm -f "$policy_rc"; fi
if [[ $status != 0 ]]; then
  echo "ensure-prometheus: apt-get install prometheus failed (exit $status)" >&2
  exit 1
fi

if dir="$(find_dir)"; then
  echo "$dir"
  exit 0
fi
echo "ensure-prometheus: installed 'prometheus' but promtool/prometheus are still not on PATH" >&2
exit 1
