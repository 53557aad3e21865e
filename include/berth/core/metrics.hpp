#pragma once
// Prometheus metrics registry. Owned by the app and passed by reference to every service
// (no globals). Counters are lock-free atomics; registration and rendering take a mutex.
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace berth::core {

class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class metrics {
 public:
  // Same name + labels returns the same counter. labels: `reason="bad_packet"` (already escaped).
  counter& get_counter(const std::string& name, const std::string& help, const std::string& labels = "");
  // A gauge read at render time (e.g. pool sizes). The callback must be safe to call from any thread.
  void add_gauge(const std::string& name, const std::string& help, std::function<double()> read,
                 const std::string& labels = "");
  // Latency summary-style figures supplied by the owner at render time.
  std::string render() const;

 private:
  struct counter_entry {
    std::string name, help, labels;
    counter value;
  };
  struct gauge_entry {
    std::string name, help, labels;
    std::function<double()> read;
  };
  mutable std::mutex mutex_;
  std::deque<counter_entry> counters_;  // deque: stable addresses for returned references
  std::vector<gauge_entry> gauges_;
};

}  // namespace berth::core
