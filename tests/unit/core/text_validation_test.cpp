#include "berth/core/text_validation.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/support/json_reference.hpp"

namespace berth::core {
namespace {

// The validator and nlohmann agree on `text`, limit `depth` (see validate_json's contract).
::testing::AssertionResult agrees_with_nlohmann(const std::string& text, std::size_t depth = max_json_depth) {
  const auto mine = validate_json(text, depth);
  const auto ref = test::nlohmann_verdict(text);
  if (test::validator_agrees(mine, ref, depth)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "': validator " << to_string(mine) << ", nlohmann "
                                       << (ref.ok ? "ok" : "error") << " at depth " << ref.deepest;
}

TEST(text_validation, accepts_what_json_allows) {
  for (const char* ok : {"0", "-0", "1.5e-3", "-12E+4", "true", "false", "null", R"("")", " [ ] ", "{}",
                         R"({"a":[1,{"b":null}],"c":"d"})", R"(["\"\\\/\b\f\n\r\t\u00e9\uD834\uDD1E"])",
                         "\t\r\n[1 , 2\n]\n", "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e\"", R"("a long string, longer than eight")"}) {
    EXPECT_EQ(validate_json(ok), json_error::none) << ok;
    EXPECT_TRUE(agrees_with_nlohmann(ok));
  }
}

TEST(text_validation, refuses_what_json_does_not) {
  for (const char* bad : {"", " ", "[", "]", "[1,]", "{\"a\"}", "{\"a\":}", "{,}", "{1:2}", "01", "1.", ".5", "1e", "+1",
                          "-", "tru", "nul", "[1 2]", "[1]]", "[1] x", "\"abc", R"("\x")", R"("\u12G4")", R"("\uD834")",
                          R"("\uD834\u0041")", R"("\uDD1E")", "\"tab\there\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "'a'", "[1,]]", "{\"a\":1,}", "\"12345678\x01\""}) {
    EXPECT_EQ(validate_json(bad), json_error::invalid) << bad;
    EXPECT_TRUE(agrees_with_nlohmann(bad));
  }
}

// nlohmann stops at a NUL byte as if the text ended there; a NUL has no place in JSON.
TEST(text_validation, a_nul_byte_is_refused_where_nlohmann_would_stop_reading) {
  EXPECT_EQ(validate_json(std::string("0\0junk", 6)), json_error::invalid);
  EXPECT_EQ(validate_json(std::string("[\"a\0\"]", 6)), json_error::invalid);
  EXPECT_TRUE(nlohmann::json::accept(std::string("0\0junk", 6)));  // the quirk this guards against
}

TEST(text_validation, nesting_past_the_limit_is_too_deep_before_the_rest_is_read) {
  const std::string at_limit = std::string(64, '[') + std::string(64, ']');
  EXPECT_EQ(validate_json(at_limit, 64), json_error::none);
  EXPECT_EQ(validate_json("[" + at_limit + "]", 64), json_error::too_deep);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
  EXPECT_EQ(validate_json(objects), json_error::too_deep);  // never closed: refused at level 65
  EXPECT_EQ(validate_json("[]", 0), json_error::too_deep);
  EXPECT_EQ(validate_json("1", 0), json_error::none);
  // The stack is a fixed bitset: a larger limit is capped, not trusted.
  const std::string very_deep = std::string(5000, '[') + std::string(5000, ']');
  EXPECT_EQ(validate_json(very_deep, 1000000), json_error::too_deep);
}

TEST(text_validation, a_special_byte_is_found_wherever_the_eight_byte_step_lands) {
  for (std::size_t at = 0; at < 24; ++at) {
    std::string s(24, 'x');
    s[at] = '\x01';
    EXPECT_EQ(validate_json("\"" + s + "\""), json_error::invalid) << at;
    EXPECT_FALSE(is_valid_utf8(std::string(at, 'x') + "\xff" + std::string(9, 'y'))) << at;
    s[at] = '"';
    EXPECT_EQ(validate_json("\"" + s + "\""), json_error::invalid) << at;
    s[at] = '\\';
    EXPECT_EQ(validate_json("\"" + s + "\""), json_error::invalid) << at;  // "\x" is no escape
    s.replace(at, 1, "\xc3\xa9");
    EXPECT_EQ(validate_json("\"" + s + "\""), json_error::none) << at;
    EXPECT_TRUE(is_valid_utf8(s)) << at;
  }
}

TEST(text_validation, utf8) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac\xf0\x9d\x84\x9e and some more ASCII"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("abcdefgh\x80"));      // a lone continuation byte after a full word
}

// Mutations of valid documents (a byte replaced, inserted or dropped) hit the grammar's corners;
// nlohmann's parser is the reference for every one of them.
TEST(text_validation, agrees_with_nlohmann_on_mutated_documents) {
  const std::vector<std::string> seeds = {
      R"(["message",{"text":"hello","n":[1,-2.5e3,true,false,null]}])",
      R"({"a":{"b":{"c":[[],[{}],"\u00e9\uD83D\uDE00"]}}})",
      "[\"caf\xc3\xa9\",\"\\\"quoted\\\"\",0,-0.0,1E9]",
  };
  const std::string alphabet = "[]{}\",:\\u0123456789.eE+-tfnrl \t\xc3\xa9\xed\xa0\x80\xff";
  std::mt19937 rng(20261207);
  for (int round = 0; round < 20000; ++round) {
    std::string text = seeds[rng() % seeds.size()];
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0 && !text.empty(); --edits) {
      const std::size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: text[at] = c; break;
        case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: text.erase(at, 1);
      }
    }
    ASSERT_TRUE(agrees_with_nlohmann(text, 3));
  }
}

}  // namespace
}  // namespace berth::core
