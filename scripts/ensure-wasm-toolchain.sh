#!/usr/bin/env bash
# Makes sure a Rust toolchain can build for a wasm target, and says which path to use.
#
#   scripts/ensure-wasm-toolchain.sh [TARGET]     # TARGET: wasm32-wasip1 (default) | wasm32-unknown-unknown
#       prints the mode on stdout: "rustup" or "offline"
#   source scripts/ensure-wasm-toolchain.sh
#       defines: wasm_toolchain TARGET   (sets WASM_MODE)
#                wasm_cargo TARGET SUBCOMMAND ARGS...   (cargo with the right flags for WASM_MODE)
#                wasm_target_dir                         (the target dir for WASM_MODE)
#
# Paths, tried in order, no flags needed:
#   a) the active rustc already has the target's std            -> plain cargo      ("rustup")
#   b) Debian's rustc-web + rust-web-src + lld-19 (+ wasi-libc)  -> -Zbuild-std      ("offline")
#   c) static.rust-lang.org reachable                            -> rustup target add, then a)
#   d) root with apt-get                                         -> apt-get install the Debian set, then b)
#   e) otherwise: exit 1 naming what to install
# The offline path gets its own target dir (${CARGO_TARGET_DIR:-target}/wasm-offline): the two
# compilers would otherwise invalidate each other's build cache on every switch.

_wt_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_wt_log() { echo "==> $*" >&2; }

DEBIAN_WASM_PACKAGES="rustc-web cargo-web rust-web-src lld-19 wasi-libc rust-web-clippy"
DEBIAN_RUSTC=/usr/bin/rustc
DEBIAN_CARGO=/usr/bin/cargo

_wt_has_rustup_target() {
  local sysroot
  command -v rustc >/dev/null 2>&1 || return 1
  sysroot="$(rustc --print sysroot 2>/dev/null)" || return 1
  [[ -d "$sysroot/lib/rustlib/$1" ]]
}

_wt_wasm_ld() {
  local c
  for c in wasm-ld-19 wasm-ld; do
    if command -v "$c" >/dev/null 2>&1; then echo "$c"; return 0; fi
  done
  return 1
}

_wt_has_offline() {
  local sysroot
  [[ -x "$DEBIAN_RUSTC" && -x "$DEBIAN_CARGO" ]] || return 1
  sysroot="$("$DEBIAN_RUSTC" --print sysroot 2>/dev/null)" || return 1
  [[ -f "$sysroot/lib/rustlib/src/rust/library/Cargo.lock" ]] || return 1
  _wt_wasm_ld >/dev/null || return 1
  if [[ "$1" == wasm32-wasip1 ]]; then
    [[ -f /usr/lib/wasm32-wasi/libc.a ]] || return 1
  fi
  return 0
}

_wt_rustup_online() {
  command -v rustup >/dev/null 2>&1 || return 1
  timeout 5 bash -c 'exec 3<>/dev/tcp/static.rust-lang.org/443' >/dev/null 2>&1
}

# wasm_toolchain TARGET: sets WASM_MODE=rustup|offline, installing what is missing; returns 1 if impossible.
wasm_toolchain() {
  local target="${1:-wasm32-wasip1}"
  if _wt_has_rustup_target "$target"; then
    WASM_MODE=rustup; return 0
  fi
  if _wt_has_offline "$target"; then
    WASM_MODE=offline; return 0
  fi
  if _wt_rustup_online; then
    _wt_log "installing the $target target with rustup (up to 300 s)"
    if timeout 300 rustup target add "$target" >&2 && _wt_has_rustup_target "$target"; then
      WASM_MODE=rustup; return 0
    fi
    _wt_log "rustup target add $target failed; trying Debian's offline toolchain"
  fi
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    _wt_log "installing Debian packages: $DEBIAN_WASM_PACKAGES (about 2 minutes)"
    export DEBIAN_FRONTEND=noninteractive
    if timeout 900 apt-get update -qq >&2 &&
       timeout 900 apt-get install -y -qq $DEBIAN_WASM_PACKAGES >&2 &&
       _wt_has_offline "$target"; then
      WASM_MODE=offline; return 0
    fi
    _wt_log "apt-get install failed"
  fi
  cat >&2 <<MSG
error: no Rust toolchain that can build for $target.
Install one of:
  - rustup's target:  rustup target add $target
  - Debian (offline): apt-get install $DEBIAN_WASM_PACKAGES
MSG
  return 1
}

wasm_target_dir() {
  local base="${CARGO_TARGET_DIR:-$_wt_repo/target}"
  if [[ "${WASM_MODE:-}" == offline ]]; then echo "$base/wasm-offline"; else echo "$base"; fi
}

# wasm_cargo TARGET SUBCOMMAND ARGS...: runs cargo for TARGET on the path chosen by wasm_toolchain.
wasm_cargo() {
  local target="$1" sub="$2"; shift 2
  if [[ "${WASM_MODE:-}" == rustup ]]; then
    (cd "$_wt_repo" && cargo "$sub" --target "$target" "$@")
    return
  fi
  local ld; ld="$(_wt_wasm_ld)"
  local cfg=(--config "target.$target.linker=\"$ld\"")
  if [[ "$target" == wasm32-wasip1 ]]; then
    cfg+=(--config 'target.wasm32-wasip1.rustflags=["-Clink-self-contained=no","-L/usr/lib/wasm32-wasi"]')
  fi
  # /usr/bin first so Debian's clippy-driver/rustdoc are used, not rustup's proxies.
  (cd "$_wt_repo" && PATH="/usr/bin:$PATH" RUSTC="$DEBIAN_RUSTC" RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_DIR="$(wasm_target_dir)" \
    "$DEBIAN_CARGO" "$sub" --target "$target" -Zbuild-std=std,panic_abort "${cfg[@]}" "$@")
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  wasm_toolchain "${1:-wasm32-wasip1}"
  echo "$WASM_MODE"
fi
