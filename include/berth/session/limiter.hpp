#pragma once
// Per-user concurrency limit across sockets and replicas: `inflight:{user}` zset of leases
// (member = request id, score = expiry ms). acquire() runs one Lua script (drop expired, count,
// add if below the limit): one round trip, atomic. A lease whose replica dies expires after
// lease_ttl; a live permit refreshes its lease every refresh_interval.
//
// user_permit: movable RAII handle. Destruction (or reset()) releases fire-and-forget on the
// limiter's strand; release() awaits the ZREM. A release that meets an outage or a failover is
// retried (ZREM of our own id is idempotent) until Redis answers or the lease has expired anyway.
//
// During a Redis failover the limiter fails closed: acquire() answers a transport error (the
// request is refused, never run unlimited); an acquire whose reply was lost after the script may
// have run releases its lease again (berth_limiter_ambiguous_acquires_total), so no slot leaks
// and none is granted twice. With Sentinel, the client makes each script wait until a replica
// has it (redis::client_options::wait_replicas), so a granted lease survives the failover. Thread-safety: user_limiter methods may run
// concurrently; a permit is owned by one coroutine at a time. Permits do not need the limiter
// to outlive them (they share the client and their own state).
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"
#include "berth/session/store.hpp"

namespace berth::session {

struct limiter_options {
  key_schema keys;
  std::size_t max_per_user = 5;                          // MAX_REQUESTS_PER_USER
  std::chrono::milliseconds lease_ttl{90000};            // > TOOL_TIMEOUT_MS + an LLM round
  std::chrono::milliseconds refresh_interval{30000};     // < lease_ttl / 2
  clock_fn clock = system_now_ms;
};

namespace detail {
struct lease_state;
}

class user_permit {
 public:
  user_permit() = default;
  explicit user_permit(std::shared_ptr<detail::lease_state> s) : state_(std::move(s)) {}
  user_permit(user_permit&&) noexcept = default;
  user_permit& operator=(user_permit&& o) noexcept {
    if (this != &o) {
      reset();
      state_ = std::move(o.state_);
    }
    return *this;
  }
  user_permit(const user_permit&) = delete;
  user_permit& operator=(const user_permit&) = delete;
  ~user_permit() { reset(); }

  explicit operator bool() const noexcept { return state_ != nullptr; }
  const std::string& user() const;
  const std::string& request_id() const;
  // Fire-and-forget release (ZREM posted to the limiter strand). Idempotent.
  void reset() noexcept;
  // Awaited release; the permit is empty afterwards.
  boost::asio::awaitable<core::result<void>> release();

 private:
  std::shared_ptr<detail::lease_state> state_;
};

class user_limiter {
 public:
  user_limiter(std::shared_ptr<redis::redis_client> redis, limiter_options opts, core::metrics& metrics);

  // A permit, or errc::too_many_requests ("at most N requests in flight for this user"; counter
  // berth_limiter_rejections_total), or errc::invalid_payload for a bad user id, or a Redis
  // transport error (errc::internal "redis unavailable: ...": the caller answers the request
  // with an error, never runs it unlimited). request_id empty: a random one.
  boost::asio::awaitable<core::result<user_permit>> acquire(std::string user, std::string request_id = {});
  // Live leases for a user (expired ones not counted).
  boost::asio::awaitable<core::result<std::size_t>> in_flight(std::string user);

  const limiter_options& options() const noexcept { return opts_; }
  std::uint64_t rejections() const noexcept { return c_rejected_.value(); }

 private:
  std::shared_ptr<redis::redis_client> redis_;
  limiter_options opts_;
  core::counter& c_rejected_;
  core::counter& c_granted_;
  core::counter& c_release_failed_;
  core::counter& c_ambiguous_;
  std::shared_ptr<const redis::redis_script> acquire_, refresh_;
};

// LLM tokens per user and minute across the cluster (LLM_TOKENS_PER_USER_PER_MINUTE): one
// counter per user and clock minute. admit() before each LLM request refuses once the minute's
// count reached the budget (errc::rate_limited, retry_after = until the minute ends); charge()
// adds what the provider reported for the reply. A request may so overshoot by its own size, but
// none starts past the budget. An abuse limit, not a bill: when Redis cannot answer, admit() lets
// the request through (counted, logged once per outage); the request limiter, which fails closed,
// still bounds what one user runs.
struct token_budget_options {
  key_schema keys;
  std::uint64_t tokens_per_minute = 0;  // 0: no budget
  clock_fn clock = system_now_ms;
};

// The clock minute `now_ms` falls in, and how long until the next one.
struct minute_window {
  std::int64_t index = 0;
  std::chrono::milliseconds left{0};
};
inline minute_window minute_of(std::int64_t now_ms) {
  const std::int64_t index = now_ms / 60000;
  return {index, std::chrono::milliseconds((index + 1) * 60000 - now_ms)};
}

class llm_token_budget {
 public:
  llm_token_budget(std::shared_ptr<redis::redis_client> redis, token_budget_options opts, core::metrics& metrics);

  bool enabled() const noexcept { return opts_.tokens_per_minute > 0; }
  boost::asio::awaitable<core::result<void>> admit(std::string user);
  // Adds `tokens` to this minute's count; returns the new count.
  boost::asio::awaitable<core::result<std::uint64_t>> charge(std::string user, std::uint64_t tokens);

 private:
  std::shared_ptr<redis::redis_client> redis_;
  token_budget_options opts_;
  core::counter& c_refused_;
  core::counter& c_unchecked_;
  core::counter& c_charged_;
  std::atomic<bool> failing_{false};
  std::shared_ptr<const redis::redis_script> charge_;
};

}  // namespace berth::session
