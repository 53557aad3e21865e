#include "berth/engineio/server.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "readiness_hub.hpp"

namespace berth::engineio {

namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
// Per-thread buffers: reads land in one and are decoded, outbound frames are assembled in
// another and written, before the next suspension, so idle sockets own no buffer. Reached
// through non-inlined functions: a coroutine may resume on another thread (THREADS > 1) and
// must not reuse a thread_local address computed before it suspended.
[[gnu::noinline]] std::array<char, 64 * 1024>& read_scratch() {
  thread_local std::array<char, 64 * 1024> buf;
  return buf;
}
[[gnu::noinline]] std::string& write_scratch() {
  thread_local std::string buf;
  return buf;
}
[[gnu::noinline]] std::vector<ws_message>& message_scratch() {
  thread_local std::vector<ws_message> v;
  return v;
}
[[gnu::noinline]] std::vector<packet>& delivered_scratch() {
  thread_local std::vector<packet> v;
  return v;
}

constexpr core::log_task_failure log_failure{"engineio"};

// The websocket close code (and a short reason the client sees) for why the server closes.
ws_close_code close_code_for(close_reason r) {
  switch (r) {
    case close_reason::parse_error: return ws_close_code::protocol_error;
    case close_reason::buffer_overflow: return ws_close_code::too_big;
    case close_reason::control_overflow:
    case close_reason::policy_violation: return ws_close_code::policy_violation;
    case close_reason::overloaded: return ws_close_code::try_again_later;
    default: return ws_close_code::normal;
  }
}
std::string_view close_text_for(close_reason r) {
  switch (r) {
    case close_reason::buffer_overflow:
    case close_reason::control_overflow:
    case close_reason::policy_violation:
    case close_reason::overloaded: return to_string(r);
    default: return {};
  }
}

core::ip_address peer_address(http::connection_context& ctx) {
  boost::system::error_code ec;
  auto ep = ctx.stream.socket().remote_endpoint(ec);
  if (ec) return {};
  return core::parse_ip(ep.address().to_string()).value_or(core::ip_address{});
}

bool would_block(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

// One send or recv that never waits (MSG_DONTWAIT), whatever mode Asio has put the socket in.
std::size_t send_now(tcp::socket& sock, asio::const_buffer b, boost::system::error_code& ec) {
  const auto n = ::send(sock.native_handle(), b.data(), b.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    ec.assign(errno, boost::system::system_category());
    return 0;
  }
  ec.clear();
  return static_cast<std::size_t>(n);
}
std::size_t recv_now(tcp::socket& sock, asio::mutable_buffer b, boost::system::error_code& ec) {
  const auto n = ::recv(sock.native_handle(), b.data(), b.size(), MSG_DONTWAIT);
  if (n < 0) {
    ec.assign(errno, boost::system::system_category());
    return 0;
  }
  ec = n == 0 && b.size() > 0 ? boost::system::error_code(asio::error::eof) : boost::system::error_code();
  return static_cast<std::size_t>(n);
}
}  // namespace

// ---------------------------------------------------------------- session

session::session(server& srv, strand_type strand, transport_kind kind, handshake_info info)
    : server_(srv),
      strand_(std::move(strand)),
      info_(std::make_shared<const handshake_info>(std::move(info))),
      fsm_(srv.opts_.session, kind, clock::now()),
      timer_(strand_) {}

// When the session ends: its share of the server's total goes back. (Not in a destructor: a
// session can outlive its server at shutdown, in handlers the io_context still holds.)
void session::release_accounting() {
  if (accounted_ != 0) server_.buffered_.fetch_sub(static_cast<std::int64_t>(accounted_), std::memory_order_relaxed);
  accounted_ = 0;
}

std::size_t session::sync_accounting() {
  if (finished_) return 0;
  const std::size_t inbound = inbound_buffered_ + (handler_ ? handler_->buffered_bytes() : 0);
  const std::size_t total = inbound + fsm_.outbound_bytes() + wbuf_.size() + ws_control_.size();
  if (total != accounted_) {
    server_.buffered_.fetch_add(static_cast<std::int64_t>(total) - static_cast<std::int64_t>(accounted_),
                                std::memory_order_relaxed);
    accounted_ = total;
  }
  return inbound;
}

void session::enforce_buffer_limits() {
  const std::size_t inbound = sync_accounting();
  const bool inbound_grew = inbound > inbound_accounted_;
  inbound_accounted_ = inbound;
  if (fsm_.closed()) return;
  const auto& opts = server_.opts_;
  if (opts.session.max_buffered_bytes != 0 && accounted_ > opts.session.max_buffered_bytes) {
    server_.buffer_overflows_.inc();
    core::logger("engineio")->warn("sid={} closed: holds {} bytes ({} inbound: {} partial frames, {} attachments), over "
                                   "MAX_CONNECTION_BUFFER_BYTES={}",
                                   id(), accounted_, inbound, inbound_buffered_, inbound - inbound_buffered_,
                                   opts.session.max_buffered_bytes);
    fsm_.close(close_reason::buffer_overflow);
    return;
  }
  // Over the process budget, only growth that the client drives is refused (what the server
  // queues for a client stays bounded by that client's own limit), and only past one read's
  // worth: a small message that happens to straddle two reads is no reason to drop a client.
  constexpr std::size_t inbound_grace = 64 * 1024;
  if (inbound_grew && inbound > inbound_grace && opts.max_process_buffered_bytes != 0 &&
      server_.buffered_bytes() > opts.max_process_buffered_bytes) {
    server_.overload_closes_.inc();
    server_.warn_throttled(server_.overload_log_,
                           "sid=" + id() + " closed: the process buffers " + std::to_string(server_.buffered_bytes()) +
                               " bytes, over MAX_PROCESS_BUFFER_BYTES=" + std::to_string(opts.max_process_buffered_bytes) +
                               ", and this connection wanted to buffer more (" + std::to_string(inbound) + " inbound)");
    fsm_.close(close_reason::overloaded);
  }
}

bool session::queue_pong(std::string_view payload) {
  if (ws_control_.size() + payload.size() + 2 > server_.opts_.session.max_control_bytes) return false;
  append_ws_frame(ws_control_, ws_opcode::pong, payload);
  return true;
}

void session::send(packet p) {
  if (strand_.running_in_this_thread()) return send_on_strand(std::move(p));
  asio::dispatch(strand_, [self = shared_from_this(), p = std::move(p)]() mutable { self->send_on_strand(std::move(p)); });
}

void session::send_on_strand(packet p) {
  if (!fsm_.send(std::move(p)) && fsm_.reason() == close_reason::outbound_overflow) {
    server_.overflows_.inc();
    core::logger("engineio")->warn("sid={} closed: outbound queue over {} bytes", id(), server_.opts_.session.max_outbound_bytes);
  }
  wake();
}

void session::close(close_reason reason) {
  asio::dispatch(strand_, [self = shared_from_this(), reason] {
    self->fsm_.close(reason);
    self->wake();
  });
}

void session::wake() {
  // Once per batch while the reader dispatches (it wakes us again at the end), not per packet.
  if (!deferring_ && !finished_) enforce_buffer_limits();
  if (poll_waiter_ && fsm_.poll_ready()) poll_waiter_->cancel();
  if (driver_) {
    timer_.cancel();  // run() recomputes what to do
    return;
  }
  if (deferring_ || closing_ || !ws_) return;
  flush();
  if (fsm_.closed()) {
    // Wake the reader (parked in its read) to run the close sequence. A write in flight that
    // carries what a server close owes the client finishes first (on_written wakes us again).
    const bool owed = fsm_.reason() == close_reason::server_close || fsm_.reason() == close_reason::server_shutdown;
    if (!writing_ || !owed) {
      boost::system::error_code ec;
      ws_->cancel(ec);
      if (ws_readable_) ws_readable_->cancel();
    }
    return;
  }
  arm_timer();
}

void session::flush() {
  if (!ws_ || writing_) return;
  auto& out = write_scratch();
  out.clear();
  if (!ws_control_.empty()) {
    out += ws_control_;
    ws_control_ = std::string();
  }
  fsm_.append_ws_frames(out);
  if (out.empty()) return;
  // Most writes complete here, without an async operation.
  boost::system::error_code ec;
  const auto n = send_now(*ws_, asio::buffer(out), ec);
  if (ec && !would_block(ec)) {
    fsm_.close(close_reason::transport_close);
  } else if (n < out.size()) {
    wbuf_.assign(out, n, std::string::npos);
    writing_ = true;
    asio::async_write(*ws_, asio::buffer(wbuf_), [self = shared_from_this()](boost::system::error_code wec, std::size_t) {
      self->on_written(wec);
    });
  }
  if (out.capacity() > 256 * 1024) out = std::string();  // a large message: do not keep its buffer per thread
  sync_accounting();
}

void session::on_written(boost::system::error_code ec) {
  writing_ = false;
  wbuf_ = std::string();
  if (write_waiter_) write_waiter_->cancel();
  if (closing_) return;
  if (ec) fsm_.close(close_reason::transport_close);
  wake();
}

void session::arm_timer() {
  const auto at = fsm_.next_deadline();
  // Deadlines mostly move later (a pong, traffic): then the armed wait just fires early and
  // on_heartbeat re-arms, instead of a cancel and a new wait per pong or message.
  if (timer_armed_ && timer_at_ <= at) return;
  timer_armed_ = true;
  timer_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->on_heartbeat();
  });
}

