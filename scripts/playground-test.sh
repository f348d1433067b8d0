#!/usr/bin/env bash
# The playground's browser test: builds the page (scripts/playground.sh), then headless Chromium
# loads it from a loopback server on a free port and playwright-core checks the decisions it shows
# (playground/tests/browser.cjs). Installs what is missing: Chromium with apt-get (as root), and
# playwright-core from npm into ~/.cache/peerguard (it never downloads a browser of its own).
# Prints `N passed, N failed`; the screenshot goes to target/playground-screenshot.png and docs/playground.png.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
start=$SECONDS
target="${CARGO_TARGET_DIR:-$repo/target}"
out="$target/playground"
shot="$target/playground-screenshot.png"
playwright_version=1.64.1
cache="${PEERGUARD_CACHE:-$HOME/.cache/peerguard}/playwright-core-$playwright_version"

scripts/playground.sh build "$out"

as_root_apt() {
  [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
  export DEBIAN_FRONTEND=noninteractive
  local log
  log="$(mktemp)"
  if timeout 900 apt-get update -qq >"$log" 2>&1 && timeout 900 apt-get install -y -qq "$@" >>"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  tail -n 20 "$log" >&2
  rm -f "$log"
  return 1
}

chromium="${CHROMIUM:-}"
if [[ -z "$chromium" ]]; then
  for c in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [[ -x "$c" ]]; then chromium="$c"; break; fi
  done
fi
if [[ -z "$chromium" ]]; then
  echo "==> installing chromium with apt-get (the playground test runs it headless)"
  if as_root_apt chromium && [[ -x /usr/bin/chromium ]]; then
    chromium=/usr/bin/chromium
  else
    echo "error: the playground test needs Chromium at /usr/bin/chromium; install it as root with: apt-get update && apt-get install chromium" >&2
    exit 1
  fi
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "==> installing nodejs and npm with apt-get (the playground test drives Chromium from node)"
  if ! as_root_apt nodejs npm; then
    echo "error: the playground test needs node and npm; install them as root with: apt-get install nodejs npm" >&2
    exit 1
  fi
fi

if [[ ! -f "$cache/node_modules/playwright-core/package.json" ]]; then
  echo "==> installing playwright-core $playwright_version from npm into $cache (no browser download)"
  mkdir -p "$cache"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
    "playwright-core@$playwright_version"
fi

echo "==> browser test: $chromium, playwright-core $playwright_version"
status=0
PLAYGROUND_DIR="$out" CHROMIUM="$chromium" PLAYWRIGHT_CORE="$cache/node_modules/playwright-core" SCREENSHOT="$shot" \
  timeout -k 10 240 node playground/tests/browser.cjs || status=$?
if [[ $status == 0 && -f "$shot" ]]; then
  cp "$shot" docs/playground.png
  echo "==> screenshot: $shot, copied to docs/playground.png"
fi
echo "==> playground test took $((SECONDS - start))s (build included)"
exit $status
