#include "berth/socketio/server.hpp"

#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"

namespace berth::socketio {

namespace asio = boost::asio;

namespace {
const char* disconnect_reason(engineio::close_reason r) {
  switch (r) {
    case engineio::close_reason::ping_timeout: return "ping timeout";
    case engineio::close_reason::parse_error: return "parse error";
    case engineio::close_reason::transport_error: return "transport error";
    case engineio::close_reason::server_close: return "server namespace disconnect";
    case engineio::close_reason::server_shutdown: return "server shutting down";
    case engineio::close_reason::outbound_overflow: return "transport error";
    case engineio::close_reason::buffer_overflow:
    case engineio::close_reason::control_overflow:
    case engineio::close_reason::overloaded:
    case engineio::close_reason::policy_violation: return "forced close";
    default: return "transport close";
  }
}
}  // namespace

// One Engine.IO session's Socket.IO state: its decoder and the namespaces it joined.
class connection : public engineio::session_handler {
 public:
  connection(server& srv, std::shared_ptr<engineio::session> s)
      : server_(srv), session_(*s), weak_(s), decoder_(srv.opts_.max_attachment_bytes) {
    connect_timer_ = std::make_unique<asio::steady_timer>(session_.strand(), srv.opts_.connect_timeout);
    connect_timer_->async_wait([alive = alive_, this](boost::system::error_code ec) {
      if (ec || !*alive || !sockets_.empty() || !connecting_.empty()) return;
      server_.connect_timeouts_.inc();
      core::logger("socketio")->debug("sid={} closed: no CONNECT within {} ms", session_.id(),
                                      server_.opts_.connect_timeout.count());
      session_.close();
    });
  }
  ~connection() override { *alive_ = false; }

  void send(const packet& p) {
    auto enc = encode(p);
    session_.send_on_strand(engineio::packet{engineio::packet_type::message, std::move(enc.text), false});
    for (auto& a : enc.attachments)
      session_.send_on_strand(engineio::packet{engineio::packet_type::message, std::move(a), true});
  }

  void on_message(engineio::packet&& p) override {
    const std::size_t size = p.data.size();
    packet decoded;
    auto st = p.binary ? decoder_.feed_binary(std::move(p.data), decoded) : decoder_.feed_text(p.data, decoded);
    if (st == decoder::status::need_binary) {
      if (!p.binary && !may_buffer_attachments()) {
        // Decided at the text header, before a single attachment is buffered: attachments are
        // only worth holding for a namespace this connection has joined.
        server_.attachments_unjoined_.inc();
        core::logger("socketio")->warn("sid={} closed: binary packet with {} attachments for namespace '{}', not joined",
                                       session_.id(), decoder_.pending_attachments(), core::log_prefix(decoder_.pending().nsp));
        decoder_.reset();
        session_.close(engineio::close_reason::parse_error);
      }
      return;
    }
    if (st == decoder::status::error) {
      if (decoder_.error() == decode_error::too_deep) {
        // Hostile rather than buggy: worth a line at warn level, once per connection (it closes).
        server_.json_too_deep_.inc();
        core::logger("socketio")->warn("sid={} closed: event arguments nested deeper than {} levels ({} bytes)",
                                       session_.id(), core::max_json_depth, size);
      } else if (decoder_.error() == decode_error::attachments_too_large) {
        server_.attachments_too_large_.inc();
        core::logger("socketio")->warn("sid={} closed: binary attachments of one packet over {} bytes", session_.id(),
                                       server_.opts_.max_attachment_bytes);
        session_.close(engineio::close_reason::buffer_overflow);
        return;
      }
      return fail(to_string(decoder_.error()), p.binary ? std::string_view{} : p.data);
    }
    handle(std::move(decoded));
  }

  std::size_t buffered_bytes() const noexcept override { return decoder_.buffered_bytes(); }

  void on_close(engineio::close_reason r) override {
    auto reason = disconnect_reason(r);
    auto sockets = std::move(sockets_);
    sockets_.clear();
    server_.sockets_ -= sockets.size();
    for (auto& [_, s] : sockets) s->handle_disconnect(reason);
  }

  void remove(const std::string& nsp) {
    if (sockets_.erase(nsp)) --server_.sockets_;
  }
  engineio::session& session() { return session_; }

 private:
  void fail(const char* why, std::string_view raw) {
    server_.protocol_errors_.inc();
    core::logger("socketio")->debug("sid={} closed: {} '{}'", session_.id(), why, core::log_prefix(raw, 32));
    session_.close(engineio::close_reason::parse_error);
  }

