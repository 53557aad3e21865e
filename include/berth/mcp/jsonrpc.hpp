#pragma once
// JSON-RPC 2.0 over newline-delimited JSON (the MCP stdio transport): an incremental line framer
// and message parse/encode helpers. Pure: no I/O, no logging, depends on nlohmann only, so the
// static `berth-sandbox` binary links it as well as the gateway's MCP client.
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::mcp {

// JSON-RPC 2.0 error codes (and MCP's use of them).
namespace rpc_error {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
}  // namespace rpc_error

// Splits a byte stream into lines. Feed any split of the input; lines come out whole, without the
// trailing "\n" or "\r\n". Blank lines are skipped. A line longer than max_line_bytes is dropped
// (memory stays bounded by max_line_bytes plus the chunk being fed) and reported once as an item
// with too_long=true when its terminating newline arrives. Not thread-safe; one per stream.
class line_decoder {
 public:
  static constexpr std::size_t default_max_line_bytes = 16u * 1024u * 1024u;

  struct item {
    std::string line;             // empty when too_long
    bool too_long = false;
    std::size_t dropped_bytes = 0;  // size of the dropped line (too_long only)
  };

  explicit line_decoder(std::size_t max_line_bytes = default_max_line_bytes) : max_(max_line_bytes) {}

  void feed(std::string_view bytes);
  // The next complete line (or too-long report), in input order.
  std::optional<item> next();
  // Bytes of an unfinished line held (bounded by max_line_bytes).
  std::size_t buffered() const noexcept { return partial_.size(); }
  // True while an over-long line is being skipped.
  bool discarding() const noexcept { return discarding_; }

 private:
  void finish_line();

  std::size_t max_;
  std::string partial_;
  bool discarding_ = false;
  std::size_t discarded_ = 0;
  std::deque<item> ready_;
};

enum class message_kind { request, notification, response, error_response, invalid };

// One decoded JSON-RPC message. For kind == invalid, invalid_code is parse_error (not JSON) or
// invalid_request (JSON but not a JSON-RPC 2.0 message) and id is whatever could be recovered.
struct message {
  message_kind kind = message_kind::invalid;
  nlohmann::json id;      // string or integer; null when absent
  std::string method;     // request / notification
  nlohmann::json params;  // request / notification; null when absent
  nlohmann::json result;  // response
  int error_code = 0;     // error_response
  std::string error_message;
  nlohmann::json error_data;
  int invalid_code = 0;        // invalid
  std::string invalid_reason;  // invalid: precise reason
};

message parse_message(std::string_view line);

// Serialises one message as a line ending in "\n". Invalid UTF-8 in strings (e.g. a binary file
// or command output) is replaced by U+FFFD instead of throwing.
std::string encode_line(const nlohmann::json& j);
std::string make_request(const nlohmann::json& id, std::string_view method, const nlohmann::json& params);
std::string make_notification(std::string_view method, const nlohmann::json& params);
std::string make_result(const nlohmann::json& id, const nlohmann::json& result);
std::string make_error(const nlohmann::json& id, int code, std::string_view message,
                       const nlohmann::json& data = nullptr);

// Berth's own notification, from `berth-sandbox supervise` to the client on the container's
// stdio: the server it runs exited and a new one is starting; requests in flight are lost and
// the client initializes again.
inline constexpr std::string_view server_restarted_method = "notifications/berth/server_restarted";

// Short printable form of an id for logs and map keys ("7", "\"abc\"").
std::string id_key(const nlohmann::json& id);

}  // namespace berth::mcp
