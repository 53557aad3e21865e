#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/session/history.hpp"
#include "berth/session/janitor.hpp"
#include "berth/session/limiter.hpp"
#include "berth/session/migrate.hpp"
#include "berth/session/recovery_store.hpp"
#include "berth/session/store.hpp"
#include "tests/support/io_runner.hpp"
#include "tests/support/redis_server.hpp"

using namespace berth;
using namespace berth::session;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using core::errc;

namespace {

// A controllable clock shared by stores and limiters (milliseconds).
struct fake_clock {
  std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(1'700'000'000'000);
  clock_fn fn() const {
    auto n = now;
    return [n] { return n->load(); };
  }
  void advance(std::chrono::milliseconds d) { now->fetch_add(d.count()); }
};

class session_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = make_client("a");
    b_ = make_client("b");
  }
  void TearDown() override {
    a_->stop();
    b_->stop();
  }
  std::shared_ptr<redis::redis_client> make_client(const std::string& name) {
    redis::client_options o;
    o.endpoint = redis::parse_redis_url(server_.url()).value();
    o.name = name;
    auto c = redis::redis_client::create(io_.executor(), o, metrics_);
    c->start();
    clients_.push_back(c);
    return c;
  }
  void connect_all() {
    for (auto& c : clients_) ASSERT_TRUE(io_.run(c->wait_connected(10s)));
  }
  session_options sopts(const std::string& replica) {
    session_options o;
    o.replica_id = replica;
    o.idle_timeout = 60s;
    o.clock = clock_.fn();
    return o;
  }
  std::string raw(const std::vector<std::string>& args) { return server_.raw_command(args); }

  test::redis_server server_;
  test::io_runner io_;
  core::metrics metrics_;
  fake_clock clock_;
  std::vector<std::shared_ptr<redis::redis_client>> clients_;
  std::shared_ptr<redis::redis_client> a_, b_;
};

template <class T>
std::vector<T> run_all(test::io_runner& io, std::vector<asio::awaitable<T>> tasks) {
  std::vector<std::future<T>> futs;
  for (auto& t : tasks) futs.push_back(asio::co_spawn(io.io(), std::move(t), asio::use_future));
  std::vector<T> out;
  for (auto& f : futs) {
    if (f.wait_for(30s) != std::future_status::ready) throw std::runtime_error("task did not finish");
    out.push_back(f.get());
  }
  return out;
}

}  // namespace

TEST_F(session_fixture, create_get_touch_end) {
  connect_all();
  session_store store(a_, sopts("A"), metrics_);
  auto created = io_.run(store.create("s1", "alice", "c1")).value();
  EXPECT_FALSE(created.resume_token.empty());
  EXPECT_EQ(created.record.resume_token_hash, sha256_hex(created.resume_token));

  auto rec = io_.run(store.get("s1")).value();
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->user, "alice");
  EXPECT_EQ(rec->container, "c1");
  EXPECT_EQ(rec->replica, "A");
  EXPECT_EQ(rec->created_ms, *clock_.now);
  // The raw token is never stored: only its hash.
  EXPECT_EQ(raw({"HGET", "berth:session:{s1}", "resume_token_hash"}).find(created.resume_token), std::string::npos);
  EXPECT_NE(raw({"HGET", "berth:session:{s1}", "resume_token_hash"}).find(sha256_hex(created.resume_token)), std::string::npos);
  EXPECT_NE(raw({"PTTL", "berth:session:{s1}"}), ":-1\r\n");  // has a TTL

  // Second create of the same id fails, nothing overwritten.
  auto again = io_.run(store.create("s1", "mallory", "c2"));
  ASSERT_FALSE(again);
  EXPECT_EQ(io_.run(store.get("s1")).value()->user, "alice");

  // Resume on another replica (store B): token required; touch moves last_seen and replica.
  session_store store_b(b_, sopts("B"), metrics_);
  auto on_b = io_.run(store_b.get("s1")).value().value();
  EXPECT_TRUE(authorize_resume(on_b, std::nullopt, created.resume_token));
  EXPECT_EQ(authorize_resume(on_b, std::nullopt, "forged").error().code, errc::session_forbidden);
  clock_.advance(5s);
  EXPECT_TRUE(io_.run(store_b.touch("s1")).value());
  auto touched = io_.run(store_b.get("s1")).value().value();
  EXPECT_EQ(touched.last_seen_ms, *clock_.now);
  EXPECT_EQ(touched.replica, "B");
  EXPECT_EQ(raw({"ZSCORE", "berth:sessions", "s1"}), "$13\r\n" + std::to_string(*clock_.now) + "\r\n");

  // Rotation: the old token stops working, the new one works.
  auto fresh = io_.run(store_b.rotate_resume_token("s1")).value().value();
  auto rotated = io_.run(store_b.get("s1")).value().value();
  EXPECT_FALSE(authorize_resume(rotated, std::nullopt, created.resume_token));
  EXPECT_TRUE(authorize_resume(rotated, std::nullopt, fresh));
  EXPECT_TRUE(io_.run(store_b.set_container("s1", "c9")).value());
  EXPECT_EQ(io_.run(store.get("s1")).value()->container, "c9");

  // end: exactly one winner, history deleted, touch no longer resurrects.
  history_store hist(a_, {}, metrics_);
  ASSERT_TRUE(io_.run(hist.append("s1", {"user", "hi", {}, {}, 1})));
  auto ended = io_.run(store.end("s1")).value();
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->container, "c9");
  EXPECT_FALSE(io_.run(store_b.end("s1")).value());
  EXPECT_FALSE(io_.run(store.get("s1")).value());
  EXPECT_FALSE(io_.run(store.touch("s1")).value());
  EXPECT_FALSE(io_.run(store.get("s1")).value());
  EXPECT_EQ(raw({"EXISTS", "berth:history:{s1}"}), ":0\r\n");
  EXPECT_EQ(raw({"ZSCORE", "berth:sessions", "s1"}), "$-1\r\n");
}

