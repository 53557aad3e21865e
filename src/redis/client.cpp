#include "berth/redis/client.hpp"

#include <array>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "berth/core/logging.hpp"

namespace berth::redis {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::milliseconds;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {
std::shared_ptr<spdlog::logger> log() {
  static auto l = core::logger("redis");
  return l;
}
}  // namespace

redis_script::redis_script(std::string body) : body_(std::move(body)), sha_(sha1_hex(body_)) {}

// One submitted batch of commands waiting for its replies (strand-only).
struct redis_client::pending {
  explicit pending(strand_type& s) : timer(s) {}
  asio::steady_timer timer;  // deadline, and the wake-up: cancelled when the replies are complete
  std::size_t expected = 0;
  std::vector<reply> replies;
  std::optional<core::error> error;
  bool done = false;
};

struct redis_client::batch {
  std::vector<std::vector<std::string>> cmds;
  milliseconds timeout{0};
  bool handshake = false;
};

bool is_transport_error(const core::error& e) noexcept {
  return e.message.starts_with("redis unavailable") || e.message.starts_with("redis timeout") ||
         e.message.starts_with("redis overloaded");
}

std::shared_ptr<redis_client> redis_client::create(asio::any_io_executor ex, client_options opts,
                                                   core::metrics& metrics) {
  return std::make_shared<redis_client>(private_tag{}, std::move(ex), std::move(opts), metrics);
}

namespace {
core::counter& err_counter(core::metrics& m, const std::string& client, const char* reason) {
  return m.get_counter("berth_redis_errors_total", "Redis command/connection failures by reason",
                       "client=\"" + client + "\",reason=\"" + reason + "\"");
}
}  // namespace

redis_client::redis_client(private_tag, asio::any_io_executor ex, client_options opts, core::metrics& metrics)
    : strand_(asio::make_strand(ex)),
      opts_(std::move(opts)),
      metrics_(metrics),
      c_reconnects_(metrics.get_counter("berth_redis_connects_total", "Successful Redis (re)connections",
                                        "client=\"" + opts_.name + "\"")),
      c_connect_failures_(err_counter(metrics, opts_.name, "connect_failed")),
      c_conn_lost_(err_counter(metrics, opts_.name, "connection_lost")),
      c_timeouts_(err_counter(metrics, opts_.name, "timeout")),
      c_unavailable_(err_counter(metrics, opts_.name, "unavailable")),
      c_overloaded_(err_counter(metrics, opts_.name, "overloaded")),
      c_noscript_(metrics.get_counter("berth_redis_noscript_total", "EVALSHA answered NOSCRIPT (script reloaded)",
                                      "client=\"" + opts_.name + "\"")),
      c_protocol_(err_counter(metrics, opts_.name, "protocol")),
      socket_(strand_),
      write_signal_(strand_),
      closed_signal_(strand_),
      backoff_timer_(strand_),
      health_timer_(strand_),
      connect_deadline_(strand_),
      reader_(opts_.max_reply_bytes) {}

redis_client::~redis_client() = default;

void redis_client::start() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->started_ || self->stopping_) return;
    self->started_ = true;
    asio::co_spawn(self->strand_, run_loop(self), asio::detached);
    asio::co_spawn(self->strand_, health_loop(self), asio::detached);
  });
}

void redis_client::stop() {
  auto self = shared_from_this();
  asio::dispatch(strand_, [self] {
    if (self->stopping_) return;
    self->stopping_ = true;
    self->fail_connection(self->generation_, "client stopped");
    self->connected_.store(false, std::memory_order_release);
    self->health_ok_.store(false, std::memory_order_relaxed);
    self->backoff_timer_.cancel();
    self->health_timer_.cancel();
    self->closed_signal_.cancel();
    self->connect_deadline_.cancel();
    boost::system::error_code ec;
    self->socket_.close(ec);
  });
}

core::error redis_client::unavailable(std::string_view why) const {
  return core::make_error(core::errc::internal, "redis unavailable: " + std::string(why) + " (" +
                                                    opts_.endpoint.redacted() + ")");
}

