#include <gtest/gtest.h>

#include "berth/redis/sentinel.hpp"

using namespace berth::redis;
using kind = master_discovery::action::kind;

namespace {
reply str(std::string s) { return reply::make_string(std::move(s)); }
reply arr(std::vector<reply> v) { return reply::make_array(std::move(v)); }
reply master_role(std::vector<reply> replicas = {}) {
  return arr({str("master"), reply::make_integer(1234), arr(std::move(replicas))});
}
reply replica_role(std::string host, std::int64_t port) {
  return arr({str("slave"), str(std::move(host)), reply::make_integer(port), str("connected"), reply::make_integer(99)});
}
// What the I/O shell passes on when a sentinel or the master cannot be reached.
berth::core::result<reply> core_error_for_test() {
  return berth::core::make_error(berth::core::errc::internal, "redis unavailable: connect: Connection refused");
}
}  // namespace

TEST(sentinel_list, parses_hosts_ports_and_ipv6) {
  auto l = parse_sentinel_list(" s1:26379, s2 ,[::1]:26380,10.0.0.3:5000").value();
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(l[0], (host_port{"s1", 26379}));
  EXPECT_EQ(l[1], (host_port{"s2", 26379}));  // default sentinel port
  EXPECT_EQ(l[2], (host_port{"::1", 26380}));
  EXPECT_EQ(l[2].to_string(), "[::1]:26380");
  EXPECT_EQ(l[3].to_string(), "10.0.0.3:5000");
}

