#include "berth/app/status.hpp"

#include <algorithm>

#include "berth/core/json.hpp"

namespace berth::app {

using json = nlohmann::json;

bool healthy(const health_facts& f) noexcept { return !f.stopping && f.redis_ok && f.docker_ok; }

json health_report(const health_facts& f) {
  json docker{{"ok", f.docker_ok}, {"apiVersion", nullptr}};
  if (f.docker_ok)
    docker["apiVersion"] = f.docker_api_version;
  else
    docker["error"] = f.docker_error;
  return json{{"status", healthy(f) ? "ok" : "degraded"},
              {"replica", f.replica},
              {"uptimeS", f.uptime.count()},
              {"redis", {{"ok", f.redis_ok}, {"latencyMs", f.redis_latency_ms}, {"master", f.redis_master},
                         {"sentinel", f.redis_sentinel}, {"failovers", f.redis_failovers}}},
              {"docker", std::move(docker)},
              {"pool", f.pool},
              {"connections", f.connections},
              {"sockets", f.sockets}};
}

bool ready(const health_facts& f, const readiness_facts& r) noexcept {
  return healthy(f) && r.keys_migrated && r.pool_started && (r.pool_start_ok || !r.pooling || r.idle > 0);
}

json summarize_cluster(const std::vector<std::string>& flat, std::int64_t now_ms, std::chrono::milliseconds heartbeat_ttl,
                       std::vector<std::string>& forget) {
  json replicas = json::array(), stale = json::array();
  json totals{{"idle", 0}, {"active", 0}, {"total", 0}, {"creating", 0}, {"waiting", 0},
              {"maxPoolSize", 0}, {"minPoolSize", 0}, {"sessions", 0}, {"sockets", 0}};
  double worst_p95 = 0;
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
    const auto& id = flat[i];
    auto e = core::parse_json(flat[i + 1]);
    if (!e.is_object() || !e.contains("updatedMs") || !e["updatedMs"].is_number_integer()) {
      forget.push_back(id);  // a garbled entry is dropped (its replica rewrites it on its next beat)
      continue;
    }
    const auto age = now_ms - e["updatedMs"].get<std::int64_t>();
    if (age > heartbeat_ttl.count()) {
      stale.push_back(id);
      if (age > 60000) forget.push_back(id);
      continue;
    }
    e["replica"] = id;
    for (auto& [k, v] : totals.items())
      if (e.contains(k) && e[k].is_number()) v = v.get<std::int64_t>() + e[k].get<std::int64_t>();
    if (e.contains("acquireMs") && e["acquireMs"].is_object() && e["acquireMs"].contains("p95") &&
        e["acquireMs"]["p95"].is_number())
      worst_p95 = std::max(worst_p95, e["acquireMs"]["p95"].get<double>());
    replicas.push_back(std::move(e));
  }
  std::sort(replicas.begin(), replicas.end(),
            [](const json& a, const json& b) { return a["replica"].get<std::string>() < b["replica"].get<std::string>(); });
  totals["replicas"] = replicas.size();
  totals["worstAcquireP95Ms"] = worst_p95;
  json out = json::object();
  out["totals"] = std::move(totals);
  out["replicas"] = std::move(replicas);
  out["stale"] = std::move(stale);
  return out;
}

}  // namespace berth::app
