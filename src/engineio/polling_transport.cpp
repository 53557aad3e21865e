// The HTTP long-polling transport of a session: the driver that runs it until an upgrade hands
// over (heartbeat, releasing the waiting GET, the close packet owed to a polling client), and
// the GET and POST requests the server routes to it.
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/engineio/server.hpp"
#include "readiness_hub.hpp"
#include "socket_ops.hpp"

namespace berth::engineio {

// Drives a polling session: heartbeat, releasing GETs, the close packet owed to a polling
// client. Once upgraded it hands over to the websocket reader and the timer wait (wake()).
asio::awaitable<void> session::run() {
  auto self = shared_from_this();
  for (;;) {
    if (ws_) {
      phase_ = phase::websocket;
      timer_armed_ = false;
      wake();
      co_return;
    }
    if (fsm_.closed()) break;
    timer_.expires_at(fsm_.next_deadline());
    co_await timer_.async_wait(detail::use_tuple);
    if (ws_) continue;
    const bool was_upgrading = fsm_.upgrading();
    fsm_.on_timer(clock::now());
    count_ping_timeout();
    if (was_upgrading && !fsm_.upgrading() && fsm_.transport() == transport_kind::polling) close_probe();
    if (poll_waiter_ && fsm_.poll_ready()) poll_waiter_->cancel();
  }
  // Closed. A polling client still owed the close packet gets one more GET to fetch it.
  if (fsm_.close_packet_owed() && fsm_.transport() == transport_kind::polling) {
    if (poll_waiter_) poll_waiter_->cancel();
    timer_.expires_after(server_.opts_.session.ping_timeout);
    while (fsm_.close_packet_owed()) {
      auto [ec] = co_await timer_.async_wait(detail::use_tuple);
      if (!ec) break;  // deadline: give up on it
    }
  }
  if (poll_waiter_) poll_waiter_->cancel();
  close_probe();
  finish();
}

asio::awaitable<std::pair<unsigned, std::string>> session::poll_get() {
  auto self = shared_from_this();
  if (phase_ == phase::finished || (fsm_.closed() && !fsm_.close_packet_owed()))
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
      co_await waiter.async_wait(detail::use_tuple);
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

}  // namespace berth::engineio
