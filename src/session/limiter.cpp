#include "berth/session/limiter.hpp"

#include <cstdlib>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;
using detail::log;

namespace detail {
// Shared by a permit and its refresh loop; everything mutable is touched on `strand` only.
struct lease_state {
  lease_state(std::shared_ptr<redis::redis_client> r, std::shared_ptr<const redis::redis_script> refresh_script,
              std::string k, std::string u, std::string m, const limiter_options& o, core::counter& failed)
      : redis(std::move(r)),
        refresh(std::move(refresh_script)),
        key(std::move(k)),
        user(std::move(u)),
        member(std::move(m)),
        ttl(o.lease_ttl),
        interval(o.refresh_interval),
        clock(o.clock),
        release_failed(failed),
        strand(asio::make_strand(redis->get_executor())),
        timer(strand) {}
  std::shared_ptr<redis::redis_client> redis;
  std::shared_ptr<const redis::redis_script> refresh;
  std::string key, user, member;
  std::chrono::milliseconds ttl, interval;
  clock_fn clock;
  core::counter& release_failed;
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;
  bool released = false;
};
}  // namespace detail

namespace {
awaitable<void> refresh_loop(std::shared_ptr<detail::lease_state> s) {
  while (!s->released) {
    s->timer.expires_after(s->interval);
    co_await s->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (s->released) break;
    auto r = co_await s->redis->eval(s->refresh, argv(s->key),
                                     argv(std::to_string(s->clock()), std::to_string(s->ttl.count()), s->member));
    if (!r) log()->debug("lease refresh failed req={}: {}", s->member, r.error().message);
  }
}

awaitable<core::result<void>> release_lease(std::shared_ptr<detail::lease_state> s) {
  // On s->strand.
  if (s->released) co_return core::result<void>{};
  s->released = true;
  s->timer.cancel();
  // ZREM of our own member is idempotent, so it is retried through an outage or a failover
  // (the slot comes back as soon as Redis does, not after lease_ttl). Bounded: after lease_ttl
  // the lease has expired by itself (nobody refreshes it any more).
  const auto give_up_at = std::chrono::steady_clock::now() + s->ttl;
  std::chrono::milliseconds delay{50};
  for (int attempt = 1;; ++attempt) {
    auto r = co_await s->redis->command(argv("ZREM", s->key, s->member));
    if (r && !r->is_error()) {
      if (attempt > 1) log()->info("lease release req={} succeeded after {} attempts", s->member, attempt);
      co_return core::result<void>{};
    }
    const bool transient = !r && redis::is_transport_error(r.error());
    if (!transient || std::chrono::steady_clock::now() + delay >= give_up_at) {
      // The lease expires by itself after lease_ttl: degraded (the user has one slot less), not lost.
      s->release_failed.inc();
      log()->warn("lease release failed req={} (expires in at most {} ms): {}", s->member, s->ttl.count(),
                  r ? redis::describe(*r) : r.error().message);
      if (!r) co_return r.error();
      co_return core::make_error(core::errc::internal, "redis ZREM lease: " + r->str.substr(0, 200));
    }
    if (attempt == 1) log()->debug("lease release req={} failed ({}); retrying", s->member, r.error().message);
    s->timer.expires_after(delay);
    co_await s->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    delay = std::min(delay * 2, std::chrono::milliseconds(2000));
  }
}

awaitable<void> release_detached(std::shared_ptr<detail::lease_state> s) { (void)co_await release_lease(std::move(s)); }

}  // namespace

const std::string& user_permit::user() const { return state_->user; }
const std::string& user_permit::request_id() const { return state_->member; }

void user_permit::reset() noexcept {
  if (!state_) return;
  auto s = std::move(state_);
  state_.reset();
  try {
    asio::co_spawn(s->strand, release_detached(s), asio::detached);
  } catch (...) {
    // Allocation failure while spawning: the lease expires after lease_ttl.
  }
}

awaitable<core::result<void>> user_permit::release() {
  if (!state_) co_return core::result<void>{};
  auto s = std::move(state_);
  state_.reset();
  co_return co_await asio::co_spawn(s->strand, release_lease(s), asio::use_awaitable);
}

user_limiter::user_limiter(std::shared_ptr<redis::redis_client> redis, limiter_options opts, core::metrics& metrics)
    : redis_(std::move(redis)),
      opts_(std::move(opts)),
      c_rejected_(metrics.get_counter("berth_limiter_rejections_total", "requests rejected with TOO_MANY_REQUESTS")),
      c_granted_(metrics.get_counter("berth_limiter_permits_total", "per-user request permits granted")),
      c_release_failed_(metrics.get_counter("berth_limiter_release_failures_total",
                                            "permit releases that failed (lease left to expire)")),
      c_ambiguous_(metrics.get_counter("berth_limiter_ambiguous_acquires_total",
                                       "acquires whose reply was lost (timeout, connection lost): their lease is released")),
      acquire_(redis_->register_script(scripts::acquire_lease)),
      refresh_(redis_->register_script(scripts::refresh_lease)) {}

