#!/usr/bin/env bash
# Builds the native dynamic module (native/) into dist/libpeerguard_native.so.
# Envoy loads it as `dynamic_module_config.name: peerguard_native` from the directory in
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH (dist/ for the configs in envoy/).
# Only -p peerguard-native is built, so that the filter crate is compiled without proxy-wasm
# (a workspace-wide build would unify its default feature back in).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p peerguard-native --profile native
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p dist
install -m 0755 "$target_dir/native/libpeerguard_native.so" dist/libpeerguard_native.so
if nm -D dist/libpeerguard_native.so 2>/dev/null | grep -q ' T proxy_on_'; then
    echo "dist/libpeerguard_native.so carries proxy-wasm exports: build it with -p peerguard-native alone" >&2
    exit 1
fi
echo "==> dist/libpeerguard_native.so: $(stat -c %s dist/libpeerguard_native.so) bytes"