TEST_F(session_fixture, bad_session_ids_write_nothing) {
  connect_all();
  session_store store(a_, sopts("A"), metrics_);
  for (std::string bad : std::vector<std::string>{"", "has space", std::string(65, 'x'), "x:y"}) {
    auto r = io_.run(store.create(bad, "u", "c"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, errc::invalid_payload);
    EXPECT_EQ(io_.run(store.get(bad)).error().code, errc::invalid_payload);
  }
  EXPECT_EQ(raw({"DBSIZE"}), ":0\r\n");
}

TEST_F(session_fixture, unexpected_reply_types_are_errors) {
  connect_all();
  session_store store(a_, sopts("A"), metrics_);
  history_store hist(a_, {}, metrics_);
  // Someone else's data under our keys: a string where a hash/list is expected.
  raw({"SET", "berth:session:{s1}", "x"});
  raw({"SET", "berth:history:{s1}", "x"});
  auto g = io_.run(store.get("s1"));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("WRONGTYPE"), std::string::npos);
  EXPECT_FALSE(io_.run(hist.read("s1")));
  EXPECT_FALSE(io_.run(hist.append("s1", {"user", "x", {}, {}, 1})));
  // A hash with missing fields is reported, not trusted.
  raw({"DEL", "berth:session:{s2}"});
  raw({"HSET", "berth:session:{s2}", "container", "c"});
  auto h = io_.run(store.get("s2"));
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("missing"), std::string::npos);
  EXPECT_EQ(metrics_.get_counter("berth_session_bad_records_total", "").value(), 1u);
}

TEST_F(session_fixture, provisioning_lock_contention) {
  connect_all();
  session_store sa(a_, sopts("A"), metrics_);
  session_store sb(b_, sopts("B"), metrics_);
  std::vector<asio::awaitable<core::result<std::optional<session_lock>>>> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back((i % 2 ? sa : sb).try_lock("s1"));
  auto results = run_all(io_, std::move(tasks));
  std::vector<session_lock> winners;
  for (auto& r : results) {
    ASSERT_TRUE(r);
    if (*r) winners.push_back(**r);
  }
  ASSERT_EQ(winners.size(), 1u);
  auto pttl = raw({"PTTL", "berth:session-lock:{s1}"});
  EXPECT_TRUE(pttl.starts_with(":")) << pttl;
  EXPECT_GT(std::stol(pttl.substr(1)), 20000);
  // Compare-and-delete: a stranger's token does not release it.
  EXPECT_FALSE(io_.run(sb.unlock({"s1", "not-the-owner"})).value());
  EXPECT_EQ(raw({"EXISTS", "berth:session-lock:{s1}"}), ":1\r\n");
  // lock() with a short wait gives up with a clear error while it is held...
  auto busy = io_.run(sb.lock("s1", 60ms));
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message.find("lock busy"), std::string::npos);
  // ...and gets it once the owner releases.
  EXPECT_TRUE(io_.run(sa.unlock(winners[0])).value());
  auto next = io_.run(sb.lock("s1", 1s));
  ASSERT_TRUE(next);
  EXPECT_FALSE(io_.run(sa.unlock(winners[0])).value());  // stale owner cannot delete the new lock
  EXPECT_TRUE(io_.run(sb.unlock(*next)).value());
}

