#pragma once
// One-time rename of the keys written before the schema had hash tags (key_schema in schema.hpp):
// SCAN the prefix, RENAMENX each legacy key to its tagged name (TTL and value kept), then record
// the schema version so later start-ups skip the scan. Idempotent and safe to run from several
// replicas at once: a key renamed by another replica is simply gone; when both names exist (a
// new replica already wrote the tagged one) the tagged one is kept and the legacy one deleted.
// Not supported: old and new Berth versions serving the same Redis at once (an old replica
// would keep writing untagged keys after the scan); stop the old ones first (docs/SCALING.md).
#include <cstddef>
#include <memory>

#include <boost/asio/awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/schema.hpp"

namespace berth::session {

struct migration_report {
  bool already_current = false;  // the schema version said so: nothing scanned
  std::size_t scanned = 0;       // keys looked at
  std::size_t renamed = 0;
  std::size_t dropped = 0;       // legacy keys whose tagged twin already existed
};

boost::asio::awaitable<core::result<migration_report>> migrate_legacy_keys(std::shared_ptr<redis::redis_client> redis,
                                                                           key_schema keys);

}  // namespace berth::session
