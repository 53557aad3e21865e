#include "berth/redis/client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
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

namespace {
// Closes a socket when a deadline passes (which makes its pending operation fail); disarmed by
// the destructor. For short exchanges on a strand: the socket must outlive the guard's scope.
class socket_deadline {
 public:
  socket_deadline(asio::generic::stream_protocol::socket& sock, milliseconds d)
      : timer_(sock.get_executor()), fired_(std::make_shared<bool>(false)), done_(std::make_shared<bool>(false)) {
    timer_.expires_after(d);
    // The handler may run after this guard is gone (already queued): it checks `done` first.
    timer_.async_wait([&sock, fired = fired_, done = done_](boost::system::error_code ec) {
      if (ec || *done) return;
      *fired = true;
      boost::system::error_code ignore;
      sock.close(ignore);
    });
  }
  ~socket_deadline() {
    *done_ = true;
    timer_.cancel();
  }
  socket_deadline(const socket_deadline&) = delete;
  socket_deadline& operator=(const socket_deadline&) = delete;
  bool expired() const noexcept { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> fired_, done_;
};

// Resolves host:port and connects `sock` to the first address that answers.
awaitable<boost::system::error_code> connect_tcp(asio::generic::stream_protocol::socket& sock, std::string host,
                                                 std::uint16_t port) {
  asio::ip::tcp::resolver resolver(sock.get_executor());
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), tuple_awaitable);
  if (rec) co_return rec;
  boost::system::error_code ec = asio::error::host_not_found;
  for (const auto& entry : results) {
    boost::system::error_code ignore;
    sock.close(ignore);
    std::tie(ec) = co_await sock.async_connect(asio::generic::stream_protocol::endpoint(entry.endpoint()), tuple_awaitable);
    if (!ec) {
      sock.set_option(asio::ip::tcp::no_delay(true), ignore);
      break;
    }
  }
  co_return ec;
}

std::vector<std::string> auth_command(const std::string& user, const std::string& password) {
  std::vector<std::string> c;
  c.push_back("AUTH");
  if (!user.empty()) c.push_back(user);
  c.push_back(password);
  return c;
}
}  // namespace

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

bool may_have_been_applied(const core::error& e) noexcept {
  if (e.message.starts_with("redis timeout")) return true;
  if (!e.message.starts_with("redis unavailable: ")) return false;
  const std::string_view why = std::string_view(e.message).substr(19);
  return !why.starts_with("not connected") && !why.starts_with("client stopped") &&
         !why.starts_with("node is not a usable master");
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
      c_failovers_(metrics.get_counter("berth_redis_failovers_total",
                                       "Failovers followed: connected to a Redis master other than the one before",
                                       "client=\"" + opts_.name + "\"")),
      c_failover_replies_(err_counter(metrics, opts_.name, "failover_reply")),
      c_not_master_(err_counter(metrics, opts_.name, "not_master")),
      c_sentinel_failures_(err_counter(metrics, opts_.name, "sentinel")),
      c_switch_events_(metrics.get_counter("berth_redis_sentinel_switch_master_total",
                                           "+switch-master announcements received from a sentinel",
                                           "client=\"" + opts_.name + "\"")),
      c_unreplicated_(metrics.get_counter("berth_redis_unreplicated_writes_total",
                                          "scripted writes acknowledged by no replica within the WAIT timeout",
                                          "client=\"" + opts_.name + "\"")),
      socket_(strand_),
      write_signal_(strand_),
      closed_signal_(strand_),
      backoff_timer_(strand_),
      health_timer_(strand_),
      connect_deadline_(strand_),
      reader_(opts_.max_reply_bytes),
      target_(opts_.endpoint),
      watch_socket_(strand_),
      watch_timer_(strand_) {
  if (!opts_.sentinel.sentinels.empty()) {
    discovery_.emplace(opts_.sentinel.sentinels, opts_.sentinel.master_name);
    auto view = master_view_;
    metrics.add_gauge("berth_redis_replicas", "Replicas attached to the Redis master (its ROLE answer); -1 unknown",
                      [view] { return static_cast<double>(view->replicas.load(std::memory_order_relaxed)); },
                      "client=\"" + opts_.name + "\"");
  }
}

redis_client::~redis_client() = default;

void redis_client::start() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->started_ || self->stopping_) return;
    self->started_ = true;
    asio::co_spawn(self->strand_, run_loop(self), asio::detached);
    asio::co_spawn(self->strand_, health_loop(self), asio::detached);
    if (self->discovery_) asio::co_spawn(self->strand_, sentinel_watch_loop(self), asio::detached);
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
    self->watch_timer_.cancel();
    boost::system::error_code ec;
    self->socket_.close(ec);
    self->watch_socket_.close(ec);
  });
}

