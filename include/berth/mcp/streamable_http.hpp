#pragma once
#include <string>
#include <string_view>

#include "berth/core/errors.hpp"

namespace berth::mcp {

// Streamable HTTP transport (pure part): the JSON-RPC messages of a reply to a POST, as
// newline-delimited lines for client_fsm::on_bytes. `content_type` is the reply's Content-Type:
// application/json (one message or a batch array) or text/event-stream (each event's data lines
// joined; events without data, comments and other fields are skipped). An empty body (202
// Accepted) gives no lines. Any other type is an error naming it.
core::result<std::string> streamable_http_lines(std::string_view content_type, std::string_view body);

}  // namespace berth::mcp
