#include <gtest/gtest.h>

#include "berth/http/request_info.hpp"

using namespace berth::http;

TEST(request_info, parses_query_and_decodes) {
  auto q = parse_query("EIO=4&transport=polling&sessionId=a%2Fb&x=1+2&flag&=v&bad=%zz");
  EXPECT_EQ(q["EIO"], "4");
  EXPECT_EQ(q["sessionId"], "a/b");
  EXPECT_EQ(q["x"], "1 2");
  EXPECT_EQ(q["flag"], "");
  EXPECT_EQ(q["bad"], "%zz");
  auto [path, query] = split_target("/socket.io/?EIO=4");
  EXPECT_EQ(path, "/socket.io/");
  EXPECT_EQ(query, "EIO=4");
  EXPECT_EQ(percent_decode("%4", false), "%4");
}

TEST(request_info, cors_policy) {
  cors_policy any{{"*"}};
  EXPECT_TRUE(any.allows("http://evil.example", "berth:3000"));
  EXPECT_EQ(any.allow_origin_header("http://x"), "*");
  cors_policy list{{"http://app.example"}};
  EXPECT_TRUE(list.allows("http://app.example", "berth:3000"));
  EXPECT_FALSE(list.allows("http://evil.example", "berth:3000"));
  EXPECT_TRUE(list.allows("", "berth:3000"));                      // non-browser clients
  EXPECT_TRUE(list.allows("http://berth:3000", "berth:3000"));     // same origin (the chat UI)
  EXPECT_FALSE(list.allows("http://berth:3000.evil", "berth:3000"));
  EXPECT_EQ(list.allow_origin_header("http://app.example"), "http://app.example");
  EXPECT_FALSE(list.allow_origin_header("http://evil.example"));
  cors_policy none{};
  EXPECT_FALSE(none.allows("http://evil.example", "berth:3000"));
}

TEST(request_info, later_duplicates_win_and_keys_come_out_sorted) {
  auto q = parse_query("b=1&a=2&b=3&c&a=4");
  ASSERT_EQ(q.size(), 3u);
  std::vector<std::pair<std::string, std::string>> seen(q.begin(), q.end());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"a", "4"}, {"b", "3"}, {"c", ""}}));
  EXPECT_EQ(q.find("b")->second, "3");
  EXPECT_EQ(q.find("zz"), q.end());
  q["aa"] = "x";  // inserted in order
  EXPECT_EQ(std::next(q.begin())->first, "aa");
  // A query as long as the header limit allows, every key distinct: all of them, once each.
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "k" + std::to_string(i) + "=" + std::to_string(i) + "&";
  auto big = parse_query(many);
  EXPECT_EQ(big.size(), 2000u);
  EXPECT_EQ(big.find("k1234")->second, "1234");
}