TEST_F(session_fixture, limiter_exactly_n_across_two_clients) {
  connect_all();
  limiter_options lo;
  lo.max_per_user = 5;
  lo.clock = clock_.fn();
  user_limiter la(a_, lo, metrics_);
  user_limiter lb(b_, lo, metrics_);
  std::vector<asio::awaitable<core::result<user_permit>>> tasks;
  for (int i = 0; i < 40; ++i) tasks.push_back((i % 2 ? la : lb).acquire("alice"));
  auto results = run_all(io_, std::move(tasks));
  std::vector<user_permit> permits;
  int rejected = 0;
  for (auto& r : results) {
    if (r) {
      permits.push_back(std::move(*r));
    } else {
      EXPECT_EQ(r.error().code, errc::too_many_requests);
      EXPECT_EQ(r.error().message, "at most 5 requests in flight for this user");
      ++rejected;
    }
  }
  EXPECT_EQ(permits.size(), 5u);
  EXPECT_EQ(rejected, 35);
  EXPECT_EQ(la.rejections(), 35u);  // shared counter in one registry
  EXPECT_EQ(io_.run(la.in_flight("alice")).value(), 5u);
  // Another user is not affected.
  auto bob = io_.run(lb.acquire("bob"));
  ASSERT_TRUE(bob);

  // Awaited release frees a slot at once; RAII release (destructor) frees one shortly after.
  ASSERT_TRUE(io_.run(permits.back().release()));
  permits.pop_back();
  EXPECT_EQ(io_.run(la.in_flight("alice")).value(), 4u);
  auto again = io_.run(la.acquire("alice"));
  ASSERT_TRUE(again);
  permits.push_back(std::move(*again));
  EXPECT_FALSE(io_.run(la.acquire("alice")));
  permits.pop_back();  // destructor: fire-and-forget ZREM
  EXPECT_TRUE(test::eventually([&] { return io_.run(la.in_flight("alice")).value() == 4u; }));
  permits.clear();
  EXPECT_TRUE(test::eventually([&] { return io_.run(la.in_flight("alice")).value() == 0u; }));
  EXPECT_EQ(raw({"ZCARD", "berth:inflight:{alice}"}), ":0\r\n");
}

TEST_F(session_fixture, permits_move_and_release_once) {
  connect_all();
  limiter_options lo;
  lo.max_per_user = 2;
  lo.clock = clock_.fn();
  user_limiter l(a_, lo, metrics_);
  auto p1 = io_.run(l.acquire("u", "req-1")).value();
  EXPECT_EQ(p1.request_id(), "req-1");
  user_permit moved = std::move(p1);
  EXPECT_FALSE(p1);  // NOLINT(bugprone-use-after-move): moved-from permit is empty by contract
  EXPECT_TRUE(moved);
  user_permit other = io_.run(l.acquire("u", "req-2")).value();
  other = std::move(moved);  // releases req-2, keeps req-1
  EXPECT_TRUE(test::eventually([&] { return raw({"ZSCORE", "berth:inflight:{u}", "req-2"}) == "$-1\r\n"; }));
  EXPECT_NE(raw({"ZSCORE", "berth:inflight:{u}", "req-1"}), "$-1\r\n");
  ASSERT_TRUE(io_.run(other.release()));
  ASSERT_TRUE(io_.run(other.release()));  // empty: no-op
  EXPECT_EQ(raw({"ZCARD", "berth:inflight:{u}"}), ":0\r\n");
}

TEST_F(session_fixture, expired_leases_of_a_dead_replica_are_reclaimed) {
  connect_all();
  limiter_options lo;
  lo.max_per_user = 3;
  lo.lease_ttl = 30s;
  lo.clock = clock_.fn();
  user_limiter l(a_, lo, metrics_);
  // A replica that died holding 3 leases: written directly, no permit objects to release them.
  auto exp = std::to_string(*clock_.now + 30000);
  for (auto m : {"dead-1", "dead-2", "dead-3"}) raw({"ZADD", "berth:inflight:{carol}", exp, m});
  auto full = io_.run(l.acquire("carol"));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, errc::too_many_requests);
  clock_.advance(30001ms);
  std::vector<user_permit> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(io_.run(l.acquire("carol")).value());
  EXPECT_FALSE(io_.run(l.acquire("carol")));
  EXPECT_EQ(raw({"ZSCORE", "berth:inflight:{carol}", "dead-1"}), "$-1\r\n");
  auto pttl = raw({"PTTL", "berth:inflight:{carol}"});
  EXPECT_GT(std::stol(pttl.substr(1)), 0);
}

