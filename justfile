# peerguard tasks. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

default:
    @just --list

# Build the filter for wasm32-wasip1 (release) into dist/peerguard.wasm
build:
    scripts/build-wasm.sh

# Build the native dynamic module (native/, release with panic=unwind) into dist/libpeerguard_native.so (README "The native build")
build-native:
    scripts/build-native.sh

# Print the path of Envoy (pinned in scripts/ensure-envoy.sh) with V8 Wasm, downloading it into .tools/envoy once
envoy:
    @scripts/ensure-envoy.sh

# Run the demo cases against a real Envoy with the filter and print a table
demo: build
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin demo

# Like demo, then keep the stack up and print curl commands (args: --for SECONDS)
up *ARGS: build
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin demo -- --up {{ARGS}}

# Benchmark: peerguard vs no filter vs native RBAC vs Lua vs the wasm floor, interleaved rounds
# (args: --quick for about a minute; --help for the rest). Table on stdout; JSON, markdown, PNG in target/bench/
bench *ARGS: build build-native
    scripts/build-wasm.sh floor
    scripts/build-native.sh floor
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q --release -p peerguard-bench -- {{ARGS}}

# Fuzz every cargo-fuzz target (fuzz/) for SECONDS each on nightly, then a summary; new crashes go to fuzz/regressions/ (args: SECONDS [TARGET...])
fuzz SECONDS="60" *TARGETS:
    scripts/fuzz.sh {{SECONDS}} {{TARGETS}}

# Everything CI runs: native workspace tests (incl. end-to-end in Envoy), the end-to-end tests again against the native build, then engine tests in wasm
test: build build-native
    #!/usr/bin/env bash
    set -euo pipefail
    export ENVOY_BIN="$(scripts/ensure-envoy.sh)"
    export PROMETHEUS_BIN_DIR="$(scripts/ensure-prometheus.sh)"
    echo "==================== monitoring rules: promtool check + test (deploy/monitoring) ===================="
    scripts/monitoring-rules.sh
    echo "==================== native tests: cargo test --workspace ===================="
    cargo test --workspace
    echo "==================== end-to-end against the native build (PEERGUARD_BUILD=native) ===================="
    PEERGUARD_BUILD=native cargo test -p peerguard-e2e {{native_e2e}}
    echo "==================== conformance: chain verification vs x509-limbo (policy/tests/limbo.rs) ===================="
    cargo test -p peerguard-policy --test limbo -- --ignored
    echo "==================== wasm tests: peerguard-policy on wasm32-unknown-unknown ===================="
    scripts/wasm-test.sh
    cargo run -q -p peerguard-cli --bin peerguard -- test envoy istio
    scripts/playground-test.sh

# Build the playground (the engine in wasm behind a static page) into target/playground and serve it on 127.0.0.1 at a free port
playground:
    scripts/playground.sh serve

# Differential test against Istio: N random policies as istiod's RBAC and as peerguard in one Envoy (PEERGUARD_DIFF_SEED, PEERGUARD_DIFF_REQUESTS; PEERGUARD_DIFF_POLICY_FILE=path for your own policy)
diff-istio N="1000": build
    PEERGUARD_DIFF_POLICIES={{N}} ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo test -p peerguard-e2e --test diff_istio decides -- --nocapture

# Formatting and clippy, natively and for wasm32-wasip1
lint:
    @echo "==================== cargo fmt --check ===================="
    cargo fmt --all --check
    @echo "==================== clippy (native) ===================="
    cargo clippy --workspace --all-targets -- -D warnings
    @echo "==================== clippy (wasm32-wasip1) ===================="
    scripts/build-wasm.sh clippy

# The end-to-end tests that `just test` runs a second time against the native build: every
# e2e suite except launcher (the test kit itself) and module_size (the .wasm). diff_istio runs
# its random policies against Istio's RBAC with the native filter on the peerguard listeners.
# e2e_operations drives `peerguard live init --native`; the Istio-shaped and waypoint stacks run
# the native filter as an EnvoyFilter would insert it (their WasmPlugin/TrafficExtension test
# stays on Wasm).
native_e2e := "--test e2e_foundation --test e2e_paths_headers --test e2e_certificates --test e2e_federation --test e2e_linkerd --test e2e_operations --test e2e_native --test e2e_waypoint --test e2e_istio_shaped --test e2e_crl_sources --test e2e_monitoring --test diff_istio"