TEST(sentinel_list, rejects_bad_input_with_the_reason) {
  EXPECT_NE(parse_sentinel_list("").error().message.find("no sentinel"), std::string::npos);
  EXPECT_NE(parse_sentinel_list(" , ").error().message.find("no sentinel"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("a:0").error().message.find("port"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("a:70000").error().message.find("port"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("a:x").error().message.find("port"), std::string::npos);
  EXPECT_NE(parse_sentinel_list(":26379").error().message.find("host is empty"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("::1:26379").error().message.find("[addr]"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("[::1").error().message.find("IPv6"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("a:1,a:1").error().message.find("twice"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("redis://a:1").error().message.find("port"), std::string::npos);
  EXPECT_NE(parse_sentinel_list("u@a:1").error().message.find("not a host"), std::string::npos);
}

TEST(sentinel_replies, master_addr) {
  EXPECT_EQ(parse_master_addr(arr({str("10.0.0.5"), str("6380")}), "m").value(), (host_port{"10.0.0.5", 6380}));
  auto unknown = parse_master_addr(reply::make_nil(), "mymaster");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("does not know a master named 'mymaster'"), std::string::npos);
  EXPECT_NE(parse_master_addr(reply::make_error("NOAUTH Authentication required."), "m").error().message.find("NOAUTH"),
            std::string::npos);
  EXPECT_FALSE(parse_master_addr(arr({str("h")}), "m"));
  EXPECT_FALSE(parse_master_addr(arr({str("h"), str("0")}), "m"));
  EXPECT_FALSE(parse_master_addr(arr({str(""), str("1")}), "m"));
  EXPECT_FALSE(parse_master_addr(str("h:1"), "m"));
}

TEST(sentinel_replies, role) {
  auto m = parse_role(master_role({arr({str("10.0.0.6"), str("6379"), str("1200")})})).value();
  EXPECT_EQ(m.role, server_role::master);
  EXPECT_EQ(m.offset, 1234);
  ASSERT_EQ(m.replicas.size(), 1u);
  EXPECT_EQ(m.replicas[0], (host_port{"10.0.0.6", 6379}));
  auto r = parse_role(replica_role("10.0.0.5", 6379)).value();
  EXPECT_EQ(r.role, server_role::replica);
  EXPECT_EQ(*r.master, (host_port{"10.0.0.5", 6379}));
  EXPECT_EQ(r.link_state, "connected");
  EXPECT_EQ(parse_role(arr({str("sentinel"), arr({str("mymaster")})})).value().role, server_role::sentinel);
  EXPECT_FALSE(parse_role(arr({str("primary")})));
  EXPECT_FALSE(parse_role(arr({str("master"), str("x"), arr({})})));
  EXPECT_FALSE(parse_role(reply::make_error("ERR unknown command 'ROLE'")));
  EXPECT_FALSE(parse_role(reply::make_nil()));
}

TEST(sentinel_replies, switch_master_message) {
  auto ev = parse_switch_master(arr({str("message"), str("+switch-master"), str("mymaster 10.0.0.5 6379 10.0.0.6 6380")}));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->master_name, "mymaster");
  EXPECT_EQ(ev->from, (host_port{"10.0.0.5", 6379}));
  EXPECT_EQ(ev->to, (host_port{"10.0.0.6", 6380}));
  // The subscribe confirmation, other channels, garbled bodies: not an event.
  EXPECT_FALSE(parse_switch_master(arr({str("subscribe"), str("+switch-master"), reply::make_integer(1)})));
  EXPECT_FALSE(parse_switch_master(arr({str("message"), str("+sdown"), str("master mymaster 10.0.0.5 6379")})));
  EXPECT_FALSE(parse_switch_master(arr({str("message"), str("+switch-master"), str("mymaster 10.0.0.5 6379 10.0.0.6")})));
  EXPECT_FALSE(parse_switch_master(arr({str("message"), str("+switch-master"), str("m a 1 b x")})));
  EXPECT_FALSE(parse_switch_master(str("message")));
}

TEST(sentinel_replies, failover_errors) {
  EXPECT_TRUE(is_failover_error(reply::make_error("READONLY You can't write against a read only replica.")));
  EXPECT_TRUE(is_failover_error(reply::make_error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")));
  EXPECT_TRUE(is_failover_error(reply::make_error("LOADING Redis is loading the dataset in memory")));
  EXPECT_FALSE(is_failover_error(reply::make_error("ERR wrong number of arguments")));
  EXPECT_FALSE(is_failover_error(reply::make_error("NOSCRIPT No matching script")));
  EXPECT_FALSE(is_failover_error(str("READONLY")));
}

TEST(master_discovery, first_sentinel_answers_and_role_is_master) {
  master_discovery d({{"s1", 1}, {"s2", 2}}, "mymaster");
  auto a = d.start();
  EXPECT_EQ(a.what, kind::ask_sentinel);
  EXPECT_EQ(a.target, (host_port{"s1", 1}));
  a = d.on_sentinel_reply(arr({str("m1"), str("6379")}));
  EXPECT_EQ(a.what, kind::check_role);
  EXPECT_EQ(a.target, (host_port{"m1", 6379}));
  a = d.on_role(master_role());
  EXPECT_EQ(a.what, kind::use_master);
  EXPECT_EQ(a.target, (host_port{"m1", 6379}));
  EXPECT_EQ(*d.master(), (host_port{"m1", 6379}));
}

TEST(master_discovery, skips_dead_and_ignorant_sentinels_and_promotes_the_one_that_answered) {
  master_discovery d({{"s1", 1}, {"s2", 2}, {"s3", 3}}, "mymaster");
  d.start();
  auto a = d.on_sentinel_reply(core_error_for_test());
  EXPECT_EQ(a.what, kind::ask_sentinel);
  EXPECT_EQ(a.target, (host_port{"s2", 2}));
  a = d.on_sentinel_reply(reply::make_nil());  // s2 does not monitor "mymaster"
  EXPECT_EQ(a.target, (host_port{"s3", 3}));
  a = d.on_sentinel_reply(arr({str("m2"), str("6380")}));
  EXPECT_EQ(a.what, kind::check_role);
  // s3 answered: it is tried first from now on; the others keep their order.
  std::vector<host_port> want{{"s3", 3}, {"s1", 1}, {"s2", 2}};
  EXPECT_EQ(d.sentinels(), want);
  EXPECT_EQ(d.start().target, (host_port{"s3", 3}));
}

TEST(master_discovery, all_sentinels_failing_retries_later_naming_each) {
  master_discovery d({{"s1", 1}, {"s2", 2}}, "mymaster");
  d.start();
  d.on_sentinel_reply(core_error_for_test());
  auto a = d.on_sentinel_reply(reply::make_nil());
  EXPECT_EQ(a.what, kind::retry_later);
  EXPECT_NE(a.reason.find("s1:1: redis unavailable"), std::string::npos) << a.reason;
  EXPECT_NE(a.reason.find("s2:2: sentinel does not know a master named 'mymaster'"), std::string::npos) << a.reason;
  EXPECT_FALSE(d.master());
}

TEST(master_discovery, a_replica_named_as_master_is_refused) {
  // A sentinel that has not yet seen the failover names the old master, now a replica.
  master_discovery d({{"s1", 1}}, "mymaster");
  d.start();
  d.on_sentinel_reply(arr({str("old"), str("6379")}));
  auto a = d.on_role(replica_role("new", 6379));
  EXPECT_EQ(a.what, kind::retry_later);
  EXPECT_NE(a.reason.find("it is a replica"), std::string::npos) << a.reason;
  EXPECT_FALSE(d.master());
  // A master that cannot be reached: the same.
  d.start();
  d.on_sentinel_reply(arr({str("gone"), str("6379")}));
  a = d.on_role(core_error_for_test());
  EXPECT_EQ(a.what, kind::retry_later);
  EXPECT_NE(a.reason.find("gone:6379"), std::string::npos);
}

TEST(master_discovery, out_of_order_events_do_not_crash_or_succeed) {
  master_discovery d({{"s1", 1}}, "m");
  EXPECT_EQ(d.on_role(master_role()).what, kind::retry_later);
  EXPECT_EQ(d.on_sentinel_reply(arr({str("h"), str("1")})).what, kind::retry_later);
  master_discovery none({}, "m");
  EXPECT_EQ(none.start().what, kind::retry_later);
}
