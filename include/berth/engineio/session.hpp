#pragma once
// One Engine.IO v4 session: the sans-I/O session_fsm bound to its transports, on one strand.
// The session's core (send, close, heartbeat, write-out, buffer budgets) is session.cpp; the
// websocket transport (reader, upgrade probe, close sequence) is websocket_transport.cpp; the
// HTTP long-polling transport (its driver, GET and POST) is polling_transport.cpp. The server
// (server.hpp) owns the registry of sessions and routes requests to them.
// Thread-safety: send/close may be called from any thread; everything else runs on the strand.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "berth/engineio/session_fsm.hpp"
#include "berth/engineio/websocket_codec.hpp"
#include "berth/http/request_info.hpp"

namespace berth::engineio {

namespace asio = boost::asio;
namespace detail {
class read_signal;
}  // namespace detail
using strand_type = asio::strand<asio::io_context::executor_type>;
// A timer bound to a session's strand: 32 bytes smaller than steady_timer's type-erased executor.
using strand_timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, strand_type>;

struct handshake_info {
  std::string sid;
  http::query_map query;
  std::string remote_address;  // the client (X-Forwarded-For only from a trusted proxy)
  std::string address_key;     // what per-address limits and the sid binding compare (IPv6: its /64)
  std::string origin;
  std::string user_agent;
};

// Application side of one session (Socket.IO, or the raw echo of the conformance server).
// Called on the session's strand only.
class session_handler {
 public:
  virtual ~session_handler() = default;
  virtual void on_message(packet&& p) = 0;
  virtual void on_close(close_reason reason) = 0;
  // Inbound bytes the handler holds for this connection (e.g. binary attachments waiting for
  // the rest of their packet); they count toward the connection's and the process's budgets.
  virtual std::size_t buffered_bytes() const noexcept { return 0; }
};

class server;

class session : public std::enable_shared_from_this<session> {
 public:
  session(server& srv, strand_type strand, transport_kind kind, handshake_info info);
  const std::string& id() const noexcept { return info_->sid; }
  const handshake_info& info() const noexcept { return *info_; }
  // Shared so Socket.IO sockets can keep it without a copy per namespace.
  std::shared_ptr<const handshake_info> info_ptr() const noexcept { return info_; }
  strand_type& strand() noexcept { return strand_; }
  // Thread-safe; packets keep their order per calling thread.
  void send(packet p);
  // Thread-safe server-side close (the client is told with a close packet).
  void close(close_reason reason = close_reason::server_close);
  // On the strand only.
  void send_on_strand(packet p);
  bool is_closed() const noexcept { return fsm_.closed(); }
  transport_kind transport() const noexcept { return fsm_.transport(); }

 private:
  friend class server;
  // Who drives the session, in the order it moves through them (an upgrade goes from polling to
  // websocket; a polling session may also finish directly).
  enum class phase : std::uint8_t {
    polling,    // run() drives it and owns timer_: heartbeat, releasing GETs (until an upgrade)
    websocket,  // the reader owns the socket; wake() writes, timer_ is a plain heartbeat wait
    closing,    // the reader runs the close sequence and owns the socket
    finished,   // removed from the registry, the handler told; nothing more happens
  };
  // What the websocket reader does after one decoded message.
  enum class read_step {
    go_on,
    upgraded,       // the probe completed the upgrade: this socket is the session's transport now
    abandon_probe,  // the probe ends; the session stays on polling
  };

  // ---- core (session.cpp)
  void deliver(std::vector<packet>& delivered);
  // After every state change: releases a waiting GET; with run() driving (polling) wakes it;
  // on a websocket writes what is owed, re-arms the heartbeat, wakes the reader to close.
  void wake();
  void flush();
  void on_written(boost::system::error_code ec);
  void arm_timer();
  void on_heartbeat();
  void count_ping_timeout();
  // Brings the server's buffered-bytes total up to date with this connection's and closes it
  // when it holds more than max_buffered_bytes, or wants to hold more inbound bytes while the
  // process is over its budget.
  void enforce_buffer_limits();
  // Updates this connection's share of the server's total; returns its inbound bytes.
  std::size_t sync_accounting();
  // The end of every session, from either transport: out of the registry, the handler told.
  void finish();

