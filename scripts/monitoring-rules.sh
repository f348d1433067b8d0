#!/usr/bin/env bash
# `promtool check rules` and `promtool test rules` on deploy/monitoring, with promtool from
# scripts/ensure-prometheus.sh (Debian's prometheus package, installed when missing).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${PROMETHEUS_BIN_DIR:-$("$repo/scripts/ensure-prometheus.sh")}"
cd "$repo/deploy/monitoring"
"$dir/promtool" check rules peerguard-rules.yaml
"$dir/promtool" test rules peerguard-rules.test.yaml