TEST_F(session_fixture, live_permits_refresh_their_lease) {
  connect_all();
  limiter_options lo;
  lo.lease_ttl = 30s;
  lo.refresh_interval = 20ms;
  lo.clock = clock_.fn();
  user_limiter l(a_, lo, metrics_);
  auto p = io_.run(l.acquire("dave", "r1")).value();
  const auto first = *clock_.now + 30000;
  clock_.advance(10s);
  // The refresh loop moves the expiry to now + ttl.
  EXPECT_TRUE(test::eventually([&] {
    return raw({"ZSCORE", "berth:inflight:{dave}", "r1"}) ==
           "$13\r\n" + std::to_string(*clock_.now + 30000) + "\r\n";
  }));
  EXPECT_GT(*clock_.now + 30000, first);
}

TEST_F(session_fixture, limiter_fails_clearly_when_redis_is_down) {
  connect_all();
  limiter_options lo;
  lo.clock = clock_.fn();
  user_limiter l(a_, lo, metrics_);
  server_.stop();
  ASSERT_TRUE(test::eventually([&] { return !a_->connected(); }));
  auto r = io_.run(l.acquire("erin"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::internal);
  EXPECT_TRUE(redis::is_transport_error(r.error()));
  server_.start();
  ASSERT_TRUE(io_.run(a_->wait_connected(10s)));
  EXPECT_TRUE(io_.run(l.acquire("erin")));  // scripts reloaded on reconnect
}

TEST(minute_window, index_and_time_left) {
  EXPECT_EQ(minute_of(120000).index, 2);
  EXPECT_EQ(minute_of(120000).left, 60000ms);
  EXPECT_EQ(minute_of(179999).index, 2);
  EXPECT_EQ(minute_of(179999).left, 1ms);
}

TEST_F(session_fixture, llm_token_budget_is_shared_across_replicas_and_refuses_until_the_minute_ends) {
  connect_all();
  clock_.now->store(1'700'000'020'000);  // 20 s before a minute ends
  token_budget_options o{key_schema{}, 1000, clock_.fn()};
  llm_token_budget a(a_, o, metrics_);
  llm_token_budget b(b_, o, metrics_);
  EXPECT_TRUE(io_.run(a.admit("alice")));
  EXPECT_EQ(io_.run(a.charge("alice", 600)).value(), 600u);
  EXPECT_TRUE(io_.run(b.admit("alice")));  // 600 < 1000: the next request may start
  EXPECT_EQ(io_.run(b.charge("alice", 500)).value(), 1100u);  // it may overshoot by its own size
  for (auto* budget : {&a, &b}) {
    auto refused = io_.run(budget->admit("alice"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, errc::rate_limited);
    EXPECT_NE(refused.error().message.find("1000 tokens per minute"), std::string::npos);
    EXPECT_EQ(refused.error().retry_after, std::chrono::milliseconds(20000));
  }
  EXPECT_TRUE(io_.run(a.admit("bob")));  // another user has a budget of their own
  // The counter expires on its own (two minutes at most), and the next minute starts at zero.
  const auto key = key_schema{}.llm_tokens("alice", minute_of(clock_.now->load()).index);
  const auto ttl = std::stoll(raw({"PTTL", key}).substr(1));  // ":NNN\r\n"
  EXPECT_GT(ttl, 60000);
  EXPECT_LE(ttl, 80000);
  clock_.advance(20s);
  EXPECT_TRUE(io_.run(a.admit("alice")));
  // Off: never refuses, never writes.
  llm_token_budget off(a_, token_budget_options{key_schema{}, 0, clock_.fn()}, metrics_);
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(io_.run(off.charge("carol", 5000)).value(), 0u);
  EXPECT_TRUE(io_.run(off.admit("carol")));
}

TEST_F(session_fixture, llm_token_budget_lets_requests_through_while_redis_is_down) {
  connect_all();
  llm_token_budget budget(a_, token_budget_options{key_schema{}, 10, clock_.fn()}, metrics_);
  ASSERT_TRUE(io_.run(budget.charge("dave", 50)));
  ASSERT_FALSE(io_.run(budget.admit("dave")));
  server_.stop();
  ASSERT_TRUE(test::eventually([&] { return !a_->connected(); }));
  EXPECT_TRUE(io_.run(budget.admit("dave")));  // not checked: let through, counted
  EXPECT_FALSE(io_.run(budget.charge("dave", 5)));
  EXPECT_EQ(metrics_.get_counter("berth_llm_token_budget_unchecked_total", "").value(), 1u);
}

TEST_F(session_fixture, an_acquire_whose_reply_is_lost_gives_its_slot_back) {
  // The script runs on Redis but its reply comes after the caller gave up (a failover or a stall
  // looks the same): without the compensating release the slot would stay taken for lease_ttl.
  redis::client_options o;
  o.endpoint = redis::parse_redis_url(server_.url()).value();
  o.name = "slow";
  o.command_timeout = 150ms;
  auto c = redis::redis_client::create(io_.executor(), o, metrics_);
  c->start();
  clients_.push_back(c);
  ASSERT_TRUE(io_.run(c->wait_connected(10s)));
  limiter_options lo;
  lo.clock = clock_.fn();
  lo.max_per_user = 1;
  user_limiter l(c, lo, metrics_);
  {  // loads the script (NOSCRIPT fallback): the paused EVALSHA below must really run later
    auto warm = io_.run(l.acquire("frank", "warm")).value();
    ASSERT_TRUE(io_.run(warm.release()));
  }
  auto& ambiguous = metrics_.get_counter("berth_limiter_ambiguous_acquires_total", "");
  const auto before = ambiguous.value();
  raw({"CLIENT", "PAUSE", "600", "ALL"});  // every command waits 600 ms: our reply comes too late
  auto r = io_.run(l.acquire("frank", "lost-1"));
  ASSERT_FALSE(r);
  EXPECT_TRUE(redis::is_transport_error(r.error())) << r.error().message;
  EXPECT_TRUE(redis::may_have_been_applied(r.error())) << r.error().message;
  EXPECT_EQ(ambiguous.value(), before + 1);
  // After the pause the script grants the lease, and the release queued behind it removes it.
  EXPECT_TRUE(test::eventually([&] { return raw({"ZSCORE", "berth:inflight:{frank}", "lost-1"}) == "$-1\r\n"; }, 10s));
  auto again = io_.run(l.acquire("frank", "next"));
  EXPECT_TRUE(again) << (again ? "" : again.error().message);  // the only slot is free again
}

TEST_F(session_fixture, legacy_untagged_keys_are_renamed_once) {
  connect_all();
  raw({"HSET", "berth:session:old1", "user", "u1", "container", "c1", "replica", "r", "created_ms", "1", "last_seen_ms", "1"});
  raw({"PEXPIRE", "berth:session:old1", "600000"});
  raw({"RPUSH", "berth:history:old1", R"({"role":"user","content":"hi","ts":1})"});
  raw({"ZADD", "berth:inflight:bob", "99999999999999", "req"});
  raw({"SET", "berth:session-lock:old1", "tok"});
  // A session whose tagged key was already written by the new version: the tagged one wins.
  raw({"HSET", "berth:session:both", "user", "legacy", "created_ms", "1"});
  raw({"HSET", "berth:session:{both}", "user", "current", "created_ms", "2"});
  raw({"SET", "berth:unrelated", "x"});
  auto rep = io_.run(migrate_legacy_keys(a_, key_schema{})).value();
  EXPECT_FALSE(rep.already_current);
  EXPECT_EQ(rep.renamed, 4u);
  EXPECT_EQ(rep.dropped, 1u);
  for (const char* gone : {"berth:session:old1", "berth:history:old1", "berth:inflight:bob", "berth:session-lock:old1",
                           "berth:session:both"})
    EXPECT_EQ(raw({"EXISTS", gone}), ":0\r\n") << gone;
  EXPECT_EQ(raw({"HGET", "berth:session:{both}", "user"}), "$7\r\ncurrent\r\n");
  EXPECT_EQ(raw({"EXISTS", "berth:unrelated"}), ":1\r\n");
  auto pttl = raw({"PTTL", "berth:session:{old1}"});
  EXPECT_TRUE(pttl.starts_with(":") && pttl != ":-1\r\n" && pttl != ":-2\r\n") << pttl;  // TTL kept
  EXPECT_EQ(raw({"GET", "berth:schema-version"}), "$1\r\n2\r\n");
  // The store finds the migrated session and its history under the new names.
  session_store st(a_, sopts("A"), metrics_);
  auto got = io_.run(st.get("old1")).value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->container, "c1");
  EXPECT_EQ(raw({"LLEN", "berth:history:{old1}"}), ":1\r\n");
  // Later start-ups do not scan again.
  raw({"HSET", "berth:session:late", "user", "u", "created_ms", "1"});
  auto second = io_.run(migrate_legacy_keys(a_, key_schema{})).value();
  EXPECT_TRUE(second.already_current);
  EXPECT_EQ(second.scanned, 0u);
}

TEST_F(session_fixture, history_append_read_trim_ttl_reset) {
  connect_all();
  history_options ho;
  ho.max_tokens = 100;
  ho.ttl = 3600s;
  history_store h(a_, ho, metrics_);
  std::vector<history_entry> all;
  std::vector<std::size_t> est;
  for (int i = 0; i < 20; ++i) {
    history_entry e{i % 2 ? "assistant" : "user", std::string(static_cast<std::size_t>(30 + i), 'a' + static_cast<char>(i % 26)),
                    std::nullopt, std::nullopt, 1000 + i};
    if (i == 7) {
      e.role = "tool";
      e.name = "list_files";
      e.call_id = "call_7";
    }
    ASSERT_TRUE(io_.run(h.append("s1", e)));
    all.push_back(e);
    est.push_back(estimate_tokens(encode_history_entry(e)));
  }
  auto got = io_.run(h.read("s1")).value();
  const auto drop = entries_to_drop(all, 100);  // Lua and the pure policy agree (turn boundaries)
  ASSERT_GT(drop, 0u);
  ASSERT_EQ(got.size(), all.size() - drop);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), all.begin() + static_cast<long>(drop)));
  std::size_t total = 0;
  for (auto& e : got) total += estimate_tokens(encode_history_entry(e));
  EXPECT_LE(total, 100u);
  auto ttl = raw({"TTL", "berth:history:{s1}"});
  EXPECT_GT(std::stol(ttl.substr(1)), 3500);
  EXPECT_GT(metrics_.get_counter("berth_history_trimmed_total", "").value(), 0u);

  // A single entry over budget is kept (the newest always is), alone.
  auto big = io_.run(h.append("s1", {"user", std::string(1000, 'z'), {}, {}, 1})).value();
  EXPECT_EQ(big.kept, 1u);
  // Bad entries: rejected before writing; a garbled stored entry is skipped with a counter.
  EXPECT_EQ(io_.run(h.append("s1", {"", "x", {}, {}, 1})).error().code, errc::invalid_payload);
  history_options small = ho;
  small.max_entry_bytes = 50;
  history_store hs(a_, small, metrics_);
  EXPECT_EQ(io_.run(hs.append("s1", {"user", std::string(100, 'y'), {}, {}, 1})).error().code, errc::invalid_payload);
  raw({"RPUSH", "berth:history:{s1}", "{not json"});
  EXPECT_EQ(io_.run(h.read("s1")).value().size(), 1u);
  EXPECT_EQ(metrics_.get_counter("berth_history_bad_entries_total", "").value(), 1u);

  ASSERT_TRUE(io_.run(h.reset("s1")));
  EXPECT_TRUE(io_.run(h.read("s1")).value().empty());
}

