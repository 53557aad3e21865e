#pragma once
// RFC 6455 server-side framing (sans-I/O). Berth frames WebSocket itself instead of using
// beast::websocket::stream so an idle connection holds no read/write buffers: bytes are read
// into a per-thread scratch buffer and only an unfinished frame is copied here.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::engineio {

enum class ws_opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

struct ws_message {
  ws_opcode op = ws_opcode::text;
  std::string data;  // whole message (fragments joined); for close: the raw close payload
};

// Close codes the decoder reports when the peer breaks the protocol.
enum class ws_close_code : std::uint16_t {
  none = 0,
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  invalid_payload = 1007,
  policy_violation = 1008,
  too_big = 1009,
  try_again_later = 1013,
};

class websocket_decoder {
 public:
  explicit websocket_decoder(std::size_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Consumes `bytes`, appending complete messages (data and control) to `out`.
  // Returns ws_close_code::none, or the code to close with after a protocol violation.
  ws_close_code feed(std::string_view bytes, std::vector<ws_message>& out);

  // True while a partial frame or fragmented message is buffered.
  bool buffering() const noexcept { return !pending_.empty() || in_message_; }
  // Bytes held between reads (for memory accounting and tests).
  std::size_t buffered_bytes() const noexcept { return pending_.capacity() + message_.capacity(); }

 private:
  // Parses one frame from the front of `in`; returns bytes used, 0 if incomplete.
  std::size_t parse_frame(std::string_view in, std::vector<ws_message>& out, ws_close_code& err);

  std::size_t max_message_;
  std::string pending_;  // an incomplete frame carried to the next feed()
  std::size_t incomplete_frame_bytes_ = 0;  // that frame's whole size, once its header is in (else 0)
  std::string message_;  // a fragmented data message being assembled
  ws_opcode message_op_ = ws_opcode::text;
  bool in_message_ = false;
};

// Appends one unmasked, final server frame.
void append_ws_frame(std::string& out, ws_opcode op, std::string_view payload);
// Appends only the header of such a frame; the caller appends `payload_size` bytes next.
void append_ws_frame_header(std::string& out, ws_opcode op, std::size_t payload_size);
// A close frame with a status code (and optional short reason).
void append_ws_close(std::string& out, ws_close_code code, std::string_view reason = {});

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string websocket_accept_key(std::string_view client_key);

}  // namespace berth::engineio
