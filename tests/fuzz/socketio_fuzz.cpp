// libFuzzer target: Socket.IO packet decoder (text then binary attachments) and re-encoding.
// Input: the text packet, then NUL, then attachment bytes (cut in 8-byte pieces). The decoder's
// attachment bound is small here (64 bytes) so the refusal path is explored too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "berth/socketio/packet.hpp"

using berth::socketio::decoder;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nul = in.find('\0');
  decoder d(64);
  berth::socketio::packet p;
  auto st = d.feed_text(in.substr(0, nul), p);
  if (st == decoder::status::need_binary && (d.pending_attachments() == 0 || d.pending_attachments() > 256))
    __builtin_trap();  // the header announces 1..256 attachments
  std::string_view rest = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
  while (st == decoder::status::need_binary) {
    auto cut = std::min<std::size_t>(rest.size(), 8);
    st = d.feed_binary(std::string(rest.substr(0, cut)), p);
    rest.remove_prefix(cut);
    if (d.buffered_bytes() > 64) __builtin_trap();  // the bound holds
    if (cut == 0) break;
  }
  if (st == decoder::status::complete) {
    auto enc = berth::socketio::encode(p);
    decoder again;
    berth::socketio::packet q;
    if (again.feed_text(enc.text, q) == decoder::status::error) __builtin_trap();
  }
  return 0;
}
