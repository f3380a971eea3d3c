// Runs a libFuzzer target's entry point over files, for builds without libFuzzer (the
// normal GCC build): the committed seed corpus and every input that once crashed a target
// are replayed in the unit tier, so a regression fails there too, not only in the fuzz run.
//   fuzz_replay TARGET FILE|DIR...   (every regular file of a directory, sorted)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

using FuzzEntry = int (*)(const uint8_t*, size_t);
const std::map<std::string, FuzzEntry>& fuzzTargets();  // generated: fuzz_targets.cpp

namespace {

bool replay(FuzzEntry entry, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
    return false;
  }
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  // An exact-size heap copy, so a sanitizer build sees a read past the input's end.
  auto* copy = new uint8_t[bytes.size()];
  std::copy(bytes.begin(), bytes.end(), copy);
  entry(copy, bytes.size());
  delete[] copy;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: fuzz_replay TARGET FILE|DIR...\n");
    return 2;
  }
  auto target = fuzzTargets().find(argv[1]);
  if (target == fuzzTargets().end()) {
    std::fprintf(stderr, "replay: unknown target %s\n", argv[1]);
    return 2;
  }
  size_t inputs = 0;
  for (int i = 2; i < argc; ++i) {
    std::filesystem::path arg(argv[i]);
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(arg);
    }
    for (const auto& f : files) {
      std::fprintf(stderr, "replay %s %s\n", argv[1], f.c_str());
      if (!replay(target->second, f)) return 1;
      ++inputs;
    }
  }
  // An empty corpus would make this test pass without exercising anything.
  if (inputs == 0) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  std::printf("replay: %zu inputs of %s ran without a failure\n", inputs, argv[1]);
  return 0;
}
