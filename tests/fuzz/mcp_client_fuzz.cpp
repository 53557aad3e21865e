// libFuzzer target: the MCP client state machine reading what an MCP server (the sandbox, which
// a user's commands may impersonate) writes: initialize, tools/list and tools/call answers, stray
// and malformed lines, fed in chunks, with requests in flight and deadlines passing.
#include <cstddef>
#include <cstdint>

#include "berth/mcp/client_fsm.hpp"
#include "fuzz_input.hpp"

using namespace berth::mcp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  berth::fuzz::input in(data, size);
  const std::size_t chunk = 1 + in.byte() % 64;
  const auto ctl = in.byte();  // bit 0: let deadlines pass; bit 1: cancel; bit 2: close early
  client_options opts;
  opts.max_line_bytes = 4096;
  client_fsm c(opts);
  const clock::time_point t0{};
  c.start(t0);  // request 1: initialize
  (void)c.take_output();
  bool requested = false;
  for (int feeds = 0; !in.empty() && feeds < 100000; ++feeds) {
    c.on_bytes(in.take(chunk));
    if (c.state() == client_state::ready && !requested) {
      requested = true;  // requests 2 and 3: what a server's answers to them are matched with
      (void)c.list_tools(t0 + std::chrono::seconds(10));
      (void)c.call_tool("read_file", nlohmann::json{{"path", "a"}}, t0 + std::chrono::seconds(20));
      if (ctl & 2) c.cancel(3, "fuzz");
    }
    if (ctl & 1) c.on_timer(t0 + std::chrono::seconds(feeds));
    if ((ctl & 4) && feeds == 8) c.on_closed("fuzz");
    (void)c.take_output();
    (void)c.take_events();
  }
  c.on_closed("end of input");
  (void)c.take_events();
  return 0;
}
