#pragma once
// Shared body of the three provider-codec targets: the input picks the HTTP status and a
// retry-after header, the rest is the reply body a provider (or anything pretending to be one
// at its URL) sends back; parse() must classify it without crashing, and a reply it accepts
// must only name tools the request offered.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "berth/llm/codec.hpp"
#include "fuzz_input.hpp"

namespace berth::fuzz {

inline llm::llm_request codec_request() {
  llm::llm_request r;
  r.system_prompt = "You are Berth.";
  r.tools = {{"list_files", "List files", nlohmann::json{{"type", "object"}}},
             {"run_command", "Run a command", nlohmann::json{{"type", "object"}}}};
  r.messages.push_back(llm::chat_message::user("hi"));
  return r;
}

inline int fuzz_codec(const llm::provider_codec& codec, const std::uint8_t* data, std::size_t size) {
  static const auto request = codec_request();
  static constexpr unsigned statuses[] = {200, 200, 200, 200, 400, 401, 404, 408, 429, 500, 503, 529};
  input in(data, size);
  berth::http::reply rep;
  rep.status = statuses[in.byte() % std::size(statuses)];
  if (const auto h = in.byte(); h % 4 == 0) rep.headers.emplace_back("retry-after", std::string(in.take(h % 16)));
  else if (h % 4 == 1) rep.headers.emplace_back("retry-after-ms", std::string(in.take(h % 16)));
  rep.body = std::string(in.rest());
  (void)llm::retry_after_hint(rep);
  auto out = codec.parse(request, rep);
  if (out.reply) {
    for (const auto& call : out.reply->tool_calls)
      if (call.name != "list_files" && call.name != "run_command") __builtin_trap();  // unknown tools are refused
    (void)llm::redact(out.reply->text, "sk-fuzz-secret");
  } else {
    (void)llm::redact(out.reply.error().message, "sk-fuzz-secret");
  }
  return 0;
}

}  // namespace berth::fuzz
