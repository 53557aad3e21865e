#pragma once
// Private helpers for the session module's coroutines.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"

namespace berth::session::detail {

// Builds an argument vector without a braced list: GCC 12 miscompiles std::initializer_list
// temporaries inside coroutine bodies ("array used as initializer").
template <class... A>
std::vector<std::string> argv(A&&... a) {
  std::vector<std::string> v;
  v.reserve(sizeof...(a));
  (v.emplace_back(std::forward<A>(a)), ...);
  return v;
}

// The module's logger, looked up once.
inline std::shared_ptr<spdlog::logger> log() {
  static auto l = core::logger("session");
  return l;
}

// The loop of the replica heartbeat, the janitor and the orphan reaper: run a round (a callable
// returning awaitable<result<T>>; it keeps its owner alive), wait, repeat until `stopped` is set
// (stop() sets it and cancels `timer`). A failed round is counted each time and logged once per
// run of failures; the wait after one is `retry_after`.
template <class Round>
boost::asio::awaitable<void> run_periodically(Round round, const bool& stopped, boost::asio::steady_timer& timer,
                                              std::chrono::milliseconds interval, std::chrono::milliseconds retry_after,
                                              core::counter& failures, std::string_view what) {
  bool failing = false;
  while (!stopped) {
    auto r = co_await round();
    if (!r) {
      failures.inc();
      if (!failing) log()->warn("{} failed: {} (retrying)", what, r.error().message);
      failing = true;
    } else if (failing) {
      log()->info("{} restored", what);
      failing = false;
    }
    if (stopped) break;
    timer.expires_after(failing ? retry_after : interval);
    co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
}

}  // namespace berth::session::detail
