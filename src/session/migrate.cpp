#include "berth/session/migrate.hpp"

#include "util.hpp"

namespace berth::session {

using boost::asio::awaitable;
using detail::argv;
using detail::log;

awaitable<core::result<migration_report>> migrate_legacy_keys(std::shared_ptr<redis::redis_client> redis,
                                                              key_schema keys) {
  migration_report report;
  auto version = co_await redis->command(argv("GET", keys.schema_version()));
  if (!version) co_return version.error();
  auto v = redis::as_optional_string(*version, "GET schema version");
  if (!v) co_return v.error();
  if (*v && **v == key_schema::current_schema_version) {
    report.already_current = true;
    co_return report;
  }
  std::string cursor = "0";
  // Bounded: 100,000 SCAN pages of ~1000 keys each is far beyond any Berth keyspace.
  for (int page = 0; page < 100000; ++page) {
    auto r = co_await redis->command(argv("SCAN", cursor, "MATCH", keys.prefix + "*", "COUNT", "1000"));
    if (!r) co_return r.error();
    auto arr = redis::as_array(*r, "SCAN");
    if (!arr) co_return arr.error();
    if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "redis SCAN: expected [cursor, keys]");
    auto next = redis::as_string((**arr)[0], "SCAN cursor");
    auto found = redis::as_string_array((**arr)[1], "SCAN keys");
    if (!next) co_return next.error();
    if (!found) co_return found.error();
    report.scanned += found->size();
    std::vector<std::vector<std::string>> renames;
    std::vector<std::string> legacy;
    for (auto& k : *found) {
      auto tagged = keys.legacy_to_current(k);
      if (!tagged) continue;
      renames.push_back(argv("RENAMENX", k, *tagged));
      legacy.push_back(k);
    }
    if (!renames.empty()) {
      auto done = co_await redis->pipeline(std::move(renames));
      if (!done) co_return done.error();
      std::vector<std::vector<std::string>> drops;
      for (std::size_t i = 0; i < done->size(); ++i) {
        const auto& rep = (*done)[i];
        if (rep.is_error()) {
          // "ERR no such key": another replica renamed it first (or it expired). Anything else is
          // a real failure: stop, the next start-up tries again.
          if (rep.str.find("no such key") != std::string::npos) continue;
          co_return core::make_error(core::errc::internal, "redis RENAMENX " + core::log_prefix(legacy[i], 80) + ": " +
                                                               rep.str.substr(0, 120));
        }
        if (rep.type == redis::reply_type::integer && rep.integer == 1) {
          ++report.renamed;
        } else {
          drops.push_back(argv("DEL", legacy[i]));  // the tagged key was written since: it wins
        }
      }
      if (!drops.empty()) {
        report.dropped += drops.size();
        auto d = co_await redis->pipeline(std::move(drops));
        if (!d) co_return d.error();
      }
    }
    cursor = *next;
    if (cursor == "0") break;
  }
  auto set = co_await redis->command(argv("SET", keys.schema_version(), std::string(key_schema::current_schema_version)));
  if (!set) co_return set.error();
  if (auto ok = redis::expect_ok(*set, "SET schema version"); !ok) co_return ok.error();
  if (report.renamed || report.dropped)
    log()->info("redis keys migrated to hash-tagged names: {} renamed, {} superseded, {} keys scanned", report.renamed,
                report.dropped, report.scanned);
  co_return report;
}

}  // namespace berth::session
