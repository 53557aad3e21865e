#pragma once
// Rate limiting building blocks (sans-I/O: every call takes the time, so tests inject a clock).
// - token_bucket: `rate` tokens per second up to `burst`; one per event (events per socket, per
//   user, per address).
// - flood_detector: notices a sender that keeps far above its rate for whole seconds (sustained
//   abuse rather than a burst), so the connection can be closed instead of answered forever.
// - keyed_token_buckets: one bucket per key (a client address) in a map of bounded size; the
//   least recently used key is forgotten first, which only ever makes the limit more lenient.
// - log_limiter: at most a few log lines per second for conditions an attacker can repeat.
// Thread-safety: none, except log_limiter (callers own one per strand or hold a lock).
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace berth::core {

using rate_clock = std::chrono::steady_clock;

class token_bucket {
 public:
  // Starts full. rate > 0 tokens per second, burst >= 1 tokens.
  token_bucket(double rate_per_second, double burst, rate_clock::time_point now) noexcept;

  // Takes `n` tokens if that many are there; otherwise takes nothing and returns false.
  bool try_take(rate_clock::time_point now, double n = 1.0) noexcept;
  // How long until `n` tokens are there (zero when they are now). n above the burst never
  // fits: the answer is then the time to fill the whole bucket.
  std::chrono::milliseconds wait_time(rate_clock::time_point now, double n = 1.0) const noexcept;
  double available(rate_clock::time_point now) const noexcept;
  bool full(rate_clock::time_point now) const noexcept { return available(now) >= burst_; }
  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }

 private:
  void refill(rate_clock::time_point now) noexcept;

  double rate_;
  double burst_;
  double tokens_;
  rate_clock::time_point last_;
};

// Counts events in windows of one second. A window with at least `threshold` events is a
// flooded second; record() returns true once `seconds` flooded windows have followed each other
// (a window that starts more than a second after the previous one ended breaks the streak).
class flood_detector {
 public:
  flood_detector(double threshold_per_second, unsigned seconds) noexcept
      : threshold_(threshold_per_second), seconds_(seconds) {}
  bool record(rate_clock::time_point now) noexcept;
  unsigned flooded_seconds() const noexcept { return flooded_; }

 private:
  double threshold_;
  unsigned seconds_;
  bool started_ = false;
  rate_clock::time_point window_start_{};
  std::uint32_t count_ = 0;
  unsigned flooded_ = 0;  // consecutive flooded windows before the current one
};

class keyed_token_buckets {
 public:
  keyed_token_buckets(double rate_per_second, double burst, std::size_t max_keys);
  // Takes one token from `key`'s bucket (created full on first use).
  bool try_take(std::string_view key, rate_clock::time_point now);
  // How long until `key` may take a token again (zero for an unknown key).
  std::chrono::milliseconds wait_time(std::string_view key, rate_clock::time_point now) const;
  std::size_t size() const noexcept { return map_.size(); }
  std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  struct entry {
    token_bucket bucket;
    std::list<std::string>::iterator lru;
  };
  double rate_;
  double burst_;
  std::size_t max_keys_;
  std::uint64_t evictions_ = 0;
  std::list<std::string> lru_;  // front: most recently used
  std::unordered_map<std::string, entry> map_;
};

// Lets `burst` lines through, then one per `1/rate` seconds; the suppressed count goes with the
// next line that passes. Thread-safe.
class log_limiter {
 public:
  explicit log_limiter(double lines_per_second = 1.0, double burst = 10.0)
      : bucket_(lines_per_second, burst, rate_clock::now()) {}
  // True when a line may be written; `suppressed` gets how many were dropped since the last one.
  bool allow(std::uint64_t& suppressed, rate_clock::time_point now = rate_clock::now());

 private:
  std::mutex mutex_;
  token_bucket bucket_;
  std::uint64_t suppressed_ = 0;
};

}  // namespace berth::core
