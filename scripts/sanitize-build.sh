# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: configures a sanitizer build directory.
#
#   sanitize_configure address DIR   clang 16, ASan + UBSan with libFuzzer's coverage
#                                    (NODEAGENT_FUZZ): the tests run under ASan + UBSan and
#                                    the fuzz_<name> targets come from this one build
#   sanitize_configure thread DIR    clang 16, TSan
#
# Both use clang 16 from Debian (scripts/packages/fuzz.txt). -O1 and line tables only:
# what the sanitizers' reports need (function, file, line), at a fraction of the compile
# and link time of -O2 -g. _GLIBCXX_ASSERTIONS checks the bounds of libstdc++'s containers,
# which ASan does not see inside a vector's capacity. Never -Werror here: the normal GCC
# build is the one held to it.

sanitize_configure() {
  local kind="$1" dir="$2" extra=()
  local tool
  for tool in clang-16 clang++-16; do
    command -v "$tool" >/dev/null || { echo "sanitize: $tool missing (scripts/packages/fuzz.txt)" >&2; return 1; }
  done
  case "$kind" in
    address) extra=(-DNODEAGENT_SANITIZE=address -DNODEAGENT_FUZZ=ON) ;;
    thread) extra=(-DNODEAGENT_SANITIZE=thread -DNODEAGENT_FUZZ=OFF) ;;
    *) echo "sanitize_configure: address or thread, not $kind" >&2; return 2 ;;
  esac
  # A directory configured by an older script with GCC keeps its compiler: start it afresh.
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-16$' "$dir/CMakeCache.txt"; then
    echo "sanitize: $dir was configured with another compiler; removing it" >&2
    rm -rf "$dir"
  fi
  local flags="-O1 -gline-tables-only -D_GLIBCXX_ASSERTIONS"
  CC=clang-16 CXX=clang++-16 cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
    -DNODEAGENT_WERROR=OFF -DNODEAGENT_STATIC_DEPS=OFF "${extra[@]}" >/dev/null
}
