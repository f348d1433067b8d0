#!/usr/bin/env bash
# The playground (playground/): the policy engine for wasm32-unknown-unknown behind a static page.
#
#   scripts/playground.sh build [DIR]   build into DIR (default target/playground): index.html,
#                                       app.js, style.css and pkg/ (wasm-bindgen --target web).
#                                       DIR is a plain folder: any static file server can host it.
#   scripts/playground.sh serve [DIR]   build, then serve DIR on 127.0.0.1 at a free port (python3)
#
# The wasm-bindgen CLI must match the wasm-bindgen version in Cargo.lock; it is installed once
# into ~/.cache/peerguard/wasm-bindgen-<version> (as scripts/wasm-test.sh does) when missing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=ensure-wasm-toolchain.sh
source "$repo/scripts/ensure-wasm-toolchain.sh"

cmd="${1:-build}"
out="${2:-${CARGO_TARGET_DIR:-$repo/target}/playground}"

# Prints the path of a wasm-bindgen CLI of the Cargo.lock version, installing it if needed.
ensure_wasm_bindgen() {
  local version cache cand
  [[ -f Cargo.lock ]] || cargo generate-lockfile
  version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
  if [[ -z "$version" ]]; then
    echo "error: wasm-bindgen is not in Cargo.lock" >&2
    return 1
  fi
  cache="${PEERGUARD_CACHE:-$HOME/.cache/peerguard}/wasm-bindgen-$version"
  for cand in "$(command -v wasm-bindgen || true)" "$cache/bin/wasm-bindgen" "$repo/.tools/wasm-bindgen/bin/wasm-bindgen"; do
    if [[ -n "$cand" && -x "$cand" && "$("$cand" --version 2>/dev/null | awk '{print $2}')" == "$version" ]]; then
      echo "$cand"
      return 0
    fi
  done
  echo "==> installing wasm-bindgen-cli $version into $cache (a few minutes, once per machine)" >&2
  mkdir -p "$cache"
  # No --locked: the pinned lockfile of some releases names a yanked dependency.
  timeout 1800 cargo install -q wasm-bindgen-cli --version "$version" --root "$cache" >&2
  echo "$cache/bin/wasm-bindgen"
}

build() {
  wasm_toolchain wasm32-unknown-unknown
  echo "==> building peerguard-playground for wasm32-unknown-unknown ($WASM_MODE toolchain)" >&2
  # The workspace's release profile strips symbols, which also drops the target_features section
  # wasm-bindgen reads; keep it for this crate's build.
  CARGO_PROFILE_RELEASE_STRIP=none timeout 1800 \
    bash -c "source '$repo/scripts/ensure-wasm-toolchain.sh' && WASM_MODE=$WASM_MODE wasm_cargo wasm32-unknown-unknown build --release -p peerguard-playground" >&2
  local wasm bindgen
  wasm="$(wasm_target_dir)/wasm32-unknown-unknown/release/peerguard_playground.wasm"
  bindgen="$(ensure_wasm_bindgen)"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp/pkg"
  timeout 300 "$bindgen" --target web --no-typescript --out-dir "$out.tmp/pkg" "$wasm"
  # No wasm-opt here: Debian's binaryen 108 breaks wasm-bindgen's externref table ("WebAssembly.Table.set():
  # Argument 1 is invalid"), seen in the browser test; the module stays about 1.7 MB.
  cp "$repo"/playground/www/* "$out.tmp/"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "==> playground built in $out ($(du -sh "$out" | cut -f1); a static folder, host it anywhere)" >&2
}

case "$cmd" in
  build)
    build
    ;;
  serve)
    build
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    echo "playground: http://127.0.0.1:$port/   (Ctrl-C stops the server)"
    exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$out"
    ;;
  *)
    echo "usage: scripts/playground.sh build|serve [DIR]" >&2
    exit 2
    ;;
esac