// The Lua trim and the pure policy agree on tool rounds, and a trimmed list always starts with a
// user message (an orphan tool result there makes providers answer 400).
TEST_F(session_fixture, history_trim_cuts_only_at_turn_boundaries) {
  connect_all();
  history_options ho;
  ho.max_tokens = 120;
  ho.ttl = 3600s;
  history_store h(a_, ho, metrics_);
  std::vector<history_entry> mirror;
  const char* shape = "UCTCTAUAUCTAUCCTTAUUA";  // U user, C tool call, T its result, A answer
  int call = 0;
  for (const char* p = shape; *p; ++p) {
    history_entry e{"user", std::string(40, 'x'), std::nullopt, std::nullopt, 1};
    if (*p == 'C') e = {"assistant", "{}", "run_command", "call_" + std::to_string(++call), 1};
    if (*p == 'T') e = {"tool", std::string(40, 'o'), "run_command", "call_" + std::to_string(call), 1};
    if (*p == 'A') e.role = "assistant";
    ASSERT_TRUE(io_.run(h.append("t1", e)));
    mirror.push_back(e);
    const auto drop = entries_to_drop(mirror, ho.max_tokens);
    mirror.erase(mirror.begin(), mirror.begin() + static_cast<long>(drop));
    auto got = io_.run(h.read("t1")).value();
    ASSERT_EQ(got, mirror) << "after " << (p - shape + 1) << " entries";
    EXPECT_EQ(got.front().role, "user");
  }
}

