# peerguard tasks. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

default:
    @just --list

# Build the filter for wasm32-wasip1 (release) into dist/peerguard.wasm
build:
    scripts/build-wasm.sh

# Print the path of Envoy (pinned in scripts/ensure-envoy.sh) with V8 Wasm, downloading it into .tools/envoy once
envoy:
    @scripts/ensure-envoy.sh

# Run the demo cases against a real Envoy with the filter and print a table
demo: build
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin demo

# Like demo, then keep the stack up and print curl commands (args: --for SECONDS)
up *ARGS: build
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin demo -- --up {{ARGS}}

# Everything CI runs: native workspace tests (incl. end-to-end in Envoy), then engine tests in wasm
test: build
    #!/usr/bin/env bash
    set -euo pipefail
    export ENVOY_BIN="$(scripts/ensure-envoy.sh)"
    echo "==================== native tests: cargo test --workspace ===================="
    cargo test --workspace
    echo "==================== wasm tests: peerguard-policy on wasm32-unknown-unknown ===================="
    scripts/wasm-test.sh

# Formatting and clippy, natively and for wasm32-wasip1
lint:
    @echo "==================== cargo fmt --check ===================="
    cargo fmt --all --check
    @echo "==================== clippy (native) ===================="
    cargo clippy --workspace --all-targets -- -D warnings
    @echo "==================== clippy (wasm32-wasip1) ===================="
    scripts/build-wasm.sh clippy
