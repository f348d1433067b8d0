#!/usr/bin/env bash
# Builds the native dynamic module (native/) into dist/libpeerguard_native.so.
# Envoy loads it as `dynamic_module_config.name: peerguard_native` from the directory in
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH (dist/ for the configs in envoy/).
# Only -p peerguard-native is built, so that the filter crate is compiled without proxy-wasm
# (a workspace-wide build would unify its default feature back in).
#
#   scripts/build-native.sh         # the filter -> dist/libpeerguard_native.so
#   scripts/build-native.sh floor   # the benchmark's native floor (bench/floor-native) -> dist/libpeerguard_floor_native.so
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p dist
case "${1:-filter}" in
  filter) ;;
  floor)
    cargo build -q -p peerguard-floor-native --profile native
    install -m 0755 "$target_dir/native/libpeerguard_floor_native.so" dist/libpeerguard_floor_native.so
    echo "==> dist/libpeerguard_floor_native.so: $(stat -c %s dist/libpeerguard_floor_native.so) bytes"
    exit 0
    ;;
  *) echo "usage: scripts/build-native.sh [floor]" >&2; exit 2 ;;
esac
cargo build -q -p peerguard-native --profile native
install -m 0755 "$target_dir/native/libpeerguard_native.so" dist/libpeerguard_native.so
if nm -D dist/libpeerguard_native.so 2>/dev/null | grep -q ' T proxy_on_'; then
    echo "dist/libpeerguard_native.so carries proxy-wasm exports: build it with -p peerguard-native alone" >&2
    exit 1
fi
echo "==> dist/libpeerguard_native.so: $(stat -c %s dist/libpeerguard_native.so) bytes"