  // A binary packet's attachments are buffered only for a joined namespace (and, as with their
  // text-only counterparts, an ACK for one still connecting, which is then dropped).
  bool may_buffer_attachments() const {
    const auto& head = decoder_.pending();
    if (sockets_.count(head.nsp)) return true;
    return head.type == packet_type::binary_ack && connecting_.count(head.nsp);
  }

  // Where an event's ack goes; shared by the copies of its ack function, sent at most once.
  struct ack_target {
    std::weak_ptr<socket> weak;
    std::uint64_t id;
    std::string nsp;
    bool used = false;
  };
  using ack_target_ptr = std::shared_ptr<ack_target>;

  static void send_ack(const ack_target_ptr& target, packet a) {
    auto s = target->weak.lock();
    if (!s || target->used) return;
    target->used = true;
    if (s->strand_.running_in_this_thread()) return s->send_packet(std::move(a));
    asio::dispatch(s->strand_, [s, a = std::move(a)]() mutable { s->send_packet(std::move(a)); });
  }
  // One allocation per acked event: each closure holds only the shared target, which fits
  // std::function's local storage.
  static socket::ack_fn json_ack(ack_target_ptr target) {
    if (!target) return {};
    return [target = std::move(target)](json reply) {
      if (!reply.is_array()) reply = json::array({std::move(reply)});
      send_ack(target, packet{packet_type::ack, target->nsp, target->id, std::move(reply)});
    };
  }
  static socket::text_ack_fn text_ack(ack_target_ptr target) {
    if (!target) return {};
    return [target = std::move(target)](std::string args_text) {
      packet a{packet_type::ack, target->nsp, target->id, json(json::value_t::discarded)};
      a.args_text = std::move(args_text);
      send_ack(target, std::move(a));
    };
  }

  // The socket's event budget; false when this event is refused (answered, hooked or dropped).
  bool admit_event(const std::shared_ptr<socket>& sock, const std::string& event, const ack_target_ptr& ack) {
    auto& limit = *sock->limit_;
    const auto now = core::rate_clock::now();
    const auto& opts = server_.opts_.events;
    if (limit.flood && limit.flood->record(now)) {
      server_.flood_disconnects_.inc();
      core::logger("socketio")->warn("sid={} closed: socket {} sent at least {} events per second for {} seconds",
                                     session_.id(), sock->id(), opts.flood_factor * opts.per_second, opts.flood_seconds);
      session_.close(engineio::close_reason::policy_violation);
      return false;
    }
    if (limit.bucket.try_take(now)) {
      limit.limited = false;
      return true;
    }
    server_.rate_limited_.inc();
    const auto retry = std::max(limit.bucket.wait_time(now), std::chrono::milliseconds(1));
    if (!limit.limited) {  // one line per episode, not per refused event
      limit.limited = true;
      core::logger("socketio")->warn("sid={} socket {} over {} events per second (burst {}): events refused",
                                     session_.id(), sock->id(), opts.per_second, opts.burst);
    }
    if (ack) {
      send_ack(ack, packet{packet_type::ack, ack->nsp, ack->id,
                           core::ack_error({core::errc::rate_limited, "Too many events: slow down", retry})});
    } else if (sock->namespace_handlers_->on_rate_limited_) {
      sock->namespace_handlers_->on_rate_limited_(sock, event, retry);
    } else {
      server_.rate_limited_dropped_.inc();
    }
    return false;
  }

  void handle(packet p) {
    if (p.type == packet_type::connect) return handle_connect(std::move(p));
    auto it = sockets_.find(p.nsp);
    if (it == sockets_.end()) {
      // DISCONNECT/ACK for a namespace that is (still) connecting are dropped; anything else
      // before CONNECT is a protocol violation, as in socket.io.
      if (connecting_.count(p.nsp) && p.type != packet_type::event && p.type != packet_type::binary_event) return;
      return fail("packet for a namespace not joined", p.nsp);
    }
    auto sock = it->second;
    switch (p.type) {
      case packet_type::disconnect:
        remove(p.nsp);
        sock->handle_disconnect("client namespace disconnect");
        break;
      case packet_type::event:
      case packet_type::binary_event:
        dispatch_event(sock, std::move(p));
        break;
      case packet_type::ack:
      case packet_type::binary_ack: {
        if (!p.id) break;  // an ack without id is ignored, as the reference does
        auto pending = sock->take_ack(*p.id);
        if (!pending) break;
        if (pending->timer) pending->timer->cancel();
        if (pending->done) pending->done(std::move(p.data));
        break;
      }
      default:
        fail("unexpected packet type from client", {});
    }
  }

