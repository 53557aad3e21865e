// Streamed replies per provider: the request asks for a stream in each provider's own way, the
// decoder turns the documented event sequence into text deltas and one whole reply (tool calls
// assembled from pieces), and error events, garbage and cut streams are classified.
#include <gtest/gtest.h>

#include "berth/llm/codec.hpp"
#include "berth/llm/sse.hpp"
#include "stream_samples.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;
namespace s = samples;

llm_request request() {
  llm_request r;
  r.system_prompt = "You are Berth.";
  r.max_output_tokens = 256;
  r.tools = {{"list_files", "List files", json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}}}};
  r.messages.push_back(chat_message::user("List all files in /workspace"));
  return r;
}

std::unique_ptr<provider_codec> codec(std::string_view name) {
  codec_settings cs{"http://127.0.0.1:9", "sk-test-0123456789abcdef", ""};
  if (name == "openai") return make_openai_codec(cs);
  if (name == "anthropic") return make_anthropic_codec(cs);
  return make_gemini_codec(cs);
}

struct decoded {
  std::vector<std::string> deltas;
  parse_outcome outcome;
  bool done = false;
  bool failed_midway = false;
};

// Feeds `body` through the SSE parser and the decoder in pieces of `step` bytes, like the
// provider does, stopping at a failure; then finish() unless one was reported.
decoded run(provider_codec& c, const llm_request& req, std::string_view body, std::size_t step = 7) {
  decoded d;
  auto dec = c.make_stream_decoder(req);
  sse_parser p;
  std::vector<sse_event> evs;
  for (std::size_t i = 0; i < body.size() && !d.failed_midway; i += step) {
    evs.clear();
    p.feed(body.substr(i, step), evs);
    for (const auto& ev : evs) {
      auto step_out = dec->on_event(ev);
      if (!step_out.text.empty()) d.deltas.push_back(step_out.text);
      if (step_out.done) d.done = true;
      if (step_out.failed) {
        d.outcome = std::move(*step_out.failed);
        d.failed_midway = true;
        break;
      }
    }
  }
  if (!d.failed_midway) d.outcome = dec->finish();
  return d;
}

std::string concat(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += x;
  return out;
}

TEST(StreamCodec, RequestsAskForAStreamInEachProvidersWay) {
  const auto req = request();
  auto o = codec("openai")->build_stream(req);
  ASSERT_TRUE(o);
  auto ob = json::parse(o->body);
  EXPECT_EQ(ob["stream"], true);
  EXPECT_EQ(ob["stream_options"], (json{{"include_usage", true}}));
  EXPECT_EQ(o->url, "http://127.0.0.1:9/chat/completions");
  EXPECT_FALSE(json::parse(codec("openai")->build(req)->body).contains("stream"));

  auto a = codec("anthropic")->build_stream(req);
  ASSERT_TRUE(a);
  EXPECT_EQ(json::parse(a->body)["stream"], true);
  EXPECT_EQ(a->url, "http://127.0.0.1:9/v1/messages");

  auto g = codec("gemini")->build_stream(req);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->url, "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_FALSE(json::parse(g->body).contains("stream"));
}

