// libFuzzer target: MCP stdio framing (line_decoder, fed in chunks the input picks) and
// parse_message on every line; whatever parses as a message is encoded back and must parse
// again as the same kind.
#include <cstddef>
#include <cstdint>

#include "berth/mcp/jsonrpc.hpp"
#include "fuzz_input.hpp"

using namespace berth::mcp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  berth::fuzz::input in(data, size);
  const std::size_t chunk = 1 + in.byte() % 32;
  line_decoder lines(1024);
  for (int feeds = 0; !in.empty() && feeds < 100000; ++feeds) {
    lines.feed(in.take(chunk));
    if (lines.buffered() > 1024) __builtin_trap();  // the documented bound
    for (int i = 0; i < 100000; ++i) {
      auto item = lines.next();
      if (!item) break;
      if (item->too_long) continue;
      const auto m = parse_message(item->line);
      (void)id_key(m.id);
      std::string again;
      switch (m.kind) {
        case message_kind::request: again = make_request(m.id, m.method, m.params); break;
        case message_kind::notification: again = make_notification(m.method, m.params); break;
        case message_kind::response: again = make_result(m.id, m.result); break;
        case message_kind::error_response: again = make_error(m.id, m.error_code, m.error_message, m.error_data); break;
        case message_kind::invalid: continue;
      }
      if (again.empty() || again.back() != '\n') __builtin_trap();
      again.pop_back();
      if (parse_message(again).kind != m.kind) __builtin_trap();
    }
  }
  return 0;
}