void session::on_heartbeat() {
  timer_armed_ = false;
  if (driver_ || closing_ || fsm_.closed()) return;
  fsm_.on_timer(clock::now());
  if (fsm_.reason() == close_reason::ping_timeout) {
    server_.ping_timeouts_.inc();
    core::logger("engineio")->debug("sid={} ping timeout", id());
  }
  wake();
  fsm_.shrink();  // idle between pings: drop the outbound queue's storage
}

// The probe broke before the upgrade completed: the session stays on polling.
void session::fail_upgrade() {
  close_probe();
  fsm_.upgrade_failed();
  wake();
}

void session::close_probe() {
  if (probe_readable_) probe_readable_->cancel();  // the probe's reader is parked, not in a socket operation
  probe_readable_.reset();
  if (!probe_) return;
  boost::system::error_code ec;
  probe_->shutdown(tcp::socket::shutdown_both, ec);
  probe_->close(ec);
  probe_.reset();
}

void session::deliver(std::vector<packet>& delivered) {
  for (auto& p : delivered) {
    if (!handler_) break;
    // Once the server closed the session (a violation, a flood), the rest of a batch (a polling
    // POST may carry thousands of packets) is not processed; what the client sent before its
    // own close packet still is.
    if (fsm_.closed() && fsm_.reason() != close_reason::transport_close) break;
    handler_->on_message(std::move(p));
  }
  delivered.clear();
}