namespace {
asio::awaitable<void> record_reap(std::shared_ptr<std::vector<std::string>> sink, std::shared_ptr<std::mutex> m,
                                  session_record rec) {
  std::lock_guard lock(*m);
  sink->push_back(rec.id + "/" + rec.container);
  co_return;
}
asio::awaitable<std::pair<core::result<std::size_t>, core::result<std::size_t>>> sweep_both(std::shared_ptr<janitor> a,
                                                                                          std::shared_ptr<janitor> b) {
  auto ex = co_await asio::this_coro::executor;
  auto fa = asio::co_spawn(ex, a->sweep(), asio::use_awaitable);
  auto fb = asio::co_spawn(ex, b->sweep(), asio::use_awaitable);
  // Both sweeps are started before either is awaited, so they interleave on the wire.
  auto ra = co_await std::move(fa);
  auto rb = co_await std::move(fb);
  co_return std::make_pair(std::move(ra), std::move(rb));
}
}  // namespace

TEST_F(session_fixture, janitor_reaps_idle_sessions_exactly_once_and_spares_connected_ones) {
  connect_all();
  session_store sa(a_, sopts("A"), metrics_);
  session_store sb(b_, sopts("B"), metrics_);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(io_.run(sa.create("s" + std::to_string(i), "u", "c" + std::to_string(i))));
  auto reaped = std::make_shared<std::vector<std::string>>();
  auto mu = std::make_shared<std::mutex>();
  auto on_reap = [reaped, mu](session_record rec) { return record_reap(reaped, mu, std::move(rec)); };
  // s0 has a socket on replica A; s1 on replica B.
  auto ja = janitor::create(sa, {.interval = 1h, .batch = 1000}, on_reap, [] { return std::vector<std::string>{"s0"}; },
                            metrics_);
  auto jb = janitor::create(sb, {.interval = 1h, .batch = 1000}, on_reap, [] { return std::vector<std::string>{"s1"}; },
                            metrics_);
  // Not idle yet: nothing happens.
  auto first = io_.run(sweep_both(ja, jb));
  EXPECT_EQ(first.first.value() + first.second.value(), 0u);
  // Time passes in steps below the idle timeout, one sweep per step on each replica (as the
  // periodic loops do): connected sessions are touched every step, the others go idle.
  clock_.advance(31s);
  auto mid = io_.run(sweep_both(ja, jb));
  EXPECT_EQ(mid.first.value() + mid.second.value(), 0u);
  clock_.advance(31s);
  auto second = io_.run(sweep_both(ja, jb));
  ASSERT_TRUE(second.first);
  ASSERT_TRUE(second.second);
  EXPECT_EQ(*second.first + *second.second, 28u);
  std::set<std::string> unique(reaped->begin(), reaped->end());
  EXPECT_EQ(reaped->size(), 28u);  // each exactly once
  EXPECT_EQ(unique.size(), 28u);
  EXPECT_TRUE(unique.count("s5/c5"));
  EXPECT_FALSE(unique.count("s0/c0"));
  EXPECT_TRUE(io_.run(sa.get("s0")).value());
  EXPECT_TRUE(io_.run(sa.get("s1")).value());
  EXPECT_FALSE(io_.run(sa.get("s5")).value());
  EXPECT_EQ(metrics_.get_counter("berth_sessions_reaped_total", "").value(), 28u);
  // A user who comes back before the claim is spared even if listed (cutoff re-checked).
  EXPECT_FALSE(io_.run(sa.end_if_idle("s0", *clock_.now - 60000)).value());
}

