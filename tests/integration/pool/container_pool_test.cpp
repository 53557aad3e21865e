#include "berth/pool/container_pool.hpp"

#include <algorithm>

#include <boost/asio/detached.hpp>

#include "docker_fixture.hpp"

namespace berth::testing {
namespace {
using namespace std::chrono_literals;
namespace asio = boost::asio;

class ContainerPool : public docker_fixture {
 protected:
  void SetUp() override {
    docker_fixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cfg_.replica_id = "itest-" + token_;
    cfg_.sandbox_image = test_image();
    cfg_.pool_min_size = 2;
    cfg_.pool_max_size = 4;
    cfg_.acquire_timeout = 5000ms;  // long enough for a cold create on a slow machine
    cfg_.pool_idle_timeout = 600000ms;
    opts_.name = "itest";
    opts_.extra_labels = test_labels();
    opts_.check_interval = 500ms;
    opts_.backoff_initial = 100ms;
    opts_.backoff_max = 500ms;
  }
  void TearDown() override {
    if (pool_) {
      run(pool_->stop());
      pool_.reset();
    }
    docker_fixture::TearDown();
  }
  void make_pool() {
    pool_ = std::make_unique<pool::container_pool>(io_.get_executor(), *client_, cfg_, metrics_, opts_);
  }
  bool exists(const std::string& id) {
    auto r = run(client_->inspect_container(id));
    return static_cast<bool>(r);
  }
  // Polls the daemon (bounded) until the container is gone.
  bool eventually_gone(const std::string& id) {
    for (int i = 0; i < 200; ++i) {
      if (!exists(id)) return true;
      run_until([] { return false; }, 50ms);
    }
    return false;
  }
  std::uint64_t counter(const std::string& series) {
    const std::string text = metrics_.render();
    const auto pos = text.find(series + " ");
    if (pos == std::string::npos) return 0;
    return std::stoull(text.substr(pos + series.size() + 1));
  }

  core::config cfg_;
  pool::pool_options opts_;
  std::unique_ptr<pool::container_pool> pool_;
};

TEST_F(ContainerPool, WarmsUpToMinAndReportsStats) {
  make_pool();
  auto r = run(pool_->start());
  ASSERT_TRUE(r) << r.error().message;
  const auto s = pool_->stats();
  EXPECT_EQ(s.idle, 2u);
  EXPECT_EQ(s.total, 2u);
  EXPECT_EQ(s.max_pool_size, 4u);
  EXPECT_EQ(s.min_pool_size, 2u);
  const auto j = pool::to_json(s);
  for (const char* k : {"idle", "active", "total", "maxPoolSize", "minPoolSize", "creating", "waiting"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_TRUE(j["acquireMs"].contains("p99"));
  auto list = run(client_->list_containers(test_labels(), false));
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
  for (const auto& c : *list) {
    EXPECT_EQ(c.labels.at("berth.managed"), "true");
    EXPECT_EQ(c.labels.at("berth.replica"), cfg_.replica_id);
    EXPECT_EQ(c.labels.at("berth.pool"), "itest");
  }
}

TEST_F(ContainerPool, AcquireIsWarmAndReleaseDestroys) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto idle_before = run(client_->list_containers(test_labels(), false));
  ASSERT_TRUE(idle_before);
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease) << lease.error().message;
  const std::string id = lease->id();
  bool was_idle = false;
  for (const auto& c : *idle_before) was_idle |= c.id == id;
  EXPECT_TRUE(was_idle) << "acquire must hand out a warm container";
  auto info = run(client_->inspect_container(id));
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->running);
  EXPECT_EQ(pool_->stats().active, 1u);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 2; }, 30s)) << "refill";
  lease->release();
  EXPECT_FALSE(*lease);
  EXPECT_TRUE(eventually_gone(id)) << "released container must be destroyed";
  EXPECT_EQ(pool_->stats().active, 0u);
  // Moved-from and destroyed leases also release exactly once.
  {
    auto l2 = run(pool_->acquire());
    ASSERT_TRUE(l2);
    const std::string id2 = l2->id();
    pool::container_lease moved = std::move(*l2);
    EXPECT_FALSE(*l2);
    EXPECT_EQ(moved.id(), id2);
  }
  ASSERT_TRUE(run_until([&] { return pool_->stats().active == 0; }, 10s));
}

struct acquire_log {
  std::vector<std::string> order;  // "w<n>:ok" / "w<n>:<code>"
  std::map<int, std::size_t> positions;
  std::map<int, pool::container_lease> leases;
  std::map<int, core::error> errors;
  int done = 0;
};

asio::awaitable<void> acquire_one(pool::container_pool& p, std::shared_ptr<acquire_log> log, int n) {
  // Named, not a temporary inside the co_await expression (GCC 12 destroys such temporaries twice).
  std::function<void(std::size_t)> on_queued = [log, n](std::size_t pos) { log->positions[n] = pos; };
  auto r = co_await p.acquire(std::move(on_queued));
  if (r) {
    log->order.push_back("w" + std::to_string(n) + ":ok");
    log->leases[n] = std::move(*r);
  } else {
    log->order.push_back("w" + std::to_string(n) + ":" + std::string(core::to_string(r.error().code)));
    log->errors[n] = r.error();
  }
  ++log->done;
}

