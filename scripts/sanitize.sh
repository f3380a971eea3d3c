#!/usr/bin/env bash
# Builds the project once more with sanitizers (clang 16) in its own build directory and
# runs the tiers they cover:
#
#   scripts/sanitize.sh address   ASan + UBSan into build-asan/: the unit, netns and daemon
#                                 tiers. The same build holds the libFuzzer targets
#                                 (scripts/fuzz.sh runs them), which are built here too.
#   scripts/sanitize.sh thread    TSan into build-tsan/: the unit tests of the module runner,
#                                 state store, prefetcher and reporter (tests/tsan_tests.txt)
#   scripts/sanitize.sh KIND --build-only
#                                 only configure and build (scripts/test.sh builds both at
#                                 low priority while the normal tiers run, then runs them)
#
# Only the executables those tests run are built. Any sanitizer report fails: UBSan is built
# without recovery, every runtime halts on the first error, and every report is also
# written to a log directory that is checked after the run, so a report from a daemon or
# CLI that a script test started (and whose exit status the script may not look at) fails
# the run too. Extra args go to ctest. SANITIZE_BUILD_DIR overrides the build directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-}"
shift || true
build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
case "$kind" in
  address)
    build="${SANITIZE_BUILD_DIR:-$root/build-asan}"
    select=(-L '^(unit|netns|daemon)$')
    ;;
  thread)
    build="${SANITIZE_BUILD_DIR:-$root/build-tsan}"
    # The tests of the threaded parts: module runner and state store, prefetcher, reporter.
    select=(-R "$(tr '\n' '|' < "$root/tests/tsan_tests.txt" | sed 's/|$//; s/^/^(/; s/$/)$/')")
    ;;
  *)
    echo "usage: sanitize.sh address|thread [ctest args]" >&2
    exit 2
    ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "sanitize.sh: the netns and daemon tiers need root; run as root" >&2
  exit 1
fi
. "$root/scripts/sanitize-build.sh"
sanitize_configure "$kind" "$build"

# The executables the selected tests run: a test's command or any argument that names a
# target's output, plus the daemon and CLI, which the script tests find on their own. The
# commands come from the CTestTestfile.cmake files: `ctest --show-only` leaves out the
# command of a test whose executable is not built yet, which in a fresh directory is all.
mapfile -t wanted < <(cd "$build" && ctest --show-only=json-v1 "${select[@]}" | python3 -c '
import json, os, re, sys
selected = {t["name"] for t in json.load(sys.stdin)["tests"]}
names = set()
for top, _, files in os.walk("."):
    if "CTestTestfile.cmake" not in files:
        continue
    for line in open(os.path.join(top, "CTestTestfile.cmake")):
        m = re.match(r"\s*add_test\(\[=\[(.+?)\]=\]\s+(.*)\)\s*$", line)
        if m and m.group(1) in selected:
            for word in re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(2)):
                names.add(os.path.basename(word))
print("\n".join(sorted(names)))')
mapfile -t all_targets < <(cmake --build "$build" --target help | sed -n 's/^\.\.\. \([A-Za-z0-9_]*\).*/\1/p')
# The daemon and the CLI for the address build's script tests (the TSan tests need neither).
# The address build is also the fuzz build: its fuzzers are built with the tests, so the
# fuzz stage that follows (scripts/fuzz.sh) only runs them.
targets=()
[ "$kind" = thread ] || { targets=(nodeagentd nodeagentctl); mapfile -t -O 2 targets < <(sed 's/^/fuzz_/' "$build/tests/fuzz/targets.txt"); }
for w in "${wanted[@]}"; do
  for t in "${all_targets[@]}"; do
    [ "$w" = "$t" ] && [[ " ${targets[*]} " != *" $t "* ]] && targets+=("$t")
  done
done
echo "sanitize.sh ($kind): building ${targets[*]}"
start=$(date +%s)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
echo "sanitize.sh ($kind): build took $(( $(date +%s) - start ))s"
[ "$build_only" -eq 0 ] || exit 0

reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
common="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/report"
export ASAN_OPTIONS="$common:detect_leaks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="$common"
export TSAN_OPTIONS="$common:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
# Tests must not pass by a sanitizer report landing in a log nobody reads.
start=$(date +%s)
rc=0
(cd "$build" && ctest --output-on-failure --timeout 1800 "${select[@]}" "$@") || rc=$?
echo "sanitize.sh ($kind): tests took $(( $(date +%s) - start ))s"
if compgen -G "$reports/report*" >/dev/null; then
  echo "sanitize.sh ($kind): sanitizer reports:" >&2
  for f in "$reports"/report*; do
    echo "==== $f" >&2
    cat "$f" >&2
  done
  rc=1
fi
exit "$rc"