// Static coroutines with shared_ptr parameters: never capturing lambdas (C++ Core Guidelines CP.51).
asio::awaitable<void> session::start(std::shared_ptr<session> s, std::shared_ptr<tcp::socket> ws,
                                     std::shared_ptr<std::string> initial) {
  if (ws) {
    s->ws_ = ws;
    s->fsm_.send(packet{packet_type::open, session_fsm::handshake_json(s->id(), false, s->server_.opts_.session), false});
  } else {
    s->driver_ = true;
  }
  s->handler_ = s->server_.factory_(s);
  if (ws) {
    s->wake();  // the open packet, and the first heartbeat deadline
    asio::co_spawn(s->strand_, s->ws_read_loop(ws, initial, false), log_failure);
  } else {
    asio::co_spawn(s->strand_, s->run(), log_failure);
  }
  co_return;
}

asio::awaitable<void> session::start_probe(std::shared_ptr<session> s, std::shared_ptr<tcp::socket> sock,
                                           std::shared_ptr<std::string> initial) {
  if (!s->fsm_.can_upgrade()) {
    // Already upgraded, closed, or another probe running: refuse this socket only.
    core::logger("engineio")->debug("sid={} upgrade refused (already upgraded or upgrading)", s->id());
    std::string bye;
    append_ws_close(bye, ws_close_code::policy_violation);
    co_await asio::async_write(*sock, asio::buffer(bye), use_tuple);
    boost::system::error_code ec;
    sock->shutdown(tcp::socket::shutdown_both, ec);
    sock->close(ec);
    co_return;
  }
  s->fsm_.upgrade_started(clock::now());
  s->probe_ = sock;
  s->wake();  // the driver now also watches the upgrade deadline
  asio::co_spawn(s->strand_, s->ws_read_loop(sock, initial, true), log_failure);
}

// Drives a polling session: heartbeat, releasing GETs, the close packet owed to a polling
// client. Once upgraded it hands over to the websocket reader and the timer wait (wake()).
asio::awaitable<void> session::run() {
  auto self = shared_from_this();
  for (;;) {
    if (ws_) {
      driver_ = false;
      timer_armed_ = false;
      wake();
      co_return;
    }
    if (fsm_.closed()) break;
    timer_.expires_at(fsm_.next_deadline());
    co_await timer_.async_wait(use_tuple);
    if (ws_) continue;
    const bool was_upgrading = fsm_.upgrading();
    fsm_.on_timer(clock::now());
    if (fsm_.reason() == close_reason::ping_timeout) {
      server_.ping_timeouts_.inc();
      core::logger("engineio")->debug("sid={} ping timeout", id());
    }
    if (was_upgrading && !fsm_.upgrading() && fsm_.transport() == transport_kind::polling) close_probe();
    if (poll_waiter_ && fsm_.poll_ready()) poll_waiter_->cancel();
  }
  // Closed. A polling client still owed the close packet gets one more GET to fetch it.
  if (fsm_.close_packet_owed() && fsm_.transport() == transport_kind::polling) {
    if (poll_waiter_) poll_waiter_->cancel();
    timer_.expires_after(server_.opts_.session.ping_timeout);
    while (fsm_.close_packet_owed()) {
      auto [ec] = co_await timer_.async_wait(use_tuple);
      if (!ec) break;  // deadline: give up on it
    }
  }
  if (poll_waiter_) poll_waiter_->cancel();
  close_probe();
  finished_ = true;
  release_accounting();
  server_.remove(id());
  if (auto h = std::move(handler_)) h->on_close(fsm_.reason());
}

asio::awaitable<std::pair<unsigned, std::string>> session::poll_get() {
  auto self = shared_from_this();
  if (finished_ || (fsm_.closed() && !fsm_.close_packet_owed()))
    co_return std::pair{400u, error_body(http_error::unknown_sid)};
  if (fsm_.closed()) {  // the last GET of a server-closed session fetches the close packet
    auto body = fsm_.take_polling_body();
    wake();
    co_return std::pair{200u, body};
  }
  switch (fsm_.on_poll_get()) {
    case poll_get_result::duplicate:
      server_.protocol_errors_.inc();
      core::logger("engineio")->debug("sid={} closed: concurrent polling requests", id());
      wake();
      co_return std::pair{400u, std::string()};
    case poll_get_result::not_polling:
      co_return std::pair{400u, error_body(http_error::bad_request)};
    case poll_get_result::respond_now:
      break;
    case poll_get_result::wait: {
      asio::steady_timer waiter(strand_, asio::steady_timer::time_point::max());
      poll_waiter_ = &waiter;
      co_await waiter.async_wait(use_tuple);
      poll_waiter_ = nullptr;
      break;
    }
  }
  auto body = fsm_.take_polling_body();
  wake();  // the driver may be waiting for this packet to be delivered
  co_return std::pair{200u, std::move(body)};
}

