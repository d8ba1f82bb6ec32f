// SPDX-License-Identifier: Apache-2.0
//! @file examples/common/cli.hpp
//! The command-line parser every agoq example uses: one small header, no dependencies (the GPU
//! machines the examples run on have no network), plain C++17.
//!
//!   cli::parser p("agoq-foo", "What agoq-foo does, in a sentence or two.");
//!   std::int64_t count = 1 << 20;
//!   bool verbose = false;
//!   p.option("--count", "N", count, "elements per rank", 1, std::int64_t(1) << 40);
//!   p.flag("--verbose", verbose, "print every step");
//!   if (const auto rc = p.parse(argc, argv)) return *rc; // --help, --version, or an error
//!
//! Rules, the same for every example:
//! - `--help` (or `-h`) prints every flag with its meaning and default, `--version` the agoq
//!   version; both exit 0.
//! - An option's value follows it (`--count 4096`) or is attached (`--count=4096`).
//! - An unknown flag, a missing value, a value that is not entirely a number, or a number out of
//!   its range is refused with one line on stderr that names the flag, ending in "see --help",
//!   and exit status 2 (the usage is not repeated).
//! - Numbers are parsed strictly: integers by std::from_chars (decimal, optional sign, no
//!   trailing characters, range-checked), reals by std::strtod (finite, no trailing characters).
#pragma once

#include "agoq/version.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

namespace cli {

template <class T> struct identity { using type = T; }; // a non-deduced parameter type

//! Exit status for a command-line error.
inline constexpr int usage_error = 2;

//! Parses all of `s` as a decimal integer in [lo, hi]. Returns an error message, empty on success.
template <class Int>
std::string parse_int(const std::string& s, Int& out, Int lo = std::numeric_limits<Int>::min(),
                      Int hi = std::numeric_limits<Int>::max()) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b; // from_chars takes '-' only
  Int v{};
  const auto [ptr, ec] = std::from_chars(b, e, v, 10);
  if (s.empty() || b == e || ec == std::errc::invalid_argument || (ec == std::errc{} && ptr != e))
    return "expected an integer, got '" + s + "'";
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    return "'" + s + "' is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
  out = v;
  return {};
}

//! Parses all of `s` as a finite real in [lo, hi]. Returns an error message, empty on success.
inline std::string parse_real(const std::string& s, double& out,
                              double lo = -std::numeric_limits<double>::max(),
                              double hi = std::numeric_limits<double>::max()) {
  char* end = nullptr;
  const double v = s.empty() || std::isspace(static_cast<unsigned char>(s[0]))
                       ? 0.0
                       : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    return "expected a number, got '" + s + "'";
  if (v < lo || v > hi) {
    std::ostringstream os;
    os << "'" << s << "' is out of range (" << lo << ".." << hi << ")";
    return os.str();
  }
  out = v;
  return {};
}

//! The parser: register flags and options, then parse(argc, argv) once.
class parser {
public:
  //! `program` names the executable in messages; `summary` opens --help.
  parser(std::string program, std::string summary)
      : m_program(std::move(program)), m_summary(std::move(summary)) {}

  //! A flag without a value: sets `target` to true when given.
  parser& flag(const std::string& name, bool& target, const std::string& help) {
    add(name, "", help, "", [&target](const std::string&) {
      target = true;
      return std::string();
    });
    m_items.back().takes_value = false;
    return *this;
  }

  //! An integer option in [lo, hi]; `target` keeps its value (shown as the default) unless given.
  template <class Int, std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>,
                                        int> = 0>
  parser& option(const std::string& name, const std::string& metavar, Int& target,
                 const std::string& help,
                 typename identity<Int>::type lo = std::numeric_limits<Int>::min(),
                 typename identity<Int>::type hi = std::numeric_limits<Int>::max()) {
    return add(name, metavar, help, std::to_string(target),
               [&target, lo, hi](const std::string& v) { return parse_int(v, target, lo, hi); });
  }

  //! A real option in [lo, hi].
  parser& option(const std::string& name, const std::string& metavar, double& target,
                 const std::string& help, double lo = -std::numeric_limits<double>::max(),
                 double hi = std::numeric_limits<double>::max()) {
    std::ostringstream def;
    def << target;
    return add(name, metavar, help, def.str(),
               [&target, lo, hi](const std::string& v) { return parse_real(v, target, lo, hi); });
  }