TEST_F(ContainerPool, ExhaustionQueuesFifoAndTimesOut) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto log = std::make_shared<acquire_log>();
  for (int n = 0; n < 4; ++n) asio::co_spawn(io_, acquire_one(*pool_, log, n), asio::detached);
  ASSERT_TRUE(run_until([&] { return log->done == 4; }, 60s));
  ASSERT_EQ(log->leases.size(), 4u);
  EXPECT_EQ(pool_->stats().total, 4u);
  // Two more wait at max: positions 1 and 2.
  asio::co_spawn(io_, acquire_one(*pool_, log, 4), asio::detached);
  asio::co_spawn(io_, acquire_one(*pool_, log, 5), asio::detached);
  ASSERT_TRUE(run_until([&] { return log->positions.count(4) && log->positions.count(5); }, 5s));
  EXPECT_EQ(log->positions.at(4), 1u);
  EXPECT_EQ(log->positions.at(5), 2u);
  EXPECT_EQ(pool_->stats().waiting, 2u);
  // One release: the first waiter gets the replacement container (FIFO), the second moves up.
  log->leases.at(0).release();
  ASSERT_TRUE(run_until([&] { return log->done == 5; }, 30s));
  EXPECT_EQ(log->order.back(), "w4:ok");
  EXPECT_EQ(log->positions.at(5), 1u);
  // The second times out with POOL_EXHAUSTED and a retry hint.
  ASSERT_TRUE(run_until([&] { return log->done == 6; }, 10s));
  EXPECT_EQ(log->order.back(), "w5:POOL_EXHAUSTED");
  auto retry = log->errors.at(5).retry_after;
  ASSERT_TRUE(retry) << log->errors.at(5).message;
  EXPECT_GT(retry->count(), 0);
  EXPECT_EQ(counter("berth_pool_exhausted_total{pool=\"itest\"}"), 1u);
  log->leases.clear();
  ASSERT_TRUE(run_until([&] { return pool_->stats().active == 0; }, 10s));
}

TEST_F(ContainerPool, DeadIdleContainerIsReplaced) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto list = run(client_->list_containers(test_labels(), false));
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  const std::string victim = list->front().id;
  ASSERT_TRUE(run(client_->kill_container(victim)));  // from outside the pool
  ASSERT_TRUE(run_until([&] { return pool_->stats().dead_replaced == 1 && pool_->stats().idle == 2; }, 30s))
      << "idle=" << pool_->stats().idle;
  EXPECT_TRUE(eventually_gone(victim));
  EXPECT_EQ(counter("berth_pool_dead_replaced_total{pool=\"itest\"}"), 1u);
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease);
  EXPECT_NE(lease->id(), victim);
}

TEST_F(ContainerPool, RestartReapsLeftoversOfThisReplica) {
  // A container left by a "previous run" of this replica and pool, and one of another replica.
  auto mine = spec();
  mine.labels = docker::pool_labels(cfg_.replica_id, "itest");
  for (const auto& [k, v] : test_labels()) mine.labels[k] = v;
  auto left = run(client_->create_container(mine));
  ASSERT_TRUE(left) << left.error().message;
  auto other = mine;
  other.labels["berth.replica"] = "someone-else";
  auto foreign = run(client_->create_container(other));
  ASSERT_TRUE(foreign);
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  EXPECT_FALSE(exists(*left));
  EXPECT_TRUE(exists(*foreign));
  EXPECT_EQ(counter("berth_pool_leftovers_removed_total{pool=\"itest\"}"), 1u);
}

TEST_F(ContainerPool, StopRemovesIdleAndKeepsActive) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease);
  ASSERT_TRUE(run_until([&] { return pool_->stats().idle == 2; }, 30s));
  run(pool_->stop());
  auto list = run(client_->list_containers(test_labels(), true));
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().id, lease->id());
  auto refused = run(pool_->acquire());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::errc::sandbox_unavailable);
}

TEST_F(ContainerPool, DisabledPoolCreatesPerAcquire) {
  cfg_.enable_container_pool = false;
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  EXPECT_EQ(pool_->stats().idle, 0u);
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_TRUE(exists(lease->id()));
  const std::string id = lease->id();
  lease->release();
  EXPECT_TRUE(eventually_gone(id));
  EXPECT_EQ(pool_->stats().idle, 0u);
  EXPECT_EQ(pool_->stats().total, 0u);
}

TEST_F(ContainerPool, MissingImageIsAClearErrorNotAHang) {
  cfg_.sandbox_image = "berth-no-such-image:" + token_;
  make_pool();
  auto r = run(pool_->start());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not found"), std::string::npos) << r.error().message;
  const auto t0 = std::chrono::steady_clock::now();
  auto lease = run(pool_->acquire());
  ASSERT_FALSE(lease);
  EXPECT_NE(lease.error().message.find("not found"), std::string::npos) << lease.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  EXPECT_GE(counter("berth_pool_create_failures_total{pool=\"itest\"}"), 1u);
}

