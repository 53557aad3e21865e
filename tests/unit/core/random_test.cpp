#include <gtest/gtest.h>

#include <set>

#include "berth/core/random.hpp"

using namespace berth::core;

TEST(random, tokens_are_url_safe_and_distinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto t = random_token(15);
    ASSERT_EQ(t.size(), 20u);
    for (char c : t) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(base64, round_trips_every_length) {
  std::string data;
  for (int i = 0; i < 64; ++i) {
    std::string out;
    auto enc = base64_encode(data);
    ASSERT_TRUE(base64_decode(enc, out)) << enc;
    EXPECT_EQ(out, data);
    ASSERT_TRUE(base64_decode(base64_encode(data, true), out));
    EXPECT_EQ(out, data);
    data += static_cast<char>(i * 37);
  }
  EXPECT_EQ(base64_encode(std::string("\x01\x02\x03\x04", 4)), "AQIDBA==");
}

TEST(base64, rejects_garbage) {
  std::string out;
  EXPECT_FALSE(base64_decode("A", out));
  EXPECT_FALSE(base64_decode("AQID!A==", out));
  EXPECT_FALSE(base64_decode("AQI=D", out));
}
