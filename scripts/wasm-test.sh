#!/usr/bin/env bash
# Runs peerguard-policy's unit and integration tests compiled to wasm32-unknown-unknown, under
# wasm-bindgen-test-runner with node. The runner is installed into ~/.cache/peerguard (kept across
# fresh clones, as CI makes them) if no runner of the wasm-bindgen version in Cargo.lock is found.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=ensure-wasm-toolchain.sh
source "$repo/scripts/ensure-wasm-toolchain.sh"

[[ -f Cargo.lock ]] || cargo generate-lockfile
version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [[ -z "$version" ]]; then
  echo "error: wasm-bindgen is not in Cargo.lock (peerguard-policy should dev-depend on wasm-bindgen-test)" >&2
  exit 1
fi

runner_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }
runner=""
cache="${PEERGUARD_CACHE:-$HOME/.cache/peerguard}/wasm-bindgen-$version"
for cand in "$(command -v wasm-bindgen-test-runner || true)" "$cache/bin/wasm-bindgen-test-runner" \
  "$repo/.tools/wasm-bindgen/bin/wasm-bindgen-test-runner"; do
  if [[ -n "$cand" && -x "$cand" && "$(runner_version "$cand")" == "$version" ]]; then
    runner="$cand"; break
  fi
done
if [[ -z "$runner" ]]; then
  echo "==> installing wasm-bindgen-cli $version into $cache (a few minutes, once per machine)"
  mkdir -p "$cache"
  # No --locked: the pinned lockfile of some releases names a yanked dependency.
  timeout 1800 cargo install -q wasm-bindgen-cli --version "$version" --root "$cache"
  runner="$cache/bin/wasm-bindgen-test-runner"
fi
echo "==> test runner: $runner ($version)"

if ! command -v node >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing nodejs (wasm-bindgen-test-runner runs the tests in node)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
  else
    echo "error: node is needed to run the wasm tests; install nodejs" >&2
    exit 1
  fi
fi

wasm_toolchain wasm32-unknown-unknown
echo "==> running peerguard-policy tests on wasm32-unknown-unknown ($WASM_MODE toolchain, node)"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$runner"
wasm_cargo wasm32-unknown-unknown test -p peerguard-policy --lib --tests "$@"
