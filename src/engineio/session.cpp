// The session's core, whatever its transport: send and close from any thread, the heartbeat,
// writing out what the state machine owes a websocket, and the per-connection and per-process
// buffer budgets. The transports are websocket_transport.cpp and polling_transport.cpp.
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/write.hpp>

#include "berth/core/logging.hpp"
#include "berth/engineio/server.hpp"
#include "readiness_hub.hpp"
#include "socket_ops.hpp"

namespace berth::engineio {

using tcp = asio::ip::tcp;

namespace detail {
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

bool would_block(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

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
}  // namespace detail

session::session(server& srv, strand_type strand, transport_kind kind, handshake_info info)
    : server_(srv),
      strand_(std::move(strand)),
      info_(std::make_shared<const handshake_info>(std::move(info))),
      fsm_(srv.opts_.session, kind, clock::now()),
      phase_(kind == transport_kind::polling ? phase::polling : phase::websocket),
      timer_(strand_) {}

std::size_t session::sync_accounting() {
  if (phase_ == phase::finished) return 0;
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
  if (!deferring_ && phase_ != phase::finished) enforce_buffer_limits();
  if (poll_waiter_ && fsm_.poll_ready()) poll_waiter_->cancel();
  if (phase_ == phase::polling) {
    timer_.cancel();  // run() recomputes what to do
    return;
  }
  if (deferring_ || phase_ != phase::websocket || !ws_) return;
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
  auto& out = detail::write_scratch();
  out.clear();
  if (!ws_control_.empty()) {
    out += ws_control_;
    ws_control_ = std::string();
  }
  fsm_.append_ws_frames(out);
  if (out.empty()) return;
  // Most writes complete here, without an async operation.
  boost::system::error_code ec;
  const auto n = detail::send_now(*ws_, asio::buffer(out), ec);
  if (ec && !detail::would_block(ec)) {
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
  if (phase_ != phase::websocket) return;  // the close sequence owns the socket now
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
  if (phase_ != phase::websocket || fsm_.closed()) return;
  fsm_.on_timer(clock::now());
  count_ping_timeout();
  wake();
  fsm_.shrink();  // idle between pings: drop the outbound queue's storage
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

asio::awaitable<void> session::start(std::shared_ptr<session> s, std::shared_ptr<tcp::socket> ws,
                                     std::shared_ptr<std::string> initial) {
  if (ws) {
    s->ws_ = ws;
    s->fsm_.send(packet{packet_type::open, session_fsm::handshake_json(s->id(), false, s->server_.opts_.session), false});
  }
  s->handler_ = s->server_.factory_(s);
  if (ws) {
    s->wake();  // the open packet, and the first heartbeat deadline
    s->start_reading(std::move(ws), *initial, false);
  } else {
    asio::co_spawn(s->strand_, s->run(), detail::log_failure);
  }
  co_return;
}

void session::count_ping_timeout() {
  if (fsm_.reason() != close_reason::ping_timeout) return;
  server_.ping_timeouts_.inc();
  core::logger("engineio")->debug("sid={} ping timeout", id());
}

// The session's share of the server's total goes back here, not in a destructor: a session can
// outlive its server at shutdown, in handlers the io_context still holds.
void session::finish() {
  phase_ = phase::finished;
  if (accounted_ != 0) server_.buffered_.fetch_sub(static_cast<std::int64_t>(accounted_), std::memory_order_relaxed);
  accounted_ = 0;
  server_.remove(id());
  if (auto h = std::move(handler_)) h->on_close(fsm_.reason());
}

}  // namespace berth::engineio
