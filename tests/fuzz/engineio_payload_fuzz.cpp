// libFuzzer target: Engine.IO polling payloads and the session state machine's POST path; the
// first byte also sends the rest as one websocket frame (text or binary) through on_ws_frame.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "berth/engineio/packet.hpp"
#include "berth/engineio/session_fsm.hpp"

using namespace berth::engineio;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto packets = decode_payload(body)) {
    // Whatever decodes must encode back to something that decodes to the same packets.
    auto again = decode_payload(encode_payload(*packets));
    if (!again || again->size() != packets->size()) __builtin_trap();
  }
  static const session_options defaults{};
  session_fsm fsm(defaults, transport_kind::polling, {});
  std::vector<packet> delivered;
  fsm.on_post(body, delivered, {});
  fsm.take_polling_body();
  if (size > 0) {
    session_fsm ws(defaults, transport_kind::websocket, {});
    delivered.clear();
    ws.on_ws_frame(body.substr(1), data[0] & 1, delivered, {});
    std::string out;
    ws.append_ws_frames(out);
  }
  return 0;
}
