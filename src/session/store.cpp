#include "berth/session/store.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;
using detail::log;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

session_store::session_store(std::shared_ptr<redis::redis_client> redis, session_options opts, core::metrics& metrics)
    : redis_(std::move(redis)),
      opts_(std::move(opts)),
      metrics_(metrics),
      create_(redis_->register_script(scripts::create_session)),
      touch_(redis_->register_script(scripts::touch_session)),
      end_(redis_->register_script(scripts::end_session)),
      unlock_(redis_->register_script(scripts::unlock)),
      hibernate_(redis_->register_script(scripts::hibernate)),
      admit_(redis_->register_script(scripts::admit_address)) {}

awaitable<core::result<std::optional<session_record>>> session_store::get(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->command(argv("HGETALL", opts_.keys.session(sid)));
  if (!r) co_return r.error();
  auto flat = redis::as_string_array(*r, "HGETALL session");
  if (!flat) co_return flat.error();
  if (flat->empty()) co_return std::optional<session_record>{};
  auto rec = decode_session_hash(sid, *flat);
  if (!rec) {
    log()->warn("session hash unreadable sid={}: {}", sid, rec.error().message);
    metrics_.get_counter("berth_session_bad_records_total", "session hashes that could not be decoded").inc();
    co_return rec.error();
  }
  co_return std::optional<session_record>{std::move(*rec)};
}

awaitable<core::result<created_session>> session_store::create(std::string sid, std::string user, std::string container,
                                                              std::string address) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  if (auto v = validate_user_id(user); !v) co_return v.error();
  created_session out;
  out.resume_token = core::random_token(opts_.resume_token_bytes);
  out.record.id = sid;
  out.record.user = user;
  out.record.container = container;
  out.record.replica = opts_.replica_id;
  out.record.created_ms = out.record.last_seen_ms = opts_.clock();
  out.record.resume_token_hash = sha256_hex(out.resume_token);
  out.record.address = address;
  auto r = co_await redis_->eval(create_, argv(opts_.keys.session(sid), opts_.keys.sessions()),
                                 argv(sid, user, container, opts_.replica_id, std::to_string(out.record.created_ms),
                                      out.record.resume_token_hash, std::to_string(opts_.session_ttl().count()),
                                      address));
  if (!r) co_return r.error();
  auto created = redis::as_integer(*r, "create session");
  if (!created) co_return created.error();
  if (*created == 0) co_return core::make_error(core::errc::internal, "session exists");
  log()->info("session created sid={} cid={}", sid, core::log_prefix(container, 12));
  co_return out;
}

awaitable<core::result<bool>> session_store::touch(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(touch_, argv(opts_.keys.session(sid), opts_.keys.sessions()),
                                 argv(sid, std::to_string(opts_.clock()), std::to_string(opts_.session_ttl().count()),
                                      opts_.replica_id));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "touch session");
  if (!n) co_return n.error();
  co_return *n == 1;
}

awaitable<core::result<std::size_t>> session_store::touch_many(std::vector<std::string> sids) {
  std::vector<std::vector<std::string>> cmds;
  const auto now = std::to_string(opts_.clock());
  const auto ttl = std::to_string(opts_.session_ttl().count());
  for (auto& sid : sids) {
    if (!validate_session_id(sid)) continue;
    auto c = argv("EVALSHA", touch_->sha(), "2", opts_.keys.session(sid), opts_.keys.sessions(), sid, now, ttl,
                  opts_.replica_id);
    cmds.push_back(std::move(c));
  }
  if (cmds.empty()) co_return std::size_t{0};
  auto r = co_await redis_->pipeline(std::move(cmds));
  if (!r) co_return r.error();
  std::size_t alive = 0;
  for (const auto& rep : *r) {
    if (rep.error_prefix() == "NOSCRIPT") {
      // Script cache flushed since connect: fall back to one-by-one (eval reloads it).
      alive = 0;
      for (auto& sid : sids) {
        auto t = co_await touch(sid);
        if (!t) co_return t.error();
        alive += *t ? 1 : 0;
      }
      co_return alive;
    }
    auto n = redis::as_integer(rep, "touch session");
    if (!n) co_return n.error();
    alive += *n == 1 ? 1 : 0;
  }
  co_return alive;
}

awaitable<core::result<bool>> session_store::set_container(std::string sid, std::string container) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(touch_, argv(opts_.keys.session(sid), opts_.keys.sessions()),
                                 argv(sid, std::to_string(opts_.clock()), std::to_string(opts_.session_ttl().count()),
                                      opts_.replica_id, "container", container));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "set container");
  if (!n) co_return n.error();
  co_return *n == 1;
}