asio::awaitable<std::pair<unsigned, std::string>> session::poll_post(std::shared_ptr<std::string> body_ptr, bool binary_body,
                                                                    bool too_large) {
  auto self = shared_from_this();
  const std::string& body = *body_ptr;
  if (fsm_.closed()) co_return std::pair{400u, error_body(http_error::unknown_sid)};
  if (too_large || binary_body) {
    server_.protocol_errors_.inc();
    core::logger("engineio")->debug("sid={} closed: {}", id(), too_large ? "payload too large" : "binary POST body");
    fsm_.close(close_reason::transport_error);
    wake();
    co_return std::pair{too_large ? 413u : 400u, std::string()};
  }
  std::vector<packet> delivered;
  auto r = fsm_.on_post(body, delivered, clock::now());
  deliver(delivered);
  if (r == post_result::bad_packet) {
    server_.protocol_errors_.inc();
    core::logger("engineio")->debug("sid={} closed: invalid packet '{}'", id(), core::log_prefix(body, 32));
  }
  if (r == post_result::not_polling) co_return std::pair{400u, error_body(http_error::bad_request)};
  wake();
  co_return std::pair{200u, std::string("ok")};
}

asio::awaitable<void> session::ws_read_loop(std::shared_ptr<tcp::socket> sock, std::shared_ptr<std::string> initial_bytes,
                                           bool probe) {
  auto self = shared_from_this();
  std::string initial = std::move(*initial_bytes);
  initial_bytes.reset();
  websocket_decoder decoder(server_.opts_.session.max_payload);
  boost::system::error_code ec;
  std::string_view chunk = initial;
  // Parked readers own no buffer and no Asio operation: the hub wakes us when the socket has
  // data, then one recv into the per-thread buffer takes what is there.
  if (probe && sock != probe_) co_return;  // the probe was closed before this reader started
  auto readable = server_.hub_->watch(sock->native_handle(), strand_);
  if (!readable) {
    core::logger("engineio")->warn("sid={} websocket dropped: epoll registration failed: {}", id(), std::strerror(errno));
    if (!probe) {
      co_await ws_close();
    } else if (sock == probe_) {
      fail_upgrade();
    }
    co_return;
  }
  (probe ? probe_readable_ : ws_readable_) = readable;
  for (;;) {
    if (!probe && fsm_.closed()) break;
    if (chunk.empty()) {
      if (!readable->maybe_readable()) {
        auto [wec] = co_await readable->async_wait(use_tuple);
        // wake() cancels the wait to have us close; close_probe() to end a probe.
        if (wec && (probe ? sock != probe_ : fsm_.closed())) break;
        continue;
      }
      readable->set_maybe_readable(false);
      auto& buf = read_scratch();
      const auto n = recv_now(*sock, asio::buffer(buf), ec);
      if (ec) {
        if (would_block(ec)) continue;
        core::logger("engineio")->debug("sid={} websocket read ended: {}", id(), ec.message());
        break;
      }
      // A full buffer may have left more behind; a short read drained the socket, and the next
      // arrival is a new readiness event.
      if (n == buf.size()) readable->set_maybe_readable(true);
      chunk = std::string_view(buf.data(), n);
    }
    // Everything below runs without suspending: the per-thread vectors stay ours.
    auto& messages = message_scratch();
    auto& delivered = delivered_scratch();
    messages.clear();
    auto code = decoder.feed(chunk, messages);
    if (!probe) inbound_buffered_ = decoder.buffered_bytes();
    chunk = {};
    if (!initial.empty()) {
      initial.clear();
      initial.shrink_to_fit();
    }
    deferring_ = !probe;  // replies to this read go out in one write after it
    bool abandon = false;
    for (auto& m : messages) {
      if (fsm_.closed() && !probe) break;
      switch (m.op) {
        case ws_opcode::ping:
          if (!queue_pong(m.data)) {
            server_.control_overflows_.inc();
            core::logger("engineio")->warn("sid={} closed: {} bytes of pongs owed and unread (the peer pings faster than it reads)",
                                           id(), ws_control_.size());
            if (probe) {
              fail_upgrade();
              abandon = true;
              break;
            }
            fsm_.close(close_reason::control_overflow);
          }
          wake();
          break;
        case ws_opcode::pong:
          break;
        case ws_opcode::close:
          if (probe) {
            close_probe();
            abandon = true;
            break;
          }
          fsm_.close(close_reason::transport_close);
          wake();
          break;
        default:
          if (probe) {
            if (sock != probe_) {  // the upgrade was abandoned meanwhile
              abandon = true;
              break;
            }
            switch (fsm_.on_probe_frame(m.data)) {
              case session_fsm::probe_result::reply_probe: {
                wake();  // releases the pending GET with a noop
                // Eight bytes on a fresh socket: the kernel takes them at once.
                std::string frame;
                append_ws_frame(frame, ws_opcode::text, "3probe");
                const auto n = send_now(*sock, asio::buffer(frame), ec);
                if (ec || n != frame.size()) {
                  fail_upgrade();
                  abandon = true;
                }
                break;
              }
              case session_fsm::probe_result::upgraded:
                server_.upgrades_.inc();
                ws_ = std::move(probe_);
                ws_readable_ = std::move(probe_readable_);
                probe = false;
                wake();  // run() hands over: flushes what polling had queued, over the websocket now
                break;
              case session_fsm::probe_result::invalid:
                close_probe();
                wake();
                abandon = true;
                break;
            }
            break;
          }
          if (!fsm_.on_ws_frame(m.data, m.op == ws_opcode::binary, delivered, clock::now())) {
            server_.protocol_errors_.inc();
            core::logger("engineio")->debug("sid={} closed: invalid packet '{}'", id(), core::log_prefix(m.data, 32));
          }
          deliver(delivered);
          break;
      }
      if (abandon) break;
    }
    messages.clear();
    if (messages.capacity() > 16) messages = std::vector<ws_message>();
    if (delivered.capacity() > 16) delivered = std::vector<packet>();
    if (abandon) {
      deferring_ = false;
      break;
    }
    if (code != ws_close_code::none) {
      server_.protocol_errors_.inc();
      core::logger("engineio")->debug("sid={} websocket protocol error {}", id(), static_cast<int>(code));
      if (probe) {
        close_probe();
        break;
      }
      fsm_.close(close_reason::transport_error);
      append_ws_close(ws_control_, code);
    }
    deferring_ = false;
    wake();
  }
  server_.hub_->unwatch(*readable);
  if (probe) {
    if (sock == probe_) close_probe();
    co_return;
  }

  co_await ws_close();
}

