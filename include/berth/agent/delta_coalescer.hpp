#pragma once
// Paces agent:delta events of one socket (sans-I/O, injected clock): a token bucket of `burst`
// events that refills one per `interval`. While tokens remain a piece of text goes out at once
// (the first delta of an answer always does); past that, text arriving meanwhile is held and
// merged, and goes out as one event when the next token is due. So a model that streams fast, or
// a client that cannot keep up, costs at most burst + 1/interval events per second per socket
// instead of one event per token; the bytes are the answer's own, bounded by its length.
// interval 0 turns pacing off (every piece is an event).
// Lifetime: one per session. Thread-safety: none (the session's strand).
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace berth::agent {

class delta_coalescer {
 public:
  using clock = std::chrono::steady_clock;
  delta_coalescer(std::chrono::milliseconds interval, std::size_t burst);

  // Text arrived: what to send now (nullopt: it is held until due()).
  std::optional<std::string> push(std::string_view text, clock::time_point now);
  // When the held text may go out; nullopt when nothing is held.
  std::optional<clock::time_point> due() const;
  // The held text (at or after due(), or at the end of an answer: then regardless of tokens).
  std::string take(clock::time_point now);
  bool holding() const noexcept { return !held_.empty(); }
  std::size_t held_bytes() const noexcept { return held_.size(); }

 private:
  void refill(clock::time_point now);

  std::chrono::milliseconds interval_;
  std::size_t burst_;
  std::size_t tokens_;
  clock::time_point refilled_{};  // the time tokens_ was last brought up to date
  std::string held_;
};

}  // namespace berth::agent
