#include "berth/session/history.hpp"

#include "berth/core/logging.hpp"
#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;

history_store::history_store(std::shared_ptr<redis::redis_client> redis, history_options opts, core::metrics& metrics)
    : redis_(std::move(redis)),
      opts_(std::move(opts)),
      c_bad_(metrics.get_counter("berth_history_bad_entries_total", "history entries skipped because they did not decode")),
      c_trimmed_(metrics.get_counter("berth_history_trimmed_total", "history entries dropped by the token budget")),
      append_(redis_->register_script(scripts::append_history)) {}

awaitable<core::result<append_result>> history_store::append(std::string sid, history_entry e) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  if (e.role.empty() || e.role.size() > 32)
    co_return core::make_error(core::errc::invalid_payload, "history entry role must be 1..32 bytes");
  auto json = encode_history_entry(e);
  if (json.size() > opts_.max_entry_bytes)
    co_return core::make_error(core::errc::invalid_payload,
                               "history entry larger than " + std::to_string(opts_.max_entry_bytes) + " bytes");
  auto r = co_await redis_->eval(append_, argv(opts_.keys.history(sid)),
                                 argv(std::move(json), std::to_string(opts_.max_tokens), std::to_string(opts_.ttl.count())));
  if (!r) co_return r.error();
  auto arr = redis::as_array(*r, "append history");
  if (!arr) co_return arr.error();
  if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "redis append history: expected [kept, dropped]");
  auto kept = redis::as_integer((**arr)[0], "append history");
  auto dropped = redis::as_integer((**arr)[1], "append history");
  if (!kept) co_return kept.error();
  if (!dropped) co_return dropped.error();
  if (*dropped > 0) c_trimmed_.inc(static_cast<std::uint64_t>(*dropped));
  co_return append_result{static_cast<std::size_t>(*kept), static_cast<std::size_t>(*dropped)};
}

awaitable<core::result<std::vector<history_entry>>> history_store::read(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->command(argv("LRANGE", opts_.keys.history(sid), "0", "-1"));
  if (!r) co_return r.error();
  auto items = redis::as_string_array(*r, "LRANGE history");
  if (!items) co_return items.error();
  std::vector<history_entry> out;
  out.reserve(items->size());
  for (const auto& s : *items) {
    auto e = decode_history_entry(s);
    if (!e) {
      c_bad_.inc();
      core::logger("session")->warn("history entry skipped sid={}: {} ({})", sid, e.error().message, core::log_prefix(s, 32));
      continue;
    }
    out.push_back(std::move(*e));
  }
  co_return out;
}

awaitable<core::result<void>> history_store::reset(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->command(argv("DEL", opts_.keys.history(sid)));
  if (!r) co_return r.error();
  if (auto n = redis::as_integer(*r, "DEL history"); !n) co_return n.error();
  co_return core::result<void>{};
}

}  // namespace berth::session
