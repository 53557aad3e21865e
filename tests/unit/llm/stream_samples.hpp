#pragma once
// Streamed replies exactly as each provider documents them (text/event-stream bodies):
//  - OpenAI Chat Completions `stream: true` + `stream_options.include_usage`: chat.completion.chunk
//    objects, tool_calls pieces keyed by index, a finish_reason chunk, a usage chunk with empty
//    choices, `data: [DONE]`.
//  - Anthropic Messages `stream: true`: message_start, content_block_start/delta/stop (text_delta,
//    input_json_delta), ping, message_delta (stop_reason, usage), message_stop; error events.
//  - Gemini `:streamGenerateContent?alt=sse`: one GenerateContentResponse per event, finishReason
//    and usageMetadata on the last.
// Each sample is a list of events (one string each, blank-line terminated), so tests can send
// them one by one, cut them anywhere, or stop in the middle.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::llm::samples {

inline std::string sse(std::string_view data, std::string_view event = {}) {
  std::string out;
  if (!event.empty()) out += "event: " + std::string(event) + "\n";
  out += "data: " + std::string(data) + "\n\n";
  return out;
}

inline std::string joined(const std::vector<std::string>& events) {
  std::string out;
  for (const auto& e : events) out += e;
  return out;
}

// ---- OpenAI
inline std::string openai_chunk(std::string_view choice_json) {
  return sse(R"({"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0aa8d3e20b","choices":[)" +
             std::string(choice_json) + R"(],"usage":null})");
}
inline std::vector<std::string> openai_text_stream(const std::vector<std::string>& pieces) {
  std::vector<std::string> ev;
  ev.push_back(openai_chunk(R"({"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null})"));
  for (const auto& p : pieces)
    ev.push_back(openai_chunk(R"({"index":0,"delta":{"content":)" + nlohmann::json(p).dump() +
                              R"(},"logprobs":null,"finish_reason":null})"));
  ev.push_back(openai_chunk(R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"})"));
  ev.push_back(sse(R"({"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0aa8d3e20b","choices":[],"usage":{"prompt_tokens":41,"completion_tokens":7,"total_tokens":48}})"));
  ev.push_back(sse("[DONE]"));
  return ev;
}
// list_files {"path":"/workspace"} with its arguments in three pieces, after a sentence.
inline std::vector<std::string> openai_tool_stream() {
  return {
      openai_chunk(R"({"index":0,"delta":{"role":"assistant","content":"Let me look.","refusal":null},"logprobs":null,"finish_reason":null})"),
      openai_chunk(R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_Xq1","type":"function","function":{"name":"list_files","arguments":""}}]},"logprobs":null,"finish_reason":null})"),
      openai_chunk(R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]},"logprobs":null,"finish_reason":null})"),
      openai_chunk(R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\": \"/work"}}]},"logprobs":null,"finish_reason":null})"),
      openai_chunk(R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"space\"}"}}]},"logprobs":null,"finish_reason":null})"),
      openai_chunk(R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"})"),
      sse(R"({"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":80,"completion_tokens":19,"total_tokens":99}})"),
      sse("[DONE]"),
  };
}
inline std::string openai_stream_error() {
  return sse(R"({"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})");
}

// ---- Anthropic
inline std::vector<std::string> anthropic_text_stream(const std::vector<std::string>& pieces) {
  std::vector<std::string> ev;
  ev.push_back(sse(R"({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}})",
                   "message_start"));
  ev.push_back(sse(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})", "content_block_start"));
  ev.push_back(sse(R"({"type": "ping"})", "ping"));
  for (const auto& p : pieces)
    ev.push_back(sse(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)" +
                         nlohmann::json(p).dump() + "}}",
                     "content_block_delta"));
  ev.push_back(sse(R"({"type":"content_block_stop","index":0})", "content_block_stop"));
  ev.push_back(sse(R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}})",
                   "message_delta"));
  ev.push_back(sse(R"({"type":"message_stop"})", "message_stop"));
  return ev;
}
inline std::vector<std::string> anthropic_tool_stream() {
  return {
      sse(R"({"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2}}})",
          "message_start"),
      sse(R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})", "content_block_start"),
      sse(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me look."}})", "content_block_delta"),
      sse(R"({"type":"content_block_stop","index":0})", "content_block_stop"),
      sse(R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x","name":"list_files","input":{}}})",
          "content_block_start"),
      sse(R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})", "content_block_delta"),
      sse(R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\": \"/wor"}})", "content_block_delta"),
      sse(R"({"type":"ping"})", "ping"),
      sse(R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"kspace\"}"}})", "content_block_delta"),
      sse(R"({"type":"content_block_stop","index":1})", "content_block_stop"),
      sse(R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}})", "message_delta"),
      sse(R"({"type":"message_stop"})", "message_stop"),
  };
}
inline std::string anthropic_stream_error() {
  return sse(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})", "error");
}

// ---- Gemini
inline std::string gemini_chunk(std::string_view parts_json, std::string_view finish = {}) {
  std::string cand = R"({"content":{"parts":)" + std::string(parts_json) + R"(,"role":"model"})";
  if (!finish.empty()) cand += R"(,"finishReason":")" + std::string(finish) + "\"";
  cand += ",\"index\":0}";
  std::string usage = finish.empty() ? R"({"promptTokenCount":9,"totalTokenCount":9})"
                                     : R"({"promptTokenCount":9,"candidatesTokenCount":12,"totalTokenCount":21})";
  return sse(R"({"candidates":[)" + cand + R"(],"usageMetadata":)" + usage + R"(,"modelVersion":"gemini-2.5-flash","responseId":"r1"})");
}
inline std::vector<std::string> gemini_text_stream(const std::vector<std::string>& pieces) {
  std::vector<std::string> ev;
  for (std::size_t i = 0; i < pieces.size(); ++i)
    ev.push_back(gemini_chunk("[{\"text\":" + nlohmann::json(pieces[i]).dump() + "}]", i + 1 == pieces.size() ? "STOP" : ""));
  return ev;
}
inline std::vector<std::string> gemini_tool_stream() {
  return {
      gemini_chunk(R"([{"text":"Let me look."}])"),
      gemini_chunk(R"([{"functionCall":{"name":"list_files","args":{"path":"/workspace"}}}])", "STOP"),
  };
}
inline std::string gemini_stream_error() {
  return sse(R"({"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}})");
}

}  // namespace berth::llm::samples
