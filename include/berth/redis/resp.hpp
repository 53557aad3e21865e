#pragma once
// RESP2 codec on top of hiredis 0.14's reader and formatter (no hiredis networking). Pure:
// bytes in, replies out; the Asio client (redis_client) owns the socket.
// Lifetime/thread-safety: a resp_reader belongs to one connection and one strand; not copyable.
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"
#include "berth/redis/reply.hpp"

struct redisReader;

namespace berth::redis {

class resp_reader {
 public:
  // max_buffered: bytes fed but not yet consumed as complete replies; above it feed() fails
  // (a peer cannot make us buffer without bound).
  explicit resp_reader(std::size_t max_buffered = 64u * 1024 * 1024);
  ~resp_reader();
  resp_reader(const resp_reader&) = delete;
  resp_reader& operator=(const resp_reader&) = delete;

  // Fails on protocol errors (sticky until reset()) and when max_buffered is exceeded.
  core::result<void> feed(std::string_view bytes);
  // The next complete reply, nullopt when more bytes are needed, an error on a protocol error.
  core::result<std::optional<reply>> next();
  // Drops buffered bytes and any error: a fresh connection.
  void reset();
  std::size_t buffered() const noexcept;

 private:
  redisReader* r_ = nullptr;
  std::size_t max_buffered_;
  std::string error_;  // sticky protocol error
};

// Appends the RESP array of bulk strings for `args` to `out` (binary-safe).
void append_command(std::string& out, std::span<const std::string> args);
std::string format_command(std::span<const std::string> args);

// Lowercase hex SHA-1 of a script body, as SCRIPT LOAD / EVALSHA use.
std::string sha1_hex(std::string_view body);

}  // namespace berth::redis