  void dispatch_event(const std::shared_ptr<socket>& sock, packet p) {
    ack_target_ptr ack;
    if (p.id) ack = std::make_shared<ack_target>(ack_target{sock, *p.id, std::move(p.nsp), false});
    const bool as_text = !p.args_text.empty();
    std::string event;
    json args;
    if (as_text) {
      event = std::move(p.event);
    } else {  // [name, args...] as a tree: binary attachments, or a number for a name
      args = std::move(p.data);
      const json& name = args[0];
      event = name.is_string() ? name.get<std::string>() : name.dump();
      args.erase(args.begin());
    }
    if (sock->limit_ && !admit_event(sock, event, ack)) return;
    // A handler the socket registered itself comes first.
    socket::event_fn* own = nullptr;
    if (sock->extras_) {
      auto it = sock->extras_->handlers.find(event);
      if (it != sock->extras_->handlers.end()) own = &it->second;
    }
    const auto* shared = sock->namespace_handlers_;
    if (as_text && !own) {
      if (auto* fn = namespace_::find(shared->text_handlers_, event)) return (*fn)(sock, std::move(p.args_text), text_ack(std::move(ack)));
    }
    if (as_text) {
      args = json::parse(p.args_text, nullptr, false);
      if (args.is_discarded()) return fail("number out of range in event arguments", p.args_text);
    }
    if (own) return (*own)(std::move(args), json_ack(std::move(ack)));
    if (auto* fn = namespace_::find(shared->handlers_, event)) return (*fn)(sock, std::move(args), json_ack(std::move(ack)));
    if (sock->extras_ && sock->extras_->any) sock->extras_->any(event, std::move(args), json_ack(std::move(ack)));
  }

  void handle_connect(packet p) {
    auto ns = server_.namespaces_.find(p.nsp);
    if (ns == server_.namespaces_.end()) {
      server_.invalid_namespace_.inc();
      core::logger("socketio")->debug("sid={} invalid namespace '{}'", session_.id(), core::log_prefix(p.nsp));
      send(packet{packet_type::connect_error, p.nsp, std::nullopt, json{{"message", "Invalid namespace"}}});
      return;
    }
    if (sockets_.count(p.nsp) || connecting_.count(p.nsp)) return fail("duplicate CONNECT", p.nsp);
    connect_timer_.reset();
    json auth = p.has_data() ? std::move(p.data) : json::object();
    namespace_* nsp = ns->second.get();
    connecting_.insert(p.nsp);
    // A client back from a disconnect asks for its state by {pid, offset} (both strings, as in
    // socket.io); the state may still be sealing on another replica: taken off the strand.
    if (server_.opts_.recovery_on() && auth.is_object()) {
      auto pid = auth.find("pid");
      auto offset = auth.find("offset");
      if (pid != auth.end() && pid->is_string() && offset != auth.end() && offset->is_string()) {
        auto wait = server_.opts_.recovery_take_wait;
        auto taking = server_.opts_.recovery->take(pid->get<std::string>(), wait);  // before auth moves
        asio::co_spawn(session_.strand(), std::move(taking),
                       [this, alive = alive_, nsp, auth = std::move(auth)](std::exception_ptr e,
                                                                            std::optional<std::string> state) mutable {
                         if (!*alive) return;
                         if (e) state.reset();
                         finish_recovery(nsp, std::move(auth), std::move(state));
                       });
        return;
      }
    }
    connect_new(nsp, std::move(auth));
  }

  std::shared_ptr<socket> make_socket(namespace_* nsp, json auth) {
    auto sock = std::make_shared<socket>(weak_, this, *nsp, std::move(auth));
    sock->server_ = &server_;
    if (const auto& ev = server_.opts_.events; ev.per_second > 0) {
      const auto now = core::rate_clock::now();
      sock->limit_ = std::make_unique<socket::event_limit>(socket::event_limit{core::token_bucket(ev.per_second, ev.burst, now), std::nullopt, false});
      if (ev.flood_seconds > 0) sock->limit_->flood.emplace(ev.flood_factor * ev.per_second, ev.flood_seconds);
    }
    return sock;
  }

