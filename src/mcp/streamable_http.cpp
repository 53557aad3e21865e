// Streamable HTTP reply bodies -> JSON-RPC lines for the client state machine.
#include <cctype>

#include "berth/mcp/streamable_http.hpp"

#include "berth/core/json.hpp"
#include "berth/mcp/jsonrpc.hpp"

namespace berth::mcp {

namespace {

std::string lower_media_type(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  std::size_t i = 0;
  while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
  t.erase(0, i);
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

// A message's JSON re-encoded on one line (a payload may span lines in SSE or a pretty body).
void append_json(std::string& out, std::string_view text) {
  auto j = core::parse_json(text);
  if (j.is_discarded()) {
    // Pass it through on one line: the client state machine reports it as a protocol error.
    std::string flat(text);
    for (auto& c : flat)
      if (c == '\n' || c == '\r') c = ' ';
    out += flat + "\n";
    return;
  }
  if (j.is_array()) {
    for (const auto& m : j) out += encode_line(m);
    return;
  }
  out += encode_line(j);
}

// text/event-stream (WHATWG HTML §9.2): lines end in \n, \r\n or \r; an empty line ends an event;
// "data:" lines accumulate (joined by \n); one space after the colon is dropped.
std::string sse_lines(std::string_view body) {
  std::string out, data;
  bool has_data = false;
  auto dispatch = [&] {
    if (has_data && !data.empty()) append_json(out, data);
    data.clear();
    has_data = false;
  };
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t eol = body.find_first_of("\r\n", pos);
    const bool last = eol == std::string_view::npos;
    std::string_view line = body.substr(pos, last ? std::string_view::npos : eol - pos);
    if (line.empty()) {
      if (!last) dispatch();
    } else if (line.front() != ':') {
      const auto colon = line.find(':');
      std::string_view field = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (field == "data") {
        if (has_data) data += '\n';
        data += value;
        has_data = true;
      }
    }
    if (last) break;
    pos = eol + 1;
    if (body[eol] == '\r' && pos < body.size() && body[pos] == '\n') ++pos;
  }
  dispatch();  // a stream that ends without the final blank line still delivers its last event
  return out;
}

}  // namespace

core::result<std::string> streamable_http_lines(std::string_view content_type, std::string_view body) {
  const std::string type = lower_media_type(content_type);
  bool blank = true;
  for (char c : body)
    if (!std::isspace(static_cast<unsigned char>(c))) blank = false;
  if (blank) return std::string();
  if (type == "application/json") {
    std::string out;
    append_json(out, body);
    return out;
  }
  if (type == "text/event-stream") return sse_lines(body);
  return core::make_error(core::errc::sandbox_unavailable,
                          "MCP server replied with Content-Type '" + std::string(content_type.substr(0, 60)) +
                              "' (expected application/json or text/event-stream)");
}

}  // namespace berth::mcp
