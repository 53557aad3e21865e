#include <gtest/gtest.h>

#include "berth/redis/url.hpp"

using namespace berth::redis;
using kind = redis_endpoint::kind;

TEST(redis_url, defaults) {
  auto e = parse_redis_url("redis://127.0.0.1:6379").value();
  EXPECT_EQ(e.transport, kind::tcp);
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 6379);
  EXPECT_EQ(e.db, 0);
  EXPECT_TRUE(e.password.empty());
  auto h = parse_redis_url("redis://redis").value();
  EXPECT_EQ(h.host, "redis");
  EXPECT_EQ(h.port, 6379);
}

TEST(redis_url, password_port_db) {
  auto e = parse_redis_url("redis://:s3cr%40t@localhost:7000/3").value();
  EXPECT_EQ(e.password, "s3cr@t");
  EXPECT_TRUE(e.username.empty());
  EXPECT_EQ(e.host, "localhost");
  EXPECT_EQ(e.port, 7000);
  EXPECT_EQ(e.db, 3);
  EXPECT_EQ(e.redacted(), "redis://localhost:7000/3");  // no password
  auto u = parse_redis_url("redis://alice:pw@h/1").value();
  EXPECT_EQ(u.username, "alice");
  EXPECT_EQ(u.password, "pw");
  auto p = parse_redis_url("redis://onlypass@h").value();
  EXPECT_EQ(p.password, "onlypass");
  auto v6 = parse_redis_url("redis://[::1]:6380/2").value();
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 6380);
  EXPECT_EQ(v6.redacted(), "redis://[::1]:6380/2");
}

TEST(redis_url, unix_socket) {
  auto e = parse_redis_url("unix:///run/redis/redis.sock?db=4").value();
  EXPECT_EQ(e.transport, kind::unix_socket);
  EXPECT_EQ(e.path, "/run/redis/redis.sock");
  EXPECT_EQ(e.db, 4);
  auto p = parse_redis_url("unix://:pw@/tmp/r.sock").value();
  EXPECT_EQ(p.password, "pw");
  EXPECT_EQ(p.path, "/tmp/r.sock");
  auto q = parse_redis_url("redis+unix:///tmp/r.sock?password=x&db=2").value();
  EXPECT_EQ(q.password, "x");
  EXPECT_EQ(q.db, 2);
  EXPECT_EQ(q.redacted(), "unix:///tmp/r.sock?db=2");
}

TEST(redis_url, rejects_bad_input_precisely) {
  struct c {
    const char* url;
    const char* fragment;
  } cases[] = {
      {"http://x", "scheme"},
      {"rediss://x", "TLS"},
      {"redis://", "missing host"},
      {"redis://h:0", "port"},
      {"redis://h:65536", "port"},
      {"redis://h:", "empty port"},
      {"redis://h:12ab", "port"},
      {"redis://h/x", "db"},
      {"redis://h/-1", "db"},
      {"redis://[::1", "IPv6"},
      {"unix://relative.sock", "absolute"},
      {"unix:///x.sock?db=z", "db"},
      {"unix:///x.sock?foo=1", "unknown query"},
      {"redis://:%zz@h", "%-escape"},
  };
  for (const auto& t : cases) {
    auto r = parse_redis_url(t.url);
    ASSERT_FALSE(r) << t.url;
    EXPECT_EQ(r.error().code, berth::core::errc::invalid_payload);
    EXPECT_NE(r.error().message.find(t.fragment), std::string::npos) << t.url << ": " << r.error().message;
  }
  EXPECT_FALSE(parse_redis_url(std::string(5000, 'a')));
}

TEST(redis_url, password_never_in_errors) {
  auto r = parse_redis_url("redis://:hunter2@h:99999");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos);
}

TEST(backoff, capped_exponential) {
  using std::chrono::milliseconds;
  EXPECT_EQ(backoff_delay(milliseconds(50), milliseconds(2000), 1), milliseconds(50));
  EXPECT_EQ(backoff_delay(milliseconds(50), milliseconds(2000), 2), milliseconds(100));
  EXPECT_EQ(backoff_delay(milliseconds(50), milliseconds(2000), 6), milliseconds(1600));
  EXPECT_EQ(backoff_delay(milliseconds(50), milliseconds(2000), 7), milliseconds(2000));
  EXPECT_EQ(backoff_delay(milliseconds(50), milliseconds(2000), 1000000), milliseconds(2000));
}