  // The recovered socket: same id, pid, data and outbox; CONNECT {sid, pid}, then every event
  // after the client's offset. The middlewares do not run again (socket.io's skipMiddlewares):
  // the pid, a private random token, is the proof. Anything else is a new connection.
  void finish_recovery(namespace_* nsp, json auth, std::optional<std::string> text) {
    std::optional<detached_state> state;
    if (text) state = deserialize_detached(*text);
    const auto offset = parse_offset(auth["offset"].get_ref<const std::string&>());
    std::optional<std::vector<buffered_event>> missed;
    std::unique_ptr<outbox> box;
    if (state && offset && state->nsp == nsp->name()) {
      box = std::make_unique<outbox>(server_.opts_.recovery_max_events, state->last_offset);
      for (auto& e : state->events) box->restore(std::move(e));
      missed = box->after(*offset);
    }
    if (!missed) {
      server_.recovery_missed_.inc();
      core::logger("socketio")->debug("sid={} not recovered ({}): a new connection", session_.id(),
                                      !text ? "unknown or expired pid" : !state ? "unreadable state"
                                                                        : !offset ? "bad offset" : "offset too old");
      return connect_new(nsp, std::move(auth));
    }
    auto pid = auth["pid"].get<std::string>();
    auto sock = make_socket(nsp, std::move(auth));
    sock->id_ = std::move(state->sid);
    sock->pid_ = std::move(pid);
    sock->data = std::move(state->data);
    sock->outbox_ = std::move(box);
    sock->recovered_ = true;
    server_.recovered_.inc();
    finish_connect(nsp, sock, std::nullopt, &*missed);
  }

  void connect_new(namespace_* nsp, json auth) {
    auto sock = make_socket(nsp, std::move(auth));
    if (server_.opts_.recovery_on()) {
      sock->pid_ = core::random_token(15);
      sock->outbox_ = std::make_unique<outbox>(server_.opts_.recovery_max_events);
    }
    if (nsp->middlewares_.empty()) return finish_connect(nsp, sock, std::nullopt);
    asio::co_spawn(
        session_.strand(),
        run_middlewares(nsp, sock),
        [this, alive = alive_, nsp, sock](std::exception_ptr e, std::optional<connect_error> err) {
          if (!*alive) return;
          if (e) {
            core::logger("socketio")->error("sid={} connection middleware failed", session_.id());
            err = connect_error{"Internal server error", json{{"code", "INTERNAL"}}};
          }
          finish_connect(nsp, sock, std::move(err));
        });
  }

  // A static coroutine, not a capturing lambda (C++ Core Guidelines CP.51).
  static asio::awaitable<std::optional<connect_error>> run_middlewares(namespace_* nsp, std::shared_ptr<socket> sock) {
    for (auto& m : nsp->middlewares_)
      if (auto err = co_await m(sock)) co_return err;
    co_return std::nullopt;
  }

  void finish_connect(namespace_* nsp, std::shared_ptr<socket> sock, std::optional<connect_error> err,
                      const std::vector<buffered_event>* replay = nullptr) {
    connecting_.erase(sock->nsp());
    if (err) {
      server_.connect_rejected_.inc();
      json payload{{"message", err->message}};
      if (!err->data.is_discarded()) payload["data"] = err->data;
      send(packet{packet_type::connect_error, sock->nsp(), std::nullopt, std::move(payload)});
      return;
    }
    if (session_.is_closed()) return;
    sock->connected_ = true;
    ++server_.sockets_;
    sockets_[sock->nsp()] = sock;
    json reply{{"sid", sock->id()}};
    if (sock->outbox_) reply["pid"] = sock->pid_;
    send(packet{packet_type::connect, sock->nsp(), std::nullopt, std::move(reply)});
    if (replay)
      for (const auto& e : *replay) send(packet{packet_type::event, sock->nsp(), std::nullopt, e.args});
    for (auto& fn : nsp->on_connection_) fn(sock);
  }

