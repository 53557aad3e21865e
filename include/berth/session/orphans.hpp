#pragma once
// Orphan reaping, pure part: which Berth containers are orphans. A container is an orphan when
// it is labelled berth.managed=true, its berth.replica label names a replica this Redis knows
// (the `replicas` zset) whose heartbeat key is gone, and no live session references it.
// Everything else is kept, and the reason is reported (so a round's log line can count them).
// Why "known" replicas: several deployments (or test runs) may share one dockerd with separate
// Redis instances; a replica never seen in our Redis belongs to someone else and is never touched.
// No sockets, no Asio: unit-tested with literal inputs. Thread-safety: pure functions.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace berth::session {

// What the reaper needs of a listed container (docker::container_info has more).
struct labelled_container {
  std::string id;
  std::map<std::string, std::string> labels;
  std::int64_t created = 0;  // unix seconds; 0 when unknown
};

enum class orphan_verdict {
  orphan,           // remove it
  not_managed,      // berth.managed is not "true"
  no_replica,       // no (or an empty) berth.replica label: owner unknown, keep
  own_replica,      // ours: we are alive by definition, even if a heartbeat write failed
  live_replica,     // its replica's heartbeat is present
  foreign_replica,  // its replica never registered in this Redis (another deployment)
  referenced,       // a live session still uses it (a user may resume it on any replica)
};
std::string_view to_string(orphan_verdict v) noexcept;

// The cluster view one round decides on (read from Redis after listing the containers, so a
// session created meanwhile is seen).
struct orphan_view {
  std::string self_replica;
  std::set<std::string> live_replicas;   // heartbeat key present
  std::set<std::string> known_replicas;  // ever registered (the `replicas` zset)
  std::set<std::string> referenced;      // container ids of live sessions (full ids or >= 12-char prefixes)
  // What this replica's pool holds (idle, leased, being scrubbed), when it could say. A container
  // of our own that neither the pool nor a session holds is an orphan too: a create whose answer,
  // or a removal, that a dockerd restart cut short. Only once it is `own_min_age_s` old, since a
  // create whose answer is still on its way is not held yet.
  std::optional<std::set<std::string>> own_held;
  std::int64_t now_s = 0;
  std::int64_t own_min_age_s = 60;  // > Docker's per-call timeout (30 s)
};

// Does `id` match a referenced id (equal, or one a prefix of the other with at least 12 chars:
// the short form Docker prints)?
bool is_referenced(std::string_view id, const std::set<std::string>& referenced) noexcept;

orphan_verdict classify_container(const labelled_container& c, const orphan_view& view);

struct orphan_plan {
  std::vector<std::string> remove;                 // orphan ids, at most max_removals, in listing order
  std::size_t deferred = 0;                        // orphans left for the next round (over max_removals)
  std::map<orphan_verdict, std::size_t> kept;      // containers kept, by reason
  // Known replicas that are dead and have no container left in the listing: their entry in the
  // `replicas` zset can go (a replica that comes back registers again with its next heartbeat).
  std::vector<std::string> forget_replicas;
};
orphan_plan plan_orphan_reaping(const std::vector<labelled_container>& containers, const orphan_view& view,
                                std::size_t max_removals);

}  // namespace berth::session
