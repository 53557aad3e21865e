// libFuzzer target: Docker's multiplexed exec stream (8-byte frame headers from the daemon, the
// payload from the container, i.e. from the user's commands). The documented property is checked:
// any split of the input gives the same concatenated output and the same final state.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "berth/docker/stream_demux.hpp"
#include "fuzz_input.hpp"

using namespace berth::docker;

namespace {
struct outcome {
  std::string out, err;
  stream_demux::status state;
  bool boundary;
};
outcome run(std::string_view bytes, std::size_t chunk) {
  stream_demux d(4096);
  std::vector<stream_chunk> chunks;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) d.feed(bytes.substr(at, chunk), chunks);
  outcome o{{}, {}, d.state(), d.at_boundary()};
  for (auto& c : chunks) {
    if (c.data.empty()) __builtin_trap();  // no empty chunks
    (c.stream == stream_kind::stderr_ ? o.err : o.out) += c.data;
  }
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  berth::fuzz::input in(data, size);
  const std::size_t chunk = 1 + in.byte() % 32;
  const auto bytes = in.rest();
  const auto whole = run(bytes, bytes.size() + 1);
  const auto split = run(bytes, chunk);
  if (whole.out != split.out || whole.err != split.err || whole.state != split.state || whole.boundary != split.boundary)
    __builtin_trap();
  (void)to_string(whole.state);
  return 0;
}
