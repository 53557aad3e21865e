#pragma once
// Engine.IO v4 session state machine (sans-I/O). It owns the outbound queue, the heartbeat
// deadlines and the polling/upgrade rules; the Asio shell (engineio_server) feeds it requests,
// frames and the clock, and performs the I/O it asks for. Not thread-safe: the shell calls it
// on the session's strand only.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "berth/engineio/packet.hpp"

namespace berth::engineio {

using clock = std::chrono::steady_clock;

struct session_options {
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{20000};
  std::chrono::milliseconds upgrade_timeout{10000};
  std::size_t max_payload = 1000000;
  // Outbound bytes queued for a slow client before the session is closed (watermark).
  std::size_t max_outbound_bytes = 8 * 1000000;
  // Pong (and close) frames owed to a websocket peer while a write to it is stalled: a peer
  // that pings faster than it reads is closed once they pass this.
  std::size_t max_control_bytes = 16 * 1024;
  // Everything one connection holds (a partial inbound message, binary attachments waiting
  // for their packet, the outbound queue and the unwritten rest); 0: not checked as a whole.
  std::size_t max_buffered_bytes = 0;
};

enum class transport_kind { polling, websocket };

enum class close_reason {
  none,
  transport_close,   // the client closed (close packet or socket gone)
  ping_timeout,
  parse_error,
  transport_error,   // broken framing, oversize body, duplicate poll
  server_close,      // the application closed it
  outbound_overflow, // the client does not read fast enough
  server_shutdown,
  buffer_overflow,   // the connection held more than max_buffered_bytes (or a packet's attachments too many)
  control_overflow,  // pongs owed piled up: the peer pings faster than it reads
  overloaded,        // the process is over its buffer budget and this connection wanted more
  policy_violation,  // the application closed it for abuse (e.g. a sustained event flood)
};
const char* to_string(close_reason r) noexcept;

// What the shell must do after a polling GET arrives.
enum class poll_get_result {
  respond_now,  // take_polling_body() and answer 200
  wait,         // keep the request open until woken (data, close or deadline)
  duplicate,    // a GET is already pending: the session closes; answer this one 400
  not_polling,  // session upgraded to websocket: answer 400
};

// What the shell must do with a polling POST body.
enum class post_result { ok, closed_by_client, bad_packet, duplicate, not_polling };

class session_fsm {
 public:
  // `opts` outlives the state machine (the server's, shared by all its sessions: a copy would
  // cost every connection 56 bytes).
  session_fsm(const session_options& opts, transport_kind initial, clock::time_point now);
  session_fsm(session_options&&, transport_kind, clock::time_point) = delete;

  // ---- outbound ----
  // Queues a packet for the client. Returns false when closed or when the queue overflowed
  // (the session is then closed with outbound_overflow).
  bool send(packet p);
  bool has_outbound() const noexcept { return !outbound_.empty(); }
  std::size_t outbound_bytes() const noexcept { return outbound_bytes_; }

  // The open packet's JSON ({"sid","upgrades","pingInterval","pingTimeout","maxPayload"}).
  static std::string handshake_json(const std::string& sid, bool can_upgrade, const session_options& o);

  // ---- polling ----
  poll_get_result on_poll_get();
  // Body for the pending/current GET: everything queued (or "6" noop during upgrade); ends the GET.
  std::string take_polling_body();
  // Whether the pending GET should be answered now (data queued, noop owed, or closed).
  bool poll_ready() const noexcept;
  // The pending GET went away (client disconnected or answered).
  void poll_finished() noexcept { poll_pending_ = false; }
  bool poll_pending() const noexcept { return poll_pending_; }
  // POST body; inbound message packets are appended to `delivered`.
  post_result on_post(std::string_view body, std::vector<packet>& delivered, clock::time_point now);
  void post_started() noexcept { post_pending_ = true; }
  void post_finished() noexcept { post_pending_ = false; }
  bool post_pending() const noexcept { return post_pending_; }

  // ---- websocket (the session's own transport) ----
  // A text or binary frame from the websocket transport; messages go to `delivered`.
  // Returns false if the frame was invalid (the session is then closed).
  bool on_ws_frame(std::string_view data, bool binary, std::vector<packet>& delivered, clock::time_point now);
  // Frames to write: (payload, is_binary). Drains the queue.
  std::vector<std::pair<std::string, bool>> take_ws_frames();
  // The same frames, appended to `out` already framed as RFC 6455 server frames (no copy per
  // packet); returns whether anything was appended. Drains the queue.
  bool append_ws_frames(std::string& out);
  // Frees the (empty) outbound queue's storage; the shell calls it when the session goes idle.
  void shrink() {
    if (outbound_.empty()) outbound_ = {};
  }

  // ---- upgrade (a second, probing websocket for a polling session) ----
  bool can_upgrade() const noexcept { return transport_ == transport_kind::polling && !upgrading_ && !closed(); }
  void upgrade_started(clock::time_point now);
  enum class probe_result { reply_probe, upgraded, invalid };
  // A text frame on the probing websocket: "2probe" -> reply "3probe"; "5" -> upgraded.
  probe_result on_probe_frame(std::string_view frame);
  void upgrade_failed() noexcept { upgrading_ = false; probed_ = false; }
  bool upgrading() const noexcept { return upgrading_; }

  // ---- time ----
  clock::time_point next_deadline() const noexcept;
  // Sends the ping when due, closes on a missed pong or a stuck upgrade.
  void on_timer(clock::time_point now);

  // ---- close ----
  // Closes the session; a server close queues the close packet ("1") for the client first.
  void close(close_reason reason);
  bool closed() const noexcept { return reason_ != close_reason::none; }
  close_reason reason() const noexcept { return reason_; }
  // Whether the close packet must still be delivered to the client before the transport ends.
  bool close_packet_owed() const noexcept { return close_packet_owed_; }
  transport_kind transport() const noexcept { return transport_; }

 private:
  void handle_inbound(packet p, std::vector<packet>& delivered);
  void schedule_ping(clock::time_point now);

  const session_options* opts_;
  transport_kind transport_;
  std::vector<packet> outbound_;  // vector: empty costs nothing (a deque allocates 500+ bytes)
  std::size_t outbound_bytes_ = 0;
  close_reason reason_ = close_reason::none;
  bool close_packet_owed_ = false;
  bool poll_pending_ = false;
  bool post_pending_ = false;
  bool upgrading_ = false;
  bool probed_ = false;
  bool noop_owed_ = false;  // the polling side must be released during an upgrade
  bool awaiting_pong_ = false;
  bool pong_extended_ = false;
  clock::time_point now_;
  clock::time_point ping_at_;
  clock::time_point pong_deadline_;
  clock::time_point upgrade_deadline_;
};

}  // namespace berth::engineio