// The websocket close sequence, run by the reader; its own coroutine so that the reader's
// frame, alive for the whole session, does not carry these locals.
asio::awaitable<void> session::ws_close() {
  boost::system::error_code ec;
  if (!fsm_.closed()) fsm_.close(close_reason::transport_close);
  deferring_ = false;
  flush();  // what a server close owes the client, if the socket takes it
  closing_ = true;
  timer_armed_ = false;
  timer_.cancel();
  if (writing_) {  // let a write in flight finish, within a second
    asio::steady_timer waiter(strand_, std::chrono::seconds(1));
    write_waiter_ = &waiter;
    co_await waiter.async_wait(use_tuple);
    write_waiter_ = nullptr;
    if (writing_) ws_->cancel(ec);
  }
  std::string bye = std::move(ws_control_);
  ws_control_ = std::string();
  if (!writing_) fsm_.append_ws_frames(bye);
  append_ws_close(bye, close_code_for(fsm_.reason()), close_text_for(fsm_.reason()));
  // Each step below is bounded by a 1 s deadline whose handler cancels the socket's operations
  // (one timer for the whole sequence, rather than a parallel group per step).
  arm_close_deadline();
  co_await asio::async_write(*ws_, asio::buffer(bye), use_tuple);
  // Read and drop what the peer is still sending (e.g. the rest of an oversized frame) before
  // closing: closing with unread data makes the kernel send a reset instead of our close frame.
  ws_->shutdown(tcp::socket::shutdown_send, ec);
  arm_close_deadline();
  for (int i = 0; i < 256; ++i) {
    auto [wec] = co_await ws_->async_wait(tcp::socket::wait_read, use_tuple);
    if (wec) break;  // the deadline (operation_aborted) or an error
    recv_now(*ws_, asio::buffer(read_scratch()), ec);  // 0 bytes is eof: an error here
    if (ec && !would_block(ec)) break;
  }
  timer_.cancel();
  ws_->close(ec);
  finished_ = true;
  release_accounting();
  server_.remove(id());
  if (auto h = std::move(handler_)) h->on_close(fsm_.reason());
}

void session::arm_close_deadline() {
  timer_.expires_after(std::chrono::seconds(1));  // replaces (cancels) a deadline armed before
  timer_.async_wait([ws = ws_](boost::system::error_code ec) {
    if (ec) return;
    boost::system::error_code cec;
    ws->cancel(cec);
  });
}

// ---------------------------------------------------------------- server

