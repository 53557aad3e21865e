#include "berth/session/recovery_store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;

namespace {
constexpr const char* pending = "pending";
// 0: still pending; nil: unknown or expired; the state: now taken (deleted).
constexpr const char* take_script = R"lua(
local v = redis.call('GET', KEYS[1])
if not v then return false end
if v == ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return v
)lua";
constexpr std::chrono::milliseconds poll_interval{25};
// A pid is what the client sends back: a random token of ours, but checked like any input.
bool plausible_pid(std::string_view pid) { return validate_session_id(pid).has_value(); }
}  // namespace

redis_recovery_store::redis_recovery_store(std::shared_ptr<redis::redis_client> redis, key_schema keys,
                                           core::metrics& metrics)
    : redis_(std::move(redis)),
      keys_(std::move(keys)),
      errors_(metrics.get_counter("berth_recovery_store_errors_total",
                                  "Connection state recovery: Redis failures (the reconnect becomes a new connection)")),
      take_(redis_->register_script(take_script)) {}

void redis_recovery_store::failed(const char* what, const core::error& e) {
  errors_.inc();
  core::logger("session")->warn("recovery state not {}: {}", what, e.message);
}

awaitable<void> redis_recovery_store::reserve(std::string pid, std::chrono::milliseconds ttl) {
  auto r = co_await redis_->command(argv("SET", keys_.recovery(pid), pending, "PX", std::to_string(ttl.count())));
  if (!r) failed("reserved", r.error());
  else if (auto ok = redis::expect_ok(*r, "SET recovery"); !ok) failed("reserved", ok.error());
}

awaitable<void> redis_recovery_store::seal(std::string pid, std::string state, std::chrono::milliseconds ttl) {
  auto r = co_await redis_->command(
      argv("SET", keys_.recovery(pid), std::move(state), "PX", std::to_string(std::max<std::int64_t>(ttl.count(), 1))));
  if (!r) failed("sealed", r.error());
  else if (auto ok = redis::expect_ok(*r, "SET recovery"); !ok) failed("sealed", ok.error());
}

awaitable<std::optional<std::string>> redis_recovery_store::take(std::string pid, std::chrono::milliseconds wait) {
  if (!plausible_pid(pid)) co_return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (;;) {  // bounded by `wait`
    auto r = co_await redis_->eval(take_, argv(keys_.recovery(pid)), argv(pending));
    if (!r) {
      failed("taken", r.error());
      co_return std::nullopt;
    }
    if (r->is_nil()) co_return std::nullopt;
    if (r->type == redis::reply_type::string) co_return std::move(r->str);
    if (r->type != redis::reply_type::integer) {
      failed("taken", core::make_error(core::errc::internal, "unexpected reply " + redis::describe(*r)));
      co_return std::nullopt;
    }
    if (std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
    t.expires_after(poll_interval);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace berth::session