health_figure redis_client::health() const noexcept {
  return health_figure{health_ok_.load(std::memory_order_relaxed), latency_ms_.load(std::memory_order_relaxed)};
}

// ---- commands ---------------------------------------------------------------------------------

awaitable<core::result<reply>> redis_client::command(std::vector<std::string> args) {
  return command(std::move(args), opts_.command_timeout);
}

awaitable<core::result<reply>> redis_client::command(std::vector<std::string> args, milliseconds timeout) {
  auto b = std::make_shared<batch>();
  b->cmds.push_back(std::move(args));
  b->timeout = timeout;
  auto r = co_await asio::co_spawn(strand_, run_batch(shared_from_this(), b), use_awaitable);
  if (!r) co_return r.error();
  co_return std::move(r->front());
}

awaitable<core::result<std::vector<reply>>> redis_client::pipeline(std::vector<std::vector<std::string>> cmds) {
  return pipeline(std::move(cmds), opts_.command_timeout);
}

awaitable<core::result<std::vector<reply>>> redis_client::pipeline(std::vector<std::vector<std::string>> cmds,
                                                                   milliseconds timeout) {
  auto b = std::make_shared<batch>();
  b->cmds = std::move(cmds);
  b->timeout = timeout;
  if (b->cmds.empty()) co_return std::vector<reply>{};
  co_return co_await asio::co_spawn(strand_, run_batch(shared_from_this(), b), use_awaitable);
}

awaitable<core::result<std::vector<reply>>> redis_client::run_batch(std::shared_ptr<redis_client> self,
                                                                    std::shared_ptr<batch> b) {
  // On the strand from here on.
  if (self->stopping_) co_return self->unavailable("client stopped");
  if (b->handshake ? !self->conn_alive_ : !self->connected_.load(std::memory_order_relaxed)) {
    self->c_unavailable_.inc();
    co_return self->unavailable("not connected");
  }
  if (self->inflight_.size() >= self->opts_.max_pending) {
    self->c_overloaded_.inc();
    co_return core::make_error(core::errc::internal, "redis overloaded: " + std::to_string(self->opts_.max_pending) +
                                                         " commands pending");
  }
  auto p = std::make_shared<pending>(self->strand_);
  p->expected = b->cmds.size();
  p->replies.reserve(p->expected);
  for (const auto& c : b->cmds) append_command(self->wbuf_, c);
  self->inflight_.push_back(p);
  self->write_signal_.cancel();  // wake the writer

  p->timer.expires_after(b->timeout);
  auto [ec] = co_await p->timer.async_wait(tuple_awaitable);
  if (p->done) {
    if (p->error) co_return *p->error;
    co_return std::move(p->replies);
  }
  // Still queued: the reply (if it ever comes) is matched to this entry and dropped.
  p->error = core::make_error(core::errc::internal, "abandoned");
  if (ec == asio::error::operation_aborted)
    co_return core::make_error(core::errc::internal, "redis timeout: command cancelled by the caller");
  self->c_timeouts_.inc();
  log()->warn("redis command timed out after {} ms client={}", b->timeout.count(), self->opts_.name);
  co_return core::make_error(core::errc::internal,
                             "redis timeout: no reply within " + std::to_string(b->timeout.count()) + " ms");
}

void redis_client::deliver(reply r, std::uint64_t gen) {
  if (inflight_.empty()) {
    c_protocol_.inc();
    log()->warn("redis sent a reply nobody asked for: {}", describe(r, 60));
    fail_connection(gen, "unexpected reply");
    return;
  }
  auto& p = inflight_.front();
  p->replies.push_back(std::move(r));
  if (p->replies.size() == p->expected) {
    p->done = true;
    p->timer.cancel();
    inflight_.pop_front();
  }
}

void redis_client::fail_all(const std::string& reason) {
  auto err = unavailable(reason);
  for (auto& p : inflight_) {
    p->done = true;
    p->error = err;
    p->timer.cancel();
  }
  inflight_.clear();
  wbuf_.clear();
}