server::server(asio::io_context& ioc, server_options opts, core::metrics& metrics, handler_factory factory)
    : ioc_(ioc),
      opts_(std::move(opts)),
      metrics_(metrics),
      factory_(std::move(factory)),
      hub_(std::make_unique<detail::readiness_hub>(ioc)),
      opened_(metrics.get_counter("berth_engineio_sessions_opened_total", "Engine.IO sessions opened")),
      bad_requests_(metrics.get_counter("berth_engineio_bad_requests_total", "Engine.IO requests answered 4xx")),
      protocol_errors_(metrics.get_counter("berth_engineio_protocol_errors_total",
                                           "Engine.IO sessions closed for a protocol violation")),
      ping_timeouts_(metrics.get_counter("berth_engineio_ping_timeouts_total", "Engine.IO sessions closed by ping timeout")),
      overflows_(metrics.get_counter("berth_engineio_outbound_overflows_total",
                                     "Engine.IO sessions closed because the client did not read")),
      upgrades_(metrics.get_counter("berth_engineio_upgrades_total", "Polling sessions upgraded to websocket")),
      refused_address_rate_(metrics.get_counter("berth_engineio_sessions_refused_total",
                                                "New sessions refused (429/503)", "reason=\"address_rate\"")),
      refused_address_sessions_(metrics.get_counter("berth_engineio_sessions_refused_total",
                                                    "New sessions refused (429/503)", "reason=\"address_sessions\"")),
      refused_overloaded_(metrics.get_counter("berth_engineio_sessions_refused_total", "New sessions refused (429/503)",
                                              "reason=\"overloaded\"")),
      sid_address_mismatch_(metrics.get_counter("berth_engineio_sid_address_mismatch_total",
                                                "Requests with a session id from another client address (403)")),
      control_overflows_(metrics.get_counter("berth_engineio_control_overflows_total",
                                             "Websocket sessions closed: pongs owed piled up unread")),
      buffer_overflows_(metrics.get_counter("berth_engineio_buffer_overflows_total",
                                            "Sessions closed for holding more than MAX_CONNECTION_BUFFER_BYTES")),
      overload_closes_(metrics.get_counter("berth_engineio_overload_closes_total",
                                           "Sessions closed for buffering more inbound bytes while the process was over MAX_PROCESS_BUFFER_BYTES")) {
  if (opts_.per_address.new_sessions_per_minute > 0)
    new_session_buckets_ = std::make_unique<core::keyed_token_buckets>(
        opts_.per_address.new_sessions_per_minute / 60.0, opts_.per_address.new_sessions_per_minute,
        opts_.per_address.max_tracked_addresses);
  metrics_.add_gauge("berth_engineio_sessions", "Open Engine.IO sessions",
                     [this] { return static_cast<double>(session_count()); }, "path=\"" + opts_.path + "\"");
  metrics_.add_gauge("berth_engineio_buffered_bytes", "Bytes all Engine.IO sessions buffer (inbound and outbound)",
                     [this] { return static_cast<double>(buffered_bytes()); }, "path=\"" + opts_.path + "\"");
}

server::~server() = default;

void server::attach(http::server& http) {
  http.route_prefix(opts_.path, [this](http::request& req, http::connection_context& ctx) { return handle(req, ctx); });
}

std::size_t server::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<session> server::find(const std::string& sid) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  return it == sessions_.end() ? nullptr : it->second;
}

void server::remove(const std::string& sid) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  if (auto n = sessions_per_address_.find(it->second->info().address_key); n != sessions_per_address_.end())
    if (--n->second == 0) sessions_per_address_.erase(n);
  sessions_.erase(it);
}

void server::identify_client(const http::request& req, http::connection_context& ctx, handshake_info& info) const {
  const auto peer = peer_address(ctx);
  core::ip_address client = peer;
  if (!opts_.per_address.trusted_proxies.empty()) {
    std::vector<std::string_view> forwarded;
    auto [first, last] = req.equal_range("X-Forwarded-For");
    for (auto it = first; it != last && forwarded.size() < 16; ++it)
      forwarded.emplace_back(it->value().data(), it->value().size());
    client = core::resolve_client_address(peer, forwarded, opts_.per_address.trusted_proxies);
  }
  info.remote_address = client.to_string();
  info.address_key = client.limit_key();
}

void server::warn_throttled(core::log_limiter& limiter, const std::string& line) {
  std::uint64_t suppressed = 0;
  if (!limiter.allow(suppressed)) return;
  if (suppressed != 0)
    core::logger("engineio")->warn("{} ({} similar lines suppressed)", line, suppressed);
  else
    core::logger("engineio")->warn("{}", line);
}

bool server::same_client(const session& s, const handshake_info& info, std::string_view what) {
  if (s.info().address_key == info.address_key) return true;
  sid_address_mismatch_.inc();
  // The sid is a credential: a prefix names it well enough for the operator.
  warn_throttled(address_log_, "sid=" + core::log_prefix(s.id(), 6) + "... " + std::string(what) + " from " +
                                   info.remote_address + " refused: the session was opened from " +
                                   s.info().remote_address);
  return false;
}