  server& server_;
  engineio::session& session_;
  std::weak_ptr<engineio::session> weak_;
  decoder decoder_;
  std::map<std::string, std::shared_ptr<socket>> sockets_;
  std::set<std::string> connecting_;
  std::unique_ptr<asio::steady_timer> connect_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// ---------------------------------------------------------------- socket

socket::socket(std::weak_ptr<engineio::session> session, connection* conn, const namespace_& nsp, json auth)
    : id_(core::random_token(15)),
      auth_(auth.is_object() && auth.empty() ? json() : std::move(auth)),
      session_(session),
      strand_(session.lock()->strand()),
      conn_(conn),
      namespace_handlers_(&nsp) {
  handshake_ = session.lock()->info_ptr();
}

const std::string& socket::nsp() const noexcept { return namespace_handlers_->name(); }

const json& socket::auth() const noexcept {
  static const json empty = json::object();
  return auth_.is_null() ? empty : auth_;
}

void socket::send_packet(packet p) {
  if (connected_ && conn_) conn_->send(p);
}

// An event without ack: numbered and kept for recovery when it is on (connected, or disconnected
// and still held for recovery), then sent if there is a connection to send it on.
void socket::send_event(packet p) {
  if (outbox_ && (connected_ || detached_)) {
    if (!p.args_text.empty()) {  // the offset is appended to the arguments: that takes the tree
      p.data = p.payload();
      p.args_text.clear();
      if (p.data.is_discarded()) return;  // a number out of double range: nothing to number
    }
    outbox_->stamp(p.data);
  }
  send_packet(std::move(p));
}

void socket::emit(const std::string& event, json args) {
  if (!args.is_array()) args = json::array({std::move(args)});
  args.insert(args.begin(), event);
  post_event(packet{packet_type::event, nsp(), std::nullopt, std::move(args)});
}

void socket::emit_text(const std::string& event, std::string args_text) {
  post_event(packet{packet_type::event, nsp(), std::nullopt, json(json::value_t::discarded), event, std::move(args_text)});
}

void socket::post_event(packet p) {
  if (strand_.running_in_this_thread()) return send_event(std::move(p));
  asio::dispatch(strand_, [self = shared_from_this(), p = std::move(p)]() mutable { self->send_event(std::move(p)); });
}

std::shared_ptr<void> socket::hold_for_recovery() {
  if (!detached_) return nullptr;
  ++detached_->holds;
  auto self = shared_from_this();
  return std::shared_ptr<void>(this, [self](void*) {
    asio::dispatch(self->strand_, [self] { self->release_hold(); });
  });
}

void socket::release_hold() {
  if (!detached_ || detached_->holds == 0) return;
  if (--detached_->holds == 0 && detached_->released) detached_->released->cancel();
}

// After a recoverable disconnect: the pid is reserved at once (a reconnect elsewhere waits for
// the state instead of starting over), the state is sealed once every hold is gone.
asio::awaitable<void> socket::persist(std::shared_ptr<socket> self) {
  auto& opts = self->server_->opts_;
  const auto deadline = std::chrono::steady_clock::now() + opts.recovery_window;
  co_await opts.recovery->reserve(self->pid_, opts.recovery_window);
  if (self->detached_->holds > 0) {
    self->detached_->released->expires_at(deadline);
    co_await self->detached_->released->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  const bool held = self->detached_->holds > 0;
  self->detached_.reset();  // from here on nothing more is buffered
  auto box = std::move(self->outbox_);
  if (held || left.count() <= 0) {
    core::logger("socketio")->info("socket {} still busy when its recovery window ended: its state expires", self->id_);
    co_return;
  }
  detached_state state{self->id_, self->nsp(), self->data, box->last_offset(), {box->events().begin(), box->events().end()}};
  box.reset();
  co_await opts.recovery->seal(self->pid_, serialize(state), left);
}

void socket::emit_with_ack(const std::string& event, json args, std::chrono::milliseconds timeout,
                           std::function<void(std::optional<json>)> done) {
  if (!args.is_array()) args = json::array({std::move(args)});
  args.insert(args.begin(), event);
  asio::dispatch(strand_, [self = shared_from_this(), args = std::move(args), timeout, done = std::move(done)]() mutable {
    if (!self->connected_) {
      if (done) done(std::nullopt);
      return;
    }
    auto& more = self->more();
    const auto id = more.next_ack_id++;
    auto timer = std::make_shared<asio::steady_timer>(self->strand_, timeout);
    more.acks[id] = pending_ack{std::move(done), timer};
    timer->async_wait([weak = std::weak_ptr<socket>(self), id](boost::system::error_code ec) {
      auto s = weak.lock();
      if (ec || !s) return;
      auto pending = s->take_ack(id);
      if (pending && pending->done) pending->done(std::nullopt);
    });
    self->send_packet(packet{packet_type::event, self->nsp(), id, std::move(args)});
  });
}

std::optional<socket::pending_ack> socket::take_ack(std::uint64_t id) {
  if (!extras_) return std::nullopt;
  auto it = extras_->acks.find(id);
  if (it == extras_->acks.end()) return std::nullopt;
  auto pending = std::move(it->second);
  extras_->acks.erase(it);
  return pending;
}

void socket::disconnect(bool close_connection) {
  asio::dispatch(strand_, [self = shared_from_this(), close_connection] {
    if (!self->connected_) return;
    self->send_packet(packet{packet_type::disconnect, self->nsp(), std::nullopt, json(json::value_t::discarded)});
    auto* conn = self->conn_;
    conn->remove(self->nsp());
    self->handle_disconnect("server namespace disconnect");
    if (close_connection) conn->session().close();
  });
}

void socket::handle_disconnect(const std::string& reason) {
  if (!connected_) return;
  connected_ = false;
  conn_ = nullptr;
  if (outbox_ && server_ && server_->opts_.recovery_on() && is_recoverable_reason(reason)) {
    detached_ = std::make_unique<detachment>();
    detached_->holds = 1;  // this function's own, so the handlers below may take theirs
    detached_->released = std::make_unique<asio::steady_timer>(strand_);
    asio::co_spawn(strand_, persist(shared_from_this()), asio::detached);
  } else {
    outbox_.reset();
  }
  if (auto more = std::move(extras_)) {  // also breaks reference cycles through captured sockets
    for (auto& [_, a] : more->acks) {
      if (a.timer) a.timer->cancel();
      if (a.done) a.done(std::nullopt);
    }
    more->acks.clear();
    for (auto& fn : more->disconnect_handlers) fn(reason);
  }
  release_hold();
}

// ---------------------------------------------------------------- server

server::server(server_options opts, core::metrics& metrics)
    : opts_(opts),
      protocol_errors_(metrics.get_counter("berth_socketio_protocol_errors_total",
                                           "Socket.IO connections closed for a malformed packet")),
      invalid_namespace_(metrics.get_counter("berth_socketio_invalid_namespace_total",
                                             "CONNECT to an unknown namespace")),
      connect_rejected_(metrics.get_counter("berth_socketio_connect_rejected_total",
                                            "CONNECT refused by middleware (CONNECT_ERROR)")),
      connect_timeouts_(metrics.get_counter("berth_socketio_connect_timeouts_total",
                                            "Connections closed without a CONNECT")),
      json_too_deep_(metrics.get_counter("berth_socketio_json_too_deep_total",
                                         "Connections closed for a packet nested deeper than the JSON depth limit")),
      attachments_unjoined_(metrics.get_counter("berth_socketio_attachment_violations_total",
                                                "Connections closed for binary attachments they may not send",
                                                "reason=\"namespace_not_joined\"")),
      attachments_too_large_(metrics.get_counter("berth_socketio_attachment_violations_total",
                                                 "Connections closed for binary attachments they may not send",
                                                 "reason=\"too_large\"")),
      rate_limited_(metrics.get_counter("berth_socketio_events_rate_limited_total",
                                        "Client events refused by the per-socket event rate limit")),
      rate_limited_dropped_(metrics.get_counter("berth_socketio_events_rate_limited_dropped_total",
                                                "Refused events without ack and without a rate-limit hook (dropped)")),
      flood_disconnects_(metrics.get_counter("berth_socketio_flood_disconnects_total",
                                             "Connections closed for a sustained event flood")),
      recovered_(metrics.get_counter("berth_socketio_recovered_total",
                                     "Reconnects that recovered their socket (same id, missed events replayed)")),
      recovery_missed_(metrics.get_counter("berth_socketio_recovery_missed_total",
                                           "Reconnects with a pid and offset that could not recover (new connection)")) {
  metrics.add_gauge("berth_socketio_sockets", "Connected Socket.IO sockets",
                    [this] { return static_cast<double>(sockets_.load()); });
}

namespace_& server::of(const std::string& name) {
  auto& slot = namespaces_[name];
  if (!slot) slot = std::make_unique<namespace_>(name);
  return *slot;
}

engineio::server::handler_factory server::handler_factory() {
  return [this](std::shared_ptr<engineio::session> s) -> std::unique_ptr<engineio::session_handler> {
    return std::make_unique<connection>(*this, std::move(s));
  };
}

}  // namespace berth::socketio