TEST_F(session_fixture, heartbeat_publishes_the_replica_status_and_shutdown_removes_it) {
  connect_all();
  auto h = replica_heartbeat::create(a_, {}, "A", 5s, metrics_);
  int calls = 0;
  h->set_status([&calls] { return R"({"idle":3,"n":)" + std::to_string(++calls) + "}"; });
  ASSERT_TRUE(io_.run(h->beat()));
  EXPECT_EQ(raw({"HGET", "berth:replica-stats", "A"}), "$16\r\n{\"idle\":3,\"n\":1}\r\n");
  ASSERT_TRUE(io_.run(h->beat()));
  EXPECT_EQ(raw({"HGET", "berth:replica-stats", "A"}), "$16\r\n{\"idle\":3,\"n\":2}\r\n");
  h->start();
  h->stop();  // orderly shutdown: heartbeat key and status go together
  EXPECT_TRUE(test::eventually([&] { return raw({"HEXISTS", "berth:replica-stats", "A"}) == ":0\r\n"; }));
  EXPECT_EQ(raw({"EXISTS", "berth:replica:A"}), ":0\r\n");
}

TEST_F(session_fixture, replicas_heartbeat_and_container_references) {
  connect_all();
  auto ha = replica_heartbeat::create(a_, {}, "A", 5s, metrics_);
  auto hb = replica_heartbeat::create(b_, {}, "B", 5s, metrics_);
  ASSERT_TRUE(io_.run(ha->beat()));
  ASSERT_TRUE(io_.run(hb->beat()));
  session_store sa(a_, sopts("A"), metrics_);
  EXPECT_EQ(io_.run(sa.list_live_replicas()).value(), (std::vector<std::string>{"A", "B"}));
  auto pttl = raw({"PTTL", "berth:replica:A"});
  EXPECT_GT(std::stol(pttl.substr(1)), 0);
  EXPECT_LE(std::stol(pttl.substr(1)), 5000);
  hb->stop();  // orderly shutdown removes the key
  EXPECT_TRUE(test::eventually([&] { return io_.run(sa.list_live_replicas()).value() == std::vector<std::string>{"A"}; }));
  ha->start();
  EXPECT_TRUE(test::eventually([&] { return raw({"EXISTS", "berth:replica:A"}) == ":1\r\n"; }));
  ha->stop();

  for (int i = 0; i < 1203; ++i) raw({"ZADD", "berth:sessions", "1", "x" + std::to_string(i)});  // hash-less ids
  ASSERT_TRUE(io_.run(sa.create("sx", "u", "container-x")));
  auto refs = io_.run(sa.referenced_containers()).value();
  EXPECT_EQ(refs.size(), 1u);
  EXPECT_EQ(io_.run(sa.session_referencing("container-x")).value(), std::optional<std::string>("sx"));
  EXPECT_EQ(io_.run(sa.session_referencing("nope")).value(), std::nullopt);
}