std::optional<http::response> server::admit_new_session(http::request& req, const handshake_info& info) {
  auto refuse = [&](unsigned status, const char* code, const std::string& message, std::chrono::milliseconds retry) {
    auto res = http::json_response(status,
                                   std::string(R"({"code":")") + code + R"(","message":")" + message +
                                       R"(","retryAfterMs":)" + std::to_string(retry.count()) + "}",
                                   req.version());
    res.set(bhttp::field::retry_after, std::to_string((retry.count() + 999) / 1000));
    add_cors(req, res);
    return std::optional<http::response>(std::move(res));
  };
  if (opts_.max_process_buffered_bytes != 0 && buffered_bytes() > opts_.max_process_buffered_bytes) {
    refused_overloaded_.inc();
    warn_throttled(overload_log_, "new session from " + info.remote_address + " refused: the process buffers " +
                                      std::to_string(buffered_bytes()) + " bytes, over MAX_PROCESS_BUFFER_BYTES=" +
                                      std::to_string(opts_.max_process_buffered_bytes));
    return refuse(503, "SERVER_OVERLOADED", "Server overloaded, try again later", std::chrono::seconds(1));
  }
  const auto& limits = opts_.per_address;
  std::size_t open = 0;
  std::optional<std::chrono::milliseconds> wait;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sessions_per_address_.find(info.address_key); it != sessions_per_address_.end()) open = it->second;
    if (limits.max_sessions != 0 && open >= limits.max_sessions) {
      // refused below, outside the lock
    } else if (new_session_buckets_ && !new_session_buckets_->try_take(info.address_key, core::rate_clock::now())) {
      wait = new_session_buckets_->wait_time(info.address_key, core::rate_clock::now());
    } else {
      return std::nullopt;
    }
  }
  if (!wait) {
    refused_address_sessions_.inc();
    warn_throttled(address_log_, "new session from " + info.remote_address + " refused: " + std::to_string(open) +
                                     " sessions open from this address (MAX_ENGINEIO_SESSIONS_PER_ADDRESS=" +
                                     std::to_string(limits.max_sessions) + ")");
    return refuse(429, "TOO_MANY_SESSIONS", "Too many open sessions from this address", std::chrono::seconds(5));
  }
  refused_address_rate_.inc();
  warn_throttled(address_log_, "new session from " + info.remote_address +
                                   " refused: over NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE=" +
                                   std::to_string(static_cast<long long>(limits.new_sessions_per_minute)));
  return refuse(429, "RATE_LIMITED", "Too many new sessions from this address", *wait);
}

void server::close_all(close_reason reason) {
  std::vector<std::shared_ptr<session>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [_, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) s->close(reason);
}

std::shared_ptr<session> server::create(strand_type strand, transport_kind kind, handshake_info info) {
  info.sid = opts_.sid_prefix + core::random_token(15);
  auto s = std::make_shared<session>(*this, std::move(strand), kind, std::move(info));
  {
    std::lock_guard lock(mutex_);
    sessions_.emplace(s->id(), s);
    ++sessions_per_address_[s->info().address_key];
  }
  opened_.inc();
  return s;
}

void server::add_cors(http::request& req, http::response& res) {
  auto origin = req[bhttp::field::origin];
  if (auto allow = opts_.cors.allow_origin_header(std::string_view(origin.data(), origin.size()))) {
    res.set(bhttp::field::access_control_allow_origin, *allow);
    if (*allow != "*") {
      res.set(bhttp::field::access_control_allow_credentials, "true");
      res.set(bhttp::field::vary, "Origin");
    }
  }
}

http::response server::error_response(http::request& req, unsigned status, std::optional<http_error> e) {
  bad_requests_.inc();
  auto res = e ? http::json_response(status, error_body(*e), req.version())
               : http::text_response(status, "", "text/plain", req.version());
  add_cors(req, res);
  return res;
}

