// libFuzzer target: RESP2 replies from Redis (hiredis's reader under resp_reader), fed in chunks
// whose sizes the input picks; every complete reply is converted and described.
#include <cstddef>
#include <cstdint>

#include "berth/redis/reply.hpp"
#include "berth/redis/resp.hpp"
#include "fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  berth::fuzz::input in(data, size);
  const std::size_t chunk = 1 + in.byte() % 64;
  berth::redis::resp_reader reader(4096);  // small: the buffer bound is exercised too
  for (int feeds = 0; !in.empty() && feeds < 10000; ++feeds) {
    if (!reader.feed(in.take(chunk))) return 0;  // a protocol error or over the bound: sticky
    for (int i = 0; i < 10000; ++i) {
      auto r = reader.next();
      if (!r || !*r) break;
      const auto& rep = **r;
      (void)berth::redis::describe(rep);
      (void)berth::redis::as_string_array(rep);
      (void)berth::redis::as_integer(rep);
      if (!(rep == rep)) __builtin_trap();
    }
  }
  return 0;
}
