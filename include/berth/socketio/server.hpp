#pragma once
// Socket.IO v5 server on top of engineio::server: namespaces with connection middleware,
// events and acks both ways (with timeouts), binary attachments, disconnects.
// Thread-safety: a socket's handlers run on its Engine.IO session's strand; socket::emit and
// socket::disconnect may be called from any thread.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "berth/core/metrics.hpp"
#include "berth/core/rate_limit.hpp"
#include "berth/engineio/server.hpp"
#include "berth/socketio/packet.hpp"
#include "berth/socketio/recovery.hpp"

namespace berth::socketio {

class connection;
class namespace_;
class server;

// Where a disconnected socket's state waits for its client (Redis in Berth: any replica may take
// it). The socket reserves its pid at the disconnect, seals its state once the application is done
// emitting to it, and a reconnect takes it at most once.
class recovery_store {
 public:
  virtual ~recovery_store() = default;
  // The pid is known but its state not yet complete ("pending") until `ttl`.
  virtual boost::asio::awaitable<void> reserve(std::string pid, std::chrono::milliseconds ttl) = 0;
  // The state is complete and may be taken; it expires after `ttl`.
  virtual boost::asio::awaitable<void> seal(std::string pid, std::string state, std::chrono::milliseconds ttl) = 0;
  // Takes the state of `pid` (only one caller ever gets it), waiting up to `wait` while it is
  // pending. nullopt: unknown, expired, or still pending after `wait`.
  virtual boost::asio::awaitable<std::optional<std::string>> take(std::string pid, std::chrono::milliseconds wait) = 0;
};

class socket : public std::enable_shared_from_this<socket> {
 public:
  using ack_fn = std::function<void(json args)>;  // args: a JSON array
  using text_ack_fn = std::function<void(std::string args_text)>;  // args_text: a valid JSON array's text
  using event_fn = std::function<void(json args, ack_fn ack)>;  // ack empty when none was asked
  using any_fn = std::function<void(const std::string& event, json args, ack_fn ack)>;
  using disconnect_fn = std::function<void(const std::string& reason)>;

  socket(std::weak_ptr<engineio::session> session, connection* conn, const namespace_& nsp, json auth);

  const std::string& id() const noexcept { return id_; }
  const std::string& nsp() const noexcept;
  // The CONNECT payload: an object (empty when the client sent none).
  const json& auth() const noexcept;
  const engineio::handshake_info& handshake() const noexcept { return *handshake_; }
  engineio::strand_type executor() const { return strand_; }
  bool connected() const noexcept { return connected_; }
  // Connection state recovery: true when this socket took over a disconnected one (same id).
  bool recovered() const noexcept { return recovered_; }

  // Kept across a recovery (socket.io's socket.data); set it before the first disconnect.
  json data;

  // Handler registration: on the strand, typically inside on_connection.
  void on(const std::string& event, event_fn fn) { more().handlers[event] = std::move(fn); }
  // Called for events without a handler.
  void on_any(any_fn fn) { more().any = std::move(fn); }
  void on_disconnect(disconnect_fn fn) { more().disconnect_handlers.push_back(std::move(fn)); }

  // Thread-safe. `args` is a JSON array of arguments (binary as json::binary_t).
  void emit(const std::string& event, json args = json::array());
  // Thread-safe. The same, with the arguments as a valid JSON array's text (e.g. as received by a
  // namespace_::on_text handler), written out without a parse or a dump.
  void emit_text(const std::string& event, std::string args_text);
  // Thread-safe. `done` gets the client's ack arguments, or nullopt after `timeout`.
  void emit_with_ack(const std::string& event, json args, std::chrono::milliseconds timeout,
                     std::function<void(std::optional<json>)> done);
  // Thread-safe. Sends DISCONNECT for this namespace; close_connection ends the Engine.IO session.
  void disconnect(bool close_connection = false);

  // Free slot for the application (session state etc.); touched on the strand only.
  std::shared_ptr<void> user_data;

