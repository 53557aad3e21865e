#include "berth/session/schema.hpp"
#include "berth/core/history_budget.hpp"
#include "berth/core/json.hpp"

#include <openssl/sha.h>

#include <charconv>
#include <nlohmann/json.hpp>

namespace berth::session {

std::optional<std::string> key_schema::legacy_to_current(std::string_view key) const {
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  struct kind {
    std::string_view name;
    std::string (key_schema::*build)(std::string_view) const;
  };
  static constexpr kind kinds[] = {{"session:", &key_schema::session},
                                   {"session-lock:", &key_schema::lock},
                                   {"history:", &key_schema::history},
                                   {"inflight:", &key_schema::inflight}};
  for (const auto& k : kinds) {
    if (!key.starts_with(k.name)) continue;
    auto id = key.substr(k.name.size());
    if (id.empty() || (id.front() == '{' && id.back() == '}')) return std::nullopt;
    return (this->*k.build)(id);
  }
  return std::nullopt;
}

core::result<void> validate_session_id(std::string_view sid) {
  if (sid.empty()) return core::make_error(core::errc::invalid_payload, "sessionId is empty");
  if (sid.size() > 64) return core::make_error(core::errc::invalid_payload, "sessionId is longer than 64 characters");
  for (char c : sid) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return core::make_error(core::errc::invalid_payload, "sessionId may contain only A-Z a-z 0-9 _ -");
  }
  return {};
}

core::result<void> validate_user_id(std::string_view user) {
  if (user.empty()) return core::make_error(core::errc::invalid_payload, "user id is empty");
  if (user.size() > 256) return core::make_error(core::errc::invalid_payload, "user id is longer than 256 bytes");
  for (unsigned char c : user)
    if (c < 0x20 || c == 0x7f) return core::make_error(core::errc::invalid_payload, "user id contains control characters");
  return {};
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char c : md) {
    out += hex[c >> 4];
    out += hex[c & 0xf];
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

namespace {
bool parse_i64(std::string_view s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}
}  // namespace

core::result<session_record> decode_session_hash(std::string_view sid, const std::vector<std::string>& flat) {
  if (flat.size() % 2 != 0) return core::make_error(core::errc::internal, "session hash: odd field list");
  session_record r;
  r.id = std::string(sid);
  bool has_user = false, has_created = false;
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) {
    const auto& k = flat[i];
    const auto& v = flat[i + 1];
    if (k == "user") {
      r.user = v;
      has_user = true;
    } else if (k == "container") {
      r.container = v;
    } else if (k == "replica") {
      r.replica = v;
    } else if (k == "resume_token_hash") {
      r.resume_token_hash = v;
    } else if (k == "workspace") {
      r.workspace = v;
    } else if (k == "address") {
      r.address = v;
    } else if (k == "created_ms") {
      if (!parse_i64(v, r.created_ms)) return core::make_error(core::errc::internal, "session hash: bad created_ms");
      has_created = true;
    } else if (k == "last_seen_ms") {
      if (!parse_i64(v, r.last_seen_ms)) return core::make_error(core::errc::internal, "session hash: bad last_seen_ms");
    }
  }
  if (!has_user || !has_created) return core::make_error(core::errc::internal, "session hash: missing user/created_ms");
  return r;
}

core::result<void> authorize_resume(const session_record& rec, std::optional<std::string_view> authenticated_user,
                                    std::optional<std::string_view> resume_token) {
  if (authenticated_user) {
    // With authentication on, the session belongs to its subject and to nobody else: a leaked
    // resume token must not hand it to another (authenticated) user.
    if (!authenticated_user->empty() && *authenticated_user == rec.user) return {};
    return core::make_error(core::errc::session_forbidden, "session belongs to another user");
  }
  if (resume_token && !resume_token->empty() && !rec.resume_token_hash.empty() &&
      constant_time_equal(sha256_hex(*resume_token), rec.resume_token_hash))
    return {};
  return core::make_error(core::errc::session_forbidden,
                          resume_token ? "resume token does not match this session" : "a resume token is required");
}

std::string encode_history_entry(const history_entry& e) {
  nlohmann::json j = {{"role", e.role}, {"content", e.content}};
  if (e.name) j["name"] = *e.name;
  if (e.call_id) j["callId"] = *e.call_id;
  j["ts"] = e.ts_ms;
  // Invalid UTF-8 in content (from tools) is replaced rather than throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

core::result<history_entry> decode_history_entry(std::string_view json) {
  auto j = core::parse_json(json);
  if (j.is_discarded() || !j.is_object()) return core::make_error(core::errc::internal, "history entry: not a JSON object");
  history_entry e;
  auto role = j.find("role");
  auto content = j.find("content");
  auto ts = j.find("ts");
  if (role == j.end() || !role->is_string()) return core::make_error(core::errc::internal, "history entry: role missing");
  if (content == j.end() || !content->is_string())
    return core::make_error(core::errc::internal, "history entry: content missing");
  if (ts == j.end() || !ts->is_number_integer()) return core::make_error(core::errc::internal, "history entry: ts missing");
  e.role = role->get<std::string>();
  e.content = content->get<std::string>();
  e.ts_ms = ts->get<std::int64_t>();
  if (auto n = j.find("name"); n != j.end()) {
    if (!n->is_string()) return core::make_error(core::errc::internal, "history entry: name is not a string");
    e.name = n->get<std::string>();
  }
  if (auto c = j.find("callId"); c != j.end()) {
    if (!c->is_string()) return core::make_error(core::errc::internal, "history entry: callId is not a string");
    e.call_id = c->get<std::string>();
  }
  return e;
}

std::size_t estimate_tokens(std::string_view s) noexcept { return (s.size() + 3) / 4; }

std::size_t entries_to_drop(std::span<const history_entry> entries, std::size_t budget) {
  std::vector<core::budget_item> items;
  items.reserve(entries.size());
  for (const auto& e : entries) items.push_back({estimate_tokens(encode_history_entry(e)), e.role == "user"});
  return core::turns_to_drop(items, budget);
}

namespace scripts {

// KEYS: session hash, sessions zset. ARGV: sid, user, container, replica, now_ms, token_hash, ttl_ms,
// address. Returns 1 when created, 0 when the session already exists (nothing written).
const char* const create_session = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'container', ARGV[3], 'replica', ARGV[4],
           'created_ms', ARGV[5], 'last_seen_ms', ARGV[5], 'resume_token_hash', ARGV[6], 'address', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 1
)lua";

// KEYS: session hash, sessions zset. ARGV: sid, now_ms, ttl_ms, replica, [field, value]...
// Refreshes last_seen (hash + zset) and the TTL, and sets extra fields; 0 if the session is gone
// (an ended session is never resurrected).
const char* const touch_session = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[2], 'replica', ARGV[4])
for i = 5, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
)lua";

