#pragma once
// Socket.IO v5 packet codec (sans-I/O): "<type>[<#attachments>-][<nsp>,][<ack id>][JSON]".
// Binary values travel as json::binary_t inside `data`; encoding replaces them with
// {"_placeholder":true,"num":k} and returns the attachments to send as binary frames.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::socketio {

using json = nlohmann::json;

enum class packet_type : std::uint8_t {
  connect = 0,
  disconnect = 1,
  event = 2,
  ack = 3,
  connect_error = 4,
  binary_event = 5,
  binary_ack = 6,
};

struct packet {
  packet_type type = packet_type::event;
  std::string nsp = "/";
  std::optional<std::uint64_t> id;
  json data;  // discarded (json::value_t::discarded) when the packet has no payload or carries it as text
  // An event or ack without binary may carry its arguments as JSON text instead of `data`: an
  // array, already validated (core::validate_json). Decoded events named by a string always do,
  // with the name in `event`, so a handler that passes its arguments on never parses them.
  std::string event{};
  std::string args_text{};  // empty: the payload, if any, is `data`
  bool has_data() const noexcept { return !data.is_discarded() || !args_text.empty(); }
  // The payload as a tree whichever way it is carried (for an event: [name, args...]).
  // Discarded when there is none, or when the text holds a number too large for a double.
  json payload() const;
};

struct encoded_packet {
  std::string text;                      // the Engine.IO message (text)
  std::vector<std::string> attachments;  // binary Engine.IO messages that follow
};

// Encodes; event/ack packets containing binary become binary_event/binary_ack. Arguments carried
// as text are written as they are.
encoded_packet encode(const packet& p);

// Limits that keep a hostile peer from growing server memory.
inline constexpr std::size_t max_attachments = 256;

enum class decode_error {
  none,
  bad_type,
  bad_attachments,
  bad_namespace,
  bad_ack_id,
  bad_json,
  too_deep,         // nested deeper than core::max_json_depth (refused before parsing)
  bad_payload,      // valid JSON of the wrong shape for the packet type
  bad_placeholder,  // placeholder num out of range or malformed
  unexpected_binary,
  attachments_too_large,  // a packet's binary attachments add up to more than the decoder's limit
};
const char* to_string(decode_error e) noexcept;

// Incremental decoder: a text message, then (for binary packets) its attachments. A completed
// packet is written to the caller's `out`; the decoder itself holds only a binary packet being
// assembled (8 bytes per connection otherwise).
class decoder {
 public:
  // Attachments are buffered until the packet is whole; they may add up to this many bytes.
  static constexpr std::size_t default_max_attachment_bytes = 1000000;
  explicit decoder(std::size_t max_attachment_bytes = default_max_attachment_bytes)
      : max_attachment_bytes_(max_attachment_bytes) {}
  enum class status { complete, need_binary, error };
  status feed_text(std::string_view msg, packet& out);
  status feed_binary(std::string data, packet& out);
  decode_error error() const noexcept { return error_; }
  bool awaiting_binary() const noexcept { return assembly_ != nullptr; }
  // While awaiting_binary(): the packet's type, namespace and id, known from its text header,
  // so the caller can refuse attachments for a namespace it has not joined before buffering them.
  const packet& pending() const noexcept { return assembly_->head; }
  std::size_t pending_attachments() const noexcept { return assembly_ ? assembly_->expected - assembly_->buffers.size() : 0; }
  // Attachment bytes held for the packet being assembled.
  std::size_t buffered_bytes() const noexcept { return assembly_ ? assembly_->buffered : 0; }
  // Drops a packet being assembled.
  void reset() noexcept;

 private:
  struct assembly {
    packet head;  // decoded from the text, placeholders still in
    std::vector<std::string> buffers;
    std::size_t buffered = 0;
    std::size_t expected = 0;
  };
  status fail(decode_error e);
  std::size_t max_attachment_bytes_;
  std::unique_ptr<assembly> assembly_;
  decode_error error_ = decode_error::none;
};

// True when `ev` may be used as a user event name (not connect, disconnect, ...).
bool is_reserved_event(std::string_view ev) noexcept;

}  // namespace berth::socketio