TEST_F(ContainerPool, DetachAndAdoptAResumedSessionsContainer) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease);
  const std::string id = lease->detach();
  ASSERT_TRUE(run_until([&] { return pool_->stats().active == 0; }, 5s));
  EXPECT_TRUE(exists(id));
  auto adopted = run(pool_->adopt(id));
  ASSERT_TRUE(adopted) << adopted.error().message;
  EXPECT_EQ(adopted->id(), id);
  EXPECT_EQ(pool_->stats().active, 1u);
  ASSERT_TRUE(run(client_->kill_container(id)));
  adopted->release();
  EXPECT_TRUE(eventually_gone(id));
  auto dead = run(pool_->adopt(id));
  ASSERT_FALSE(dead);
}

TEST_F(ContainerPool, ExecInLeasedContainer) {
  make_pool();
  ASSERT_TRUE(run(pool_->start()));
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease);
  auto r = run(client_->exec_run(lease->id(), {"sh", "-c", "cat > /workspace/in && wc -c < /workspace/in"}, "12345", 20s,
                                 std::string(docker::sandbox_user)));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out, "5\n");
  EXPECT_EQ(r->exit_code, 0);
}

// ---- the prepare hook (the gateway opens the sandbox's MCP exec there) ------------------------

struct prepare_log {
  std::vector<std::string> prepared;  // containers the hook ran for
  std::vector<std::string> closed;    // resources the pool or a lease closed
  bool fail = false;                  // the hook prepares nothing
};

struct recorded_resource final : pool::prepared_resource {
  recorded_resource(std::string id, std::shared_ptr<prepare_log> l) : container(std::move(id)), log(std::move(l)) {}
  void close() override { log->closed.push_back(container); }
  std::string container;
  std::shared_ptr<prepare_log> log;
};

asio::awaitable<std::shared_ptr<pool::prepared_resource>> prepare_recorded(std::string id,
                                                                           std::shared_ptr<prepare_log> log) {
  log->prepared.push_back(id);
  if (log->fail) co_return nullptr;
  co_return std::make_shared<recorded_resource>(std::move(id), log);
}

pool::prepare_hook recording_hook(std::shared_ptr<prepare_log> log) {
  return [log](std::string id) { return prepare_recorded(std::move(id), log); };
}

TEST_F(ContainerPool, PreparedResourceTravelsWithTheLease) {
  auto log = std::make_shared<prepare_log>();
  make_pool();
  pool_->set_prepare(recording_hook(log));
  ASSERT_TRUE(run(pool_->start()));
  EXPECT_EQ(pool_->stats().prepared, 2u);
  EXPECT_EQ(log->prepared.size(), 2u);
  EXPECT_EQ(pool::to_json(pool_->stats())["prepared"], 2);

  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease) << lease.error().message;
  auto taken = std::dynamic_pointer_cast<recorded_resource>(lease->take_prepared());
  ASSERT_TRUE(taken) << "a warm container comes with what the hook prepared in it";
  EXPECT_EQ(taken->container, lease->id());
  EXPECT_FALSE(lease->take_prepared()) << "handed over once";
  ASSERT_TRUE(run_until([&] { return pool_->stats().prepared == 2; }, 30s)) << "the refill is prepared too";
  EXPECT_EQ(log->prepared.size(), 3u);

  // A lease that ends without taking its resource closes it.
  auto second = run(pool_->acquire());
  ASSERT_TRUE(second);
  const std::string second_id = second->id();
  second->release();
  EXPECT_EQ(log->closed, std::vector<std::string>{second_id});

  // Stopping closes what the idle containers hold; the taken resource is the caller's.
  ASSERT_TRUE(run_until([&] { return pool_->stats().prepared == 2; }, 30s));
  run(pool_->stop());
  EXPECT_EQ(log->closed.size(), 3u);
  EXPECT_EQ(std::count(log->closed.begin(), log->closed.end(), taken->container), 0);
  EXPECT_EQ(pool_->stats().prepared, 0u);
}

TEST_F(ContainerPool, FailedPrepareStillPoolsTheContainer) {
  auto log = std::make_shared<prepare_log>();
  log->fail = true;
  make_pool();
  pool_->set_prepare(recording_hook(log));
  ASSERT_TRUE(run(pool_->start()));
  EXPECT_EQ(pool_->stats().idle, 2u);
  EXPECT_EQ(pool_->stats().prepared, 0u);
  EXPECT_EQ(counter("berth_pool_prepare_failures_total{pool=\"itest\"}"), 2u);
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_FALSE(lease->take_prepared());
}

TEST_F(ContainerPool, ContainerCreatedForAWaitingCallerIsNotPrepared) {
  // No idle containers: the acquire waits for a create, which must not wait for the hook too.
  cfg_.pool_min_size = 0;
  auto log = std::make_shared<prepare_log>();
  make_pool();
  pool_->set_prepare(recording_hook(log));
  ASSERT_TRUE(run(pool_->start()));
  auto lease = run(pool_->acquire());
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_FALSE(lease->take_prepared());
  EXPECT_TRUE(log->prepared.empty());
}

}  // namespace
}  // namespace berth::testing