std::string redis_client::master_address() const {
  std::lock_guard lock(master_view_->mutex);
  return master_view_->addr;
}

core::error redis_client::unavailable(std::string_view why) const {
  return core::make_error(core::errc::internal, "redis unavailable: " + std::string(why) + " (" +
                                                    target_.redacted() + ")");
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
  const auto gen = self->generation_;
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
    if (!b->handshake) {
      for (const auto& rep : p->replies) {
        if (!is_failover_error(rep)) continue;
        // The node is not a usable master (demoted, lost its master, loading): nothing was
        // applied. Fail like an outage and find the master again.
        self->c_failover_replies_.inc();
        auto why = "node is not a usable master: " + rep.str.substr(0, 120);
        if (gen == self->generation_ && self->conn_alive_) log()->warn("redis {} url={}; reconnecting", why, self->target_.redacted());
        self->fail_connection(gen, why);
        co_return self->unavailable(why);
      }
    }
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
    log()->warn("redis connection lost ({}) url={}; reconnecting", reason, target_.redacted());
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
  auto r = co_await run_script(cmd);
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
  co_return co_await run_script(std::move(cmd));
}

unsigned redis_client::replicas_to_wait_for() const noexcept {
  const auto attached = master_view_->replicas.load(std::memory_order_relaxed);
  if (opts_.wait_replicas == 0 || attached <= 0) return 0;
  return std::min(opts_.wait_replicas, static_cast<unsigned>(attached));
}

awaitable<core::result<reply>> redis_client::run_script(std::vector<std::string> cmd) {
  const auto want = replicas_to_wait_for();
  if (want == 0) co_return co_await command(std::move(cmd));
  // WAIT right behind the script on the same connection: it returns once `want` replicas have
  // everything this connection wrote so far (or after wait_timeout).
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(std::move(cmd));
  std::vector<std::string> wait;
  wait.push_back("WAIT");
  wait.push_back(std::to_string(want));
  wait.push_back(std::to_string(opts_.wait_timeout.count()));
  cmds.push_back(std::move(wait));
  auto r = co_await pipeline(std::move(cmds), opts_.command_timeout + opts_.wait_timeout);
  if (!r) co_return r.error();
  const auto& acked = (*r)[1];
  if (!(*r)[0].is_error() && !(acked.type == reply_type::integer && acked.integer >= static_cast<std::int64_t>(want))) {
    c_unreplicated_.inc();
    log()->debug("redis write acknowledged by {} of {} replicas within {} ms", describe(acked, 40), want,
                 opts_.wait_timeout.count());
  }
  co_return std::move((*r)[0]);
}

// ---- connection -------------------------------------------------------------------------------

awaitable<boost::system::error_code> redis_client::connect_socket(std::shared_ptr<redis_client> self) {
  boost::system::error_code ec;
  self->socket_.close(ec);
  const auto& ep = self->target_;
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
    ec = co_await connect_tcp(self->socket_, ep.host, ep.port);
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
    const std::vector<std::shared_ptr<const redis_script>>& scripts, std::vector<std::string>& what, bool check_role) {
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
  if (check_role) {  // last: the discovery state machine reads it
    b->cmds.push_back({"ROLE"});
    what.push_back("ROLE");
  }
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
  const bool check_role = self->discovery_.has_value();
  auto b = make_handshake<batch>(self->opts_, scripts, what, check_role);
  auto r = co_await run_batch(self, b);
  if (!r) {
    if (check_role) self->discovery_->on_role(r.error());
    co_return r.error();
  }
  for (std::size_t i = 0; i < r->size(); ++i) {
    const auto& rep = (*r)[i];
    if (rep.is_error() && !(check_role && i + 1 == r->size())) {
      if (check_role) self->discovery_->on_role(core::make_error(core::errc::internal, what[i] + " failed"));
      co_return core::make_error(core::errc::internal, what[i] + " failed: " + rep.str.substr(0, 200));
    }
  }
  if (check_role) {
    auto a = self->discovery_->on_role(r->back());
    if (a.what != master_discovery::action::kind::use_master) {
      self->c_not_master_.inc();
      co_return core::make_error(core::errc::internal, a.reason);
    }
    if (auto role = parse_role(r->back()); role)
      self->master_view_->replicas.store(static_cast<std::int64_t>(role->replicas.size()), std::memory_order_relaxed);
  }
  co_return core::result<void>{};
}

