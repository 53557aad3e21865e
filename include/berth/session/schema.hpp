#pragma once
// Session module pure core: Redis key schema (ARCHITECTURE.md, prefix "berth:"), input
// validation, resume authorisation, history entries and the token-budget trim policy, and the
// Lua scripts' text. No sockets: unit-tested without Redis.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"

namespace berth::session {

// Key names. Every key but `sessions` carries a TTL (set by the operations that write it).
// Hash tags: the id inside {...} is all Redis Cluster hashes, so every key of one session
// (session, history, lock) lands in the slot of its session id and every key of one user
// (inflight) in the slot of its user id; a move to Cluster needs no key renamed (docs/SCALING.md
// says what else it needs). Keys written before the tags existed are renamed once at start-up
// (migrate_legacy_keys in migrate.hpp; legacy_to_current below names the new key).
struct key_schema {
  std::string prefix = "berth:";
  std::string session(std::string_view sid) const { return prefix + "session:" + tagged(sid); }
  std::string lock(std::string_view sid) const { return prefix + "session-lock:" + tagged(sid); }
  std::string history(std::string_view sid) const { return prefix + "history:" + tagged(sid); }
  // string, the session's TTL: its /workspace as tar.gz while it hibernates (no container).
  std::string workspace(std::string_view sid) const { return prefix + "workspace:" + tagged(sid); }
  // zset, TTL: live sessions opened from one client address without auth (sid -> expiry ms).
  std::string address(std::string_view addr) const { return prefix + "addr:" + std::string(addr); }
  // zset, no TTL: every sandbox container of the cluster (id or reservation -> expiry ms).
  std::string containers() const { return prefix + "containers"; }
  // string, PX = RECOVERY_MAX_DISCONNECTION_MS: a disconnected socket's state for connection
  // state recovery, by its private pid ("pending" while its replica still finishes emitting).
  std::string recovery(std::string_view pid) const { return prefix + "recovery:" + tagged(pid); }
  std::string inflight(std::string_view user) const { return prefix + "inflight:" + tagged(user); }
  // string, PX two minutes: LLM tokens a user spent in one clock minute (minutes since the epoch).
  std::string llm_tokens(std::string_view user, std::int64_t minute) const {
    return prefix + "llm-tokens:" + tagged(user) + ":" + std::to_string(minute);
  }
  std::string sessions() const { return prefix + "sessions"; }
  std::string replica(std::string_view id) const { return prefix + "replica:" + std::string(id); }
  // zset, no TTL: replica id -> last heartbeat ms; every replica that ever beat here (the orphan
  // reaper only touches containers of these; it drops dead entries with no container left).
  std::string replicas() const { return prefix + "replicas"; }
  // hash, no TTL: replica id -> its last published status JSON (pool figures, `updatedMs`),
  // written with each heartbeat; readers skip stale entries (GET /stats/pool's cluster view).
  std::string replica_stats() const { return prefix + "replica-stats"; }
  // string, PX = the reap interval: the replica holding it runs this interval's orphan round.
  std::string orphan_lock() const { return prefix + "orphan-reaper-lock"; }
  // string, no TTL: the key-schema version this Redis holds ("2": hash-tagged keys); written by
  // the migration once every legacy key is renamed, so later start-ups skip the scan.
  std::string schema_version() const { return prefix + "schema-version"; }
  static constexpr std::string_view current_schema_version = "2";

  // A key of the untagged schema (berth:session:SID, berth:history:SID, berth:session-lock:SID,
  // berth:inflight:USER) -> its tagged name; nullopt for anything else (tagged keys included).
  // A user id that itself starts with '{' and ends with '}' cannot be told apart from a tagged
  // key: its old lease set is left to expire (leases live at most the lease TTL).
  std::optional<std::string> legacy_to_current(std::string_view key) const;

 private:
  static std::string tagged(std::string_view id) {
    std::string k;
    k.reserve(id.size() + 2);
    k += '{';
    k += id;
    k += '}';
    return k;
  }
};

// sessionId: 1..64 of [A-Za-z0-9_-], else errc::invalid_payload with the reason.
core::result<void> validate_session_id(std::string_view sid);
// user ids (JWT `sub` or the session id): 1..256 bytes, no control characters.
core::result<void> validate_user_id(std::string_view user);

// Lowercase hex SHA-256 (resume tokens are stored only as this hash).
std::string sha256_hex(std::string_view data);
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// The `session:{sid}` hash.
struct session_record {
  std::string id;
  std::string user;
  std::string container;
  std::string replica;
  std::int64_t created_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::string resume_token_hash;
  // Where the workspace is while the session has no container: "" (in its container),
  // "saved:<bytes>" (hibernated in the workspace key), "kept:<bytes>" (over the save cap: the
  // container was kept instead, and the user is told on resume).
  std::string workspace;
  std::string address;  // client address counted against MAX_SESSIONS_PER_ADDRESS ("" with auth)
};
// From HGETALL's flat [field, value, ...] list; errc::internal when a field is missing/garbled.
core::result<session_record> decode_session_hash(std::string_view sid, const std::vector<std::string>& flat);

// PROTOCOL.md resume rule. With authentication on (`authenticated_user` set: the JWT subject),
// only the same user may resume, and a resume token does not change that. Without it (the
// "user" is then the session id, known to anyone holding it), a resume token whose SHA-256
// matches. Otherwise errc::session_forbidden.
core::result<void> authorize_resume(const session_record& rec, std::optional<std::string_view> authenticated_user,
                                    std::optional<std::string_view> resume_token);

// One history message: {role, content, name?, callId?, ts}.
struct history_entry {
  std::string role;
  std::string content;
  std::optional<std::string> name;
  std::optional<std::string> call_id;
  std::int64_t ts_ms = 0;
  bool operator==(const history_entry&) const = default;
};
std::string encode_history_entry(const history_entry& e);
// Untrusted/stored JSON: parsed without exceptions; errc::internal names the problem.
core::result<history_entry> decode_history_entry(std::string_view json);

// Token estimate used for trimming: ceil(bytes / 4) of the stored JSON (the Lua script uses the
// same formula, so Redis and this function agree).
std::size_t estimate_tokens(std::string_view s) noexcept;
// How many of the oldest stored entries to drop so that the rest fit in `budget` tokens: the
// policy of core::turns_to_drop (cut only before a "user" entry, the newest turn kept whole),
// with estimate_tokens of each entry's stored JSON. The append script does the same in Lua.
std::size_t entries_to_drop(std::span<const history_entry> entries, std::size_t budget);

// Lua scripts (KEYS/ARGV documented in schema.cpp next to each body).
namespace scripts {
extern const char* const create_session;
extern const char* const touch_session;
extern const char* const end_session;
extern const char* const unlock;
extern const char* const append_history;
extern const char* const acquire_lease;
extern const char* const refresh_lease;
extern const char* const hibernate;
extern const char* const admit_address;
extern const char* const reserve_container;
extern const char* const charge_tokens;
}  // namespace scripts

}  // namespace berth::session