awaitable<core::result<user_permit>> user_limiter::acquire(std::string user, std::string request_id) {
  if (auto v = validate_user_id(user); !v) co_return v.error();
  if (request_id.empty()) request_id = core::random_token(12);
  auto key = opts_.keys.inflight(user);
  auto r = co_await redis_->eval(acquire_, argv(key),
                                 argv(std::to_string(opts_.clock()), std::to_string(opts_.lease_ttl.count()),
                                      std::to_string(opts_.max_per_user), request_id));
  if (!r) {
    if (redis::may_have_been_applied(r.error())) {
      // The script may have run and taken a slot whose grant we never saw (reply lost in a
      // failover or a timeout): give it back, retried like any release, so the user does not
      // lose a slot for lease_ttl. Only our own request id is removed.
      c_ambiguous_.inc();
      auto s = std::make_shared<detail::lease_state>(redis_, refresh_, key, user, request_id, opts_, c_release_failed_);
      asio::co_spawn(s->strand, release_detached(s), asio::detached);
    }
    co_return r.error();
  }
  auto arr = redis::as_array(*r, "acquire lease");
  if (!arr) co_return arr.error();
  if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "redis acquire lease: expected [granted, count]");
  auto granted = redis::as_integer((**arr)[0], "acquire lease");
  if (!granted) co_return granted.error();
  if (*granted != 1) {
    c_rejected_.inc();
    log()->debug("too many requests uid={} limit={}", core::log_prefix(user, 32), opts_.max_per_user);
    co_return core::make_error(core::errc::too_many_requests, "at most " + std::to_string(opts_.max_per_user) +
                                                                  " requests in flight for this user");
  }
  c_granted_.inc();
  auto s = std::make_shared<detail::lease_state>(redis_, refresh_, std::move(key), std::move(user), std::move(request_id),
                                                 opts_, c_release_failed_);
  asio::co_spawn(s->strand, refresh_loop(s), asio::detached);
  co_return user_permit(std::move(s));
}

awaitable<core::result<std::size_t>> user_limiter::in_flight(std::string user) {
  if (auto v = validate_user_id(user); !v) co_return v.error();
  auto r = co_await redis_->command(
      argv("ZCOUNT", opts_.keys.inflight(user), "(" + std::to_string(opts_.clock()), "+inf"));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "ZCOUNT inflight");
  if (!n) co_return n.error();
  co_return static_cast<std::size_t>(*n);
}

// ---------------------------------------------------------------- llm_token_budget

llm_token_budget::llm_token_budget(std::shared_ptr<redis::redis_client> redis, token_budget_options opts,
                                   core::metrics& metrics)
    : redis_(std::move(redis)),
      opts_(std::move(opts)),
      c_refused_(metrics.get_counter("berth_llm_token_budget_refusals_total",
                                     "LLM requests refused: the user spent LLM_TOKENS_PER_USER_PER_MINUTE")),
      c_unchecked_(metrics.get_counter("berth_llm_token_budget_unchecked_total",
                                       "LLM requests let through unchecked because Redis did not answer")),
      c_charged_(metrics.get_counter("berth_llm_tokens_total", "LLM tokens (input + output) the providers reported")),
      charge_(redis_->register_script(scripts::charge_tokens)) {}

awaitable<core::result<void>> llm_token_budget::admit(std::string user) {
  if (!enabled()) co_return core::result<void>{};
  if (auto v = validate_user_id(user); !v) co_return v.error();
  const auto window = minute_of(opts_.clock());
  auto r = co_await redis_->command(argv("GET", opts_.keys.llm_tokens(user, window.index)));
  std::optional<std::string> text;
  std::optional<core::error> failure;
  if (!r) {
    failure = r.error();
  } else if (auto t = redis::as_optional_string(*r, "GET llm-tokens"); !t) {
    failure = t.error();
  } else {
    text = std::move(*t);
  }
  if (failure) {
    c_unchecked_.inc();
    if (!failing_.exchange(true)) log()->warn("LLM token budget not checked (let through): {}", failure->message);
    co_return core::result<void>{};
  }
  const std::uint64_t used = text ? std::strtoull(text->c_str(), nullptr, 10) : 0;
  if (failing_.exchange(false)) log()->info("LLM token budget checked again");
  if (used < opts_.tokens_per_minute) co_return core::result<void>{};
  c_refused_.inc();
  log()->debug("LLM token budget spent uid={} used={}", core::log_prefix(user, 32), used);
  core::error e = core::make_error(core::errc::rate_limited,
                                   "this user's LLM budget of " + std::to_string(opts_.tokens_per_minute) +
                                       " tokens per minute is spent (" + std::to_string(used) + " used)");
  e.retry_after = window.left;
  co_return e;
}

awaitable<core::result<std::uint64_t>> llm_token_budget::charge(std::string user, std::uint64_t tokens) {
  c_charged_.inc(tokens);
  if (!enabled() || tokens == 0) co_return 0;
  if (auto v = validate_user_id(user); !v) co_return v.error();
  const auto window = minute_of(opts_.clock());
  auto r = co_await redis_->eval(charge_, argv(opts_.keys.llm_tokens(user, window.index)),
                                 argv(std::to_string(tokens), std::to_string(window.left.count() + 60000)));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "charge llm tokens");
  if (!n) co_return n.error();
  co_return static_cast<std::uint64_t>(*n);
}

}  // namespace berth::session
