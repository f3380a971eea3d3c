#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for 10 minutes (FUZZ_SECONDS overrides), two at
# a time, and prints executions, speed, corpus size and crashes per target. The grown
# corpus stays in build-asan/fuzz-corpus/ between runs; crashing inputs land in
# build-asan/fuzz-artifacts/<target>/ (see scripts/fuzz.sh for what to do with them).
# CPU-heavy: takes the shared heavy-work lock so benchmarks and VM tests do not overlap.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${FUZZ_SECONDS:-600}"
exec flock /tmp/nodeagent-heavy.lock "$root/scripts/fuzz.sh" --seconds "$seconds" "$@"