  // In a disconnect handler after a recoverable disconnect: events emitted to this socket go on
  // being numbered and buffered until the returned hold is released (or the recovery window
  // ends); only then is its state sealed for the client to take. Empty when not recoverable.
  std::shared_ptr<void> hold_for_recovery();

 private:
  friend class connection;
  void send_event(packet p);
  void post_event(packet p);  // send_event on the strand
  void send_packet(packet p);
  void handle_disconnect(const std::string& reason);
  void release_hold();
  static boost::asio::awaitable<void> persist(std::shared_ptr<socket> self);

  std::string id_;
  json auth_;  // null for an empty object (which would cost a heap allocation per socket)
  std::shared_ptr<const engineio::handshake_info> handshake_;
  std::weak_ptr<engineio::session> session_;
  engineio::strand_type strand_;
  connection* conn_;  // valid while connected_, on the strand
  server* server_ = nullptr;  // set on connect; the server outlives its sockets
  const namespace_* namespace_handlers_;  // namespaces outlive sockets
  bool connected_ = false;
  bool recovered_ = false;
  // Recovery (null when off): the private session id, the numbered events, and after a
  // recoverable disconnect the holds that keep the state open and the end of its window.
  std::string pid_;
  std::unique_ptr<outbox> outbox_;
  struct detachment {
    std::size_t holds = 0;
    std::unique_ptr<boost::asio::steady_timer> released;  // cancelled when the last hold goes
  };
  std::unique_ptr<detachment> detached_;
  // Events per second (server_options::events); null when unlimited, so it costs 8 bytes then.
  struct event_limit {
    core::token_bucket bucket;
    std::optional<core::flood_detector> flood;
    bool limited = false;  // in a refusal episode (logged once per episode)
  };
  struct pending_ack {
    std::function<void(std::optional<json>)> done;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  // What most sockets never use, allocated on first use: handlers of their own, the acks they
  // await (~200 bytes less per idle socket).
  struct extras {
    std::map<std::string, event_fn> handlers;
    any_fn any;
    std::vector<disconnect_fn> disconnect_handlers;
    std::uint64_t next_ack_id = 0;
    std::unordered_map<std::uint64_t, pending_ack> acks;
  };
  extras& more() {
    if (!extras_) extras_ = std::make_unique<extras>();
    return *extras_;
  }
  // The awaited ack `id`, no longer awaited (answered or timed out); nullopt when it is not.
  std::optional<pending_ack> take_ack(std::uint64_t id);
  std::unique_ptr<extras> extras_;
  std::unique_ptr<event_limit> limit_;
};

// Connection middleware: runs before the CONNECT is acknowledged; returning an error sends
// CONNECT_ERROR {message, data} instead.
struct connect_error {
  std::string message;
  json data = json(json::value_t::discarded);
};
using middleware = std::function<boost::asio::awaitable<std::optional<connect_error>>(std::shared_ptr<socket>)>;

class namespace_ {
 public:
  // An event handler shared by every socket of the namespace: it gets the socket as an argument,
  // so no socket holds a copy (a per-socket map of handlers costs ~100 B per event per socket).
  using event_fn = std::function<void(const std::shared_ptr<socket>& sock, json args, socket::ack_fn ack)>;
  // Told about an event refused by the rate limit that asked for no ack (one with an ack gets
  // {ok:false, code:"RATE_LIMITED", message, retryAfterMs} as its answer). Without a hook such
  // events are dropped and counted.
  using rate_limited_fn =
      std::function<void(const std::shared_ptr<socket>& sock, const std::string& event, std::chrono::milliseconds retry_after)>;

