#include <gtest/gtest.h>

#include "berth/redis/reply.hpp"

using namespace berth::redis;

TEST(reply, typed_accessors_accept_the_right_type) {
  EXPECT_EQ(as_integer(reply::make_integer(7)).value(), 7);
  EXPECT_EQ(as_string(reply::make_string("x")).value(), "x");
  EXPECT_EQ(as_string(reply::make_status("OK")).value(), "OK");
  EXPECT_EQ(as_optional_string(reply::make_nil()).value(), std::nullopt);
  EXPECT_EQ(as_optional_string(reply::make_string("v")).value(), std::optional<std::string>("v"));
  EXPECT_EQ(as_array(reply::make_array({})).value()->size(), 0u);
  EXPECT_EQ(as_string_array(reply::make_array({reply::make_string("a"), reply::make_string("b")})).value(),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(expect_ok(reply::make_status("OK")));
  EXPECT_TRUE(expect_not_error(reply::make_nil()));
}

TEST(reply, unexpected_types_are_errors_with_a_precise_message) {
  auto e = as_integer(reply::make_string("12"), "INCR counter");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, berth::core::errc::internal);
  EXPECT_EQ(e.error().message, "redis INCR counter: expected integer, got string");
  EXPECT_FALSE(as_string(reply::make_nil()));
  EXPECT_FALSE(as_string(reply::make_integer(1)));
  EXPECT_FALSE(as_optional_string(reply::make_integer(1)));
  EXPECT_FALSE(as_optional_string(reply::make_status("OK")));
  EXPECT_FALSE(as_array(reply::make_nil()));
  EXPECT_FALSE(as_string_array(reply::make_array({reply::make_integer(1)})));
  EXPECT_FALSE(expect_ok(reply::make_status("QUEUED")));
  EXPECT_FALSE(expect_ok(reply::make_string("OK")));  // bulk "OK" is not status OK
}

TEST(reply, error_replies_carry_redis_text) {
  auto r = reply::make_error("WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_EQ(r.error_prefix(), "WRONGTYPE");
  auto e = as_string(r, "GET");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("error reply: WRONGTYPE"), std::string::npos);
  EXPECT_FALSE(expect_not_error(r));
  EXPECT_EQ(reply::make_status("OK").error_prefix(), "");
}

TEST(reply, describe_is_bounded) {
  EXPECT_EQ(describe(reply::make_integer(3)), "(integer) 3");
  EXPECT_EQ(describe(reply::make_nil()), "(nil)");
  EXPECT_EQ(describe(reply::make_array({reply::make_string("a"), reply::make_error("ERR x")})), "[\"a\", (error) ERR x]");
  EXPECT_LE(describe(reply::make_string(std::string(1000, 'x')), 20).size(), 23u);
}