asio::awaitable<std::optional<http::response>> server::handle(http::request& req, http::connection_context& ctx) {
  auto [path, query_text] = http::split_target(std::string_view(req.target().data(), req.target().size()));
  if (path != opts_.path) co_return http::json_response(404, R"({"error":"not_found","message":"Not found"})");
  handshake_info info;
  info.query = http::parse_query(query_text);
  info.origin = std::string(req[bhttp::field::origin]);
  info.user_agent = std::string(req[bhttp::field::user_agent]);
  identify_client(req, ctx, info);

  auto host = req[bhttp::field::host];
  if (!opts_.cors.allows(info.origin, std::string_view(host.data(), host.size()))) {
    core::logger("engineio")->debug("origin '{}' refused", core::log_prefix(info.origin));
    co_return error_response(req, 403, http_error::forbidden);
  }
  if (req.method() == bhttp::verb::options) {
    http::response res{bhttp::status::no_content, req.version()};
    add_cors(req, res);
    res.set(bhttp::field::access_control_allow_methods, "GET,HEAD,PUT,PATCH,POST,DELETE");
    if (auto h = req[bhttp::field::access_control_request_headers]; !h.empty())
      res.set(bhttp::field::access_control_allow_headers, h);
    res.prepare_payload();
    co_return res;
  }
  auto q = [&](const char* k) -> std::string {
    auto it = info.query.find(k);
    return it == info.query.end() ? std::string() : it->second;
  };
  if (q("EIO") != "4") co_return error_response(req, 400, http_error::unsupported_protocol_version);
  const auto transport = q("transport");
  if (transport != "polling" && transport != "websocket") co_return error_response(req, 400, http_error::unknown_transport);
  const auto sid = q("sid");
  const bool upgrade = boost::beast::websocket::is_upgrade(req);

  if (transport == "websocket") {
    if (!upgrade || req.method() != bhttp::verb::get) co_return error_response(req, 400, http_error::bad_request);
    co_return co_await handle_websocket(req, ctx, std::move(info), sid);
  }
  if (upgrade) co_return error_response(req, 400, http_error::bad_request);

  auto reply = [&](unsigned status, std::string body, const char* type) {
    auto res = http::text_response(status, std::move(body), type, req.version());
    res.set(bhttp::field::cache_control, "no-store");
    add_cors(req, res);
    if (status >= 400) bad_requests_.inc();
    return res;
  };
  if (sid.empty()) {
    if (req.method() != bhttp::verb::get) co_return error_response(req, 400, http_error::bad_handshake_method);
    if (auto refused = admit_new_session(req, info)) co_return std::move(*refused);
    auto strand = asio::make_strand(ioc_);
    auto s = create(strand, transport_kind::polling, std::move(info));
    auto body = "0" + session_fsm::handshake_json(s->id(), true, opts_.session);
    co_await asio::co_spawn(s->strand_, session::start(s, nullptr, nullptr), asio::use_awaitable);
    co_return reply(200, std::move(body), "text/plain; charset=UTF-8");
  }
  auto s = find(sid);
  if (!s) co_return error_response(req, 400, http_error::unknown_sid);
  // Until the upgrade the sid is the session's only credential: it is honoured only from the
  // client address that opened the session.
  if (!same_client(*s, info, "polling request")) co_return error_response(req, 403, http_error::forbidden);
  if (req.method() == bhttp::verb::get) {
    auto [status, body] = co_await asio::co_spawn(s->strand_, s->poll_get(), asio::use_awaitable);
    if (status == 200) co_return reply(200, std::move(body), "text/plain; charset=UTF-8");
    co_return body.empty() ? reply(status, "", "text/plain") : error_response(req, status, http_error::unknown_sid);
  }
  if (req.method() == bhttp::verb::post) {
    const bool too_large = ctx.body_too_large;
    const auto type = req[bhttp::field::content_type];
    const bool binary_body = type.starts_with("application/octet-stream");
    auto [status, body] =
        co_await asio::co_spawn(s->strand_, s->poll_post(std::make_shared<std::string>(std::move(req.body())), binary_body, too_large), asio::use_awaitable);
    if (status == 200) co_return reply(200, std::move(body), "text/html");
    if (body.empty()) co_return reply(status, "", "text/plain");
    auto res = http::json_response(status, body, req.version());
    add_cors(req, res);
    co_return res;
  }
  co_return reply(500, "", "text/plain");
}

asio::awaitable<std::optional<http::response>> server::handle_websocket(http::request& req, http::connection_context& ctx,
                                                                       handshake_info info, const std::string& sid) {
  std::shared_ptr<session> existing;
  if (!sid.empty()) {
    existing = find(sid);
    if (!existing) co_return error_response(req, 400, http_error::unknown_sid);
  }
  auto key = req[bhttp::field::sec_websocket_key];
  if (key.empty() || req[bhttp::field::sec_websocket_version] != "13")
    co_return error_response(req, 400, http_error::bad_request);
  if (existing) {
    // An upgrade probe takes over the session's transport: only from the address that opened it
    // (a stolen sid used elsewhere gets 403 and the session carries on undisturbed).
    if (!same_client(*existing, info, "upgrade probe")) co_return error_response(req, 403, http_error::forbidden);
  } else if (auto refused = admit_new_session(req, info)) {
    co_return std::move(*refused);
  }
  std::string accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                       websocket_accept_key(std::string_view(key.data(), key.size())) + "\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(ctx.stream, asio::buffer(accept), use_tuple);
  ctx.taken = true;
  if (wec) co_return std::nullopt;
  // Bytes the client sent right after its handshake are already in the HTTP buffer.
  auto initial = std::make_shared<std::string>(static_cast<const char*>(ctx.buffer.data().data()), ctx.buffer.size());
  ctx.buffer.consume(ctx.buffer.size());
  tcp::socket raw = ctx.stream.release_socket();
  boost::system::error_code ec;
  const auto protocol = raw.local_endpoint(ec).protocol();
  if (ec) co_return std::nullopt;

  if (!existing) {
    auto* own = raw.get_executor().target<strand_type>();
    auto s = create(own ? *own : asio::make_strand(ioc_), transport_kind::websocket, std::move(info));
    auto sock = std::make_shared<tcp::socket>(s->strand_, protocol, raw.release());
    co_await asio::co_spawn(s->strand_, session::start(s, sock, initial), asio::use_awaitable);
    co_return std::nullopt;
  }

  // An upgrade probe for a polling session; it moves onto that session's strand.
  auto sock = std::make_shared<tcp::socket>(existing->strand_, protocol, raw.release());
  co_await asio::co_spawn(existing->strand_, session::start_probe(existing, sock, initial), asio::use_awaitable);
  co_return std::nullopt;
}

}  // namespace berth::engineio
