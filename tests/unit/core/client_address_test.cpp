#include <gtest/gtest.h>

#include <vector>

#include "berth/core/client_address.hpp"

using namespace berth::core;

namespace {
ip_address ip(std::string_view s) {
  auto a = parse_ip(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(ip_address{});
}
trusted_proxies trust(std::string_view list) {
  auto t = trusted_proxies::parse(list);
  EXPECT_TRUE(t) << list;
  return t.value_or(trusted_proxies{});
}
std::string resolve(std::string_view peer, std::vector<std::string_view> xff, std::string_view trusted) {
  return resolve_client_address(ip(peer), xff, trust(trusted)).to_string();
}
}  // namespace

TEST(client_address, parses_v4_v6_and_v4_mapped) {
  EXPECT_EQ(ip("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_TRUE(ip("192.0.2.1").v4);
  EXPECT_EQ(ip("2001:DB8::1").to_string(), "2001:db8::1");
  EXPECT_FALSE(ip("2001:db8::1").v4);
  // A dual-stack socket's view of an IPv4 peer is the same client.
  EXPECT_EQ(ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
  EXPECT_EQ(ip("[::1]").to_string(), "::1");
  for (auto bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "unknown", "::g", "1.2.3.4 ", "01234567890123456789012345678901234567890123456"})
    EXPECT_FALSE(parse_ip(bad)) << bad;
}

TEST(client_address, ipv6_limits_count_per_64) {
  EXPECT_EQ(ip("2001:db8:1:2:aaaa::1").limit_key(), "2001:db8:1:2::/64");
  EXPECT_EQ(ip("2001:db8:1:2:bbbb::7").limit_key(), ip("2001:db8:1:2:aaaa::1").limit_key());
  EXPECT_NE(ip("2001:db8:1:3::1").limit_key(), ip("2001:db8:1:2::1").limit_key());
  EXPECT_EQ(ip("192.0.2.1").limit_key(), "192.0.2.1");
}

TEST(client_address, cidr_membership) {
  auto c = parse_cidr("172.16.0.0/12");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains(ip("172.16.0.1")));
  EXPECT_TRUE(c->contains(ip("172.31.255.255")));
  EXPECT_FALSE(c->contains(ip("172.32.0.0")));
  EXPECT_TRUE(c->contains(ip("::ffff:172.20.1.1")));
  EXPECT_FALSE(c->contains(ip("2001:db8::1")));
  auto all4 = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(all4);
  EXPECT_TRUE(all4->contains(ip("8.8.8.8")));
  EXPECT_FALSE(all4->contains(ip("::1")));  // an IPv4 network holds no IPv6 address
  auto v6 = parse_cidr("fd00::/8");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(ip("fd12::1")));
  EXPECT_FALSE(v6->contains(ip("fe80::1")));
  auto one = parse_cidr("10.0.0.5");
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->contains(ip("10.0.0.5")));
  EXPECT_FALSE(one->contains(ip("10.0.0.6")));
  for (auto bad : {"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "10.0.0.0/8/8", "x/8"})
    EXPECT_FALSE(parse_cidr(bad)) << bad;
}

TEST(client_address, trusted_list_parse_names_the_bad_entry) {
  std::string bad;
  EXPECT_FALSE(trusted_proxies::parse("10.0.0.0/8, nginx", &bad));
  EXPECT_EQ(bad, "nginx");
  auto t = trusted_proxies::parse(" 10.0.0.0/8 ,, ::1 ");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->networks().size(), 2u);
  EXPECT_TRUE(trusted_proxies::parse("")->empty());
}

TEST(client_address, forwarded_for_is_ignored_from_untrusted_peers) {
  // Today's bug: anyone could name any address. Without TRUSTED_PROXIES the peer is the client.
  EXPECT_EQ(resolve("198.51.100.7", {"203.0.113.9"}, ""), "198.51.100.7");
  EXPECT_EQ(resolve("198.51.100.7", {"203.0.113.9"}, "10.0.0.0/8"), "198.51.100.7");
}

TEST(client_address, trusted_peer_yields_the_nearest_untrusted_hop) {
  const auto proxies = "10.0.0.0/8";
  EXPECT_EQ(resolve("10.0.0.2", {"203.0.113.9"}, proxies), "203.0.113.9");
  // A client that forges a header in front of nginx: nginx appends the real peer; that one wins.
  EXPECT_EQ(resolve("10.0.0.2", {"1.1.1.1, 203.0.113.9"}, proxies), "203.0.113.9");
  // Chained trusted proxies are skipped.
  EXPECT_EQ(resolve("10.0.0.2", {"203.0.113.9, 10.0.0.3, 10.9.9.9"}, proxies), "203.0.113.9");
  // Several header fields are one list, in order.
  EXPECT_EQ(resolve("10.0.0.2", {"1.1.1.1", "203.0.113.9, 10.0.0.3"}, proxies), "203.0.113.9");
  // Ports and brackets as some proxies write them.
  EXPECT_EQ(resolve("10.0.0.2", {"203.0.113.9:4711"}, proxies), "203.0.113.9");
  EXPECT_EQ(resolve("10.0.0.2", {"[2001:db8::5]:443"}, proxies), "2001:db8::5");
  EXPECT_EQ(resolve("10.0.0.2", {"2001:db8::5"}, proxies), "2001:db8::5");
  // No header, an empty one, or only trusted hops: the last trusted hop.
  EXPECT_EQ(resolve("10.0.0.2", {}, proxies), "10.0.0.2");
  EXPECT_EQ(resolve("10.0.0.2", {" , "}, proxies), "10.0.0.2");
  EXPECT_EQ(resolve("10.0.0.2", {"10.0.0.3"}, proxies), "10.0.0.3");
  // Garbage ends the walk at the last good hop.
  EXPECT_EQ(resolve("10.0.0.2", {"203.0.113.9, unknown"}, proxies), "10.0.0.2");
  EXPECT_EQ(resolve("10.0.0.2", {"unknown, 10.0.0.3"}, proxies), "10.0.0.3");
}

TEST(client_address, the_walk_is_bounded) {
  std::string header = "198.51.100.1";
  for (int i = 0; i < 10000; ++i) header += ",10.0.0.1";
  // 64 hops at most: a 10,000-hop header costs no more than that (and names no client).
  EXPECT_EQ(resolve("10.0.0.2", {header}, "10.0.0.0/8"), "10.0.0.1");
}
