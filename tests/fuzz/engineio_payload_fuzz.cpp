// libFuzzer target: Engine.IO polling payloads and the session state machine's POST path.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "berth/engineio/packet.hpp"
#include "berth/engineio/session_fsm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (auto packets = berth::engineio::decode_payload(body)) {
    // Whatever decodes must encode back to something that decodes to the same packets.
    auto again = berth::engineio::decode_payload(berth::engineio::encode_payload(*packets));
    if (!again || again->size() != packets->size()) __builtin_trap();
  }
  berth::engineio::session_fsm fsm({}, berth::engineio::transport_kind::polling, {});
  std::vector<berth::engineio::packet> delivered;
  fsm.on_post(body, delivered, {});
  fsm.take_polling_body();
  return 0;
}
