#pragma once
// What the outgoing HTTP client sends and gets back, as plain values: the pure codecs (LLM
// providers, MCP over streamable HTTP) build calls and read replies without a socket.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::http {

struct call_header {
  std::string name;
  std::string value;
  bool secret = false;  // an API key or token: sent, never logged, never echoed in errors
};

// One request to send. `url` is absolute (http:// or https://).
struct call {
  std::string method = "POST";
  std::string url;
  std::vector<call_header> headers;
  std::string body;
};

// What came back. Header names are lower-case.
struct reply {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // First header value by (lower-case) name, or empty.
  std::string_view header(std::string_view lower_name) const noexcept;
};

}  // namespace berth::http
