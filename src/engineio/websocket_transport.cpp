// The websocket transport of a session: its reader (one coroutine per connection, woken by the
// readiness hub), the upgrade probe of a polling session, and the close sequence.
#include <cerrno>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/write.hpp>

#include "berth/core/logging.hpp"
#include "berth/engineio/server.hpp"
#include "readiness_hub.hpp"
#include "socket_ops.hpp"

namespace berth::engineio {

using tcp = asio::ip::tcp;
using namespace detail;

namespace {
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
}  // namespace

bool session::queue_pong(std::string_view payload) {
  if (ws_control_.size() + payload.size() + 2 > server_.opts_.session.max_control_bytes) return false;
  append_ws_frame(ws_control_, ws_opcode::pong, payload);
  return true;
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
      const auto step = on_ws_message(m, probe, *sock, delivered);
      if (step == read_step::upgraded) probe = false;
      if (step == read_step::abandon_probe) {
        abandon = true;
        break;
      }
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
        if (sock == probe_) fail_upgrade();
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
    if (sock == probe_) fail_upgrade();  // the client went away before "5": it may probe again
    co_return;
  }

  co_await ws_close();
}

session::read_step session::on_ws_message(ws_message& m, bool probe, tcp::socket& sock, std::vector<packet>& delivered) {
  switch (m.op) {
    case ws_opcode::ping:
      if (!queue_pong(m.data)) {
        server_.control_overflows_.inc();
        core::logger("engineio")->warn("sid={} closed: {} bytes of pongs owed and unread (the peer pings faster than it reads)",
                                       id(), ws_control_.size());
        if (probe) {
          fail_upgrade();
          return read_step::abandon_probe;
        }
        fsm_.close(close_reason::control_overflow);
      }
      wake();
      return read_step::go_on;
    case ws_opcode::pong:
      return read_step::go_on;
    case ws_opcode::close:
      if (probe) {
        // The client gave up the upgrade: answer its close (a few bytes the kernel takes at
        // once), then drop the probe. The session stays on polling.
        std::string bye;
        append_ws_close(bye, ws_close_code::normal);
        boost::system::error_code ec;
        send_now(sock, asio::buffer(bye), ec);
        if (&sock == probe_.get()) fail_upgrade();
        return read_step::abandon_probe;
      }
      fsm_.close(close_reason::transport_close);
      wake();
      return read_step::go_on;
    default:
      break;
  }
  if (probe) return on_probe_frame(m.data, sock);
  if (!fsm_.on_ws_frame(m.data, m.op == ws_opcode::binary, delivered, clock::now())) {
    server_.protocol_errors_.inc();
    core::logger("engineio")->debug("sid={} closed: invalid packet '{}'", id(), core::log_prefix(m.data, 32));
  }
  deliver(delivered);
  return read_step::go_on;
}

// A data frame on the probing socket: "2probe", then "5" completes the upgrade.
session::read_step session::on_probe_frame(std::string_view data, tcp::socket& sock) {
  if (&sock != probe_.get()) return read_step::abandon_probe;  // the upgrade was abandoned meanwhile
  switch (fsm_.on_probe_frame(data)) {
    case session_fsm::probe_result::reply_probe: {
      wake();  // releases the pending GET with a noop
      // Eight bytes on a fresh socket: the kernel takes them at once.
      std::string frame;
      append_ws_frame(frame, ws_opcode::text, "3probe");
      boost::system::error_code ec;
      const auto n = send_now(sock, asio::buffer(frame), ec);
      if (ec || n != frame.size()) {
        fail_upgrade();
        return read_step::abandon_probe;
      }
      return read_step::go_on;
    }
    case session_fsm::probe_result::upgraded:
      server_.upgrades_.inc();
      ws_ = std::move(probe_);
      ws_readable_ = std::move(probe_readable_);
      wake();  // run() hands over: flushes what polling had queued, over the websocket now
      return read_step::upgraded;
    case session_fsm::probe_result::invalid:
      close_probe();
      wake();
      return read_step::abandon_probe;
  }
  return read_step::abandon_probe;
}

// The websocket close sequence, run by the reader; its own coroutine so that the reader's
// frame, alive for the whole session, does not carry these locals.
asio::awaitable<void> session::ws_close() {
  boost::system::error_code ec;
  if (!fsm_.closed()) fsm_.close(close_reason::transport_close);
  deferring_ = false;
  flush();  // what a server close owes the client, if the socket takes it
  phase_ = phase::closing;
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
  finish();
}

void session::arm_close_deadline() {
  timer_.expires_after(std::chrono::seconds(1));  // replaces (cancels) a deadline armed before
  timer_.async_wait([ws = ws_](boost::system::error_code ec) {
    if (ec) return;
    boost::system::error_code cec;
    ws->cancel(cec);
  });
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

}  // namespace berth::engineio
