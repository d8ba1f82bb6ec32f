// SPDX-License-Identifier: Apache-2.0
// Fuzzes the policy text form (policy/policy_text.hpp): parse_policy, parse_save_entry and
// parse_layer_kind on arbitrary text over every base plan.
// Input: byte 0 picks the base plan (paper with blocks 32..256, or bf16) and a layer kind; the
// rest is the text.
//
// Invariants:
// - the parsers throw nothing but agoq::invalid_argument [exception];
// - a parsed plan validates, and round-trips: parse_policy(to_string(p), any base) == p,
//   parse_policy(to_string(p, base), base) == p (to_string(p, base) empty only when p == base),
//   every entry re-parses from its own text, and at_stage_bits(p, bits) validates for every
//   width [roundtrip].
#include "fuzz_common.hpp"

#include "agoq/error.hpp"
#include "agoq/policy/layer_kind.hpp"
#include "agoq/policy/policy_text.hpp"
#include "agoq/policy/save_plan.hpp"

#include <cstdint>
#include <exception>
#include <string>
#include <typeinfo>

namespace {

using namespace agoq_fuzz;

//! Runs fn; agoq::invalid_argument means "refused" (returns false), anything else fails.
template <class Fn> bool parses(const char* what, const std::string& text, Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const agoq::invalid_argument&) {
    return false;
  } catch (const std::exception& e) {
    fuzz_fail("exception", "%s('%s') threw %s, not agoq::invalid_argument: %s", what,
              text.c_str(), typeid(e).name(), e.what());
  } catch (...) {
    fuzz_fail("exception", "%s('%s') threw a non-std exception", what, text.c_str());
  }
  return false;
}

//! Runs fn, which must not throw at all.
template <class Fn> void must_not_throw(const char* what, const std::string& text, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    fuzz_fail("roundtrip", "%s (text '%s') threw: %s", what, text.c_str(), e.what());
  } catch (...) {
    fuzz_fail("roundtrip", "%s (text '%s') threw a non-std exception", what, text.c_str());
  }
}

agoq::save_plan base_of(int i) {
  return i < 4 ? agoq::paper_save_plan(32 << i) : agoq::bf16_save_plan();
}

void check_plan(const agoq::save_plan& p, const agoq::save_plan& base, const std::string& text) {
  must_not_throw("validate(parsed plan)", text, [&] { agoq::validate(p); });
  const std::string full = agoq::to_string(p);
  for (int b = 0; b < 5; ++b)
    must_not_throw("parse_policy(to_string(p), base)", text, [&] {
      if (agoq::parse_policy(full, base_of(b)) != p)
        fuzz_fail("roundtrip", "parse_policy(to_string(p)) != p for '%s' (base %d): '%s'",
                  text.c_str(), b, full.c_str());
    });
  const std::string rel = agoq::to_string(p, base);
  if (rel.empty()) {
    if (p != base)
      fuzz_fail("roundtrip", "to_string(p, base) is empty but p != base, text '%s'", text.c_str());
  } else {
    must_not_throw("parse_policy(to_string(p, base), base)", text, [&] {
      if (agoq::parse_policy(rel, base) != p)
        fuzz_fail("roundtrip", "parse_policy(to_string(p, base), base) != p for '%s': '%s'",
                  text.c_str(), rel.c_str());
    });
  }
  for (std::size_t i = 0; i < agoq::layer_kind_count; ++i) {
    const auto k = agoq::layer_kind(i);
    const std::string et = agoq::to_string(p[k]);
    must_not_throw("parse_save_entry(kind, to_string(entry))", text, [&] {
      if (agoq::parse_save_entry(k, et) != p[k])
        fuzz_fail("roundtrip", "entry %s = '%s' re-parses differently (text '%s')",
                  agoq::to_string(k), et.c_str(), text.c_str());
    });
  }
  for (int bits : {2, 3, 4, 5, 6, 7, 8, 16})
    must_not_throw("validate(at_stage_bits(p, bits))", text,
                   [&] { agoq::validate(agoq::at_stage_bits(p, bits)); });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int base_index = data[0] % 5;
  const auto kind = agoq::layer_kind((data[0] / 5) % agoq::layer_kind_count);
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const agoq::save_plan base = base_of(base_index);

  agoq::save_plan p;
  if (parses("parse_policy", text, [&] { p = agoq::parse_policy(text, base); }))
    check_plan(p, base, text);

  agoq::save_entry e;
  if (parses("parse_save_entry", text, [&] { e = agoq::parse_save_entry(kind, text); })) {
    const std::string et = agoq::to_string(e);
    must_not_throw("parse_save_entry(to_string(e))", text, [&] {
      if (agoq::parse_save_entry(kind, et) != e)
        fuzz_fail("roundtrip", "parse_save_entry(%s, '%s') re-parses '%s' differently",
                  agoq::to_string(kind), text.c_str(), et.c_str());
    });
    // the entry set on the base plan round-trips as a whole plan too (if the plan is valid)
    agoq::save_plan q = base;
    q.set(kind, e);
    if (parses("validate(save_plan)", text, [&] { agoq::validate(q); })) check_plan(q, base, text);
  }

  agoq::layer_kind k{};
  if (parses("parse_layer_kind", text, [&] { k = agoq::parse_layer_kind(text); }))
    if (agoq::parse_layer_kind(agoq::to_string(k)) != k)
      fuzz_fail("roundtrip", "parse_layer_kind(to_string(k)) != k for '%s'", text.c_str());
  return 0;
}
