#include "berth/engineio/session_fsm.hpp"

#include "berth/engineio/websocket_codec.hpp"

namespace berth::engineio {

const char* to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::none: return "none";
    case close_reason::transport_close: return "transport close";
    case close_reason::ping_timeout: return "ping timeout";
    case close_reason::parse_error: return "parse error";
    case close_reason::transport_error: return "transport error";
    case close_reason::server_close: return "server close";
    case close_reason::outbound_overflow: return "outbound overflow";
    case close_reason::server_shutdown: return "server shutdown";
    case close_reason::buffer_overflow: return "buffer limit";
    case close_reason::control_overflow: return "control frames not read";
    case close_reason::overloaded: return "server overloaded";
    case close_reason::policy_violation: return "policy violation";
  }
  return "unknown";
}

session_fsm::session_fsm(const session_options& opts, transport_kind initial, clock::time_point now)
    : opts_(&opts), transport_(initial), now_(now) {
  schedule_ping(now);
}

std::string session_fsm::handshake_json(const std::string& sid, bool can_upgrade, const session_options& o) {
  return "{\"sid\":\"" + sid + "\",\"upgrades\":" + (can_upgrade ? "[\"websocket\"]" : "[]") +
         ",\"pingInterval\":" + std::to_string(o.ping_interval.count()) +
         ",\"pingTimeout\":" + std::to_string(o.ping_timeout.count()) +
         ",\"maxPayload\":" + std::to_string(o.max_payload) + "}";
}

void session_fsm::schedule_ping(clock::time_point now) {
  awaiting_pong_ = false;
  pong_extended_ = false;
  ping_at_ = now + opts_->ping_interval;
}

bool session_fsm::send(packet p) {
  if (closed()) return false;
  outbound_bytes_ += p.data.size() + 1;
  outbound_.push_back(std::move(p));
  if (outbound_bytes_ > opts_->max_outbound_bytes) {
    outbound_ = {};
    outbound_bytes_ = 0;
    reason_ = close_reason::outbound_overflow;
    return false;
  }
  return true;
}

poll_get_result session_fsm::on_poll_get() {
  if (transport_ != transport_kind::polling) return poll_get_result::not_polling;
  if (poll_pending_) {
    // Two concurrent GETs: the first one gets the close packet, this one a 400 (as engine.io).
    close(close_reason::transport_error);
    close_packet_owed_ = true;
    return poll_get_result::duplicate;
  }
  poll_pending_ = true;
  return poll_ready() ? poll_get_result::respond_now : poll_get_result::wait;
}

bool session_fsm::poll_ready() const noexcept {
  return !outbound_.empty() || noop_owed_ || closed();
}

std::string session_fsm::take_polling_body() {
  poll_pending_ = false;
  if (noop_owed_ && outbound_.empty() && !close_packet_owed_) {
    noop_owed_ = false;
    return "6";
  }
  noop_owed_ = false;
  if (outbound_.empty() && close_packet_owed_) {
    close_packet_owed_ = false;
    return "1";
  }
  // Buffered packets go first and the close packet in the next poll, as engine.io does:
  // socket.io-client handles a close in the same payload before the packets beside it.
  std::string body;
  body.reserve(outbound_bytes_ + outbound_.size());
  bool first = true;
  for (auto& p : outbound_) {
    if (!first) body += record_separator;
    first = false;
    append_polling(body, p);
  }
  outbound_ = {};
  outbound_bytes_ = 0;
  if (body.empty() && closed()) body = "6";  // released by a client-side close: nothing more to say
  return body;
}

post_result session_fsm::on_post(std::string_view body, std::vector<packet>& delivered, clock::time_point now) {
  now_ = now;
  if (transport_ != transport_kind::polling && !upgrading_) return post_result::not_polling;
  auto packets = decode_payload(body);
  if (!packets) {
    close(close_reason::parse_error);
    return post_result::bad_packet;
  }
  for (auto& p : *packets) {
    handle_inbound(std::move(p), delivered);
    if (closed()) return reason_ == close_reason::transport_close ? post_result::closed_by_client : post_result::bad_packet;
  }
  return post_result::ok;
}