  explicit namespace_(std::string name) : name_(std::move(name)) {}
  const std::string& name() const noexcept { return name_; }
  void use(middleware m) { middlewares_.push_back(std::move(m)); }
  void on_connection(std::function<void(std::shared_ptr<socket>)> fn) { on_connection_.push_back(std::move(fn)); }
  // For a handler that passes the arguments on as they came (an echo, a relay): they arrive as
  // the JSON array text the client sent, validated but never parsed, and go out again with
  // socket::emit_text or the text ack. Only events without binary attachments are given as text;
  // the others go to the `on` handler of the same name.
  using text_event_fn = std::function<void(const std::shared_ptr<socket>& sock, std::string args_text, socket::text_ack_fn ack)>;
  // Register before serving. A handler a socket registers itself (socket::on) takes precedence.
  void on(std::string event, event_fn fn) { handlers_.emplace_back(std::move(event), std::move(fn)); }
  void on_text(std::string event, text_event_fn fn) { text_handlers_.emplace_back(std::move(event), std::move(fn)); }
  void on_rate_limited(rate_limited_fn fn) { on_rate_limited_ = std::move(fn); }

 private:
  friend class connection;
  template <class Fn>
  static const Fn* find(const std::vector<std::pair<std::string, Fn>>& handlers, std::string_view event) noexcept {
    for (auto& [name, fn] : handlers)
      if (name == event) return &fn;
    return nullptr;
  }
  std::string name_;
  std::vector<middleware> middlewares_;
  std::vector<std::function<void(std::shared_ptr<socket>)>> on_connection_;
  std::vector<std::pair<std::string, event_fn>> handlers_;  // a handful: a linear scan beats a map
  std::vector<std::pair<std::string, text_event_fn>> text_handlers_;
  rate_limited_fn on_rate_limited_;
};

// Events each socket may send (token bucket), and when a flood ends the connection.
struct event_limits {
  double per_second = 0;  // 0: no limit
  double burst = 1;
  // A socket sending at least flood_factor x per_second in each of flood_seconds consecutive
  // seconds is not worth answering any more: its connection is closed. 0: never.
  unsigned flood_seconds = 0;
  double flood_factor = 10;
};

struct server_options {
  std::chrono::milliseconds connect_timeout{45000};
  // Binary attachments of one packet, buffered until it is whole (the connection's only packet
  // in assembly, so also the per-connection bound). Socket.IO's maxHttpBufferSize by default.
  std::size_t max_attachment_bytes = decoder::default_max_attachment_bytes;
  event_limits events{};
  // Connection state recovery: on when both are set. The window is how long a disconnected
  // socket's state is kept (RECOVERY_MAX_DISCONNECTION_MS); the outbox keeps at most
  // recovery_max_events events per socket (RECOVERY_MAX_PACKETS).
  std::chrono::milliseconds recovery_window{0};
  std::size_t recovery_max_events = 1000;
  recovery_store* recovery = nullptr;  // outlives the server
  // How long a reconnect waits for a disconnected socket's state to be sealed (its replica is
  // still finishing what it emits), at most the rest of the window.
  std::chrono::milliseconds recovery_take_wait{30000};
  bool recovery_on() const noexcept { return recovery && recovery_window.count() > 0; }
};

class server {
 public:
  server(server_options opts, core::metrics& metrics);
  // Turns connection state recovery on (with a window in the options); before serving.
  void set_recovery_store(recovery_store* store) noexcept { opts_.recovery = store; }
  // Creates or returns a namespace; register all before serving.
  namespace_& of(const std::string& name);
  // The factory to give engineio::server.
  engineio::server::handler_factory handler_factory();
  std::size_t connected_sockets() const noexcept { return sockets_.load(); }

 private:
  friend class connection;
  friend class socket;
  server_options opts_;
  std::map<std::string, std::unique_ptr<namespace_>> namespaces_;
  std::atomic<std::size_t> sockets_{0};
  core::counter& protocol_errors_;
  core::counter& invalid_namespace_;
  core::counter& connect_rejected_;
  core::counter& connect_timeouts_;
  core::counter& json_too_deep_;
  core::counter& attachments_unjoined_;
  core::counter& attachments_too_large_;
  core::counter& rate_limited_;
  core::counter& rate_limited_dropped_;
  core::counter& flood_disconnects_;
  core::counter& recovered_;
  core::counter& recovery_missed_;
};

}  // namespace berth::socketio
