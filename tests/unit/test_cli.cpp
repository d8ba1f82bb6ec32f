// SPDX-License-Identifier: Apache-2.0
// examples/common/cli.hpp: the examples' command-line parser.
#include "../../examples/common/cli.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct run_result {
  std::optional<int> rc;
  std::string out, err;
};

struct fixture {
  cli::parser p{"agoq-test", "A test program."};
  std::int64_t count = 4096;
  int layers = 32;
  double tolerance = 0.0;
  bool json = false;
  std::string schedule = "1f1b";
  std::string path;
  fixture() {
    p.option("--count", "N", count, "elements", 1, std::int64_t(1) << 40)
        .option("--num-layers", "N", layers, "transformer layers", 1, 1 << 20)
        .option("--tolerance", "X", tolerance, "budget tolerance", 0.0, 1.0)
        .flag("--json", json, "print JSON")
        .option("--schedule", "NAME", schedule, "pipeline schedule", {"gpipe", "1f1b"})
        .option("--id-file", "PATH", path, "where rank 0 writes the id")
        .note("example: agoq-test --count 8");
  }
  run_result run(std::vector<std::string> args) {
    args.insert(args.begin(), "agoq-test");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    run_result r;
    r.rc = p.parse(int(argv.size()), argv.data(), out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }
};

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST(Cli, ParsesOptionsFlagsAndAttachedValues) {
  fixture f;
  const auto r = f.run({"--count", "8", "--num-layers=40", "--tolerance", "0.05", "--json",
                        "--schedule", "gpipe", "--id-file", "/tmp/x"});
  EXPECT_FALSE(r.rc.has_value()) << r.err;
  EXPECT_EQ(f.count, 8);
  EXPECT_EQ(f.layers, 40);
  EXPECT_DOUBLE_EQ(f.tolerance, 0.05);
  EXPECT_TRUE(f.json);
  EXPECT_EQ(f.schedule, "gpipe");
  EXPECT_EQ(f.path, "/tmp/x");
  EXPECT_TRUE(f.p.given("--count"));
  EXPECT_FALSE(fixture().p.given("--count"));
}

TEST(Cli, DefaultsStayWhenNotGiven) {
  fixture f;
  EXPECT_FALSE(f.run({}).rc.has_value());
  EXPECT_EQ(f.count, 4096);
  EXPECT_EQ(f.layers, 32);
  EXPECT_FALSE(f.json);
}

TEST(Cli, HelpExplainsEveryFlagAndExitsZero) {
  fixture f;
  const auto r = f.run({"--help"});
  ASSERT_TRUE(r.rc.has_value());
  EXPECT_EQ(*r.rc, 0);
  for (const char* s : {"usage: agoq-test", "A test program.", "--count N", "elements",
                        "[default: 4096]", "--num-layers N", "--tolerance X", "--json",
                        "one of: gpipe 1f1b", "--help", "--version", "example: agoq-test"})
    EXPECT_TRUE(contains(r.out, s)) << s << " missing from\n" << r.out;
  EXPECT_TRUE(r.err.empty());
  EXPECT_EQ(*fixture().run({"-h"}).rc, 0);
  // --help wins wherever it is, even after a bad value would have been seen
  EXPECT_EQ(*fixture().run({"--help", "--count", "x"}).rc, 0);
}

TEST(Cli, VersionPrintsTheLibraryVersion) {
  fixture f;
  const auto r = f.run({"--version"});
  ASSERT_TRUE(r.rc.has_value());
  EXPECT_EQ(*r.rc, 0);
  EXPECT_EQ(r.out, std::string("agoq-test (agoq ") + agoq::version_string + ")\n");
}

TEST(Cli, ErrorsAreOneLineNamingTheFlagWithExitTwo) {
  struct bad {
    std::vector<std::string> args;
    const char* says;
  };
  const bad cases[] = {
      {{"--layers", "4"}, "unknown option '--layers'"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"--count"}, "--count needs a value (N)"},
      {{"--count", "12abc"}, "--count: expected an integer, got '12abc'"},
      {{"--count", ""}, "--count: expected an integer, got ''"},
      {{"--count", " 12"}, "--count: expected an integer"},
      {{"--count", "1.5"}, "--count: expected an integer"},
      {{"--count", "0"}, "--count: '0' is out of range (1..1099511627776)"},
      {{"--count", "-3"}, "out of range"},
      {{"--count", "99999999999999999999999"}, "--count: '99999999999999999999999' is out of range"},
      {{"--num-layers", "4294967297"}, "--num-layers: '4294967297' is out of range"},
      {{"--tolerance", "nan"}, "--tolerance: expected a number, got 'nan'"},
      {{"--tolerance", "0.1x"}, "--tolerance: expected a number"},
      {{"--tolerance", "2"}, "--tolerance: '2' is out of range"},
      {{"--json=yes"}, "--json takes no value"},
      {{"--schedule", "zb"}, "--schedule: 'zb' is not one of gpipe, 1f1b"},
      {{"--count", "8", "--count", "9"}, "--count is given twice"},
  };
  for (const bad& c : cases) {
    fixture f;
    const auto r = f.run(c.args);
    ASSERT_TRUE(r.rc.has_value()) << c.says;
    EXPECT_EQ(*r.rc, 2) << c.says;
    EXPECT_TRUE(contains(r.err, c.says)) << r.err;
    EXPECT_TRUE(contains(r.err, "; see --help\n")) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_EQ(r.err.rfind("agoq-test: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << "no usage dump: " << r.out;
  }
  fixture f;
  std::ostringstream err;
  EXPECT_EQ(f.p.fail("--num-layers (30) must be a multiple of 4", err), 2);
  EXPECT_EQ(err.str(), "agoq-test: --num-layers (30) must be a multiple of 4; see --help\n");
}

TEST(Cli, StrictNumberParsing) {
  int v = 0;
  EXPECT_EQ(cli::parse_int<int>("+7", v), "");
  EXPECT_EQ(v, 7);
  EXPECT_EQ(cli::parse_int<int>("-7", v), "");
  EXPECT_EQ(v, -7);
  EXPECT_NE(cli::parse_int<int>("0x10", v), "");
  EXPECT_NE(cli::parse_int<int>("7 ", v), "");
  EXPECT_NE(cli::parse_int<int>("+", v), "");
  EXPECT_NE(cli::parse_int<int>("2147483648", v), "");
  EXPECT_EQ(cli::parse_int<int>("2147483647", v), "");
  double d = 0;
  EXPECT_EQ(cli::parse_real("1e-3", d), "");
  EXPECT_DOUBLE_EQ(d, 1e-3);
  EXPECT_NE(cli::parse_real("inf", d), "");
  EXPECT_NE(cli::parse_real("", d), "");
  EXPECT_NE(cli::parse_real(" 1", d), "");
}