// Connection state recovery's Redis shell: pending until sealed, taken at most once across
// replicas, gone after its TTL.
TEST_F(session_fixture, recovery_state_is_taken_once_after_its_seal) {
  connect_all();
  redis_recovery_store ra(a_, key_schema{}, metrics_), rb(b_, key_schema{}, metrics_);
  const std::string pid = "pidAAAAAAAAAAAAAAAAA";
  EXPECT_FALSE(io_.run(rb.take(pid, 0ms)));  // unknown
  io_.run(ra.reserve(pid, 10s));
  EXPECT_EQ(raw({"GET", "berth:recovery:{" + pid + "}"}), "$7\r\npending\r\n");
  EXPECT_FALSE(io_.run(rb.take(pid, 60ms)));  // pending: waits, then gives up, takes nothing
  io_.run(ra.seal(pid, "{\"state\":1}", 10s));
  // Two replicas race for it: exactly one gets it.
  auto got = run_all<std::optional<std::string>>(io_, [&] {
    std::vector<asio::awaitable<std::optional<std::string>>> v;
    v.push_back(ra.take(pid, 0ms));
    v.push_back(rb.take(pid, 0ms));
    return v;
  }());
  EXPECT_EQ(static_cast<int>(got[0].has_value()) + static_cast<int>(got[1].has_value()), 1);
  EXPECT_EQ(got[0] ? *got[0] : *got[1], "{\"state\":1}");
  EXPECT_FALSE(io_.run(rb.take(pid, 0ms)));
  // A reconnect that comes while the state is still pending gets it once it is sealed.
  io_.run(ra.reserve(pid, 10s));
  auto waiting = asio::co_spawn(io_.io(), rb.take(pid, 5s), asio::use_future);
  io_.run(ra.seal(pid, "later", 10s));
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(waiting.get(), std::optional<std::string>("later"));
  // The TTL (the rest of the recovery window) bounds it.
  io_.run(ra.seal(pid, "short", 5s));
  const auto pttl = raw({"PTTL", "berth:recovery:{" + pid + "}"});  // ":<ms>\r\n"
  ASSERT_EQ(pttl.front(), ':') << pttl;
  const auto ttl = std::stoll(pttl.substr(1));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 5000);
  EXPECT_FALSE(io_.run(rb.take("bad pid!", 0ms)));  // not a plausible pid: Redis is not asked
}
