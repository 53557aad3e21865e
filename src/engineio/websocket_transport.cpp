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
  s->start_reading(std::move(sock), *initial, true);
}

// The reader is not a coroutine: a parked websocket then owns no coroutine frame, no spawn
// entry frame and no awaitable, only the hub's pending handler (~800 bytes per idle connection
// less). It reads until the socket would block, then waits.
void session::start_reading(std::shared_ptr<tcp::socket> sock, std::string_view initial, bool probe) {
  if (probe && sock != probe_) return;  // the probe was closed before this reader started
  auto readable = server_.hub_->watch(sock->native_handle(), strand_);
  if (!readable) {
    core::logger("engineio")->warn("sid={} websocket dropped: epoll registration failed: {}", id(), std::strerror(errno));
    if (!probe) {
      asio::co_spawn(strand_, ws_close(shared_from_this()), log_failure);
    } else if (sock == probe_) {
      fail_upgrade();
    }
    return;
  }
  (probe ? probe_readable_ : ws_readable_) = readable;
  ws_carry_.reset();  // one reader at a time: a new probe starts afresh
  // Bytes the client sent right behind its handshake came with it.
  if (!initial.empty() && !on_ws_bytes(initial, readable, probe)) return end_reading(readable, probe);
  read_on(std::move(readable), probe);
}

bool session::is_current_reader(const std::shared_ptr<read_signal>& readable, bool probe) const noexcept {
  return readable == (probe ? probe_readable_ : ws_readable_);
}

void session::read_on(std::shared_ptr<read_signal> readable, bool probe) {
  for (;;) {
    if (probe ? !is_current_reader(readable, true) : fsm_.closed()) return end_reading(readable, probe);
    if (!readable->maybe_readable()) {
      auto& signal = *readable;
      // Woken by data, or by a cancel: wake() has us close, close_probe() ends a probe (the
      // check at the top of the loop either way).
      signal.async_wait([self = shared_from_this(), readable = std::move(readable), probe](boost::system::error_code) mutable {
        self->read_on(std::move(readable), probe);
      });
      return;
    }
    readable->set_maybe_readable(false);
    auto& buf = read_scratch();
    boost::system::error_code ec;
    const auto n = recv_now(probe ? *probe_ : *ws_, asio::buffer(buf), ec);
    if (ec) {
      if (would_block(ec)) continue;
      core::logger("engineio")->debug("sid={} websocket read ended: {}", id(), ec.message());
      return end_reading(readable, probe);
    }
    // A full buffer may have left more behind; a short read drained the socket, and the next
    // arrival is a new readiness event.
    if (n == buf.size()) readable->set_maybe_readable(true);
    if (!on_ws_bytes(std::string_view(buf.data(), n), readable, probe)) return end_reading(readable, probe);
  }
}

bool session::on_ws_bytes(std::string_view chunk, const std::shared_ptr<read_signal>& readable, bool& probe) {
  // Everything here runs without suspending: the per-thread vectors stay ours.
  auto& messages = message_scratch();
  auto& delivered = delivered_scratch();
  messages.clear();
  // A decoder on the stack unless the last read left a partial frame or message: only then is
  // it kept (an idle websocket holds 8 bytes for it, not 88).
  websocket_decoder fresh(server_.opts_.session.max_payload);
  websocket_decoder& decoder = ws_carry_ ? *ws_carry_ : fresh;
  auto code = decoder.feed(chunk, messages);
  if (!ws_carry_ && fresh.buffering()) {
    ws_carry_ = std::make_unique<websocket_decoder>(std::move(fresh));
  } else if (ws_carry_ && !ws_carry_->buffering()) {
    ws_carry_.reset();
  }
  if (!probe) inbound_buffered_ = ws_carry_ ? ws_carry_->buffered_bytes() : 0;
  deferring_ = !probe;  // replies to this read go out in one write after it
  bool abandon = false;
  for (auto& m : messages) {
    if (fsm_.closed() && !probe) break;
    if (probe && !is_current_reader(readable, true)) {  // the upgrade was abandoned meanwhile
      abandon = true;
      break;
    }
    const auto step = on_ws_message(m, probe, probe ? *probe_ : *ws_, delivered);
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
    return false;
  }
  if (code != ws_close_code::none) {
    server_.protocol_errors_.inc();
    core::logger("engineio")->debug("sid={} websocket protocol error {}", id(), static_cast<int>(code));
    if (probe) return false;
    fsm_.close(close_reason::transport_error);
    append_ws_close(ws_control_, code);
  }
  deferring_ = false;
  wake();
  return true;
}

void session::end_reading(const std::shared_ptr<read_signal>& readable, bool probe) {
  server_.hub_->unwatch(*readable);
  if (probe) {
    if (is_current_reader(readable, true)) fail_upgrade();  // the client went away before "5": it may probe again
    return;
  }
  ws_carry_.reset();  // gives back a partial frame's memory
  asio::co_spawn(strand_, ws_close(shared_from_this()), log_failure);
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

// The websocket close sequence, spawned when the reader ends.
asio::awaitable<void> session::ws_close(std::shared_ptr<session> self) {
  session& s = *self;
  boost::system::error_code ec;
  if (!s.fsm_.closed()) s.fsm_.close(close_reason::transport_close);
  s.deferring_ = false;
  s.flush();  // what a server close owes the client, if the socket takes it
  s.phase_ = phase::closing;
  s.timer_armed_ = false;
  s.timer_.cancel();
  if (s.writing_) {  // let a write in flight finish, within a second
    asio::steady_timer waiter(s.strand_, std::chrono::seconds(1));
    s.write_waiter_ = &waiter;
    co_await waiter.async_wait(use_tuple);
    s.write_waiter_ = nullptr;
    if (s.writing_) s.ws_->cancel(ec);
  }
  std::string bye = std::move(s.ws_control_);
  s.ws_control_ = std::string();
  if (!s.writing_) s.fsm_.append_ws_frames(bye);
  append_ws_close(bye, close_code_for(s.fsm_.reason()), close_text_for(s.fsm_.reason()));
  // Each step below is bounded by a 1 s deadline whose handler cancels the socket's operations
  // (one timer for the whole sequence, rather than a parallel group per step).
  s.arm_close_deadline();
  co_await asio::async_write(*s.ws_, asio::buffer(bye), use_tuple);
  // Read and drop what the peer is still sending (e.g. the rest of an oversized frame) before
  // closing: closing with unread data makes the kernel send a reset instead of our close frame.
  s.ws_->shutdown(tcp::socket::shutdown_send, ec);
  s.arm_close_deadline();
  for (int i = 0; i < 256; ++i) {
    auto [wec] = co_await s.ws_->async_wait(tcp::socket::wait_read, use_tuple);
    if (wec) break;  // the deadline (operation_aborted) or an error
    recv_now(*s.ws_, asio::buffer(read_scratch()), ec);  // 0 bytes is eof: an error here
    if (ec && !would_block(ec)) break;
  }
  s.timer_.cancel();
  s.ws_->close(ec);
  s.finish();
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