void redis_client::fail_connection(std::uint64_t gen, const std::string& reason) {
  if (gen != generation_ || !conn_alive_) return;
  ++generation_;
  conn_alive_ = false;
  handshaking_ = false;
  bool was_connected = connected_.exchange(false, std::memory_order_acq_rel);
  health_ok_.store(false, std::memory_order_relaxed);
  boost::system::error_code ec;
  socket_.close(ec);
  fail_all(reason);
  write_signal_.cancel();
  closed_signal_.cancel();
  if (was_connected && !stopping_) {
    c_conn_lost_.inc();
    log()->warn("redis connection lost ({}) url={}; reconnecting", reason, opts_.endpoint.redacted());
  }
}

// ---- scripts ----------------------------------------------------------------------------------

std::shared_ptr<const redis_script> redis_client::register_script(std::string body) {
  auto s = std::make_shared<const redis_script>(std::move(body));
  std::lock_guard lock(scripts_mutex_);
  for (const auto& existing : scripts_)
    if (existing->sha() == s->sha()) return existing;
  scripts_.push_back(s);
  return s;
}

awaitable<core::result<reply>> redis_client::eval(std::shared_ptr<const redis_script> script,
                                                  std::vector<std::string> keys, std::vector<std::string> args) {
  std::vector<std::string> cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.push_back("EVALSHA");
  cmd.push_back(script->sha());
  cmd.push_back(std::to_string(keys.size()));
  for (auto& k : keys) cmd.push_back(std::move(k));
  for (auto& a : args) cmd.push_back(std::move(a));
  auto r = co_await command(cmd);
  if (!r || r->error_prefix() != "NOSCRIPT") co_return r;
  // Redis lost its script cache (SCRIPT FLUSH, restart between our connect and now): load again.
  c_noscript_.inc();
  log()->info("redis NOSCRIPT for {}: reloading", script->sha());
  // (Braced lists as co_await arguments trip GCC 12: build the vector first.)
  std::vector<std::string> load_cmd;
  load_cmd.push_back("SCRIPT");
  load_cmd.push_back("LOAD");
  load_cmd.push_back(script->body());
  auto loaded = co_await command(std::move(load_cmd));
  if (!loaded) co_return loaded.error();
  if (auto s = as_string(*loaded, "SCRIPT LOAD"); !s) co_return s.error();
  co_return co_await command(std::move(cmd));
}

// ---- connection -------------------------------------------------------------------------------

awaitable<boost::system::error_code> redis_client::connect_socket(std::shared_ptr<redis_client> self) {
  boost::system::error_code ec;
  self->socket_.close(ec);
  const auto& ep = self->opts_.endpoint;
  // Watchdog: closing the socket aborts a connect that takes too long. The handler may run after
  // this frame is gone, so it only touches shared state and checks the attempt id.
  self->connect_deadline_.expires_after(self->opts_.connect_timeout);
  auto expired = std::make_shared<bool>(false);
  const auto attempt_id = ++self->connect_attempt_;
  self->connect_deadline_.async_wait([self, expired, attempt_id](boost::system::error_code wec) {
    if (wec || attempt_id != self->connect_attempt_) return;
    *expired = true;
    boost::system::error_code ignore;
    self->socket_.close(ignore);
  });
  if (ep.transport == redis_endpoint::kind::unix_socket) {
    asio::local::stream_protocol::endpoint uep(ep.path);
    std::tie(ec) = co_await self->socket_.async_connect(asio::generic::stream_protocol::endpoint(uep), tuple_awaitable);
  } else {
    asio::ip::tcp::resolver resolver(self->strand_);
    auto [rec, results] = co_await resolver.async_resolve(ep.host, std::to_string(ep.port), tuple_awaitable);
    ec = rec;
    if (!ec) {
      ec = asio::error::host_not_found;
      for (const auto& entry : results) {
        if (*expired) break;
        boost::system::error_code ignore;
        self->socket_.close(ignore);
        std::tie(ec) = co_await self->socket_.async_connect(
            asio::generic::stream_protocol::endpoint(entry.endpoint()), tuple_awaitable);
        if (!ec) {
          self->socket_.set_option(asio::ip::tcp::no_delay(true), ignore);
          break;
        }
      }
    }
  }
  ++self->connect_attempt_;  // disarm the watchdog even if its handler is already queued
  self->connect_deadline_.cancel();
  if (*expired) ec = asio::error::timed_out;
  co_return ec;
}

