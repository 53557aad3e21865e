#include "berth/core/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace berth::core {

token_bucket::token_bucket(double rate_per_second, double burst, rate_clock::time_point now) noexcept
    : rate_(rate_per_second > 0 ? rate_per_second : 1e-9), burst_(std::max(1.0, burst)), tokens_(burst_), last_(now) {}

void token_bucket::refill(rate_clock::time_point now) noexcept {
  if (now <= last_) return;  // an injected clock that goes back refills nothing
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

double token_bucket::available(rate_clock::time_point now) const noexcept {
  if (now <= last_) return tokens_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return std::min(burst_, tokens_ + elapsed * rate_);
}

bool token_bucket::try_take(rate_clock::time_point now, double n) noexcept {
  refill(now);
  if (tokens_ + 1e-9 < n) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

std::chrono::milliseconds token_bucket::wait_time(rate_clock::time_point now, double n) const noexcept {
  const double missing = std::min(n, burst_) - available(now);
  if (missing <= 1e-9) return std::chrono::milliseconds(0);
  const double ms = std::ceil(missing / rate_ * 1000.0);
  constexpr double cap = 24.0 * 3600 * 1000;  // a day: a bucket with an absurdly low rate stays finite
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(ms, cap)));
}

bool flood_detector::record(rate_clock::time_point now) noexcept {
  constexpr auto second = std::chrono::seconds(1);
  if (!started_ || now >= window_start_ + second) {
    if (started_) {
      const bool flooded = static_cast<double>(count_) >= threshold_;
      // The streak continues only if the new window follows the last one without a quiet second.
      const bool adjacent = now < window_start_ + 2 * second;
      flooded_ = flooded && adjacent ? flooded_ + 1 : 0;
    }
    started_ = true;
    window_start_ = now;
    count_ = 0;
  }
  if (count_ < UINT32_MAX) ++count_;
  return seconds_ > 0 && static_cast<double>(count_) >= threshold_ && flooded_ + 1 >= seconds_;
}

keyed_token_buckets::keyed_token_buckets(double rate_per_second, double burst, std::size_t max_keys)
    : rate_(rate_per_second), burst_(burst), max_keys_(std::max<std::size_t>(1, max_keys)) {}

bool keyed_token_buckets::try_take(std::string_view key, rate_clock::time_point now) {
  std::string k(key);
  auto it = map_.find(k);
  if (it == map_.end()) {
    if (map_.size() >= max_keys_) {
      // Forgetting a key hands it a full bucket next time: more lenient, never stricter.
      map_.erase(lru_.back());
      lru_.pop_back();
      ++evictions_;
    }
    lru_.push_front(k);
    it = map_.emplace(std::move(k), entry{token_bucket(rate_, burst_, now), lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  return it->second.bucket.try_take(now);
}

std::chrono::milliseconds keyed_token_buckets::wait_time(std::string_view key, rate_clock::time_point now) const {
  auto it = map_.find(std::string(key));
  return it == map_.end() ? std::chrono::milliseconds(0) : it->second.bucket.wait_time(now);
}

bool log_limiter::allow(std::uint64_t& suppressed, rate_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!bucket_.try_take(now)) {
    ++suppressed_;
    return false;
  }
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace berth::core
