// What /health, /health/ready and /stats/pool's cluster part answer, from the facts alone.
#include <gtest/gtest.h>

#include "berth/app/status.hpp"

using namespace berth::app;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
health_facts all_well() {
  health_facts f;
  f.replica = "r1";
  f.uptime = 42s;
  f.redis_ok = true;
  f.redis_latency_ms = 0.5;
  f.redis_master = "127.0.0.1:6379";
  f.docker_ok = true;
  f.docker_api_version = "1.43";
  f.pool = json{{"idle", 3}};
  f.connections = 7;
  f.sockets = 5;
  return f;
}
}  // namespace

TEST(health_report, says_ok_with_every_figure_when_redis_and_docker_answer) {
  const auto body = health_report(all_well());
  EXPECT_EQ(body["status"], "ok");
  EXPECT_EQ(body["replica"], "r1");
  EXPECT_EQ(body["uptimeS"], 42);
  EXPECT_EQ(body["redis"], (json{{"ok", true}, {"latencyMs", 0.5}, {"master", "127.0.0.1:6379"}, {"sentinel", false},
                                 {"failovers", 0}}));
  EXPECT_EQ(body["docker"], (json{{"ok", true}, {"apiVersion", "1.43"}}));
  EXPECT_EQ(body["pool"]["idle"], 3);
  EXPECT_EQ(body["connections"], 7);
  EXPECT_EQ(body["sockets"], 5);
}

TEST(health_report, is_degraded_when_docker_redis_or_a_shutdown_says_so) {
  auto f = all_well();
  f.docker_ok = false;
  f.docker_error = "docker unreachable: connect: No such file or directory";
  auto body = health_report(f);
  EXPECT_EQ(body["status"], "degraded");
  EXPECT_EQ(body["docker"], (json{{"ok", false}, {"apiVersion", nullptr}, {"error", f.docker_error}}));
  EXPECT_FALSE(healthy(f));

  f = all_well();
  f.redis_ok = false;
  EXPECT_FALSE(healthy(f));
  EXPECT_EQ(health_report(f)["status"], "degraded");

  f = all_well();
  f.stopping = true;
  EXPECT_FALSE(healthy(f));
}

TEST(readiness, waits_for_migration_and_the_pool_then_follows_health) {
  const auto f = all_well();
  const readiness_facts started{.keys_migrated = true, .pool_started = true, .pool_start_ok = true, .pooling = true, .idle = 0};
  EXPECT_TRUE(ready(f, started));
  auto r = started;
  r.keys_migrated = false;
  EXPECT_FALSE(ready(f, r));
  r = started;
  r.pool_started = false;
  EXPECT_FALSE(ready(f, r));
  // A warm-up that failed: ready only once a container is idle, or with pooling off.
  r = started;
  r.pool_start_ok = false;
  EXPECT_FALSE(ready(f, r));
  r.idle = 1;
  EXPECT_TRUE(ready(f, r));
  r.idle = 0;
  r.pooling = false;
  EXPECT_TRUE(ready(f, r));
  auto sick = f;
  sick.redis_ok = false;
  EXPECT_FALSE(ready(sick, started));
}

TEST(summarize_cluster, adds_up_live_replicas_lists_stale_ones_and_forgets_garbage) {
  const std::int64_t now = 1'000'000;
  const std::vector<std::string> flat{
      "b", json{{"updatedMs", now - 1000}, {"idle", 2}, {"active", 1}, {"total", 3}, {"acquireMs", {{"p95", 12.5}}}}.dump(),
      "a", json{{"updatedMs", now - 2000}, {"idle", 1}, {"active", 4}, {"total", 5}, {"acquireMs", {{"p95", 40.0}}}}.dump(),
      "gone", json{{"updatedMs", now - 30'000}, {"idle", 9}}.dump(),
      "long-gone", json{{"updatedMs", now - 120'000}, {"idle", 9}}.dump(),
      "garbled", "{not json",
  };
  std::vector<std::string> forget;
  const auto out = summarize_cluster(flat, now, 10s, forget);
  EXPECT_EQ(out["totals"]["idle"], 3);
  EXPECT_EQ(out["totals"]["active"], 5);
  EXPECT_EQ(out["totals"]["total"], 8);
  EXPECT_EQ(out["totals"]["replicas"], 2);
  EXPECT_EQ(out["totals"]["worstAcquireP95Ms"], 40.0);
  ASSERT_EQ(out["replicas"].size(), 2u);
  EXPECT_EQ(out["replicas"][0]["replica"], "a");  // sorted by id
  EXPECT_EQ(out["replicas"][1]["replica"], "b");
  EXPECT_EQ(out["stale"], (json{"gone", "long-gone"}));
  EXPECT_EQ(forget, (std::vector<std::string>{"long-gone", "garbled"}));
}
