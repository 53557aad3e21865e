// libFuzzer target: the SSE parser and the provider stream decoders behind it. The input is cut
// at a position taken from its first byte; both halves must give the same events as one feed,
// and every decoder must digest whatever events come out without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "berth/llm/codec.hpp"
#include "berth/llm/sse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t cut = data[0] % size;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace berth::llm;
  sse_parser whole(4096);
  std::vector<sse_event> a;
  const auto sa = whole.feed(in, a);
  sse_parser split(4096);
  std::vector<sse_event> b;
  split.feed(in.substr(0, std::min(cut, in.size())), b);
  const auto sb = split.feed(in.substr(std::min(cut, in.size())), b);
  if (sa != sb || a.size() != b.size()) __builtin_trap();
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].data != b[i].data || a[i].type != b[i].type || a[i].last_event_id != b[i].last_event_id) __builtin_trap();

  llm_request req;
  req.tools = {{"list_files", "", nlohmann::json{{"type", "object"}}}};
  req.messages.push_back(chat_message::user("hi"));
  codec_settings cs{"http://127.0.0.1:9", "k", "m"};
  for (auto make : {make_openai_codec, make_anthropic_codec, make_gemini_codec}) {
    auto codec = make(cs);
    auto dec = codec->make_stream_decoder(req);
    for (const auto& ev : a)
      if (dec->on_event(ev).failed) break;
    (void)dec->finish();
  }
  return 0;
}
