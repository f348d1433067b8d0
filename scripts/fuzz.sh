#!/usr/bin/env bash
# Runs peerguard's cargo-fuzz targets (fuzz/, bodies in fuzz/targets) for SECONDS each, one after
# the other, and prints a summary: executions, exec/s, coverage (cov) and features (ft) from
# libFuzzer's final status line, corpus size, crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s, every target in fuzz/Cargo.toml
#
# Inputs: the working corpus fuzz/corpus/<target> (grows, not committed), then the committed seeds
# fuzz/seeds/<target> and past crashes fuzz/regressions/<target> (read only).
# A new crash (crash-*, leak-*, oom-*, timeout-* in fuzz/artifacts/<target>) is copied into
# fuzz/regressions/<target>/, which `cargo test -p peerguard-fuzz` (and so `just test`) replays.
#
# Toolchain, no flags needed: `cargo +nightly` (cargo-fuzz needs nightly; stop with the rustup
# command if it is missing); cargo-fuzz from PATH, else from ${PEERGUARD_CACHE:-~/.cache/peerguard}/cargo-fuzz,
# installed there on first use with `cargo install cargo-fuzz --locked --root`.
# Builds are release with debug assertions (so overflow is a finding) and AddressSanitizer.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$repo/fuzz"
cache="${PEERGUARD_CACHE:-$HOME/.cache/peerguard}/cargo-fuzz"

seconds="${1:-60}"
[[ $# -gt 0 ]] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "usage: $0 [SECONDS] [TARGET...]   (SECONDS: a positive whole number, got '$seconds')" >&2
  exit 2
fi

all_targets=()
while read -r name; do
  [[ -f "$fuzz/fuzz_targets/$name.rs" ]] && all_targets+=("$name")
done < <(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' "$fuzz/Cargo.toml")
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [[ " ${all_targets[*]} " != *" $t "* ]]; then
    echo "error: no fuzz target '$t' (targets: ${all_targets[*]})" >&2
    exit 2
  fi
done

# --- toolchain --------------------------------------------------------------------------------
if ! cargo +nightly --version >/dev/null 2>&1; then
  cat >&2 <<MSG
error: fuzzing needs a nightly Rust toolchain (cargo-fuzz builds with -Zsanitizer), and
\`cargo +nightly\` does not work here. Install it with:
  rustup toolchain install nightly --profile minimal
MSG
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  export PATH="$cache/bin:$PATH"
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz into $cache (a few minutes, once per machine)"
    mkdir -p "$cache"
    if ! timeout 1800 cargo install -q cargo-fuzz --locked --root "$cache" || ! cargo +nightly fuzz --version >/dev/null 2>&1; then
      cat >&2 <<MSG
error: cargo-fuzz is not installed and \`cargo install cargo-fuzz --locked --root $cache\` failed.
Install it with:
  cargo install cargo-fuzz --locked
MSG
      exit 1
    fi
  fi
fi
echo "==> $(cargo +nightly fuzz --version), $(cargo +nightly --version)"

# --- build once -------------------------------------------------------------------------------
build_flags=(--fuzz-dir "$fuzz" --release --debug-assertions)
echo "==> building ${#targets[@]} fuzz target(s): ${targets[*]}"
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "${build_flags[@]}" "$t"
done

# --- run --------------------------------------------------------------------------------------
# "#123456 DONE cov: 1234 ft: 5678 corp: 300/40Kb lim: 4096 exec/s: 1234 rss: 50Mb" -> field value
status_field() { sed -n "s|.* $2: \([^ ]*\).*|\1|p" <<<"$1"; }

rows=()
failed=()
i=0
for t in "${targets[@]}"; do
  i=$((i + 1))
  corpus="$fuzz/corpus/$t"
  artifacts="$fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts" "$fuzz/seeds/$t" "$fuzz/regressions/$t"
  log="$fuzz/artifacts/$t.log"
  marker="$artifacts/.run-started"
  touch "$marker"
  echo "==> [$i/${#targets[@]}] $t: fuzzing for ${seconds}s (corpus $(ls "$corpus" | wc -l) + seeds $(ls "$fuzz/seeds/$t" | wc -l) + regressions $(ls "$fuzz/regressions/$t" | wc -l); log fuzz/artifacts/$t.log)"
  rc=0
  cargo +nightly fuzz run "${build_flags[@]}" "$t" "$corpus" "$fuzz/seeds/$t" "$fuzz/regressions/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || rc=$?

  final="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  [[ -z "$execs" ]] && execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$final")"
  per_sec="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  [[ -z "$per_sec" ]] && per_sec="$(status_field "$final" 'exec/s')"
  cov="$(status_field "$final" cov)"
  ft="$(status_field "$final" ft)"
  corp="$(ls "$corpus" | wc -l)"

  # Inputs libFuzzer wrote during this run (a crash seen before is written again under the same name).
  crashes=0
  while read -r f; do
    [[ -z "$f" ]] && continue
    case "$f" in crash-* | leak-* | oom-* | timeout-*) ;; *) continue ;; esac
    crashes=$((crashes + 1))
    if cmp -s "$artifacts/$f" "$fuzz/regressions/$t/$f"; then
      echo "!!! CRASH AGAIN in $t: fuzz/regressions/$t/$f (already a regression, still failing)"
    else
      cp "$artifacts/$f" "$fuzz/regressions/$t/$f"
      echo "!!! NEW CRASH in $t: fuzz/regressions/$t/$f (copied from fuzz/artifacts/$t/; cargo test -p peerguard-fuzz now replays it)"
    fi
    echo "    reproduce: cargo +nightly fuzz run -O -a --fuzz-dir fuzz $t fuzz/regressions/$t/$f"
    echo "    minimize:  cargo +nightly fuzz tmin -O -a --fuzz-dir fuzz $t fuzz/regressions/$t/$f"
    grep -m 1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" | sed 's/^/    /' || true
  done < <(find "$artifacts" -maxdepth 1 -type f -newer "$marker" -printf '%f\n')

  status=ok
  if [[ $crashes -gt 0 ]]; then
    status=CRASH
  elif [[ $rc -ne 0 ]]; then
    status="FAILED(rc=$rc)"
    echo "!!! $t: cargo fuzz run exited with $rc and left no crash input; the end of fuzz/artifacts/$t.log:"
    tail -n 20 "$log" | sed 's/^/    /'
  fi
  [[ "$status" != ok ]] && failed+=("$t")
  echo "    $t: $status, ${execs:-?} executions, ${per_sec:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus $corp"
  rows+=("$(printf '%-16s %-14s %12s %8s %7s %7s %7s %7s' "$t" "$status" "${execs:-?}" "${per_sec:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes")")
done

echo
echo "==> fuzz summary (${seconds}s per target)"
printf '%-16s %-14s %12s %8s %7s %7s %7s %7s\n' target status executions exec/s cov ft corpus crashes
printf '%s\n' "${rows[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "==> failing targets: ${failed[*]} (inputs in fuzz/regressions/<target>/, logs in fuzz/artifacts/<target>.log)"
  exit 1
fi
