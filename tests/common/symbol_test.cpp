// Symbol: one id per distinct string, the same from every thread; "" is the empty symbol.
#include "common/symbol.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace nodeagent {
namespace {

TEST(Symbol, EqualStringsShareOneIdAndReadBack) {
  Symbol a("node-a"), b(std::string("node-") + "a"), c("node-b");
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c);
  EXPECT_EQ(a.view(), "node-a");
  EXPECT_TRUE(a == std::string_view("node-a"));
  EXPECT_EQ(sizeof(Symbol), 4u);
  Symbol empty, alsoEmpty("");
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty, alsoEmpty);
  EXPECT_EQ(empty.view(), "");
  // A long name (no small-string buffer) reads back whole.
  std::string longName(300, 'z');
  EXPECT_EQ(Symbol(longName).view(), longName);
}

TEST(Symbol, ThreadsInterningTheSameNamesAgree) {
  size_t before = Symbol::count();
  constexpr int kThreads = 4, kNames = 3000;  // more than one chunk of the table
  std::vector<std::vector<Symbol>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kNames; ++i) got[t].push_back(Symbol("symbol-test-" + std::to_string(i)));
    });
  for (auto& th : threads) th.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(got[t], got[0]);
  for (int i = 0; i < kNames; ++i) EXPECT_EQ(got[0][i].view(), "symbol-test-" + std::to_string(i));
  EXPECT_EQ(Symbol::count(), before + kNames);
}

}  // namespace
}  // namespace nodeagent