void session_fsm::handle_inbound(packet p, std::vector<packet>& delivered) {
  // A client busy sending is alive: like engine.io, give it one more pingTimeout for the pong.
  if (awaiting_pong_ && !pong_extended_ && p.type != packet_type::pong) {
    pong_deadline_ = now_ + opts_->ping_timeout;
    pong_extended_ = true;
  }
  switch (p.type) {
    case packet_type::message:
      delivered.push_back(std::move(p));
      break;
    case packet_type::pong:
      if (awaiting_pong_) schedule_ping(now_);
      break;
    case packet_type::close:
      close(close_reason::transport_close);
      // A pending GET is released with a noop, as engine.io's polling transport does.
      if (poll_pending_) noop_owed_ = true;
      break;
    case packet_type::noop:
      break;
    default:  // open, ping (v4 clients never ping), upgrade outside an upgrade: protocol violations
      close(close_reason::parse_error);
      break;
  }
}

bool session_fsm::on_ws_frame(std::string_view data, bool binary, std::vector<packet>& delivered,
                              clock::time_point now) {
  now_ = now;
  if (binary) {
    delivered.push_back(packet{packet_type::message, std::string(data), true});
    return true;
  }
  auto p = decode_ws_text(data);
  if (!p) {
    close(close_reason::parse_error);
    return false;
  }
  handle_inbound(std::move(*p), delivered);
  return !closed() || reason_ == close_reason::transport_close;
}

std::vector<std::pair<std::string, bool>> session_fsm::take_ws_frames() {
  std::vector<std::pair<std::string, bool>> frames;
  frames.reserve(outbound_.size() + 1);
  for (auto& p : outbound_) frames.emplace_back(encode_ws(p), p.binary);
  outbound_ = {};
  outbound_bytes_ = 0;
  if (close_packet_owed_) {
    frames.emplace_back("1", false);
    close_packet_owed_ = false;
  }
  return frames;
}

bool session_fsm::append_ws_frames(std::string& out) {
  if (outbound_.empty() && !close_packet_owed_) return false;
  for (auto& p : outbound_) {
    if (p.binary) {
      append_ws_frame(out, ws_opcode::binary, p.data);
    } else {
      append_ws_frame_header(out, ws_opcode::text, p.data.size() + 1);
      out += static_cast<char>('0' + static_cast<int>(p.type));
      out += p.data;
    }
  }
  outbound_.clear();  // keeps the capacity while busy; shrink() releases it when idle
  outbound_bytes_ = 0;
  if (close_packet_owed_) {
    append_ws_frame(out, ws_opcode::text, "1");
    close_packet_owed_ = false;
  }
  return true;
}

void session_fsm::upgrade_started(clock::time_point now) {
  upgrading_ = true;
  probed_ = false;
  upgrade_deadline_ = now + opts_->upgrade_timeout;
}

session_fsm::probe_result session_fsm::on_probe_frame(std::string_view frame) {
  if (!upgrading_ || closed()) return probe_result::invalid;
  if (frame == "2probe" && !probed_) {
    probed_ = true;
    noop_owed_ = true;  // release the pending (or next) GET so the client can pause polling
    return probe_result::reply_probe;
  }
  if (frame == "5" && probed_) {
    upgrading_ = false;
    noop_owed_ = false;
    transport_ = transport_kind::websocket;
    return probe_result::upgraded;
  }
  upgrading_ = false;
  probed_ = false;
  return probe_result::invalid;
}

clock::time_point session_fsm::next_deadline() const noexcept {
  auto t = awaiting_pong_ ? pong_deadline_ : ping_at_;
  if (upgrading_ && upgrade_deadline_ < t) t = upgrade_deadline_;
  return t;
}

void session_fsm::on_timer(clock::time_point now) {
  now_ = now;
  if (closed()) return;
  if (upgrading_ && now >= upgrade_deadline_) {
    upgrading_ = false;  // the shell closes the probing socket
    probed_ = false;
    noop_owed_ = false;
  }
  if (awaiting_pong_) {
    if (now >= pong_deadline_) close(close_reason::ping_timeout);
    return;
  }
  if (now >= ping_at_) {
    send(packet{packet_type::ping, {}, false});
    awaiting_pong_ = true;
    pong_deadline_ = now + opts_->ping_timeout;
  }
}

void session_fsm::close(close_reason reason) {
  if (closed()) return;
  reason_ = reason;
  upgrading_ = false;
  // Only a server-side close tells the client; after a client close or a broken transport
  // there is nobody to tell.
  if (reason == close_reason::server_close || reason == close_reason::server_shutdown) {
    close_packet_owed_ = true;
  } else {
    outbound_ = {};
    outbound_bytes_ = 0;
  }
}

}  // namespace berth::engineio
