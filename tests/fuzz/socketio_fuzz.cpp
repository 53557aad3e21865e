// libFuzzer target: Socket.IO packet decoder (text then binary attachments) and re-encoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "berth/socketio/packet.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nul = in.find('\0');
  berth::socketio::decoder d;
  auto st = d.feed_text(in.substr(0, nul));
  std::string_view rest = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
  while (st == berth::socketio::decoder::status::need_binary) {
    auto cut = std::min<std::size_t>(rest.size(), 8);
    st = d.feed_binary(std::string(rest.substr(0, cut)));
    rest.remove_prefix(cut);
    if (cut == 0) break;
  }
  if (st == berth::socketio::decoder::status::complete) {
    auto p = d.take();
    auto enc = berth::socketio::encode(p);
    berth::socketio::decoder again;
    if (again.feed_text(enc.text) == berth::socketio::decoder::status::error) __builtin_trap();
  }
  return 0;
}
