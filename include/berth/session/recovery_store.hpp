#pragma once
// socketio::recovery_store on Redis: one string per disconnected socket, `recovery:{pid}`,
// "pending" from the disconnect until its replica seals the state (JSON), taken at most once by
// GET+DEL in one script, gone by itself after RECOVERY_MAX_DISCONNECTION_MS. Every replica of one
// Redis can recover every socket. Errors are logged and counted; a lost state only means the
// reconnect is a new connection.
// Thread-safety: all methods may run concurrently.
#include <memory>

#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"
#include "berth/socketio/server.hpp"

namespace berth::session {

class redis_recovery_store final : public socketio::recovery_store {
 public:
  redis_recovery_store(std::shared_ptr<redis::redis_client> redis, key_schema keys, core::metrics& metrics);
  boost::asio::awaitable<void> reserve(std::string pid, std::chrono::milliseconds ttl) override;
  boost::asio::awaitable<void> seal(std::string pid, std::string state, std::chrono::milliseconds ttl) override;
  boost::asio::awaitable<std::optional<std::string>> take(std::string pid, std::chrono::milliseconds wait) override;

 private:
  void failed(const char* what, const core::error& e);
  std::shared_ptr<redis::redis_client> redis_;
  key_schema keys_;
  core::counter& errors_;
  std::shared_ptr<const redis::redis_script> take_;
};

}  // namespace berth::session