# --- shipping (issue 6): OCI image, Istio manifests, standalone Envoy, local mesh ---

# Where `just oci` says the image will be pushed (the WasmPlugin's url); override with PEERGUARD_OCI_URL
oci_url := env_var_or_default("PEERGUARD_OCI_URL", "oci://kind-registry:5000/peerguard:0.1.0")

# The peerguard CLI, built on first use (respects CARGO_TARGET_DIR)
peerguard := "cargo run -q -p peerguard-cli --bin peerguard --"

# Build the peerguard CLI
cli:
    cargo build -q -p peerguard-cli --bin peerguard

# OCI image of dist/peerguard.wasm (Istio compat format) in dist/oci + dist/peerguard-oci.tar; prints the digest and re-renders istio/peerguard/trafficextension*.yaml and wasmplugin*.yaml
oci: build cli
    {{peerguard}} render oci --wasm dist/peerguard.wasm --out dist/oci --tar dist/peerguard-oci.tar
    {{peerguard}} render wasmplugin --policy istio/peerguard/policy.yaml --url {{oci_url}} --wasm dist/peerguard.wasm --namespace server --selector app=nginx --out istio/peerguard/wasmplugin.yaml
    {{peerguard}} render wasmplugin --policy istio/peerguard/gateway-policy.yaml --url {{oci_url}} --wasm dist/peerguard.wasm --name peerguard-ingress --namespace istio-ingress --gateway ingress --out istio/peerguard/wasmplugin-gateway.yaml
    {{peerguard}} render trafficextension --policy istio/peerguard/policy.yaml --url {{oci_url}} --wasm dist/peerguard.wasm --namespace server --selector app=nginx --out istio/peerguard/trafficextension.yaml
    {{peerguard}} render trafficextension --policy istio/peerguard/waypoint-policy.yaml --url {{oci_url}} --wasm dist/peerguard.wasm --name peerguard-waypoint --namespace server --waypoint-service nginx --out istio/peerguard/trafficextension-waypoint.yaml
    @echo "istio/peerguard/trafficextension*.yaml and wasmplugin*.yaml now point at {{oci_url}} with this image's digest"

# Regenerate the demo PKI in envoy/certs with `peerguard cert`
envoy-certs: cli
    envoy/certs/generate.sh

# The docker-compose topology (envoy/docker-compose.yaml) without Docker: app, inbound, outbound, front proxy, and the client's calls
compose-local: build cli
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin compose-local

# A local mesh: frontend, api, db behind inbound+outbound Envoy sidecars on 127.0.0.x, certs from `peerguard cert`; prints the call matrix
mesh: build cli
    ENVOY_BIN="$(scripts/ensure-envoy.sh)" cargo run -q -p peerguard-e2e --bin mesh

# --- operations (issue 5): live policy reload and certificate rotation (envoy/live-reload.yaml) ---

# Prepare .run/live for envoy/live-reload.yaml (`peerguard live init`): the ECDS file with POLICY (validated), the server certificate from envoy/certs
live-init POLICY="envoy/policy.yaml":
    {{peerguard}} live init --policy {{POLICY}}

# Swap the policy of a running envoy/live-reload.yaml (`peerguard live reload`): validated first, then one atomic rename. FORCE=1 writes an invalid one anyway
reload POLICY:
    {{peerguard}} live reload {{POLICY}} {{ if env_var_or_default("FORCE", "") == "1" { "--force" } else { "" } }}

# Swap the server certificate and key of a running envoy/live-reload.yaml together (`peerguard live rotate`: the pair checked, then one atomic `..data` rename)
rotate CERT KEY:
    {{peerguard}} live rotate {{CERT}} {{KEY}}
