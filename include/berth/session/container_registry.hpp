#pragma once
// MAX_CONTAINERS across replicas: the `containers` zset holds every sandbox container a live
// replica's pool holds (member: container id, or "creating:<replica>:<n>" while a create runs;
// score: expiry ms). A pool reserves a slot before it asks Docker for a container, turns the
// reservation into the id, refreshes its members every few seconds and removes them when the
// containers go. Entries of a replica that died expire after entry_ttl, so a crash frees its slots
// (its containers are the orphan reaper's by then).
// Lifetime: holds a shared_ptr to the client. Thread-safety: methods may run concurrently.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"
#include "berth/session/store.hpp"

namespace berth::session {

struct container_registry_options {
  key_schema keys;
  std::size_t max_containers = 1000;  // 0: no cap (nothing is written to Redis)
  std::chrono::milliseconds entry_ttl{60000};
  clock_fn clock = system_now_ms;
};

class container_registry {
 public:
  container_registry(std::shared_ptr<redis::redis_client> redis, container_registry_options opts,
                     core::metrics& metrics);
  // A slot for one more container: false when the cluster holds max_containers.
  boost::asio::awaitable<core::result<bool>> reserve(std::string reservation);
  // The reservation became a container (or failed: container empty).
  boost::asio::awaitable<core::result<void>> settle(std::string reservation, std::string container);
  boost::asio::awaitable<core::result<void>> remove(std::string container);
  // Extends the entries of `containers` (every container this replica's pool holds).
  boost::asio::awaitable<core::result<void>> refresh(std::vector<std::string> containers);
  bool enabled() const noexcept { return opts_.max_containers > 0; }

 private:
  std::shared_ptr<redis::redis_client> redis_;
  container_registry_options opts_;
  std::shared_ptr<const redis::redis_script> reserve_;
  std::atomic<std::size_t> last_count_{0};  // the cluster's count as last seen (gauge)
  core::counter& refused_;
};

}  // namespace berth::session
