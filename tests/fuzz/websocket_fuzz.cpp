// libFuzzer target: RFC 6455 frame decoder, fed in two chunks split at the first byte's value.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "berth/engineio/websocket_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  berth::engineio::websocket_decoder d(4096);
  std::vector<berth::engineio::ws_message> out;
  const std::size_t split = size ? data[0] % (size + 1) : 0;
  if (d.feed(in.substr(0, split), out) == berth::engineio::ws_close_code::none) d.feed(in.substr(split), out);
  for (auto& m : out)
    if (m.data.size() > 4096) __builtin_trap();  // the message bound must hold
  return 0;
}