namespace {
// Not a coroutine: GCC 12 mishandles braced lists inside coroutine bodies.
template <class Batch>
std::shared_ptr<Batch> make_handshake(const client_options& opts,
    const std::vector<std::shared_ptr<const redis_script>>& scripts, std::vector<std::string>& what) {
  auto b = std::make_shared<Batch>();
  b->handshake = true;
  b->timeout = opts.connect_timeout;
  const auto& ep = opts.endpoint;
  if (!ep.password.empty()) {
    if (ep.username.empty())
      b->cmds.push_back({"AUTH", ep.password});
    else
      b->cmds.push_back({"AUTH", ep.username, ep.password});
    what.push_back("AUTH");
  }
  if (ep.db != 0) {
    b->cmds.push_back({"SELECT", std::to_string(ep.db)});
    what.push_back("SELECT " + std::to_string(ep.db));
  }
  for (const auto& s : scripts) {
    b->cmds.push_back({"SCRIPT", "LOAD", s->body()});
    what.push_back("SCRIPT LOAD");
  }
  b->cmds.push_back({"PING"});
  what.push_back("PING");
  return b;
}
}  // namespace

awaitable<core::result<void>> redis_client::handshake(std::shared_ptr<redis_client> self) {
  std::vector<std::shared_ptr<const redis_script>> scripts;
  {
    std::lock_guard lock(self->scripts_mutex_);
    scripts = self->scripts_;
  }
  std::vector<std::string> what;
  auto b = make_handshake<batch>(self->opts_, scripts, what);
  auto r = co_await run_batch(self, b);
  if (!r) co_return r.error();
  for (std::size_t i = 0; i < r->size(); ++i) {
    const auto& rep = (*r)[i];
    if (rep.is_error()) co_return core::make_error(core::errc::internal, what[i] + " failed: " + rep.str.substr(0, 200));
  }
  co_return core::result<void>{};
}

awaitable<void> redis_client::run_loop(std::shared_ptr<redis_client> self) {
  unsigned attempt = 0;
  std::string last_error;
  while (!self->stopping_) {
    auto ec = co_await connect_socket(self);
    if (self->stopping_) break;
    std::string failure;
    if (ec) {
      failure = "connect: " + ec.message();
    } else {
      ++self->generation_;
      const auto gen = self->generation_;
      self->conn_alive_ = true;
      self->reader_.reset();
      self->wbuf_.clear();
      asio::co_spawn(self->strand_, read_loop(self, gen), asio::detached);
      asio::co_spawn(self->strand_, write_loop(self, gen), asio::detached);
      auto hs = co_await handshake(self);
      if (self->stopping_) break;
      if (!hs) {
        failure = hs.error().message;
        self->fail_connection(gen, failure);
      } else if (self->conn_alive_ && gen == self->generation_) {
        self->connected_.store(true, std::memory_order_release);
        self->health_ok_.store(true, std::memory_order_relaxed);
        self->ping_failures_ = 0;
        self->connects_.fetch_add(1, std::memory_order_relaxed);
        self->c_reconnects_.inc();
        log()->info("redis connected url={} client={}{}", self->opts_.endpoint.redacted(), self->opts_.name,
                    attempt ? " (after " + std::to_string(attempt) + " failed attempts)" : "");
        attempt = 0;
        last_error.clear();
        self->health_timer_.cancel();  // take a health figure now
        // Park until the connection fails (fail_connection cancels the timer).
        while (self->conn_alive_ && gen == self->generation_ && !self->stopping_) {
          self->closed_signal_.expires_at(asio::steady_timer::time_point::max());
          co_await self->closed_signal_.async_wait(tuple_awaitable);
        }
        if (self->stopping_) break;
        continue;  // reconnect at once; backoff starts if that fails
      } else {
        failure = "connection lost during handshake";
      }
    }
    ++attempt;
    self->c_connect_failures_.inc();
    // Log the first failure and changes at warn, repeats at debug: no log flood while Redis is down.
    if (failure != last_error) {
      if (failure.find("AUTH") != std::string::npos || failure.find("NOAUTH") != std::string::npos)
        log()->error("redis {} url={} (check the REDIS_URL password)", failure, self->opts_.endpoint.redacted());
      else
        log()->warn("redis {} url={}; retrying with backoff", failure, self->opts_.endpoint.redacted());
      last_error = failure;
    } else {
      log()->debug("redis {} (attempt {})", failure, attempt);
    }
    self->backoff_timer_.expires_after(backoff_delay(self->opts_.backoff_base, self->opts_.backoff_max, attempt));
    co_await self->backoff_timer_.async_wait(tuple_awaitable);
  }
}

