// The orphan reaper with real Redis and the real dockerd: containers of a dead replica are
// removed unless a session references them; a live replica's and a foreign deployment's
// containers are never touched; one replica per interval runs the round. Every container
// carries berth.test=1 + this run's berth.testrun label and is removed in TearDown.
#include "berth/session/orphan_reaper.hpp"

#include "berth/redis/url.hpp"
#include "berth/session/janitor.hpp"
#include "docker_fixture.hpp"
#include "tests/support/redis_server.hpp"

namespace berth::testing {
namespace {
using namespace std::chrono_literals;
using session::orphan_verdict;

class OrphanReaper : public docker_fixture {
 protected:
  void SetUp() override {
    docker_fixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    redis::client_options o;
    o.endpoint = redis::parse_redis_url(redis_.url()).value();
    redis_client_ = redis::redis_client::create(io_.get_executor(), o, metrics_);
    redis_client_->start();
    ASSERT_TRUE(run(redis_client_->wait_connected(10s)));
    self_ = "self-" + token_;
    dead_ = "dead-" + token_;
    live_ = "live-" + token_;
    foreign_ = "foreign-" + token_;
    store_ = std::make_unique<session::session_store>(redis_client_, sopts(self_), metrics_);
  }
  void TearDown() override {
    if (redis_client_) redis_client_->stop();
    docker_fixture::TearDown();  // removes every container of this run, passed or failed
  }

  session::session_options sopts(const std::string& replica) {
    session::session_options s;
    s.replica_id = replica;
    s.idle_timeout = 60s;
    return s;
  }
  std::shared_ptr<session::orphan_reaper> reaper(session::session_store& store) {
    session::orphan_reaper_options r;
    r.interval = 60s;
    r.label_filter = test_labels();  // never look at other tests' or deployments' containers
    return session::orphan_reaper::create(store, *client_, r, metrics_);
  }
  // A started pool-style container (berth.managed=true) owned by `replica`.
  std::string container_of(const std::string& replica) {
    auto s = spec();
    s.labels["berth.managed"] = "true";
    s.labels["berth.replica"] = replica;
    auto id = run(client_->create_container(s));
    EXPECT_TRUE(id) << id.error().message;
    if (!id) return {};
    auto st = run(client_->start_container(*id));
    EXPECT_TRUE(st) << st.error().message;
    return *id;
  }
  bool exists(const std::string& id) { return static_cast<bool>(run(client_->inspect_container(id))); }
  std::string raw(const std::vector<std::string>& args) { return redis_.raw_command(args); }

