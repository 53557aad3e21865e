#pragma once
// What /health, /health/ready and /stats/pool answer, from facts the app gathers (pure: no I/O,
// unit-tested). The app collects the facts (Redis health, a Docker probe, the pool's figures)
// and serves the JSON.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::app {

struct health_facts {
  std::string replica;
  std::chrono::seconds uptime{0};
  bool stopping = false;  // a graceful shutdown has begun
  // Redis
  bool redis_ok = false;
  double redis_latency_ms = 0;
  std::string redis_master;
  bool redis_sentinel = false;
  std::uint64_t redis_failovers = 0;
  // Docker: the last probe's API version, or its error
  bool docker_ok = false;
  std::string docker_api_version;
  std::string docker_error;
  nlohmann::json pool = nlohmann::json::object();  // pool::to_json(stats)
  std::size_t connections = 0;
  std::size_t sockets = 0;
};

// /health: {status: ok|degraded, replica, uptimeS, redis, docker, pool, connections, sockets}.
// Healthy: not stopping, Redis answering, Docker answering.
nlohmann::json health_report(const health_facts& f);
bool healthy(const health_facts& f) noexcept;

// /health/ready: healthy, and start-up has got far enough to serve a user: keys migrated, the pool
// started, and either its warm-up succeeded, pooling is off, or at least one container is idle.
struct readiness_facts {
  bool keys_migrated = false;
  bool pool_started = false;
  bool pool_start_ok = false;
  bool pooling = true;
  std::size_t idle = 0;
};
bool ready(const health_facts& f, const readiness_facts& r) noexcept;

// /stats/pool's cluster part from HGETALL of the replicas' published figures (flat
// [id, JSON, ...]): {totals, replicas, stale}. Entries older than `heartbeat_ttl` are stale (ids
// only); ids to delete from the hash (garbled, or stale for over a minute) go to `forget`.
nlohmann::json summarize_cluster(const std::vector<std::string>& flat, std::int64_t now_ms,
                                 std::chrono::milliseconds heartbeat_ttl, std::vector<std::string>& forget);

}  // namespace berth::app