TEST(StreamCodec, TextStreamsBecomeDeltasThenTheWholeReply) {
  const auto req = request();
  const std::vector<std::string> pieces{"Hel", "lo, ", "wörld", "!"};
  struct cas {
    std::string name;
    std::string body;
    std::string stop;
    std::uint64_t in, out;
    std::string model;
  };
  for (const auto& c : {cas{"openai", s::joined(s::openai_text_stream(pieces)), "stop", 41, 7, "gpt-4o-mini-2024-07-18"},
                        cas{"anthropic", s::joined(s::anthropic_text_stream(pieces)), "end_turn", 25, 15,
                            "claude-sonnet-4-5-20250929"},
                        cas{"gemini", s::joined(s::gemini_text_stream(pieces)), "STOP", 9, 12, "gemini-2.5-flash"}}) {
    for (std::size_t step : {1u, 3u, 64u, 100000u}) {
      auto cd = codec(c.name);
      auto d = run(*cd, req, c.body, step);
      ASSERT_TRUE(d.outcome.reply) << c.name << ": " << d.outcome.reply.error().message;
      EXPECT_EQ(concat(d.deltas), "Hello, wörld!") << c.name;
      EXPECT_EQ(d.deltas.size(), 4u) << c.name << " step " << step;
      EXPECT_EQ(d.outcome.reply->text, "Hello, wörld!");
      EXPECT_EQ(d.outcome.reply->stop_reason, stop_reason::end_turn) << c.name;
      EXPECT_EQ(d.outcome.reply->raw_stop_reason, c.stop);
      EXPECT_EQ(d.outcome.reply->usage.input_tokens, c.in) << c.name;
      EXPECT_EQ(d.outcome.reply->usage.output_tokens, c.out) << c.name;
      EXPECT_EQ(d.outcome.reply->model, c.model);
    }
  }
}

TEST(StreamCodec, ToolCallsInPiecesAreAssembled) {
  const auto req = request();
  for (auto [name, body] : {std::pair{"openai", s::joined(s::openai_tool_stream())},
                            std::pair{"anthropic", s::joined(s::anthropic_tool_stream())},
                            std::pair{"gemini", s::joined(s::gemini_tool_stream())}}) {
    auto cd = codec(name);
    auto d = run(*cd, req, body, 5);
    ASSERT_TRUE(d.outcome.reply) << name << ": " << d.outcome.reply.error().message;
    EXPECT_EQ(concat(d.deltas), "Let me look.") << name;
    ASSERT_EQ(d.outcome.reply->tool_calls.size(), 1u) << name;
    const auto& call = d.outcome.reply->tool_calls[0];
    EXPECT_EQ(call.name, "list_files");
    EXPECT_EQ(call.args, (json{{"path", "/workspace"}})) << name;
    EXPECT_FALSE(call.id.empty());
    EXPECT_EQ(d.outcome.reply->stop_reason, stop_reason::tool_use) << name;
  }
}

TEST(StreamCodec, ErrorEventsMidStreamAreClassified) {
  const auto req = request();
  for (auto [name, body] :
       {std::pair{"openai", s::openai_text_stream({"par"})[0] + s::openai_text_stream({"par"})[1] + s::openai_stream_error()},
        std::pair{"anthropic", s::anthropic_text_stream({"par"})[0] + s::anthropic_text_stream({"par"})[3] +
                                   s::anthropic_stream_error()},
        std::pair{"gemini", s::gemini_text_stream({"par", "x"})[0] + s::gemini_stream_error()}}) {
    auto cd = codec(name);
    auto d = run(*cd, req, body, 11);
    ASSERT_FALSE(d.outcome.reply) << name;
    EXPECT_TRUE(d.failed_midway) << name;
    EXPECT_EQ(d.outcome.reply.error().code, core::errc::llm_unavailable) << name;
    EXPECT_NE(d.outcome.reply.error().message.find("error in the reply stream"), std::string::npos)
        << d.outcome.reply.error().message;
  }
  // An invalid-request error is the caller's fault: LLM_ERROR.
  auto cd = codec("anthropic");
  auto d = run(*cd, req, s::sse(R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})", "error"));
  ASSERT_FALSE(d.outcome.reply);
  EXPECT_EQ(d.outcome.reply.error().code, core::errc::llm_error);
}