awaitable<core::result<bool>> session_store::set_workspace_note(std::string sid, std::string note) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(touch_, argv(opts_.keys.session(sid), opts_.keys.sessions()),
                                 argv(sid, std::to_string(opts_.clock()), std::to_string(opts_.session_ttl().count()),
                                      opts_.replica_id, "workspace", note));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "set workspace note");
  if (!n) co_return n.error();
  co_return *n == 1;
}

awaitable<core::result<std::optional<std::string>>> session_store::rotate_resume_token(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto token = core::random_token(opts_.resume_token_bytes);
  auto r = co_await redis_->eval(touch_, argv(opts_.keys.session(sid), opts_.keys.sessions()),
                                 argv(sid, std::to_string(opts_.clock()), std::to_string(opts_.session_ttl().count()),
                                      opts_.replica_id, "resume_token_hash", sha256_hex(token)));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "rotate resume token");
  if (!n) co_return n.error();
  if (*n != 1) co_return std::optional<std::string>{};
  co_return std::optional<std::string>{std::move(token)};
}

namespace {
core::result<std::optional<session_record>> decode_claim(const std::string& sid, const redis::reply& r) {
  if (r.is_nil()) return std::optional<session_record>{};
  auto flat = redis::as_string_array(r, "end session");
  if (!flat) return flat.error();
  session_record rec;
  rec.id = sid;
  if (!flat->empty()) {
    auto d = decode_session_hash(sid, *flat);
    if (d) rec = std::move(*d);  // garbled hash: still ended; the caller gets at least the id
  }
  return std::optional<session_record>{std::move(rec)};
}
}  // namespace

awaitable<core::result<std::optional<session_record>>> session_store::end(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(end_, end_keys(sid), argv(sid, "any", opts_.keys.address("")));
  if (!r) co_return r.error();
  auto rec = decode_claim(sid, *r);
  if (rec && *rec) log()->info("session ended sid={}", sid);
  co_return rec;
}

awaitable<core::result<std::optional<session_record>>> session_store::end_if_idle(std::string sid, std::int64_t cutoff_ms) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(end_, end_keys(sid), argv(sid, std::to_string(cutoff_ms), opts_.keys.address("")));
  if (!r) co_return r.error();
  co_return decode_claim(sid, *r);
}

std::vector<std::string> session_store::end_keys(const std::string& sid) const {
  return argv(opts_.keys.sessions(), opts_.keys.session(sid), opts_.keys.history(sid), opts_.keys.workspace(sid));
}

awaitable<core::result<bool>> session_store::hibernate(std::string sid, std::string container, std::string archive,
                                                       std::string note) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->eval(hibernate_, argv(opts_.keys.session(sid), opts_.keys.workspace(sid)),
                                 argv(container, opts_.replica_id, std::move(archive),
                                      std::to_string(opts_.session_ttl().count()), note));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "hibernate");
  if (!n) co_return n.error();
  co_return *n == 1;
}

awaitable<core::result<std::optional<std::string>>> session_store::load_workspace(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  auto r = co_await redis_->command(argv("GET", opts_.keys.workspace(sid)));
  if (!r) co_return r.error();
  co_return redis::as_optional_string(*r, "GET workspace");
}

awaitable<core::result<void>> session_store::forget_workspace(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(argv("DEL", opts_.keys.workspace(sid)));
  cmds.push_back(argv("HSET", opts_.keys.session(sid), "workspace", ""));
  auto r = co_await redis_->pipeline(std::move(cmds));
  if (!r) co_return r.error();
  co_return core::result<void>{};
}

awaitable<core::result<void>> session_store::admit_address(std::string address, std::string sid, std::size_t limit) {
  auto r = co_await redis_->eval(admit_, argv(opts_.keys.address(address)),
                                 argv(std::to_string(opts_.clock()), std::to_string(opts_.session_ttl().count()),
                                      std::to_string(limit), sid));
  if (!r) co_return r.error();
  auto arr = redis::as_array(*r, "admit address");
  if (!arr) co_return arr.error();
  if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "admit address: expected {admitted, count}");
  auto admitted = redis::as_integer((**arr)[0], "admitted");
  if (!admitted) co_return admitted.error();
  if (*admitted == 1) co_return core::result<void>{};
  metrics_.get_counter("berth_sessions_address_limited_total", "new sessions refused by MAX_SESSIONS_PER_ADDRESS").inc();
  co_return core::make_error(core::errc::session_limit,
                             "this address already holds " + std::to_string(limit) + " sessions (MAX_SESSIONS_PER_ADDRESS)");
}

awaitable<core::result<void>> session_store::release_address(std::string address, std::string sid) {
  auto r = co_await redis_->command(argv("ZREM", opts_.keys.address(address), sid));
  if (!r) co_return r.error();
  co_return core::result<void>{};
}

