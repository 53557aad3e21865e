#include "berth/docker/client.hpp"
#include "berth/core/json.hpp"

#include <array>
#include <deque>
#include <limits>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "berth/core/logging.hpp"

namespace berth::docker {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using local = asio::local::stream_protocol;
using boost::system::error_code;
using ms = std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t header_limit = 64 * 1024;

core::error fail(std::string msg) { return core::make_error(core::errc::sandbox_unavailable, std::move(msg)); }

// Closes something (a socket) when a deadline passes; the close action owns what it closes, so a
// late timer can never touch freed memory. No deadline when d <= 0. The timer runs on the calling
// coroutine's executor (a strand when THREADS>1), so the close never races the socket's user.
class watchdog {
 public:
  watchdog(asio::any_io_executor ex, ms d, std::function<void()> on_expire)
      : timer_(std::move(ex)), fired_(std::make_shared<bool>(false)) {
    if (d.count() <= 0) return;
    timer_.expires_after(d);
    timer_.async_wait([f = fired_, act = std::move(on_expire)](error_code ec) {
      if (ec) return;
      *f = true;
      act();
    });
  }
  ~watchdog() { timer_.cancel(); }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  bool fired() const noexcept { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> fired_;
};

ms remaining(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<ms>(deadline - clock_type::now());
  return left.count() > 0 ? left : ms(1);
}

std::string connect_error(const std::string& path, const error_code& ec) {
  std::string hint;
  if (ec.value() == ENOENT) {
    hint = " (is dockerd running? check DOCKER_HOST)";
  } else if (ec.value() == EACCES) {
    hint = " (permission denied: run as root or add the user to the docker group)";
  } else if (ec == asio::error::connection_refused) {
    hint = " (dockerd is not accepting connections)";
  }
  return "docker: cannot connect to " + path + ": " + ec.message() + hint;
}

template <class Req>
void common_headers(Req& req, bool has_body) {
  req.set(bhttp::field::host, "docker");
  req.set(bhttp::field::user_agent, "berth/0.1");
  if (has_body) req.set(bhttp::field::content_type, "application/json");
}

}  // namespace

struct client::connection {
  explicit connection(asio::any_io_executor ex) : sock(std::move(ex)) {}
  local::socket sock;
  beast::flat_buffer buf;
};

struct client::shared {
  shared(asio::any_io_executor ex, std::size_t n) : slots(std::move(ex), n) {}
  std::mutex mu;
  std::vector<std::shared_ptr<connection>> idle;
  std::optional<api_version> version;
  // A counting semaphore: one buffered element per connection in use.
  asio::experimental::concurrent_channel<void(error_code)> slots;
  core::counter* requests = nullptr;
  core::counter* errors = nullptr;
  core::counter* timeouts = nullptr;
  core::counter* bad_events = nullptr;
};

namespace {

// Holds one connection slot; releases it on every path.
struct slot_guard {
  client::shared* s = nullptr;
  ~slot_guard() {
    if (s) s->slots.try_receive([](error_code) {});
  }
};

asio::awaitable<core::result<void>> connect(std::shared_ptr<client::connection> c, const std::string& path,
                                            ms timeout) {
  const asio::any_io_executor wd_ex = co_await asio::this_coro::executor;  // own statement: GCC 12
  watchdog wd(wd_ex, timeout, [c] {
    error_code ig;
    c->sock.close(ig);
  });
  auto [ec] = co_await c->sock.async_connect(local::endpoint(path), tuple_awaitable);
  if (wd.fired()) co_return fail("docker: connecting to " + path + " timed out after " + std::to_string(timeout.count()) + " ms");
  if (ec) co_return fail(connect_error(path, ec));
  co_return core::result<void>{};
}

// Sends the request that opens a long-lived stream (exec attach, events) and reads the response
// header, both within `timeout` (the watchdog closes the socket): the stream's own reads are not
// bounded, so this exchange must be. With read_refusal_body, a status other than 101/200 also has
// its (body_limit-bounded) body read within the same deadline: the daemon's reason is there.
struct header_exchange {
  error_code ec;
  bool timed_out = false;
};
template <class Request, class Parser>
asio::awaitable<header_exchange> write_and_read_header(std::shared_ptr<client::connection> c, Request& req,
                                                       Parser& parser, ms timeout, bool read_refusal_body) {
  header_exchange out;
  const asio::any_io_executor wd_ex = co_await asio::this_coro::executor;  // own statement: GCC 12
  watchdog wd(wd_ex, timeout, [c] {
    error_code ig;
    c->sock.close(ig);
  });
  auto [wec, wn] = co_await bhttp::async_write(c->sock, req, tuple_awaitable);
  (void)wn;
  out.ec = wec;
  if (!out.ec) {
    auto [rec, rn] = co_await bhttp::async_read_header(c->sock, c->buf, parser, tuple_awaitable);
    (void)rn;
    out.ec = rec;
  }
  if (!out.ec && read_refusal_body && parser.get().result_int() != 101 && parser.get().result_int() != 200) {
    auto [bec, bn] = co_await bhttp::async_read(c->sock, c->buf, parser, tuple_awaitable);
    (void)bec;  // the status already says it failed; the body only explains why
    (void)bn;
  }
  out.timed_out = wd.fired();
  co_return out;
}

}  // namespace

core::result<client_options> options_from_config(const core::config& cfg) {
  auto path = socket_path_from_host(cfg.docker_host);
  if (!path) return path.error();
  client_options o;
  o.socket_path = *path;
  return o;
}

client::client(asio::any_io_executor ex, client_options opts, core::metrics& metrics)
    : ex_(std::move(ex)), opts_(std::move(opts)), metrics_(metrics),
      shared_(std::make_shared<shared>(ex_, std::max<std::size_t>(1, opts_.max_connections))) {
  shared_->requests = &metrics_.get_counter("berth_docker_requests_total", "Docker Engine API requests sent");
  shared_->errors = &metrics_.get_counter("berth_docker_errors_total", "Docker Engine API calls that failed");
  shared_->timeouts = &metrics_.get_counter("berth_docker_timeouts_total", "Docker Engine API calls past their deadline");
  shared_->bad_events = &metrics_.get_counter("berth_docker_bad_events_total", "Unreadable lines on the /events stream");
}

client::~client() {
  std::lock_guard lk(shared_->mu);
  for (auto& c : shared_->idle) {
    error_code ig;
    c->sock.close(ig);
  }
  shared_->idle.clear();
}

std::optional<api_version> client::negotiated() const {
  std::lock_guard lk(shared_->mu);
  return shared_->version;
}

asio::awaitable<core::result<http_reply>> client::request(std::string method, std::string path, std::string body,
                                                          ms timeout) {
  co_return co_await call(std::move(method), std::move(path), std::move(body), timeout, true);
}

asio::awaitable<core::result<http_reply>> client::call(std::string method_in, std::string path_in, std::string body_in,
                                                       ms timeout, bool versioned_path) {
  using namespace asio::experimental::awaitable_operators;
  const std::string method = std::move(method_in);
  const std::string path = std::move(path_in);
  const std::string body = std::move(body_in);
  const auto deadline = clock_type::now() + timeout;
  const std::string what = method + " " + path.substr(0, path.find('?'));
  auto sh = shared_;

  std::string target = path;
  if (versioned_path) {
    auto v = co_await ensure_version();
    if (!v) co_return v.error();
    target = versioned(*v, path);
  }

  // Take a connection slot (bounded set), waiting within the deadline.
  slot_guard guard;
  if (!sh->slots.try_send(error_code{})) {
    asio::steady_timer t(ex_);
    t.expires_at(deadline);
    auto r = co_await (sh->slots.async_send(error_code{}, tuple_awaitable) || t.async_wait(tuple_awaitable));
    if (r.index() != 0 || std::get<0>(std::get<0>(r))) {
      sh->timeouts->inc();
      sh->errors->inc();
      co_return fail("docker: " + what + ": all " + std::to_string(opts_.max_connections) +
                     " connections busy for " + std::to_string(timeout.count()) + " ms");
    }
  }
  guard.s = sh.get();
  sh->requests->inc();

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<connection> c;
    if (attempt == 0) {  // a retry always opens a fresh connection
      std::lock_guard lk(sh->mu);
      if (!sh->idle.empty()) {
        c = std::move(sh->idle.back());
        sh->idle.pop_back();
      }
    }
    const bool reused = static_cast<bool>(c);
    if (!c) {
      c = std::make_shared<connection>(ex_);
      auto cr = co_await connect(c, opts_.socket_path, remaining(deadline));
      if (!cr) {
        sh->errors->inc();
        co_return cr.error();
      }
    }

    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    common_headers(req, !body.empty());
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(header_limit);
    parser.body_limit(opts_.max_body_bytes);
    error_code ec;
    bool timed_out = false;
    {
      const asio::any_io_executor wd_ex = co_await asio::this_coro::executor;  // own statement: GCC 12
      watchdog wd(wd_ex, remaining(deadline), [c] {
        error_code ig;
        c->sock.close(ig);
      });
      auto [wec, wn] = co_await bhttp::async_write(c->sock, req, tuple_awaitable);
      (void)wn;
      ec = wec;
      if (!ec) {
        auto [rec, rn] = co_await bhttp::async_read(c->sock, c->buf, parser, tuple_awaitable);
        (void)rn;
        ec = rec;
      }
      timed_out = wd.fired();
    }
    if (timed_out) {
      sh->timeouts->inc();
      sh->errors->inc();
      co_return fail("docker: " + what + " timed out after " + std::to_string(timeout.count()) + " ms");
    }
    if (ec) {
      // A kept-alive connection the daemon closed meanwhile: retry once on a fresh one. The others
      // kept alive beside it are most likely closed too (a daemon restart closes them all): they go.
      const bool stale = reused && attempt == 0 && !parser.got_some() &&
                         (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                          ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
      if (stale) {
        std::lock_guard lk(sh->mu);
        sh->idle.clear();
        continue;
      }
      sh->errors->inc();
      if (ec == bhttp::error::body_limit) co_return fail("docker: " + what + ": response larger than " + std::to_string(opts_.max_body_bytes) + " bytes");
      co_return fail("docker: " + what + ": " + ec.message());
    }
    auto res = parser.release();
    http_reply reply{res.result_int(), std::move(res.body())};
    if (res.keep_alive()) {
      std::lock_guard lk(sh->mu);
      if (sh->idle.size() < opts_.max_connections) sh->idle.push_back(std::move(c));
    }
    co_return reply;
  }
  sh->errors->inc();
  co_return fail("docker: " + what + ": connection closed by the daemon");
}

asio::awaitable<core::result<api_version>> client::ensure_version() {
  if (auto v = negotiated()) co_return *v;
  co_return co_await negotiate();
}

asio::awaitable<core::result<void>> client::ping() {
  auto r = co_await call("GET", "/_ping", "", opts_.call_timeout, false);
  if (!r) co_return r.error();
  if (r->status != 200) co_return fail("docker: /_ping answered " + std::to_string(r->status) + " " + daemon_message(r->body));
  co_return core::result<void>{};
}

asio::awaitable<core::result<version_info>> client::version() {
  auto r = co_await call("GET", "/version", "", opts_.call_timeout, false);
  if (!r) co_return r.error();
  if (r->status != 200) co_return fail("docker: /version answered " + std::to_string(r->status) + " " + daemon_message(r->body));
  co_return parse_version(r->body);
}

asio::awaitable<core::result<api_version>> client::negotiate() {
  if (auto p = co_await ping(); !p) co_return p.error();
  auto v = co_await version();
  if (!v) co_return v.error();
  auto chosen = negotiate_version(v->api_version, v->min_api_version);
  if (!chosen) {
    core::logger("docker")->error("docker: {}", chosen.error().message);
    co_return chosen.error();
  }
  {
    std::lock_guard lk(shared_->mu);
    shared_->version = *chosen;
  }
  core::logger("docker")->info("docker: using API v{} (daemon {} API {} min {})", chosen->to_string(),
                               core::log_prefix(v->engine_version, 32), core::log_prefix(v->api_version, 16),
                               core::log_prefix(v->min_api_version, 16));
  co_return *chosen;
}

namespace {
core::result<void> expect(op o, const core::result<http_reply>& r, std::string_view what) {
  if (!r) return r.error();
  if (is_success(o, r->status)) return {};
  return fail("docker: " + std::string(what) + ": " + std::to_string(r->status) + " " + daemon_message(r->body));
}
}  // namespace

asio::awaitable<core::result<nlohmann::json>> client::image_inspect(std::string image_in) {
  const std::string image = std::move(image_in);
  auto r = co_await call("GET", "/images/" + url_encode(image) + "/json", "", opts_.call_timeout, true);
  if (!r) co_return r.error();
  if (r->status == 404) co_return fail("docker: image '" + core::log_prefix(image, 128) + "' not found (build it with scripts/build-sandbox-image.sh)");
  if (r->status != 200) co_return fail("docker: image inspect: " + std::to_string(r->status) + " " + daemon_message(r->body));
  auto j = core::parse_json(r->body);
  if (j.is_discarded()) co_return fail("docker: image inspect answered non-JSON");
  // in_place: a json converts to almost anything, so the plain constructor is ambiguous.
  co_return core::result<nlohmann::json>(boost::system::in_place_value, std::move(j));
}

asio::awaitable<core::result<std::string>> client::create_container(container_spec spec_in) {
  const container_spec spec = std::move(spec_in);
  std::string path = "/containers/create";
  if (!spec.name.empty()) path += "?name=" + url_encode(spec.name);
  auto r = co_await call("POST", path, create_body(spec).dump(), opts_.call_timeout, true);
  if (!r) co_return r.error();
  if (r->status == 404) {
    co_return fail("docker: create: image '" + core::log_prefix(spec.image, 128) + "' not found (build it with scripts/build-sandbox-image.sh): " + daemon_message(r->body));
  }
  if (r->status != 201 && r->status != 200) {
    co_return fail("docker: create: " + std::to_string(r->status) + " " + daemon_message(r->body));
  }
  co_return parse_created_id(r->body);
}

asio::awaitable<core::result<void>> client::start_container(std::string id_in) {
  const std::string id = std::move(id_in);
  auto r = co_await call("POST", "/containers/" + url_encode(id) + "/start", "", opts_.call_timeout, true);
  co_return expect(op::start, r, "start");
}

asio::awaitable<core::result<void>> client::stop_container(std::string id_in, int timeout_s) {
  const std::string id = std::move(id_in);
  auto r = co_await call("POST", "/containers/" + url_encode(id) + "/stop?t=" + std::to_string(timeout_s), "",
                         opts_.call_timeout + ms(std::int64_t{timeout_s} * 1000) + opts_.stop_grace, true);
  co_return expect(op::stop, r, "stop");
}

asio::awaitable<core::result<void>> client::kill_container(std::string id_in, std::string signal_in) {
  const std::string id = std::move(id_in);
  const std::string sig = std::move(signal_in);
  auto r = co_await call("POST", "/containers/" + url_encode(id) + "/kill?signal=" + url_encode(sig), "",
                         opts_.call_timeout, true);
  co_return expect(op::kill, r, "kill");
}

asio::awaitable<core::result<void>> client::remove_container(std::string id_in, bool force) {
  const std::string id = std::move(id_in);
  auto r = co_await call("DELETE", "/containers/" + url_encode(id) + "?v=true&force=" + (force ? "true" : "false"), "",
                         opts_.call_timeout, true);
  // A removal already in progress (409) ends the same way as ours would.
  if (r && r->status == 409 && daemon_message(r->body).find("already in progress") != std::string::npos) {
    co_return core::result<void>{};
  }
  co_return expect(op::remove, r, "remove");
}

asio::awaitable<core::result<container_info>> client::inspect_container(std::string id) {
  auto found = co_await find_container(id);
  if (!found) co_return found.error();
  if (!*found) co_return fail("docker: inspect: 404 no such container " + id.substr(0, 12));
  co_return std::move(**found);
}

asio::awaitable<core::result<std::optional<container_info>>> client::find_container(std::string id_in) {
  const std::string id = std::move(id_in);
  auto r = co_await call("GET", "/containers/" + url_encode(id) + "/json", "", opts_.call_timeout, true);
  if (!r) co_return r.error();
  if (r->status == 404) co_return std::optional<container_info>{};
  if (r->status != 200) co_return fail("docker: inspect: " + std::to_string(r->status) + " " + daemon_message(r->body));
  auto info = parse_inspect(r->body);
  if (!info) co_return info.error();
  co_return std::optional<container_info>{std::move(*info)};
}

asio::awaitable<core::result<std::vector<container_info>>> client::list_containers(
    std::map<std::string, std::string> labels_in, bool all) {
  const auto labels = std::move(labels_in);
  std::string path = std::string("/containers/json?all=") + (all ? "true" : "false");
  if (!labels.empty()) path += "&filters=" + label_filters(labels);
  auto r = co_await call("GET", path, "", opts_.call_timeout, true);
  if (!r) co_return r.error();
  if (r->status != 200) co_return fail("docker: list: " + std::to_string(r->status) + " " + daemon_message(r->body));
  co_return parse_list(r->body);
}

asio::awaitable<core::result<wait_result>> client::wait_container(std::string id_in, ms timeout,
                                                                  std::string condition_in) {
  const std::string id = std::move(id_in);
  const std::string cond = std::move(condition_in);
  auto r = co_await call("POST", "/containers/" + url_encode(id) + "/wait?condition=" + url_encode(cond), "", timeout,
                         true);
  if (!r) co_return r.error();
  if (r->status != 200) co_return fail("docker: wait: " + std::to_string(r->status) + " " + daemon_message(r->body));
  co_return parse_wait(r->body);
}

asio::awaitable<core::result<std::string>> client::exec_create(std::string container_in, exec_spec spec_in) {
  const std::string id = std::move(container_in);
  const exec_spec spec = std::move(spec_in);
  auto r = co_await call("POST", "/containers/" + url_encode(id) + "/exec", exec_body(spec).dump(), opts_.call_timeout,
                         true);
  if (!r) co_return r.error();
  if (r->status != 201 && r->status != 200) {
    co_return fail("docker: exec create: " + std::to_string(r->status) + " " + daemon_message(r->body));
  }
  co_return parse_created_id(r->body);
}

asio::awaitable<core::result<exec_info>> client::exec_inspect(std::string exec_in) {
  const std::string id = std::move(exec_in);
  auto r = co_await call("GET", "/exec/" + url_encode(id) + "/json", "", opts_.call_timeout, true);
  if (!r) co_return r.error();
  if (r->status != 200) co_return fail("docker: exec inspect: " + std::to_string(r->status) + " " + daemon_message(r->body));
  co_return parse_exec_inspect(r->body);
}

// ---- hijacked exec stream ---------------------------------------------------------------------

struct exec_stream::impl {
  explicit impl(asio::any_io_executor ex) : sock(std::move(ex)) {}
  local::socket sock;
  std::string id;
  stream_demux demux;
  std::deque<stream_chunk> ready;
  bool eof = false;
  bool failed = false;
};

exec_stream::~exec_stream() { close(); }

const std::string& exec_stream::exec_id() const noexcept {
  static const std::string none;
  return impl_ ? impl_->id : none;
}

bool exec_stream::is_open() const noexcept { return impl_ && impl_->sock.is_open(); }

void exec_stream::close() {
  if (!impl_) return;
  error_code ig;
  impl_->sock.close(ig);
}

core::result<void> exec_stream::close_write() {
  if (!impl_ || !impl_->sock.is_open()) return fail("docker: exec stream is closed");
  error_code ec;
  impl_->sock.shutdown(local::socket::shutdown_send, ec);
  if (ec) return fail("docker: exec close-write: " + ec.message());
  return {};
}

asio::awaitable<core::result<void>> exec_stream::write(std::string data_in) {
  const std::string data = std::move(data_in);
  auto p = impl_;
  if (!p || !p->sock.is_open()) co_return fail("docker: exec stream is closed");
  auto [ec, n] = co_await asio::async_write(p->sock, asio::buffer(data), tuple_awaitable);
  (void)n;
  if (ec) co_return fail("docker: exec stdin write: " + ec.message());
  co_return core::result<void>{};
}

asio::awaitable<core::result<std::optional<stream_chunk>>> exec_stream::read(ms timeout) {
  auto p = impl_;
  if (!p) co_return fail("docker: exec stream is closed");
  std::array<char, 16384> tmp{};
  // Bounded: each pass either consumes bytes or ends; the socket read has the deadline.
  while (p->ready.empty()) {
    if (p->eof) co_return std::optional<stream_chunk>{};
    if (p->failed || !p->sock.is_open()) co_return fail("docker: exec stream is closed");
    error_code ec;
    std::size_t n = 0;
    bool timed_out = false;
    {
      const asio::any_io_executor wd_ex = co_await asio::this_coro::executor;  // own statement: GCC 12
      watchdog wd(wd_ex, timeout, [p] {
        error_code ig;
        p->sock.close(ig);
      });
      std::tie(ec, n) = co_await p->sock.async_read_some(asio::buffer(tmp), tuple_awaitable);
      timed_out = wd.fired();
    }
    if (timed_out) {
      p->failed = true;
      co_return fail("docker: exec output read timed out after " + std::to_string(timeout.count()) + " ms");
    }
    if (ec == asio::error::eof) {
      p->eof = true;
      if (!p->demux.at_boundary()) co_return fail("docker: exec stream ended inside a frame");
      continue;
    }
    if (ec) {
      p->failed = true;
      co_return fail("docker: exec output read: " + ec.message());
    }
    std::vector<stream_chunk> out;
    if (p->demux.feed(std::string_view(tmp.data(), n), out) != stream_demux::status::ok) {
      p->failed = true;
      co_return fail("docker: exec stream: " + std::string(to_string(p->demux.state())));
    }
    for (auto& c : out) p->ready.push_back(std::move(c));
  }
  stream_chunk c = std::move(p->ready.front());
  p->ready.pop_front();
  co_return std::optional<stream_chunk>{std::move(c)};
}

asio::awaitable<core::result<exec_stream>> client::exec_start(std::string exec_in) {
  const std::string id = std::move(exec_in);
  co_return co_await hijack("/exec/" + url_encode(id) + "/start", R"({"Detach":false,"Tty":false})", "exec start", id);
}

asio::awaitable<core::result<exec_stream>> client::attach(std::string container_in) {
  const std::string id = std::move(container_in);
  co_return co_await hijack("/containers/" + url_encode(id) + "/attach?stream=1&stdin=1&stdout=1&stderr=1", "",
                            "attach", id);
}

asio::awaitable<core::result<exec_stream>> client::hijack(std::string path_in, std::string body_in,
                                                          std::string what_in, std::string id_in) {
  const std::string path = std::move(path_in), body = std::move(body_in), what = std::move(what_in),
                    id = std::move(id_in);
  auto v = co_await ensure_version();
  if (!v) co_return v.error();
  auto c = std::make_shared<connection>(ex_);
  if (auto cr = co_await connect(c, opts_.socket_path, opts_.call_timeout); !cr) co_return cr.error();
  shared_->requests->inc();

  bhttp::request<bhttp::string_body> req{bhttp::verb::post, versioned(*v, path), 11};
  common_headers(req, !body.empty());
  req.set(bhttp::field::connection, "Upgrade");
  req.set(bhttp::field::upgrade, "tcp");
  req.body() = body;
  req.prepare_payload();

  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(64 * 1024);
  const auto [ec, timed_out] = co_await write_and_read_header(c, req, parser, opts_.call_timeout, true);
  const unsigned status = ec ? 0 : parser.get().result_int();
  if (status != 0 && status != 101 && status != 200) {
    shared_->errors->inc();
    co_return fail("docker: " + what + ": " + std::to_string(status) + " " + daemon_message(parser.get().body()));
  }
  if (timed_out) {
    shared_->timeouts->inc();
    shared_->errors->inc();
    co_return fail("docker: " + what + " timed out after " + std::to_string(opts_.call_timeout.count()) + " ms");
  }
  if (ec) {
    shared_->errors->inc();
    co_return fail("docker: " + what + ": " + ec.message());
  }
  auto p = std::make_shared<exec_stream::impl>(ex_);
  p->id = id;
  p->sock = std::move(c->sock);
  // Bytes that followed the response header already belong to the raw stream.
  if (c->buf.size() > 0) {
    std::vector<stream_chunk> out;
    const auto data = c->buf.data();
    if (p->demux.feed(std::string_view(static_cast<const char*>(data.data()), data.size()), out) !=
        stream_demux::status::ok) {
      co_return fail("docker: " + what + " stream: " + std::string(to_string(p->demux.state())));
    }
    for (auto& ch : out) p->ready.push_back(std::move(ch));
  }
  co_return exec_stream(std::move(p));
}

asio::awaitable<core::result<exec_output>> client::exec_run(std::string container_in, std::vector<std::string> cmd_in,
                                                            std::string stdin_in, ms timeout, std::string user) {
  const std::string container = std::move(container_in);
  const std::vector<std::string> cmd = std::move(cmd_in);
  const std::string input = std::move(stdin_in);
  const auto deadline = clock_type::now() + timeout;
  exec_spec spec;
  spec.cmd = cmd;
  spec.attach_stdin = true;
  spec.user = std::move(user);
  auto id = co_await exec_create(container, spec);
  if (!id) co_return id.error();
  auto st = co_await exec_start(*id);
  if (!st) co_return st.error();
  exec_stream s = std::move(*st);
  if (!input.empty()) {
    if (auto w = co_await s.write(input); !w) co_return w.error();
  }
  if (auto cw = s.close_write(); !cw) co_return cw.error();
  exec_output out;
  for (;;) {
    auto ch = co_await s.read(remaining(deadline));
    if (!ch) co_return ch.error();
    if (!*ch) break;
    auto& dst = (*ch)->stream == stream_kind::stderr_ ? out.err : out.out;
    if (out.out.size() + out.err.size() + (*ch)->data.size() > opts_.max_body_bytes) {
      co_return fail("docker: exec output larger than " + std::to_string(opts_.max_body_bytes) + " bytes");
    }
    dst += (*ch)->data;
  }
  s.close();
  // The exit code is recorded a moment after the output ends: re-inspect, bounded in count and time.
  asio::steady_timer t(ex_);
  for (int i = 0; i < 200; ++i) {
    auto info = co_await exec_inspect(*id);
    if (!info) co_return info.error();
    if (info->exit_code) {
      out.exit_code = *info->exit_code;
      co_return out;
    }
    if (clock_type::now() >= deadline) break;
    t.expires_after(ms(2));
    co_await t.async_wait(tuple_awaitable);
  }
  co_return fail("docker: exec " + core::log_prefix(*id, 12) + " has no exit code after its output ended");
}

// ---- /events ----------------------------------------------------------------------------------

struct event_stream::impl {
  explicit impl(asio::any_io_executor ex) : sock(std::move(ex)) {}
  local::socket sock;
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::buffer_body> parser;
  std::string line;
  std::deque<docker_event> ready;
  std::size_t max_line = 64 * 1024;
  core::counter* bad = nullptr;
};

event_stream::~event_stream() { close(); }

void event_stream::close() {
  if (!impl_) return;
  error_code ig;
  impl_->sock.close(ig);
}

asio::awaitable<core::result<docker_event>> event_stream::next() {
  auto p = impl_;
  if (!p) co_return fail("docker: event stream is closed");
  std::array<char, 8192> tmp{};
  while (p->ready.empty()) {
    if (!p->sock.is_open()) co_return fail("docker: event stream is closed");
    if (p->parser.is_done()) co_return fail("docker: the daemon ended the event stream");
    p->parser.get().body().data = tmp.data();
    p->parser.get().body().size = tmp.size();
    auto [ec, n] = co_await bhttp::async_read_some(p->sock, p->buf, p->parser, tuple_awaitable);
    (void)n;
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) co_return fail("docker: event stream: " + ec.message());
    const std::size_t got = tmp.size() - p->parser.get().body().size;
    p->line.append(tmp.data(), got);
    std::size_t start = 0;
    for (std::size_t nl; (nl = p->line.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view l(p->line.data() + start, nl - start);
      if (l.empty() || l == "\r") continue;
      auto ev = parse_event(l);
      if (ev) {
        p->ready.push_back(std::move(*ev));
      } else if (p->bad) {
        p->bad->inc();
      }
    }
    p->line.erase(0, start);
    if (p->line.size() > p->max_line) co_return fail("docker: event line longer than " + std::to_string(p->max_line) + " bytes");
  }
  docker_event ev = std::move(p->ready.front());
  p->ready.pop_front();
  co_return ev;
}

asio::awaitable<core::result<event_stream>> client::events(std::map<std::string, std::string> labels_in) {
  const auto labels = std::move(labels_in);
  auto v = co_await ensure_version();
  if (!v) co_return v.error();
  auto c = std::make_shared<connection>(ex_);
  if (auto cr = co_await connect(c, opts_.socket_path, opts_.call_timeout); !cr) co_return cr.error();
  shared_->requests->inc();
  auto p = std::make_shared<event_stream::impl>(ex_);
  p->max_line = opts_.max_event_line;
  p->bad = shared_->bad_events;
  p->parser.header_limit(header_limit);
  p->parser.body_limit((std::numeric_limits<std::uint64_t>::max)());
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get,
                                        versioned(*v, "/events?filters=" + label_filters(labels, {{"type", {"container"}}})), 11};
  common_headers(req, false);
  const auto [ec, timed_out] = co_await write_and_read_header(c, req, p->parser, opts_.call_timeout, false);
  if (timed_out) co_return fail("docker: /events timed out after " + std::to_string(opts_.call_timeout.count()) + " ms");
  if (ec) co_return fail("docker: /events: " + ec.message());
  if (p->parser.get().result_int() != 200) {
    co_return fail("docker: /events answered " + std::to_string(p->parser.get().result_int()));
  }
  p->sock = std::move(c->sock);
  p->buf = std::move(c->buf);
  co_return event_stream(std::move(p));
}

}  // namespace berth::docker
