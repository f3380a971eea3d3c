# Sanitizer and fuzzing builds. Each goes into its own build directory (scripts/sanitize.sh,
# scripts/fuzz.sh): instrumented and plain objects must never be mixed.
#
# NODEAGENT_SANITIZE: empty/OFF, "address" (ASan + UBSan; ON means the same) or "thread"
# (TSan). NODEAGENT_FUZZ (clang only): the ASan + UBSan build plus libFuzzer's coverage
# instrumentation, and the fuzz_<name> executables of tests/fuzz. One such build serves both
# the fuzzers and the tests run under ASan + UBSan (scripts/sanitize.sh address), so CI
# compiles the sanitized code once.
#
# The flags apply to every target, generated protobuf code included, so no object is left
# uninstrumented by accident. -fno-sanitize-recover=all makes every UBSan report abort:
# a report fails the test that triggered it instead of scrolling past in its log.
set(NODEAGENT_SANITIZE "" CACHE STRING "Sanitizers: address (ASan+UBSan), thread (TSan) or empty")
option(NODEAGENT_FUZZ "ASan+UBSan build with the libFuzzer targets of tests/fuzz (clang)" OFF)

set(nodeagent_sanitize_flags)
if(NODEAGENT_SANITIZE MATCHES "^(ON|on|address)$")
  set(nodeagent_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(NODEAGENT_SANITIZE STREQUAL "thread")
  set(nodeagent_sanitize_flags -fsanitize=thread)
elseif(NODEAGENT_SANITIZE AND NOT NODEAGENT_SANITIZE MATCHES "^(OFF|off)$")
  message(FATAL_ERROR "NODEAGENT_SANITIZE=${NODEAGENT_SANITIZE}: use address or thread")
endif()
if(NODEAGENT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "NODEAGENT_FUZZ needs clang (libFuzzer): CXX=clang++-16 CC=clang-16")
  endif()
  if(NODEAGENT_SANITIZE STREQUAL "thread")
    message(FATAL_ERROR "NODEAGENT_FUZZ is an ASan + UBSan build; it cannot be combined with TSan")
  endif()
  # Coverage instrumentation for all code; -fsanitize=fuzzer (libFuzzer's main) is linked
  # into the fuzz executables only (tests/fuzz/CMakeLists.txt), so the tests keep their own.
  set(nodeagent_sanitize_flags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all)
endif()
if(nodeagent_sanitize_flags)
  # Static gRPC is linked as a fixed-address executable (-no-pie), which the sanitizer
  # runtimes do not need and TSan's shadow layout may not accept: use the shared libraries.
  if(NODEAGENT_STATIC_DEPS)
    message(FATAL_ERROR "sanitizer and fuzz builds need -DNODEAGENT_STATIC_DEPS=OFF")
  endif()
  add_compile_options(${nodeagent_sanitize_flags} -fno-omit-frame-pointer)
  add_link_options(${nodeagent_sanitize_flags})
  # The gtest files themselves are compiled without optimisation (nodeagent_test): the code
  # under test keeps its optimisation, and a test file builds in half the time (measured:
  # 7-9 s instead of 13-15 s each with ASan + UBSan), which a cold CI run feels.
  set(nodeagent_sanitize_test_options -O0)
endif()

# clang with Debian 12's libstdc++ 12: <expected> is only declared when __cpp_concepts is
# at least 202002L (it relies on conditionally trivial special members, P0848). clang 16
# implements P0848 but still reports 201907L, so tell the library; clang 14 and 15 do not
# implement it and cannot build the project. libc++ is no way out: gRPC, protobuf and
# yaml-cpp from Debian are built against libstdc++.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  if(CMAKE_CXX_COMPILER_VERSION VERSION_LESS 16)
    message(FATAL_ERROR "clang ${CMAKE_CXX_COMPILER_VERSION} cannot instantiate libstdc++'s std::expected; use clang 16 (Debian 12: clang-16)")
  endif()
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-D__cpp_concepts=202002L> $<$<COMPILE_LANGUAGE:CXX>:-Wno-macro-redefined>)
endif()
