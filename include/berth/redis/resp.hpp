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
struct redisReplyObjectFunctions;

namespace berth::redis {

class resp_reader {
 public:
  // Arrays larger than this are refused at their header. hiredis allocates an array's element
  // table as soon as it reads "*N", before any element arrives: "*1221221223" alone would be a
  // 10 GB allocation. Redis itself refuses requests of more than 1M elements.
  static constexpr std::size_t default_max_array_elements = 1024 * 1024;
  // What the hiredis callback sees (through the reader's privdata).
  struct array_guard {
    std::size_t limit;
    long long refused = -1;                                  // the element count of a refused header
    const redisReplyObjectFunctions* hiredis_fn = nullptr;  // hiredis's own functions, for the rest
  };

  // max_buffered: bytes fed but not yet consumed as complete replies; above it feed() fails
  // (a peer cannot make us buffer without bound).
  explicit resp_reader(std::size_t max_buffered = 64u * 1024 * 1024,
                       std::size_t max_array_elements = default_max_array_elements);
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
  void create_reader();

  redisReader* r_ = nullptr;
  std::size_t max_buffered_;
  array_guard guard_;
  std::string error_;  // sticky protocol error
};

// Appends the RESP array of bulk strings for `args` to `out` (binary-safe).
void append_command(std::string& out, std::span<const std::string> args);
std::string format_command(std::span<const std::string> args);

// Lowercase hex SHA-1 of a script body, as SCRIPT LOAD / EVALSHA use.
std::string sha1_hex(std::string_view body);

}  // namespace berth::redis
