#!/usr/bin/env bash
# Writes the build tree's target graph with `cmake --graphviz` (a re-configure of the
# existing build tree, a few seconds) and checks the library graph and the cross-folder
# includes with check_dependency_graph.py.
#   dependency_graph_test.sh CMAKE SOURCE_DIR BUILD_DIR
set -euo pipefail
cmake="$1"; src="$2"; build="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d /tmp/nodeagent-graph.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$cmake" --graphviz="$work/deps.dot" "$build" > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; exit 1; }
python3 "$here/check_dependency_graph.py" --dot "$work/deps.dot" --source-dir "$src"