  // Static coroutines with shared_ptr parameters: never capturing lambdas (C++ Core Guidelines CP.51).
  // A new session on its first transport: a websocket (`ws`) or polling (null).
  static asio::awaitable<void> start(std::shared_ptr<session> s, std::shared_ptr<asio::ip::tcp::socket> ws,
                                     std::shared_ptr<std::string> initial);

  // ---- websocket transport (websocket_transport.cpp)
  static asio::awaitable<void> start_probe(std::shared_ptr<session> s, std::shared_ptr<asio::ip::tcp::socket> sock,
                                           std::shared_ptr<std::string> initial);
  // The reader of the websocket (`probe`: of the upgrade probe, until it becomes the transport).
  void start_reading(std::shared_ptr<asio::ip::tcp::socket> sock, std::string_view initial, bool probe);
  void read_on(std::shared_ptr<detail::read_signal> readable, bool probe);
  // Decodes and dispatches one read; false when the reader ends. `probe` turns false on the upgrade.
  bool on_ws_bytes(std::string_view chunk, const std::shared_ptr<detail::read_signal>& readable, bool& probe);
  void end_reading(const std::shared_ptr<detail::read_signal>& readable, bool probe);
  // A probe's reader outlives the probe when it is abandoned: it then finds another signal here.
  bool is_current_reader(const std::shared_ptr<detail::read_signal>& readable, bool probe) const noexcept;
  read_step on_ws_message(ws_message& m, bool probe, asio::ip::tcp::socket& sock, std::vector<packet>& delivered);
  read_step on_probe_frame(std::string_view data, asio::ip::tcp::socket& sock);
  static asio::awaitable<void> ws_close(std::shared_ptr<session> self);
  void arm_close_deadline();
  void close_probe();
  void fail_upgrade();
  // A pong for a ping; false (and nothing queued) when the owed control frames are over the limit.
  bool queue_pong(std::string_view payload);

  // ---- polling transport (polling_transport.cpp)
  asio::awaitable<void> run();
  asio::awaitable<std::pair<unsigned, std::string>> poll_get();
  asio::awaitable<std::pair<unsigned, std::string>> poll_post(std::shared_ptr<std::string> body, bool binary_body, bool too_large);

  server& server_;
  strand_type strand_;
  std::shared_ptr<const handshake_info> info_;
  session_fsm fsm_;
  phase phase_;
  strand_timer timer_;
  asio::steady_timer* poll_waiter_ = nullptr;
  std::shared_ptr<asio::ip::tcp::socket> ws_;     // the websocket transport, once active
  std::shared_ptr<asio::ip::tcp::socket> probe_;  // a websocket probing an upgrade
  std::shared_ptr<detail::read_signal> ws_readable_;     // ws_'s reader waits on it
  std::shared_ptr<detail::read_signal> probe_readable_;  // probe_'s reader waits on it
  std::unique_ptr<websocket_decoder> ws_carry_;   // the reader's, while a read left a partial frame
  std::string ws_control_;                        // pong/close frames owed to the peer
  std::string wbuf_;                              // unwritten rest while an async write is in flight
  std::unique_ptr<session_handler> handler_;
  asio::steady_timer* write_waiter_ = nullptr;    // the close sequence waiting for that write
  clock::time_point timer_at_;                    // when the armed heartbeat wait fires
  std::size_t inbound_buffered_ = 0;  // the websocket decoder's partial frames and messages
  std::size_t inbound_accounted_ = 0;  // inbound bytes (decoder + handler) at the last check
  std::size_t accounted_ = 0;          // this connection's share of server::buffered_
  // Within the websocket phase: one coroutine per session, the reader. Writes go straight to the
  // (non-blocking) socket from wake(), with an async write only for what the kernel did not take.
  bool timer_armed_ = false;
  bool writing_ = false;    // an async write of wbuf_ is in flight
  bool deferring_ = false;  // the reader is dispatching a read: it flushes once afterwards
};

}  // namespace berth::engineio