awaitable<core::result<std::vector<std::string>>> session_store::idle_sessions(std::int64_t cutoff_ms, std::size_t limit) {
  auto r = co_await redis_->command(
      argv("ZRANGE", opts_.keys.sessions(), "-inf", std::to_string(cutoff_ms), "BYSCORE", "LIMIT", "0", std::to_string(limit)));
  if (!r) co_return r.error();
  co_return redis::as_string_array(*r, "ZRANGE sessions");
}

awaitable<core::result<std::optional<session_lock>>> session_store::try_lock(std::string sid) {
  if (auto v = validate_session_id(sid); !v) co_return v.error();
  session_lock l{sid, core::random_token(18)};
  auto r = co_await redis_->command(
      argv("SET", opts_.keys.lock(sid), l.token, "NX", "PX", std::to_string(opts_.lock_ttl.count())));
  if (!r) co_return r.error();
  if (r->is_nil()) co_return std::optional<session_lock>{};
  if (auto ok = redis::expect_ok(*r, "SET lock NX"); !ok) co_return ok.error();
  co_return std::optional<session_lock>{std::move(l)};
}

awaitable<core::result<session_lock>> session_store::lock(std::string sid, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  asio::steady_timer t(co_await asio::this_coro::executor);
  for (;;) {  // bounded by `wait`
    auto l = co_await try_lock(sid);
    if (!l) co_return l.error();
    if (*l) co_return std::move(**l);
    if (std::chrono::steady_clock::now() >= deadline)
      co_return core::make_error(core::errc::internal, "session is being provisioned elsewhere (lock busy)");
    t.expires_after(std::chrono::milliseconds(25));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

awaitable<core::result<bool>> session_store::unlock(session_lock l) {
  auto r = co_await redis_->eval(unlock_, argv(opts_.keys.lock(l.sid)), argv(l.token));
  if (!r) co_return r.error();
  auto n = redis::as_integer(*r, "unlock");
  if (!n) co_return n.error();
  if (*n != 1) log()->warn("provisioning lock for sid={} had expired before release", l.sid);
  co_return *n == 1;
}

awaitable<core::result<std::vector<std::string>>> session_store::list_live_replicas() {
  std::vector<std::string> out;
  std::string cursor = "0";
  const auto prefix = opts_.keys.replica("");
  for (int i = 0; i < 10000; ++i) {  // bounded; SCAN terminates long before on any sane keyspace
    auto r = co_await redis_->command(argv("SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"));
    if (!r) co_return r.error();
    auto arr = redis::as_array(*r, "SCAN");
    if (!arr) co_return arr.error();
    if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "redis SCAN: expected [cursor, keys]");
    auto c = redis::as_string((**arr)[0], "SCAN cursor");
    auto keys = redis::as_string_array((**arr)[1], "SCAN keys");
    if (!c) co_return c.error();
    if (!keys) co_return keys.error();
    for (auto& k : *keys) out.push_back(k.substr(prefix.size()));
    cursor = *c;
    if (cursor == "0") break;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  co_return out;
}

awaitable<core::result<std::map<std::string, std::string>>> session_store::referenced_containers() {
  std::map<std::string, std::string> out;
  constexpr long chunk = 500;
  for (long start = 0; start < 10'000'000; start += chunk) {  // bounded
    auto r = co_await redis_->command(argv("ZRANGE", opts_.keys.sessions(), std::to_string(start), std::to_string(start + chunk - 1)));
    if (!r) co_return r.error();
    auto sids = redis::as_string_array(*r, "ZRANGE sessions");
    if (!sids) co_return sids.error();
    if (sids->empty()) break;
    std::vector<std::vector<std::string>> cmds;
    for (const auto& sid : *sids) cmds.push_back(argv("HGET", opts_.keys.session(sid), "container"));
    auto got = co_await redis_->pipeline(std::move(cmds));
    if (!got) co_return got.error();
    for (std::size_t i = 0; i < sids->size(); ++i) {
      auto c = redis::as_optional_string((*got)[i], "HGET container");
      if (!c) co_return c.error();
      if (*c && !(*c)->empty()) out[**c] = (*sids)[i];
    }
    if (static_cast<long>(sids->size()) < chunk) break;
  }
  co_return out;
}

awaitable<core::result<std::optional<std::string>>> session_store::session_referencing(std::string container) {
  auto all = co_await referenced_containers();
  if (!all) co_return all.error();
  auto it = all->find(container);
  if (it == all->end()) co_return std::optional<std::string>{};
  co_return std::optional<std::string>{it->second};
}

}  // namespace berth::session