// KEYS: sessions zset, session hash, history list, workspace. ARGV: sid, cutoff_ms or "any",
// address-zset prefix. The claim: exactly one caller wins the ZREM (scripts run atomically), gets
// the hash (possibly empty if it expired) and deletes session, history and saved workspace, and
// the session's place in its address's count. With a cutoff, a session seen after it (touched
// since the janitor listed it) is left alone. nil = not claimed.
const char* const end_session = R"lua(
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  if ARGV[2] ~= 'any' and tonumber(score) > tonumber(ARGV[2]) then return false end
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif ARGV[2] ~= 'any' or redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
local h = redis.call('HGETALL', KEYS[2])
local addr = redis.call('HGET', KEYS[2], 'address')
if addr and addr ~= '' then redis.call('ZREM', ARGV[3] .. addr, ARGV[1]) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return h
)lua";

// KEYS: session hash, workspace. ARGV: expected container, replica, data, ttl_ms, note.
// Hibernation, as one step: only while the session still names our container and our replica
// (a resume elsewhere claimed it otherwise), store the archive and mark the session container-less.
// Returns 1 when hibernated, 0 when the session moved on (nothing written).
const char* const hibernate = R"lua(
if redis.call('HGET', KEYS[1], 'container') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'replica') ~= ARGV[2] then
  return 0
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
redis.call('HSET', KEYS[1], 'container', '', 'workspace', ARGV[5])
return 1
)lua";

// KEYS: address zset. ARGV: now_ms, ttl_ms, limit, sid. Counts the live sessions of one client
// address (expired entries dropped) and admits this one if under the limit (an already admitted
// sid is refreshed). Returns {admitted 0|1, count}.
const char* const admit_address = R"lua(
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= tonumber(ARGV[3]) then return {0, n} end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('ZCARD', KEYS[1])}
)lua";

// KEYS: containers zset. ARGV: now_ms, ttl_ms, limit, member. A slot for one more container in
// the cluster, if fewer than limit are alive (entries expire unless their replica refreshes them).
// Returns {granted 0|1, count}.
const char* const reserve_container = R"lua(
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return {0, n} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
return {1, n + 1}
)lua";

// KEYS: lock. ARGV: owner token. Compare-and-delete: 1 if we held it.
const char* const unlock = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

// KEYS: history list. ARGV: entry JSON, max_tokens, ttl_seconds.
// Appends, then trims as entries_to_drop / core::turns_to_drop do (estimate ceil(bytes/4); cut
// only before a "user" entry, the newest turn kept whole, a damaged head dropped). Returns
// {kept, dropped}.
const char* const append_history = R"lua(
redis.call('RPUSH', KEYS[1], ARGV[1])
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local budget = tonumber(ARGV[2])
local n = #items
local total = 0
local cut = 0
for i = n, 1, -1 do
  total = total + math.floor((string.len(items[i]) + 3) / 4)
  if total > budget and i < n then cut = i break end
end
local function starts_turn(s)
  local ok, e = pcall(cjson.decode, s)
  return ok and type(e) == 'table' and e.role == 'user'
end
local drop = nil
for i = cut + 1, n do
  if starts_turn(items[i]) then drop = i - 1 break end
end
if drop == nil then
  for i = cut, 1, -1 do
    if starts_turn(items[i]) then drop = i - 1 break end
  end
end
if drop == nil then drop = cut end
if drop > 0 then redis.call('LTRIM', KEYS[1], drop, -1) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {#items - drop, drop}
)lua";

// KEYS: inflight zset. ARGV: now_ms, ttl_ms, limit, member.
// Drops expired leases, then adds ours if fewer than limit remain. Returns {granted 0|1, count}.
const char* const acquire_lease = R"lua(
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return {0, n} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, n + 1}
)lua";

// KEYS: inflight zset. ARGV: now_ms, ttl_ms, member. Extends a lease that still exists (XX: a
// lease already reclaimed is not re-created). Returns 1 if extended.
const char* const refresh_lease = R"lua(
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
)lua";

// KEYS: llm-tokens counter. ARGV: tokens, ttl_ms. Returns the minute's total.
const char* const charge_tokens = R"lua(
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
)lua";

}  // namespace scripts

}  // namespace berth::session
