#include "berth/agent/delta_coalescer.hpp"

#include <algorithm>
#include <utility>

namespace berth::agent {

delta_coalescer::delta_coalescer(std::chrono::milliseconds interval, std::size_t burst)
    : interval_(interval), burst_(std::max<std::size_t>(burst, 1)), tokens_(burst_) {}

void delta_coalescer::refill(clock::time_point now) {
  if (tokens_ >= burst_) {
    refilled_ = now;
    return;
  }
  if (now <= refilled_) return;
  const auto periods = static_cast<std::size_t>((now - refilled_) / interval_);
  if (periods == 0) return;
  tokens_ = std::min(burst_, tokens_ + periods);
  // Keep the remainder so the rate stays exact; a full bucket restarts the clock.
  refilled_ = tokens_ >= burst_ ? now : refilled_ + interval_ * static_cast<long>(periods);
}

std::optional<std::string> delta_coalescer::push(std::string_view text, clock::time_point now) {
  if (text.empty()) return std::nullopt;
  if (interval_.count() <= 0) return std::string(text);
  if (!held_.empty()) {  // order: behind what already waits
    held_.append(text);
    return std::nullopt;
  }
  refill(now);
  if (tokens_ > 0) {
    --tokens_;
    return std::string(text);
  }
  held_.assign(text);
  return std::nullopt;
}

std::optional<delta_coalescer::clock::time_point> delta_coalescer::due() const {
  if (held_.empty()) return std::nullopt;
  if (tokens_ > 0) return refilled_;
  return refilled_ + interval_;
}

std::string delta_coalescer::take(clock::time_point now) {
  if (interval_.count() > 0) {
    refill(now);
    if (tokens_ > 0) --tokens_;
  }
  return std::exchange(held_, std::string());
}

}  // namespace berth::agent
