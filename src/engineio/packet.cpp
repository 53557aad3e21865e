#include "berth/engineio/packet.hpp"

#include "berth/core/random.hpp"

namespace berth::engineio {
namespace {
std::optional<packet_type> type_of(char c) {
  if (c < '0' || c > '6') return std::nullopt;
  return static_cast<packet_type>(c - '0');
}
}  // namespace

std::string encode_ws(const packet& p) {
  if (p.binary) return p.data;
  std::string out;
  out.reserve(p.data.size() + 1);
  out += static_cast<char>('0' + static_cast<int>(p.type));
  out += p.data;
  return out;
}

void append_polling(std::string& out, const packet& p) {
  if (p.binary) {
    out += 'b';
    out += core::base64_encode(p.data);
  } else {
    out += static_cast<char>('0' + static_cast<int>(p.type));
    out += p.data;
  }
}

std::string encode_payload(const std::vector<packet>& packets) {
  std::string out;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (i) out += record_separator;
    append_polling(out, packets[i]);
  }
  return out;
}

std::optional<packet> decode_ws_text(std::string_view frame) {
  if (frame.empty()) return std::nullopt;
  auto t = type_of(frame.front());
  if (!t) return std::nullopt;
  return packet{*t, std::string(frame.substr(1)), false};
}

std::optional<std::vector<packet>> decode_payload(std::string_view body) {
  std::vector<packet> out;
  if (body.empty()) return std::nullopt;
  std::size_t start = 0;
  while (start <= body.size()) {
    auto end = body.find(record_separator, start);
    if (end == std::string_view::npos) end = body.size();
    auto part = body.substr(start, end - start);
    if (part.empty()) return std::nullopt;
    if (part.front() == 'b') {
      packet p{packet_type::message, {}, true};
      if (!core::base64_decode(part.substr(1), p.data)) return std::nullopt;
      out.push_back(std::move(p));
    } else {
      auto p = decode_ws_text(part);
      if (!p) return std::nullopt;
      out.push_back(std::move(*p));
    }
    start = end + 1;
  }
  return out;
}

std::string_view message(http_error e) noexcept {
  switch (e) {
    case http_error::unknown_transport: return "Transport unknown";
    case http_error::unknown_sid: return "Session ID unknown";
    case http_error::bad_handshake_method: return "Bad handshake method";
    case http_error::bad_request: return "Bad request";
    case http_error::forbidden: return "Forbidden";
    case http_error::unsupported_protocol_version: return "Unsupported protocol version";
  }
  return "Bad request";
}

std::string error_body(http_error e) {
  return "{\"code\":" + std::to_string(static_cast<int>(e)) + ",\"message\":\"" + std::string(message(e)) + "\"}";
}

}  // namespace berth::engineio
