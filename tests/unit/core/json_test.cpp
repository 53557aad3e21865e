#include "berth/core/json.hpp"

#include <gtest/gtest.h>

#include <string>

namespace berth::core {
namespace {

std::string nested(std::size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(json_depth, counts_arrays_and_objects_but_not_brackets_in_strings) {
  EXPECT_EQ(json_nesting_depth("1", 100), 0u);
  EXPECT_EQ(json_nesting_depth("[]", 100), 1u);
  EXPECT_EQ(json_nesting_depth(R"({"a":[{"b":[]}]})", 100), 4u);
  EXPECT_EQ(json_nesting_depth(R"(["[[[[", "{{{{"])", 100), 1u);
  EXPECT_EQ(json_nesting_depth(R"(["\"[[[[", "\\", [2]])", 100), 2u);  // escaped quote, escaped backslash
  EXPECT_EQ(json_nesting_depth(R"([[],[],[[]]])", 100), 3u);             // siblings do not add up
}

TEST(json_depth, stops_counting_past_the_limit) {
  const auto deep = nested(100000);
  EXPECT_EQ(json_nesting_depth(deep, 10), 11u);
}

TEST(json_depth, the_limit_itself_parses_and_one_more_level_does_not) {
  auto at_limit = parse_json_checked(nested(max_json_depth));
  EXPECT_EQ(at_limit.error, json_error::none);
  EXPECT_TRUE(at_limit.value.is_array());
  auto over = parse_json_checked(nested(max_json_depth + 1, '[', ']'));
  EXPECT_EQ(over.error, json_error::too_deep);
  EXPECT_TRUE(over.value.is_discarded());
  std::string objects;
  for (std::size_t i = 0; i <= max_json_depth; ++i) objects += R"({"k":)";
  objects += "1" + std::string(max_json_depth + 1, '}');
  EXPECT_EQ(parse_json_checked(objects).error, json_error::too_deep);
}

TEST(json_depth, a_hundred_thousand_levels_are_refused_without_touching_the_stack) {
  // The regression: ~600 KB of nesting used to parse, then overflow the stack when copied.
  auto r = parse_json_checked(nested(100000));
  EXPECT_EQ(r.error, json_error::too_deep);
  EXPECT_TRUE(parse_json(std::string(100000, '[')).is_discarded());
}

TEST(json_depth, invalid_text_is_reported_as_invalid) {
  EXPECT_EQ(parse_json_checked("{").error, json_error::invalid);
  EXPECT_EQ(parse_json_checked("").error, json_error::invalid);
  EXPECT_EQ(parse_json_checked("[1,]").error, json_error::invalid);
  EXPECT_EQ(parse_json_checked(R"({"a":1})").value["a"], 1);
  EXPECT_STREQ(to_string(json_error::too_deep), "JSON nested too deeply");
}

TEST(json_depth, a_caller_may_allow_more) {
  EXPECT_EQ(parse_json_checked(nested(100), 128).error, json_error::none);
  EXPECT_EQ(parse_json_checked(nested(100), 99).error, json_error::too_deep);
}

TEST(json_fields, mistyped_members_fall_back_instead_of_throwing) {
  const auto j = nlohmann::json::parse(R"({"s":"x","b":true,"n":1,"a":[1],"o":{}})");
  EXPECT_EQ(json_string(j, "s"), "x");
  EXPECT_EQ(json_string(j, "n", "fallback"), "fallback");  // value("n", "") would throw type_error
  EXPECT_EQ(json_string(j, "a"), "");
  EXPECT_EQ(json_string(j, "missing", "d"), "d");
  EXPECT_EQ(json_string(nlohmann::json::array({1}), "s"), "");
  EXPECT_TRUE(json_bool(j, "b"));
  EXPECT_FALSE(json_bool(j, "s"));
  EXPECT_TRUE(json_bool(j, "o", true));
  EXPECT_FALSE(json_bool(nlohmann::json("str"), "b"));
  EXPECT_EQ(json_uint(j, "n"), 1u);
  EXPECT_EQ(json_uint(j, "s", 7), 7u);  // value("s", 0) would throw type_error
  EXPECT_EQ(json_uint(nlohmann::json::parse(R"({"neg":-1,"f":1.5})"), "neg"), 0u);
  EXPECT_EQ(json_uint(nlohmann::json::parse(R"({"neg":-1,"f":1.5})"), "f"), 0u);
  EXPECT_EQ(json_uint(nlohmann::json::array({1}), "n"), 0u);
}

}  // namespace
}  // namespace berth::core