  //! A text option; with `choices`, the value must be one of them.
  parser& option(const std::string& name, const std::string& metavar, std::string& target,
                 const std::string& help, std::vector<std::string> choices = {}) {
    std::string shown_help = help;
    if (!choices.empty()) {
      shown_help += " (one of:";
      for (const auto& c : choices) shown_help += " " + c;
      shown_help += ")";
    }
    return add(name, metavar, shown_help, target,
               [&target, choices](const std::string& v) {
                 if (!choices.empty() && std::find(choices.begin(), choices.end(), v) ==
                                             choices.end()) {
                   std::string all;
                   for (const auto& c : choices) all += (all.empty() ? "" : ", ") + c;
                   return "'" + v + "' is not one of " + all;
                 }
                 target = v;
                 return std::string();
               });
  }

  //! A line printed after the options in --help (examples, notes).
  parser& note(const std::string& text) {
    m_notes.push_back(text);
    return *this;
  }

  //! Parses argv. Returns an exit status when the program should stop (0 after --help or
  //! --version, 2 after an error, with the message already on `err`), nothing to go on.
  std::optional<int> parse(int argc, const char* const* argv, std::ostream& out = std::cout,
                           std::ostream& err = std::cerr) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        out << help();
        return 0;
      }
      if (arg == "--version") {
        out << m_program << " (agoq " << agoq::version_string << ")\n";
        return 0;
      }
      std::string value;
      bool attached = false;
      if (arg.rfind("--", 0) == 0) {
        const auto eq = arg.find('=');
        if (eq != std::string::npos) {
          value = arg.substr(eq + 1);
          arg = arg.substr(0, eq);
          attached = true;
        }
      }
      item* it = find(arg);
      if (!it) {
        const bool looks_like_flag = !arg.empty() && arg[0] == '-';
        return error(err, looks_like_flag ? "unknown option '" + arg + "'"
                                          : "unexpected argument '" + arg + "'");
      }
      if (!it->takes_value) {
        if (attached) return error(err, arg + " takes no value");
      } else if (!attached) {
        if (i + 1 >= argc) return error(err, arg + " needs a value (" + it->metavar + ")");
        value = argv[++i];
      }
      if (it->given && it->takes_value)
        return error(err, arg + " is given twice");
      it->given = true;
      if (const std::string why = it->set(value); !why.empty()) return error(err, arg + ": " + why);
    }
    return std::nullopt;
  }

  //! True when `name` was on the command line.
  bool given(const std::string& name) const {
    for (const auto& it : m_items)
      if (it.name == name) return it.given;
    return false;
  }

  //! For checks after parse(): prints "<program>: <message>; see --help" and returns 2.
  int fail(const std::string& message, std::ostream& err = std::cerr) const {
    return *error(err, message);
  }

  //! The --help text: each flag on its own line, its meaning indented below it, wrapped at 80
  //! columns, with the default value unless the meaning already speaks of one.
  std::string help() const {
    std::ostringstream os;
    os << "usage: " << m_program << " [options]\n\n" << m_summary << "\n\noptions:\n";
    auto entry = [&os](const std::string& left, const std::string& text) {
      os << "  " << left << "\n";
      std::istringstream words(text);
      std::string word, line;
      while (words >> word) {
        if (!line.empty() && line.size() + 1 + word.size() > 72) {
          os << "      " << line << "\n";
          line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
      }
      if (!line.empty()) os << "      " << line << "\n";
    };
    for (const item& it : m_items) {
      std::string text = it.help;
      if (it.takes_value && !it.default_text.empty() && text.find("default") == std::string::npos)
        text += " [default: " + it.default_text + "]";
      entry(it.name + (it.takes_value ? " " + it.metavar : std::string()), text);
    }
    entry("--help", "print this help and exit");
    entry("--version", "print the agoq version and exit");
    for (const auto& n : m_notes) os << "\n" << n << "\n";
    return os.str();
  }

  const std::string& program() const noexcept { return m_program; }

private:
  struct item {
    std::string name, metavar, help, default_text;
    std::function<std::string(const std::string&)> set;
    bool takes_value = true;
    bool given = false;
  };

  parser& add(const std::string& name, const std::string& metavar, const std::string& help,
              const std::string& default_text, std::function<std::string(const std::string&)> set) {
    m_items.push_back(item{name, metavar, help, default_text, std::move(set)});
    return *this;
  }
  item* find(const std::string& name) {
    for (auto& it : m_items)
      if (it.name == name) return &it;
    return nullptr;
  }
  std::optional<int> error(std::ostream& err, const std::string& message) const {
    err << m_program << ": " << message << "; see --help\n";
    return usage_error;
  }

  std::string m_program, m_summary;
  std::vector<item> m_items;
  std::vector<std::string> m_notes;
};

} // namespace cli