  test::redis_server redis_;
  std::shared_ptr<redis::redis_client> redis_client_;
  std::unique_ptr<session::session_store> store_;
  std::string self_, dead_, live_, foreign_;
};

TEST_F(OrphanReaper, removes_only_the_dead_replicas_unreferenced_container) {
  // The live replica beats (heartbeat key + `replicas` entry); the dead one beat once, long ago:
  // its `replicas` entry stays, its heartbeat key has expired.
  auto hb = session::replica_heartbeat::create(redis_client_, {}, live_, 30s, metrics_);
  ASSERT_TRUE(run(hb->beat()));
  EXPECT_EQ(raw({"ZSCORE", "berth:replicas", live_}).substr(0, 1), "$");  // a beat registers the replica
  EXPECT_NE(raw({"ZSCORE", "berth:replicas", live_}), "$-1\r\n");
  raw({"ZADD", "berth:replicas", "1", dead_});

  const auto orphan = container_of(dead_);
  const auto resumable = container_of(dead_);  // its user will resume it on another replica
  const auto live = container_of(live_);
  const auto mine = container_of(self_);
  const auto foreign = container_of(foreign_);  // a replica this Redis never saw
  ASSERT_FALSE(HasFailure());
  auto created = run(store_->create("sess-" + token_, "user-1", resumable));
  ASSERT_TRUE(created) << created.error().message;

  auto& reaped = metrics_.get_counter("berth_orphans_reaped_total", "");
  const auto reaped_before = reaped.value();
  auto r = reaper(*store_);
  auto round = run(r->run_round());
  ASSERT_TRUE(round) << round.error().message;
  EXPECT_TRUE(round->ran);
  EXPECT_EQ(round->listed, 5u);
  EXPECT_EQ(round->orphans, 1u);
  EXPECT_EQ(round->removed, 1u);
  EXPECT_EQ(round->failed, 0u);
  EXPECT_EQ(round->kept[orphan_verdict::referenced], 1u);
  EXPECT_EQ(round->kept[orphan_verdict::live_replica], 1u);
  EXPECT_EQ(round->kept[orphan_verdict::own_replica], 1u);
  EXPECT_EQ(round->kept[orphan_verdict::foreign_replica], 1u);
  EXPECT_EQ(reaped.value() - reaped_before, 1u);

  EXPECT_FALSE(exists(orphan));
  EXPECT_TRUE(exists(resumable));
  EXPECT_TRUE(exists(live));
  EXPECT_TRUE(exists(mine));
  EXPECT_TRUE(exists(foreign));

  // The resumed session still finds its container: another replica adopts it from Redis.
  auto other = session::session_store(redis_client_, sopts(live_), metrics_);
  auto rec = run(other.get("sess-" + token_));
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->container, resumable);
  auto info = run(client_->inspect_container(resumable));
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->running);
}

TEST_F(OrphanReaper, one_replica_runs_each_interval_and_ended_sessions_free_their_container) {
  raw({"ZADD", "berth:replicas", "1", dead_});
  const auto held = container_of(dead_);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(run(store_->create("sess-" + token_, "user-1", held)));

  auto first = reaper(*store_);
  auto other_store = session::session_store(redis_client_, sopts(live_), metrics_);
  auto second = reaper(other_store);
  auto a = run(first->run_round());
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->ran);
  EXPECT_EQ(a->removed, 0u);
  auto b = run(second->run_round());  // same interval: the lock says the round is taken
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_FALSE(b->ran);
  EXPECT_NE(raw({"PTTL", "berth:orphan-reaper-lock"}), ":-1\r\n");  // expires by itself

  // The session ends and the next interval comes (its lock expired: simulated by deleting it):
  // the container is an orphan now.
  ASSERT_TRUE(run(store_->end("sess-" + token_)));
  raw({"DEL", "berth:orphan-reaper-lock"});
  auto c = run(second->run_round());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->ran);
  EXPECT_EQ(c->removed, 1u);
  EXPECT_FALSE(exists(held));
  EXPECT_EQ(c->forgotten_replicas, 0u);  // it still had a container when the round listed

  // Next round: the dead replica has nothing left, so its `replicas` entry is dropped.
  raw({"DEL", "berth:orphan-reaper-lock"});
  auto d = run(first->run_round());
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->removed, 0u);
  EXPECT_EQ(d->forgotten_replicas, 1u);
  EXPECT_EQ(raw({"ZSCORE", "berth:replicas", dead_}), "$-1\r\n");
}

TEST_F(OrphanReaper, redis_down_fails_the_round_counts_it_and_removes_nothing) {
  raw({"ZADD", "berth:replicas", "1", dead_});
  const auto orphan = container_of(dead_);
  ASSERT_FALSE(HasFailure());
  redis_.stop();
  auto r = reaper(*store_);
  auto round = run(r->run_round());
  EXPECT_FALSE(round);
  EXPECT_TRUE(exists(orphan));

  // The periodic loop logs the failed round and counts it (waits on the counter, bounded).
  auto& failures = metrics_.get_counter("berth_orphan_reaper_failures_total", "");
  const auto before = failures.value();
  r->start();
  EXPECT_TRUE(run_until([&] { return failures.value() > before; }, 30s));
  r->stop();
  EXPECT_TRUE(exists(orphan));
}

}  // namespace
}  // namespace berth::testing
