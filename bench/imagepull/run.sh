#!/usr/bin/env bash
# Image prefetch benchmark: 12+ images with shared base layers behind a throttled link (a
# local proxy limiting each connection to RATE bytes/s with DELAY ms per request, as
# TESTING.md describes), pulled from cold by (a) a serial loop of CRI PullImage calls, as
# kubelet does with serializeImagePulls: true, and (b) nodeagent's Prefetcher at the chosen
# concurrency and at the default (3). Same containerd, same registry, same run.
#   bench/imagepull/run.sh [BUILD_DIR]   env: CONCURRENCY (default 12) RATE (5 MiB/s) DELAY_MS (20)
#        IMAGES (12) BASE_KIB (8192) OWN_KIB (1024) ROUNDS (1)
#        SPREAD_NODES (50) SPREAD_WINDOW_MS (30000): the fleet spread of one new cluster set,
#        first registry requests per second (simulated nodes, no containerd: run first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build=$(cd "${1:-$root/build}" && pwd)
bench="$build/bench/imagepull/imagepull_prefetch_bench"
harness="$root/tests/imagepull/cri_harness.sh"
conc=${CONCURRENCY:-12}
rate=${RATE:-5242880}
delay=${DELAY_MS:-20}
n=${IMAGES:-12}
base_kib=${BASE_KIB:-8192}
own_kib=${OWN_KIB:-1024}
rounds=${ROUNDS:-1}
[ -x "$bench" ] || { echo "build imagepull_prefetch_bench first" >&2; exit 1; }
"$bench" - spread "${SPREAD_NODES:-50}" "${SPREAD_WINDOW_MS:-30000}"
[ -n "${SPREAD_ONLY:-}" ] && exit 0
dir=$(mktemp -d /tmp/na-cri-bench.XXXXXX)
trap '"$harness" stop "$dir"; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
"$harness" start "$dir" --proxy-rate "$rate" --proxy-delay-ms "$delay"
# shellcheck disable=SC1091
source "$dir/env"
specs=() images=()
for i in $(seq 1 "$n"); do
  specs+=("img$i:v1=base$(( (i - 1) % 3 ))/$base_kib+$own_kib")
  images+=("$REGISTRY/img$i:v1")
done
"$harness" push "$dir" "${specs[@]}"
unique=$(cut -d' ' -f2- "$dir/images.txt" | tr ' ' '\n' | sort -u | wc -l)
echo "images: $n (3 shared ${base_kib} KiB bases, ${own_kib} KiB own layer each), unique blobs: $unique"
echo "link: $((rate / 1024)) KiB/s per connection, ${delay} ms per request"

phase() {  # phase NAME ARGS... -> prints a result line, leaves the images removed
  local name=$1; shift
  local g0 g1 out
  g0=$("$harness" blob-gets "$dir")
  out=$("$bench" "unix://$CRI_SOCKET" "$@" "${images[@]}" 2>"$dir/bench.err") || { cat "$dir/bench.err" >&2; exit 1; }
  g1=$("$harness" blob-gets "$dir")
  local secs=${out#seconds=}; secs=${secs%% *}
  local rss=${out##*rss_kib=}
  printf '%-22s %8.3f s   blob GETs %3d (unique %d)   client RSS %s KiB  %s\n' "$name" "$secs" $((g1 - g0)) "$unique" "$rss" "$(grep -o 'max_in_flight=[0-9]*' "$dir/bench.err" || true)"
  echo "$secs" >"$dir/t.$name"
  "$bench" "unix://$CRI_SOCKET" remove "${images[@]}"
  sleep 1
}
for r in $(seq 1 "$rounds"); do
  [ "$rounds" -gt 1 ] && echo "round $r"
  phase serial serial
  phase "nodeagent-c$conc" prefetch "$conc"
  phase nodeagent-c3 prefetch 3
  s=$(cat "$dir/t.serial"); a=$(cat "$dir/t.nodeagent-c$conc"); b=$(cat "$dir/t.nodeagent-c3")
  python3 -c "import sys; s,a,b=map(float,sys.argv[1:]); print(f'ratio nodeagent/serial: concurrency $conc: {a/s:.3f}x   default concurrency 3: {b/s:.3f}x   (target <= 0.35x)')" "$s" "$a" "$b"
done