awaitable<void> redis_client::read_loop(std::shared_ptr<redis_client> self, std::uint64_t gen) {
  std::array<char, 16384> buf;
  while (gen == self->generation_) {
    auto [ec, n] = co_await self->socket_.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (gen != self->generation_) co_return;
    if (ec) {
      self->fail_connection(gen, ec == asio::error::eof ? "closed by server" : "read: " + ec.message());
      co_return;
    }
    if (auto fed = self->reader_.feed(std::string_view(buf.data(), n)); !fed) {
      self->c_protocol_.inc();
      self->fail_connection(gen, fed.error().message);
      co_return;
    }
    while (gen == self->generation_) {
      auto next = self->reader_.next();
      if (!next) {
        self->c_protocol_.inc();
        self->fail_connection(gen, next.error().message);
        co_return;
      }
      if (!*next) break;
      self->deliver(std::move(**next), gen);
    }
  }
}

awaitable<void> redis_client::write_loop(std::shared_ptr<redis_client> self, std::uint64_t gen) {
  std::string out;
  while (gen == self->generation_) {
    if (self->wbuf_.empty()) {
      self->write_signal_.expires_at(asio::steady_timer::time_point::max());
      co_await self->write_signal_.async_wait(tuple_awaitable);
      continue;
    }
    out.clear();
    std::swap(out, self->wbuf_);  // everything queued so far goes in one write: pipelining
    auto [ec, n] = co_await asio::async_write(self->socket_, asio::buffer(out), tuple_awaitable);
    if (ec) {
      self->fail_connection(gen, "write: " + ec.message());
      co_return;
    }
  }
}

awaitable<void> redis_client::health_loop(std::shared_ptr<redis_client> self) {
  while (!self->stopping_) {
    if (self->connected_.load(std::memory_order_relaxed)) {
      const auto gen = self->generation_;
      const auto t0 = std::chrono::steady_clock::now();
      auto b = std::make_shared<batch>();
      b->cmds.emplace_back(1, std::string("PING"));
      b->timeout = std::min(self->opts_.command_timeout, std::max(self->opts_.health_interval, milliseconds(100)));
      auto r = co_await run_batch(self, b);
      if (self->stopping_) break;
      const bool ok = r && r->front().type == reply_type::status && r->front().str == "PONG";
      if (ok) {
        std::chrono::duration<double, std::milli> dt = std::chrono::steady_clock::now() - t0;
        self->latency_ms_.store(dt.count(), std::memory_order_relaxed);
        self->health_ok_.store(true, std::memory_order_relaxed);
        self->ping_failures_ = 0;
      } else {
        self->health_ok_.store(false, std::memory_order_relaxed);
        if (++self->ping_failures_ >= 3) {
          self->ping_failures_ = 0;
          self->fail_connection(gen, "3 PINGs without answer");
        }
      }
    } else {
      self->health_ok_.store(false, std::memory_order_relaxed);
    }
    self->health_timer_.expires_after(self->opts_.health_interval);
    co_await self->health_timer_.async_wait(tuple_awaitable);
  }
}

awaitable<bool> redis_client::wait_connected(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (!connected()) {
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    t.expires_after(milliseconds(10));
    co_await t.async_wait(tuple_awaitable);
  }
  co_return true;
}

}  // namespace berth::redis
