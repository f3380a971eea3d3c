#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang 16 (ASan + UBSan + coverage) in the
# address sanitizer build, build-asan/ (FUZZ_BUILD_DIR overrides; scripts/sanitize.sh
# address builds them too, so in a full test run this only runs them), and runs each for a
# while, two at a time.
#
#   scripts/fuzz.sh [--seconds N] [--jobs N] [--seed N] [TARGET...]
#                                                  (default: 30 s, every target, random seed)
#
# --seed N makes the run repeatable, as the full test run (scripts/test.sh) uses it: every
# target starts from the committed seeds only (a corpus directory of its own, emptied
# first) with libFuzzer's random generator seeded with N, and runs the number of inputs
# tests/fuzz/runs.txt gives it instead of a time (--seconds, times 20, is then only a
# safety net), so every machine runs the same inputs: what the stage finds depends on the
# code, not on chance, machine speed or earlier runs. Without it the run explores: a new
# seed each time, for a time, from the corpus grown by earlier runs.
#
# The committed seeds (tests/fuzz/corpus/<target>/) are read, never written: what the
# fuzzer finds goes to build-asan/fuzz-corpus/<target>/, a crashing input to
# build-asan/fuzz-artifacts/<target>/. Prints executions and crashes per target; exits 1
# when any target crashed (a sanitizer report, a broken property, a timeout or an OOM).
# Fixing a crash: copy its input into tests/fuzz/corpus/<target>/ (the unit tier's
# fuzz_replay_<target> replays it from then on) and add a named test beside the module.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-asan}"
seconds=30
jobs=2
seed=
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
. "$root/scripts/sanitize-build.sh"
sanitize_configure address "$build"
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < "$build/tests/fuzz/targets.txt"
fi
build_start=$(date +%s)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"
echo "fuzz.sh: build took $(( $(date +%s) - build_start ))s"

export ASAN_OPTIONS="detect_leaks=1:symbolize=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-16 || echo /usr/lib/llvm-16/bin/llvm-symbolizer)}"
logs="$build/fuzz-logs"
mkdir -p "$logs"

corpus_root="$build/fuzz-corpus"
seed_args=()
if [ -n "$seed" ]; then
  corpus_root="$build/fuzz-corpus-seed$seed"
  seed_args=(-seed="$seed")
fi

runs_for() {  # the executions tests/fuzz/runs.txt gives target $1
  local n
  n=$(awk -v t="$1" '$1 == t { print $2 }' "$root/tests/fuzz/runs.txt")
  [ -n "$n" ] || { echo "fuzz.sh: no run count for $1 in tests/fuzz/runs.txt" >&2; return 1; }
  echo "$n"
}

run_one() {
  local t="$1" work="$corpus_root/$1" art="$build/fuzz-artifacts/$1/"
  rm -rf "$art"
  local limit=(-max_total_time="$seconds")
  if [ -n "$seed" ]; then
    rm -rf "$work"
    limit=(-runs="$(runs_for "$t")" -max_total_time="$((seconds * 20))")
  fi
  mkdir -p "$work" "$art"
  local rc=0
  "$build/tests/fuzz/fuzz_$t" "${seed_args[@]}" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art" "$work" "$root/tests/fuzz/corpus/$t" \
    >"$logs/$t.log" 2>&1 || rc=$?
  echo "$rc" > "$logs/$t.rc"
}

if [ -n "$seed" ]; then
  for t in "${targets[@]}"; do runs_for "$t" >/dev/null || exit 2; done
fi
start=$(date +%s)
running=0
for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/fuzz_$t" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
  rm -f "$logs/$t.rc"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

failed=0
printf '%-18s %12s %10s %8s %8s\n' target executions exec/s corpus crashes
for t in "${targets[@]}"; do
  log="$logs/$t.log"
  rc=$(cat "$logs/$t.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # A crash ends the run before the final stats: take the last status line's count.
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$corpus_root/$t" -type f | wc -l)
  crashes=$(find "$build/fuzz-artifacts/$t" -type f 2>/dev/null | wc -l)
  [ "$rc" -eq 0 ] || { [ "$crashes" -gt 0 ] || crashes=1; }
  printf '%-18s %12s %10s %8s %8s\n' "$t" "${execs:-?}" "${speed:-?}" "$corpus" "$crashes"
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "---- fuzz_$t failed (exit $rc); log $log; inputs in $build/fuzz-artifacts/$t/" >&2
    grep -E 'ERROR|SUMMARY|violated|Test unit written|==[0-9]+==' "$log" | head -20 >&2 || true
  fi
done
each="${seconds}s each"
[ -z "$seed" ] || each="seed $seed, the runs of tests/fuzz/runs.txt"
echo "fuzz.sh: ${#targets[@]} targets, $each, $(( $(date +%s) - start ))s wall"
exit "$failed"