awaitable<void> redis_client::run_loop(std::shared_ptr<redis_client> self) {
  unsigned attempt = 0;
  std::string last_error;
  while (!self->stopping_) {
    std::string failure;
    if (self->discovery_) {
      auto master = co_await find_master(self);
      if (self->stopping_) break;
      if (!master) {
        self->c_sentinel_failures_.inc();
        failure = master.error().message;
      } else {
        self->target_.host = master->host;
        self->target_.port = master->port;
      }
    }
    boost::system::error_code ec;
    if (failure.empty()) {
      ec = co_await connect_socket(self);
      if (self->stopping_) break;
      if (ec && self->discovery_) self->discovery_->on_role(core::make_error(core::errc::internal, "connect"));
    }
    if (!failure.empty()) {
      // Sentinel could not name a master: fall through to the backoff below.
    } else if (ec) {
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
        log()->info("redis connected url={} client={}{}{}", self->target_.redacted(), self->opts_.name,
                    self->discovery_ ? " (master '" + self->opts_.sentinel.master_name + "' via sentinel)" : "",
                    attempt ? " (after " + std::to_string(attempt) + " failed attempts)" : "");
        self->on_connected_to(self->target_.transport == redis_endpoint::kind::unix_socket
                                  ? "unix:" + self->target_.path
                                  : host_port{self->target_.host, self->target_.port}.to_string());
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
    if (failure.starts_with("redis ")) failure.erase(0, 6);  // the log line says "redis" already
    if (failure != last_error) {
      if (failure.find("AUTH") != std::string::npos || failure.find("NOAUTH") != std::string::npos ||
          failure.find("WRONGPASS") != std::string::npos)
        log()->error("redis {} url={} (check the {} password)", failure, self->target_.redacted(),
                     failure.find("sentinel") != std::string::npos ? "REDIS_SENTINEL_PASSWORD" : "REDIS_URL/REDIS_PASSWORD");
      else
        log()->warn("redis {} url={}; retrying with backoff", failure, self->target_.redacted());
      last_error = failure;
    } else {
      log()->debug("redis {} (attempt {})", failure, attempt);
    }
    self->backoff_timer_.expires_after(backoff_delay(self->opts_.backoff_base, self->opts_.backoff_max, attempt));
    co_await self->backoff_timer_.async_wait(tuple_awaitable);
  }
}

// ---- sentinel ---------------------------------------------------------------------------------

awaitable<core::result<std::vector<reply>>> redis_client::sentinel_request(std::shared_ptr<redis_client> self,
                                                                           host_port target,
                                                                           std::vector<std::vector<std::string>> cmds) {
  // A short-lived connection per question: sentinels are asked rarely (on connect), and a fresh
  // connection cannot carry a stale reply.
  asio::generic::stream_protocol::socket sock(self->strand_);
  socket_deadline deadline(sock, self->opts_.connect_timeout);
  auto unreachable = [&](const std::string& why) {
    return core::make_error(core::errc::internal, "redis unavailable: sentinel " + why);
  };
  auto ec = co_await connect_tcp(sock, target.host, target.port);
  if (ec) co_return unreachable(deadline.expired() ? "connect timed out" : "connect: " + ec.message());
  std::string out;
  for (const auto& c : cmds) append_command(out, c);
  std::tie(ec, std::ignore) = co_await asio::async_write(sock, asio::buffer(out), tuple_awaitable);
  if (ec) co_return unreachable("write: " + ec.message());
  resp_reader reader(1024 * 1024);
  std::vector<reply> replies;
  std::array<char, 4096> buf;
  while (replies.size() < cmds.size()) {
    auto [rec, n] = co_await sock.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (rec) co_return unreachable(deadline.expired() ? "timed out" : "read: " + rec.message());
    if (auto fed = reader.feed(std::string_view(buf.data(), n)); !fed) co_return unreachable(fed.error().message);
    for (;;) {
      auto next = reader.next();
      if (!next) co_return unreachable(next.error().message);
      if (!*next) break;
      replies.push_back(std::move(**next));
    }
  }
  boost::system::error_code ignore;
  sock.close(ignore);
  co_return replies;
}

awaitable<core::result<host_port>> redis_client::find_master(std::shared_ptr<redis_client> self) {
  const auto& so = self->opts_.sentinel;
  auto a = self->discovery_->start();
  // Bounded: the state machine asks each sentinel at most once per round.
  while (a.what == master_discovery::action::kind::ask_sentinel && !self->stopping_) {
    std::vector<std::vector<std::string>> cmds;
    if (!so.password.empty()) cmds.push_back(auth_command(so.username, so.password));
    std::vector<std::string> ask;
    ask.push_back("SENTINEL");
    ask.push_back("get-master-addr-by-name");
    ask.push_back(so.master_name);
    cmds.push_back(std::move(ask));
    auto r = co_await sentinel_request(self, a.target, std::move(cmds));
    core::result<reply> answer = core::make_error(core::errc::internal, "no reply");
    if (!r) {
      answer = r.error();
    } else if (!so.password.empty() && r->front().is_error()) {
      answer = core::make_error(core::errc::internal, "sentinel AUTH failed: " + r->front().str.substr(0, 120));
    } else {
      answer = r->back();
    }
    a = self->discovery_->on_sentinel_reply(answer);
  }
  if (a.what == master_discovery::action::kind::check_role) co_return a.target;
  co_return core::make_error(core::errc::internal, a.reason.empty() ? std::string("client stopped") : a.reason);
}

void redis_client::on_connected_to(const std::string& master) {
  if (!last_master_.empty() && last_master_ != master) {
    failovers_.fetch_add(1, std::memory_order_relaxed);
    c_failovers_.inc();
    log()->warn("redis failover followed: master {} -> {} client={}", last_master_, master, opts_.name);
  }
  last_master_ = master;
  bool new_gauge = false;
  {
    std::lock_guard lock(master_view_->mutex);
    master_view_->addr = master;
    if (std::find(master_view_->gauged.begin(), master_view_->gauged.end(), master) == master_view_->gauged.end()) {
      master_view_->gauged.push_back(master);
      new_gauge = true;
    }
  }
  // Outside the view's mutex: rendering takes the metrics mutex, then the view's.
  if (new_gauge) {
    auto view = master_view_;
    metrics_.add_gauge("berth_redis_master", "1 for the Redis master this client uses now, 0 for earlier ones",
                       [view, master] {
                         std::lock_guard lock(view->mutex);
                         return view->addr == master ? 1.0 : 0.0;
                       },
                       "client=\"" + opts_.name + "\",addr=\"" + master + "\"");
  }
}

void redis_client::on_switch_master(const switch_master_event& ev) {
  if (ev.master_name != opts_.sentinel.master_name) return;
  c_switch_events_.inc();
  const auto to = ev.to.to_string();
  log()->info("sentinel announced a failover of '{}': {} -> {}", ev.master_name, ev.from.to_string(), to);
  if (conn_alive_ && last_master_ == to && target_.host == ev.to.host && target_.port == ev.to.port) return;
  // Drop the connection to the old master (or cut the backoff short) and find the new one now.
  fail_connection(generation_, "sentinel announced a new master " + to);
  backoff_timer_.cancel();
}

awaitable<void> redis_client::sentinel_watch_loop(std::shared_ptr<redis_client> self) {
  const auto& so = self->opts_.sentinel;
  unsigned attempt = 0;
  std::size_t next = 0;
  std::string last_error;
  while (!self->stopping_) {
    const auto list = self->discovery_->sentinels();  // the one that answered last comes first
    const auto target = list[next % list.size()];
    std::string failure;
    boost::system::error_code ec;
    {
      socket_deadline deadline(self->watch_socket_, self->opts_.connect_timeout);
      ec = co_await connect_tcp(self->watch_socket_, target.host, target.port);
      if (!ec) {
        // A dead sentinel host must not leave us subscribed to nothing for hours: kernel
        // keepalive notices within ~15 s.
        const int fd = self->watch_socket_.native_handle();
        const int on = 1, idle = 5, intvl = 3, cnt = 3;
        ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
        std::string out;
        if (!so.password.empty()) append_command(out, auth_command(so.username, so.password));
        std::vector<std::string> sub;
        sub.push_back("SUBSCRIBE");
        sub.push_back("+switch-master");
        append_command(out, sub);
        std::tie(ec, std::ignore) = co_await asio::async_write(self->watch_socket_, asio::buffer(out), tuple_awaitable);
      }
      if (ec) failure = deadline.expired() ? "connect timed out" : ec.message();
    }
    if (failure.empty()) {
      resp_reader reader(1024 * 1024);
      std::array<char, 4096> buf;
      bool auth_pending = !so.password.empty();
      while (!self->stopping_ && failure.empty()) {
        auto [rec, n] = co_await self->watch_socket_.async_read_some(asio::buffer(buf), tuple_awaitable);
        if (rec) {
          failure = rec == asio::error::eof ? "closed by the sentinel" : rec.message();
          break;
        }
        if (auto fed = reader.feed(std::string_view(buf.data(), n)); !fed) {
          failure = fed.error().message;
          break;
        }
        for (;;) {
          auto msg = reader.next();
          if (!msg) {
            failure = msg.error().message;
            break;
          }
          if (!*msg) break;
          if (auth_pending) {
            auth_pending = false;
            if ((*msg)->is_error()) {
              failure = "sentinel AUTH failed: " + (*msg)->str.substr(0, 120);
              break;
            }
            continue;
          }
          if ((*msg)->is_error()) {
            failure = "SUBSCRIBE failed: " + (*msg)->str.substr(0, 120);
            break;
          }
          if (auto ev = parse_switch_master(**msg)) {
            self->on_switch_master(*ev);
          } else if ((*msg)->type == reply_type::array && !(*msg)->elements.empty() &&
                     (*msg)->elements[0].str == "subscribe") {
            if (!last_error.empty() || attempt)
              log()->info("watching sentinel {} for failovers of '{}'", target.to_string(), so.master_name);
            attempt = 0;
            last_error.clear();
          }
        }
      }
    }
    boost::system::error_code ignore;
    self->watch_socket_.close(ignore);
    if (self->stopping_) break;
    ++attempt;
    ++next;  // the next sentinel of the list
    self->c_sentinel_failures_.inc();
    if (failure != last_error) {
      log()->warn("sentinel {} (failover watch): {}; trying the next one", target.to_string(), failure);
      last_error = failure;
    }
    self->watch_timer_.expires_after(backoff_delay(self->opts_.backoff_base, self->opts_.backoff_max, attempt));
    co_await self->watch_timer_.async_wait(tuple_awaitable);
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
      // With Sentinel, ROLE: the same round trip also notices a master that was demoted under us.
      b->cmds.emplace_back(1, std::string(self->discovery_ ? "ROLE" : "PING"));
      b->timeout = std::min(self->opts_.command_timeout, std::max(self->opts_.health_interval, milliseconds(100)));
      auto r = co_await run_batch(self, b);
      if (self->stopping_) break;
      bool ok = r && r->front().type == reply_type::status && r->front().str == "PONG";
      if (self->discovery_ && r) {
        auto role = parse_role(r->front());
        ok = role && role->role == server_role::master;
        if (ok) {
          self->master_view_->replicas.store(static_cast<std::int64_t>(role->replicas.size()), std::memory_order_relaxed);
        } else if (role && gen == self->generation_) {
          self->c_not_master_.inc();
          log()->warn("redis {} is now a {}: finding the master again", self->target_.redacted(), to_string(role->role));
          self->fail_connection(gen, "no longer the master (ROLE " + std::string(to_string(role->role)) + ")");
        }
      }
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
