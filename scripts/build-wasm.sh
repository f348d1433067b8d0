#!/usr/bin/env bash
# Builds the peerguard filter (crate peerguard-filter) for wasm32-wasip1 in release and copies it
# to dist/peerguard.wasm. The toolchain path is picked automatically (scripts/ensure-wasm-toolchain.sh).
#
#   scripts/build-wasm.sh                 # the filter module -> dist/peerguard.wasm
#   scripts/build-wasm.sh floor           # the benchmark's wasm floor (bench/floor-filter) -> dist/floor.wasm
#   scripts/build-wasm.sh policy-tests    # only compile peerguard-policy's tests for wasm32-unknown-unknown
#   scripts/build-wasm.sh clippy          # clippy -D warnings on peerguard-filter + peerguard-policy for wasm32-wasip1
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=ensure-wasm-toolchain.sh
source "$repo/scripts/ensure-wasm-toolchain.sh"

case "${1:-filter}" in
  filter)
    target=wasm32-wasip1
    wasm_toolchain "$target"
    echo "==> building peerguard-filter for $target (release, $WASM_MODE toolchain)"
    wasm_cargo "$target" build --release -p peerguard-filter
    out="$(wasm_target_dir)/$target/release/peerguard_filter.wasm"
    [[ -f "$out" ]] || { echo "error: build finished but $out is missing" >&2; exit 1; }
    mkdir -p "$repo/dist"
    # wasm-opt -Oz (Debian's binaryen) takes about 15% off after LTO and opt-level "s"; the
    # module must stay within 1 MiB. Installed as root with apt when missing; without it the
    # unoptimized module is used and the size line says so.
    if ! command -v wasm-opt >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing binaryen (wasm-opt)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null 2>&1 ||
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null 2>&1; } || true
    fi
    raw="$(wc -c < "$out")"
    if command -v wasm-opt >/dev/null 2>&1; then
      # The features rustc enables by default for wasm32 (the stripped module has no features
      # section to detect them from, and wasm-opt 108 would otherwise assume MVP).
      wasm-opt -Oz --enable-bulk-memory --enable-mutable-globals --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-multivalue --enable-reference-types --strip-debug --strip-producers "$out" -o "$repo/dist/peerguard.wasm.tmp"
      mv -f "$repo/dist/peerguard.wasm.tmp" "$repo/dist/peerguard.wasm"
      note="wasm-opt -Oz, from $raw"
    else
      cp -f "$out" "$repo/dist/peerguard.wasm"
      note="no wasm-opt: apt-get install binaryen to shrink it"
    fi
    size="$(wc -c < "$repo/dist/peerguard.wasm")"
    limit=1048576
    echo "==> dist/peerguard.wasm: $size bytes ($(( (size + 1023) / 1024 )) KiB, $(( size * 100 / limit ))% of the 1 MiB limit, $(( limit - size )) bytes left; $note)"
    if (( size > limit )); then
      echo "warning: dist/peerguard.wasm is over 1 MiB: tests/tests/module_size.rs fails (README \"Performance\" lists what each dependency costs)" >&2
    fi
    ;;
  floor)
    target=wasm32-wasip1
    wasm_toolchain "$target"
    echo "==> building peerguard-floor-filter for $target (release, $WASM_MODE toolchain)"
    wasm_cargo "$target" build --release -p peerguard-floor-filter
    out="$(wasm_target_dir)/$target/release/peerguard_floor_filter.wasm"
    [[ -f "$out" ]] || { echo "error: build finished but $out is missing" >&2; exit 1; }
    mkdir -p "$repo/dist"
    cp -f "$out" "$repo/dist/floor.wasm"
    echo "==> dist/floor.wasm: $(wc -c < "$repo/dist/floor.wasm") bytes"
    ;;
  policy-tests)
    target=wasm32-unknown-unknown
    wasm_toolchain "$target"
    echo "==> compiling peerguard-policy tests for $target ($WASM_MODE toolchain)"
    wasm_cargo "$target" test --no-run -p peerguard-policy --lib --tests
    ;;
  clippy)
    target=wasm32-wasip1
    wasm_toolchain "$target"
    if [[ "$WASM_MODE" == offline && ! -x /usr/bin/clippy-driver ]]; then
      if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing rust-web-clippy"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rust-web-clippy ||
          { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rust-web-clippy; }
      else
        echo "error: clippy for the offline wasm toolchain needs: apt-get install rust-web-clippy" >&2
        exit 1
      fi
    fi
    echo "==> clippy for $target on peerguard-filter, peerguard-policy ($WASM_MODE toolchain)"
    wasm_cargo "$target" clippy -p peerguard-filter -p peerguard-policy --lib -- -D warnings
    ;;
  *)
    echo "usage: $0 [filter|floor|policy-tests|clippy]" >&2
    exit 2
    ;;
esac
