#pragma once
// REDIS_URL parsing (pure). Accepted forms:
//   redis://[[user]:password@]host[:port][/db]      (host may be [::1]; port defaults to 6379)
//   unix:///path/to/redis.sock[?db=N][&password=P]   also redis+unix:// and unix://:password@/path
// db is 0..15 by default Redis config but any non-negative int is accepted (SELECT validates).
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "berth/core/errors.hpp"

namespace berth::redis {

struct redis_endpoint {
  enum class kind { tcp, unix_socket } transport = kind::tcp;
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string path;      // unix socket path
  std::string username;  // ACL user (empty: default user)
  std::string password;  // secret: never log; empty = no AUTH
  int db = 0;
  // For logs: the URL without the password ("redis://127.0.0.1:6379/2", "unix:///x.sock?db=1").
  std::string redacted() const;
};

// errc::invalid_payload with a message naming the problem (never echoing the password).
core::result<redis_endpoint> parse_redis_url(std::string_view url);

// Capped exponential backoff: base, 2*base, 4*base, ... up to max. attempt starts at 1.
std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds max,
                                        unsigned attempt) noexcept;

}  // namespace berth::redis
