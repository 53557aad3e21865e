#pragma once
// session_store: the `session:{sid}` hashes, the `sessions` zset, provisioning locks and the
// lookups the orphan reaper needs. Stateless apart from its redis_client reference: any number of
// replicas run one each against the same Redis.
// Lifetime: holds a shared_ptr to the client. Thread-safety: all methods may run concurrently.
//
// Integrator flow (PROTOCOL.md handshake):
//   validate_session_id(sid) -> get(sid):
//     found  -> authorize_resume(rec, auth_user, resume_token) (SESSION_FORBIDDEN otherwise),
//               check the container, set_container() if replaced, rotate_resume_token(), touch()
//     absent -> lock(sid, wait) -> get() again (another replica may have won) -> lease container
//               -> create() -> unlock()
//   activity -> touch(sid); session:end -> end(sid) then destroy the returned container.
// If touch() returns false the session was ended meanwhile (janitor/session:end): start over.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"

namespace berth::session {

// Milliseconds since the epoch; injectable so tests control time (no sleeps).
using clock_fn = std::function<std::int64_t()>;
std::int64_t system_now_ms();

struct session_options {
  key_schema keys;
  std::string replica_id;                              // written into session:{sid}.replica
  std::chrono::milliseconds idle_timeout{900000};      // SESSION_IDLE_TIMEOUT_MS
  std::chrono::milliseconds lock_ttl{30000};           // provisioning lock PX
  std::size_t resume_token_bytes = 24;                 // raw token entropy
  clock_fn clock = system_now_ms;
  // Hash TTL: refreshed by touch; long enough that the janitor (which works from the `sessions`
  // zset) always finds the container to destroy. Default: 2 x idle_timeout + 1 h.
  std::chrono::milliseconds session_ttl() const { return 2 * idle_timeout + std::chrono::hours(1); }
};

struct created_session {
  session_record record;
  std::string resume_token;  // raw: hand to the client in system:ready; only its hash is stored
};

// A held provisioning lock (value type; release with session_store::unlock; expires by itself).
struct session_lock {
  std::string sid;
  std::string token;
};

class session_store {
 public:
  session_store(std::shared_ptr<redis::redis_client> redis, session_options opts, core::metrics& metrics);

  boost::asio::awaitable<core::result<std::optional<session_record>>> get(std::string sid);
  // New session with a fresh resume token. errc::internal "session exists" if sid is taken.
  // `address`: the client address it was admitted under (admit_address), "" when not counted.
  boost::asio::awaitable<core::result<created_session>> create(std::string sid, std::string user, std::string container,
                                                               std::string address = {});
  // last_seen := now (hash + zset), TTL refreshed, replica := ours. false: the session is gone.
  boost::asio::awaitable<core::result<bool>> touch(std::string sid);
  // touch() for many sessions in one pipeline (the sockets connected to this replica); returns
  // how many still existed.
  boost::asio::awaitable<core::result<std::size_t>> touch_many(std::vector<std::string> sids);
  // Records a replacement container (dead container on resume). false: the session is gone.
  boost::asio::awaitable<core::result<bool>> set_container(std::string sid, std::string container);
  // New resume token for a resumed session (the old one stops working). nullopt: session gone.
  boost::asio::awaitable<core::result<std::optional<std::string>>> rotate_resume_token(std::string sid);
  // Ends now (session:end): exactly one caller across replicas gets the record (and must destroy
  // its container); the history is deleted too. nullopt: already ended / unknown.
  boost::asio::awaitable<core::result<std::optional<session_record>>> end(std::string sid);
  // Hibernation: stores the workspace archive (empty: none to store) and marks the session
  // container-less with `note` in its workspace field, only if it still names `container` and this
  // replica. false: it moved on (resumed elsewhere, ended): nothing was written.
  boost::asio::awaitable<core::result<bool>> hibernate(std::string sid, std::string container, std::string archive,
                                                       std::string note);
  // The session's workspace field alone (e.g. "kept:<bytes>": over the save cap). false: gone.
  boost::asio::awaitable<core::result<bool>> set_workspace_note(std::string sid, std::string note);
  // The saved archive of a hibernated session (nullopt: none).
  boost::asio::awaitable<core::result<std::optional<std::string>>> load_workspace(std::string sid);
  // After a restore: the archive is dropped and the workspace field cleared.
  boost::asio::awaitable<core::result<void>> forget_workspace(std::string sid);
  // Without auth, live sessions per client address are capped: admits `sid` under `address` unless
  // `limit` others are alive (SESSION_LIMIT then). end()/end_if_idle() give the place back.
  boost::asio::awaitable<core::result<void>> admit_address(std::string address, std::string sid, std::size_t limit);
  boost::asio::awaitable<core::result<void>> release_address(std::string address, std::string sid);
  // Janitor claim: like end() but only if last_seen <= cutoff_ms at claim time.
  boost::asio::awaitable<core::result<std::optional<session_record>>> end_if_idle(std::string sid, std::int64_t cutoff_ms);
  // Sessions whose last_seen <= cutoff_ms (oldest first, at most `limit`).
  boost::asio::awaitable<core::result<std::vector<std::string>>> idle_sessions(std::int64_t cutoff_ms, std::size_t limit);

  // Provisioning lock: SET session-lock:{sid} <token> NX PX lock_ttl. nullopt when held by another.
  boost::asio::awaitable<core::result<std::optional<session_lock>>> try_lock(std::string sid);
  // Retries try_lock every 25 ms up to `wait`; errc::internal "lock busy" after that.
  boost::asio::awaitable<core::result<session_lock>> lock(std::string sid, std::chrono::milliseconds wait);
  // Compare-and-delete: true if we still held it (false: it expired and maybe someone else has it).
  boost::asio::awaitable<core::result<bool>> unlock(session_lock l);

  // Orphan reaping support: replica ids with a live heartbeat, and container -> session for every
  // live session (one pass over the `sessions` zset, pipelined HGETs).
  boost::asio::awaitable<core::result<std::vector<std::string>>> list_live_replicas();
  boost::asio::awaitable<core::result<std::map<std::string, std::string>>> referenced_containers();
  boost::asio::awaitable<core::result<std::optional<std::string>>> session_referencing(std::string container);

  const session_options& options() const noexcept { return opts_; }
  const std::shared_ptr<redis::redis_client>& redis() const noexcept { return redis_; }

 private:
  std::vector<std::string> end_keys(const std::string& sid) const;
  std::shared_ptr<redis::redis_client> redis_;
  session_options opts_;
  core::metrics& metrics_;
  std::shared_ptr<const redis::redis_script> create_, touch_, end_, unlock_, hibernate_, admit_;
};

}  // namespace berth::session
