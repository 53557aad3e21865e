#pragma once
// Engine.IO v4 packet and payload codec (sans-I/O): bytes in, packets out, and back.
// Text packets are "<type digit><data>"; over polling, binary packets are "b<base64>" and several
// packets travel in one body separated by the record separator 0x1e.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::engineio {

enum class packet_type : std::uint8_t { open = 0, close = 1, ping = 2, pong = 3, message = 4, upgrade = 5, noop = 6 };

struct packet {
  packet_type type = packet_type::message;
  std::string data;     // text payload, or raw bytes when binary
  bool binary = false;  // only for message packets
};

inline constexpr char record_separator = '\x1e';

// Encodes one packet for a WebSocket frame: text -> "<digit><data>"; binary -> raw bytes (binary frame).
std::string encode_ws(const packet& p);
// Appends one packet in polling form ("<digit><data>" or "b<base64>").
void append_polling(std::string& out, const packet& p);
// Joins packets into one polling body.
std::string encode_payload(const std::vector<packet>& packets);

// Decodes a WebSocket text frame into a packet; nullopt if malformed.
std::optional<packet> decode_ws_text(std::string_view frame);
// Decodes one polling body; nullopt if any packet in it is malformed (the session must close).
std::optional<std::vector<packet>> decode_payload(std::string_view body);

// Engine.IO's HTTP error codes and their messages, as socket.io 4.8's engine answers.
enum class http_error : std::uint8_t {
  unknown_transport = 0,
  unknown_sid = 1,
  bad_handshake_method = 2,
  bad_request = 3,
  forbidden = 4,
  unsupported_protocol_version = 5,
};
std::string_view message(http_error e) noexcept;
// {"code":N,"message":"..."}
std::string error_body(http_error e);

}  // namespace berth::engineio