TEST(StreamCodec, CutStreamsAreUnavailableNotAnswers) {
  const auto req = request();
  // Every provider's stream stopped before its last event.
  auto o = s::openai_text_stream({"a", "b"});
  auto a = s::anthropic_text_stream({"a", "b"});
  auto g = s::gemini_text_stream({"a", "b"});
  for (auto [name, body] : {std::pair{"openai", o[0] + o[1] + o[2]}, std::pair{"anthropic", a[0] + a[1] + a[3] + a[4]},
                            std::pair{"gemini", g[0]}}) {
    auto cd = codec(name);
    auto d = run(*cd, req, body);
    ASSERT_FALSE(d.outcome.reply) << name;
    EXPECT_FALSE(d.failed_midway);
    EXPECT_EQ(d.outcome.reply.error().code, core::errc::llm_unavailable) << name;
    EXPECT_TRUE(d.outcome.retryable);
    EXPECT_NE(d.outcome.reply.error().message.find("ended before"), std::string::npos) << d.outcome.reply.error().message;
  }
}

TEST(StreamCodec, GarbageAndBadToolsAreLlmErrors) {
  const auto req = request();
  for (auto name : {"openai", "anthropic", "gemini"}) {
    auto cd = codec(name);
    auto d = run(*cd, req, s::sse("<html>502</html>"));
    ASSERT_FALSE(d.outcome.reply) << name;
    EXPECT_EQ(d.outcome.reply.error().code, core::errc::llm_error);
  }
  // Arguments that never become JSON, and an unknown tool.
  auto ev = s::openai_tool_stream();
  ev[3] = s::openai_chunk(R"({"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"th\": /work"}}]},"finish_reason":null})");
  auto cd = codec("openai");
  auto d = run(*cd, req, s::joined(ev));
  ASSERT_FALSE(d.outcome.reply);
  EXPECT_NE(d.outcome.reply.error().message.find("not valid JSON"), std::string::npos);
  auto unknown = s::gemini_tool_stream();
  unknown[1] = s::gemini_chunk(R"([{"functionCall":{"name":"rm_rf","args":{}}}])", "STOP");
  auto gd = codec("gemini");
  auto u = run(*gd, req, s::joined(unknown));
  ASSERT_FALSE(u.outcome.reply);
  EXPECT_NE(u.outcome.reply.error().message.find("unknown tool"), std::string::npos);
}

// Fields of the right name and the wrong type (found by sse_fuzz: json::value threw out of the
// OpenAI decoder on {"index":{}}): each decoder reads on without throwing.
TEST(StreamCodec, FieldsOfTheWrongTypeNeverThrow) {
  const auto req = request();
  const std::pair<const char*, const char*> cases[] = {
      {"openai", R"({"choices":[{"index":{},"delta":{"content":"x"}},{"index":"0"},{"index":0,"delta":{"content":"ok"}}]})"},
      {"anthropic", R"({"type":"content_block_start","index":0,"content_block":{"type":7}})"},
      {"anthropic", R"({"type":"content_block_delta","index":0,"delta":{"type":["text_delta"],"text":"x"}})"},
      {"gemini", R"({"candidates":[{"content":{"parts":[{"text":"x","thought":"yes"},{"text":"ok","thought":1}]}}]})"},
  };
  for (const auto& [name, event] : cases) {
    auto cd = codec(name);
    decoded d;
    EXPECT_NO_THROW(d = run(*cd, req, s::sse(event))) << name << " " << event;
  }
  auto cd = codec("openai");
  auto d = run(*cd, req, s::sse(R"({"choices":[{"index":{},"delta":{"content":"x"}},{"index":0,"delta":{"content":"ok"}}]})"));
  EXPECT_EQ(concat(d.deltas), "ok");  // the choice whose index is not 0 is not ours
}

TEST(StreamCodec, SecretsNeverAppearInStreamErrors) {
  const auto req = request();
  auto cd = codec("openai");
  auto d = run(*cd, req, s::sse(R"({"error":{"message":"Incorrect API key provided: sk-test-0123456789abcdef","type":"invalid_request_error"}})"));
  ASSERT_FALSE(d.outcome.reply);
  EXPECT_EQ(d.outcome.reply.error().message.find("0123456789abcdef"), std::string::npos) << d.outcome.reply.error().message;
}

}  // namespace
}  // namespace berth::llm
