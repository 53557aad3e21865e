#include <gtest/gtest.h>

#include "berth/http/url.hpp"

namespace berth::http {
namespace {

TEST(Url, ParsesHttpAndHttps) {
  auto u = parse_url("https://api.openai.com/v1/chat/completions");
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "api.openai.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->target, "/v1/chat/completions");
  u = parse_url("http://127.0.0.1:11434");
  ASSERT_TRUE(u);
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->port, 11434);
  EXPECT_EQ(u->target, "/");
  u = parse_url("http://[::1]:8080/a?b=c#frag");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->target, "/a?b=c");
  u = parse_url("http://h?x=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?x=1");
}

TEST(Url, RejectsBadInput) {
  for (std::string_view s : {"ftp://x", "http://", "http://:80/", "http://h:0", "http://h:65536", "http://h:8x",
                             "http://user:pw@h/", "http://[::1/", "https://h/a b", "http://h\r\n/"}) {
    auto u = parse_url(s);
    EXPECT_FALSE(u) << s;
    if (!u) {
      EXPECT_EQ(u.error().code, core::errc::invalid_payload);
    }
  }
}

}  // namespace
}  // namespace berth::http
