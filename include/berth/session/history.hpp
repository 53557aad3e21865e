#pragma once
// history_store: `history:{sid}` lists of JSON messages, trimmed on append to max_tokens (estimate
// ceil(bytes/4) per stored entry, oldest dropped first, newest always kept), TTL refreshed on
// every append. Stateless; thread-safe; holds a shared_ptr to the client.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"

namespace berth::session {

struct history_options {
  key_schema keys;
  std::size_t max_tokens = 30000;            // MAX_HISTORY_TOKENS
  std::chrono::seconds ttl{86400};           // HISTORY_TTL_SECONDS
  std::size_t max_entry_bytes = 1000000;     // one message (MAX_HTTP_BUFFER_SIZE)
};

struct append_result {
  std::size_t kept = 0;     // entries in the list after trimming
  std::size_t dropped = 0;  // oldest entries removed by this append
};

class history_store {
 public:
  history_store(std::shared_ptr<redis::redis_client> redis, history_options opts, core::metrics& metrics);

  // errc::invalid_payload for an empty role or an entry above max_entry_bytes (nothing written).
  boost::asio::awaitable<core::result<append_result>> append(std::string sid, history_entry e);
  // Oldest first. Undecodable entries are skipped (warn + counter berth_history_bad_entries_total).
  boost::asio::awaitable<core::result<std::vector<history_entry>>> read(std::string sid);
  // history:reset
  boost::asio::awaitable<core::result<void>> reset(std::string sid);

 private:
  std::shared_ptr<redis::redis_client> redis_;
  history_options opts_;
  core::counter& c_bad_;
  core::counter& c_trimmed_;
  std::shared_ptr<const redis::redis_script> append_;
};

}  // namespace berth::session
