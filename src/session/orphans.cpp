#include "berth/session/orphans.hpp"

#include <algorithm>

namespace berth::session {

std::string_view to_string(orphan_verdict v) noexcept {
  switch (v) {
    case orphan_verdict::orphan: return "orphan";
    case orphan_verdict::not_managed: return "not_managed";
    case orphan_verdict::no_replica: return "no_replica";
    case orphan_verdict::own_replica: return "own_replica";
    case orphan_verdict::live_replica: return "live_replica";
    case orphan_verdict::foreign_replica: return "foreign_replica";
    case orphan_verdict::referenced: return "referenced";
  }
  return "unknown";
}

bool is_referenced(std::string_view id, const std::set<std::string>& referenced) noexcept {
  if (id.empty()) return false;
  if (referenced.contains(std::string(id))) return true;
  constexpr std::size_t min_prefix = 12;
  for (const auto& r : referenced) {
    if (r.size() < min_prefix || id.size() < min_prefix) continue;
    const auto n = std::min(r.size(), id.size());
    if (std::string_view(r).substr(0, n) == id.substr(0, n)) return true;
  }
  return false;
}

orphan_verdict classify_container(const labelled_container& c, const orphan_view& view) {
  auto managed = c.labels.find("berth.managed");
  if (managed == c.labels.end() || managed->second != "true") return orphan_verdict::not_managed;
  // A referenced container is kept whoever created it: the session's user resumes it elsewhere.
  if (is_referenced(c.id, view.referenced)) return orphan_verdict::referenced;
  auto replica = c.labels.find("berth.replica");
  if (replica == c.labels.end() || replica->second.empty()) return orphan_verdict::no_replica;
  if (replica->second == view.self_replica) {
    const bool untracked = view.own_held && !view.own_held->contains(c.id) && c.created > 0 &&
                           view.now_s - c.created >= view.own_min_age_s;
    return untracked ? orphan_verdict::orphan : orphan_verdict::own_replica;
  }
  if (view.live_replicas.contains(replica->second)) return orphan_verdict::live_replica;
  if (!view.known_replicas.contains(replica->second)) return orphan_verdict::foreign_replica;
  return orphan_verdict::orphan;
}

orphan_plan plan_orphan_reaping(const std::vector<labelled_container>& containers, const orphan_view& view,
                                std::size_t max_removals) {
  orphan_plan plan;
  std::set<std::string> replicas_with_containers;
  for (const auto& c : containers) {
    if (auto r = c.labels.find("berth.replica"); r != c.labels.end()) replicas_with_containers.insert(r->second);
    const auto v = classify_container(c, view);
    if (v != orphan_verdict::orphan) {
      ++plan.kept[v];
      continue;
    }
    if (plan.remove.size() < max_removals)
      plan.remove.push_back(c.id);
    else
      ++plan.deferred;
  }
  for (const auto& r : view.known_replicas) {
    if (r == view.self_replica || view.live_replicas.contains(r) || replicas_with_containers.contains(r)) continue;
    plan.forget_replicas.push_back(r);
  }
  return plan;
}

}  // namespace berth::session
