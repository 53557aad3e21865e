// Provider codecs: request building (path, headers, exact JSON body) and reply parsing for each
// provider's real wire format, including error bodies and garbage.
#include <gtest/gtest.h>

#include "berth/llm/codec.hpp"
#include "wire_samples.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;
namespace s = samples;

constexpr std::string_view key = "sk-test-0123456789abcdef";

tool_spec list_files_spec() {
  return {"list_files", "List files in a directory",
          json::parse(R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
                          "properties":{"path":{"type":"string"},"recursive":{"type":"boolean"}},
                          "required":["path"],"additionalProperties":false})")};
}

// A conversation with every message kind: system, user, assistant with a tool call, tool result,
// a failed tool result, and a follow-up user message.
llm_request full_request() {
  llm_request r;
  r.system_prompt = "You are Berth.";
  r.max_output_tokens = 1024;
  r.tools = {list_files_spec()};
  r.messages.push_back(chat_message::user("List all files in /workspace"));
  r.messages.push_back(chat_message::assistant("Listing.", {{"call_1", "list_files", {{"path", "/workspace"}}}}));
  r.messages.push_back(chat_message::tool_result("call_1", "list_files", "a.txt\nb.txt"));
  r.messages.push_back(chat_message::user("thanks"));
  return r;
}

http::reply reply(unsigned status, std::string_view body, std::vector<std::pair<std::string, std::string>> h = {}) {
  return http::reply{status, std::move(h), std::string(body)};
}

std::string header(const http::call& c, std::string_view name) {
  for (const auto& h : c.headers)
    if (h.name == name) return h.value;
  return "<none>";
}

// ---------------- OpenAI ----------------
TEST(OpenaiCodec, BuildsChatCompletionsRequest) {
  auto codec = make_openai_codec({"http://127.0.0.1:8000/v1/", std::string(key), "gpt-4o-mini"});
  auto call = codec->build(full_request());
  ASSERT_TRUE(call);
  EXPECT_EQ(call->method, "POST");
  EXPECT_EQ(call->url, "http://127.0.0.1:8000/v1/chat/completions");
  EXPECT_EQ(header(*call, "authorization"), "Bearer " + std::string(key));
  for (const auto& h : call->headers) EXPECT_EQ(h.secret, h.name == "authorization");
  auto expected = json::parse(R"({
    "model": "gpt-4o-mini", "max_tokens": 1024,
    "messages": [
      {"role": "system", "content": "You are Berth."},
      {"role": "user", "content": "List all files in /workspace"},
      {"role": "assistant", "content": "Listing.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "list_files", "arguments": "{\"path\":\"/workspace\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt"},
      {"role": "user", "content": "thanks"}],
    "tools": [{"type": "function", "function": {"name": "list_files", "description": "List files in a directory",
      "parameters": {"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
                     "properties":{"path":{"type":"string"},"recursive":{"type":"boolean"}},
                     "required":["path"],"additionalProperties":false}}}]})");
  EXPECT_EQ(json::parse(call->body), expected);
}

TEST(OpenaiCodec, KeylessLocalServerAndReasoningModelTokens) {
  auto codec = make_openai_codec({"http://127.0.0.1:11434/v1", "", "llama3.1"});
  llm_request r;
  r.messages.push_back(chat_message::user("hi"));
  auto call = codec->build(r);
  ASSERT_TRUE(call);
  EXPECT_EQ(header(*call, "authorization"), "<none>");
  auto body = json::parse(call->body);
  EXPECT_EQ(body["model"], "llama3.1");
  EXPECT_FALSE(body.contains("tools"));
  r.model = "o3-mini";
  body = json::parse(codec->build(r)->body);
  EXPECT_TRUE(body.contains("max_completion_tokens"));
  EXPECT_FALSE(body.contains("max_tokens"));
}

TEST(OpenaiCodec, ToolErrorsAreMarkedInText) {
  auto codec = make_openai_codec({"", "", ""});
  llm_request r = full_request();
  r.messages[2].is_error = true;
  auto body = json::parse(codec->build(r)->body);
  EXPECT_EQ(body["messages"][3]["content"], "Error: a.txt\nb.txt");
  EXPECT_EQ(codec->build(r)->url, "https://api.openai.com/v1/chat/completions");
}

TEST(OpenaiCodec, ParsesTextReply) {
  auto codec = make_openai_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(200, s::openai_text));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  EXPECT_EQ(out.reply->text, "Hello! How can I help?");
  EXPECT_TRUE(out.reply->tool_calls.empty());
  EXPECT_EQ(out.reply->stop_reason, stop_reason::end_turn);
  EXPECT_EQ(out.reply->raw_stop_reason, "stop");
  EXPECT_EQ(out.reply->usage.input_tokens, 19u);
  EXPECT_EQ(out.reply->usage.output_tokens, 10u);
  EXPECT_EQ(out.reply->model, "gpt-4o-mini-2024-07-18");
}

// The three providers' stop words map onto the same reasons; an unknown word is `other`, an
// absent one ends the turn.
TEST(Codecs, StopWordsMapOntoTheSameReasons) {
  struct stop_case {
    std::optional<std::string> word;  // nullopt: the field is removed
    stop_reason expected;
  };
  struct provider_case {
    std::unique_ptr<provider_codec> codec;
    std::string_view text_sample;
    json::json_pointer at;
    std::vector<stop_case> cases;
  };
  std::vector<provider_case> providers;
  providers.push_back({make_openai_codec({"", std::string(key), ""}), s::openai_text, json::json_pointer("/choices/0/finish_reason"),
                       {{"stop", stop_reason::end_turn}, {"length", stop_reason::max_tokens},
                        {"tool_calls", stop_reason::tool_use}, {"content_filter", stop_reason::other},
                        {std::nullopt, stop_reason::end_turn}}});
  providers.push_back({make_anthropic_codec({"", std::string(key), ""}), s::anthropic_text, json::json_pointer("/stop_reason"),
                       {{"end_turn", stop_reason::end_turn}, {"stop_sequence", stop_reason::end_turn},
                        {"max_tokens", stop_reason::max_tokens}, {"refusal", stop_reason::other},
                        {std::nullopt, stop_reason::end_turn}}});
  providers.push_back({make_gemini_codec({"", std::string(key), ""}), s::gemini_text, json::json_pointer("/candidates/0/finishReason"),
                       {{"STOP", stop_reason::end_turn}, {"MAX_TOKENS", stop_reason::max_tokens},
                        {"SAFETY", stop_reason::other}, {std::nullopt, stop_reason::end_turn}}});
  for (auto& p : providers) {
    for (const auto& c : p.cases) {
      auto body = json::parse(p.text_sample);
      if (c.word) body[p.at] = *c.word;
      else body[p.at.parent_pointer()].erase(p.at.back());
      auto out = p.codec->parse(full_request(), reply(200, body.dump()));
      ASSERT_TRUE(out.reply) << p.codec->name() << ": " << out.reply.error().message;
      EXPECT_EQ(out.reply->stop_reason, c.expected) << p.codec->name() << " " << c.word.value_or("(absent)");
      EXPECT_EQ(out.reply->raw_stop_reason, c.word.value_or("")) << p.codec->name();
      EXPECT_GT(out.reply->usage.output_tokens, 0u) << p.codec->name();
      EXPECT_FALSE(out.reply->model.empty()) << p.codec->name();
    }
  }
}

// What the three codecs share: the public endpoint and model when the settings leave them empty,
// a JSON POST, and one classification of non-2xx replies and of bodies that are not JSON objects.
TEST(Codecs, DefaultsJsonPostAndNonObjectBodies) {
  struct provider_case {
    std::unique_ptr<provider_codec> codec;
    std::string base_url;
    std::string_view model;
    std::string url;
    std::string_view text_sample;
  };
  std::vector<provider_case> providers;
  providers.push_back({make_openai_codec({"", std::string(key), ""}), "https://api.openai.com/v1", default_openai_model,
                       "https://api.openai.com/v1/chat/completions", s::openai_text});
  providers.push_back({make_anthropic_codec({"", std::string(key), ""}), "https://api.anthropic.com",
                       default_anthropic_model, "https://api.anthropic.com/v1/messages", s::anthropic_text});
  providers.push_back({make_gemini_codec({"", std::string(key), ""}), "https://generativelanguage.googleapis.com",
                       default_gemini_model,
                       "https://generativelanguage.googleapis.com/v1beta/models/" + std::string(default_gemini_model) +
                           ":generateContent",
                       s::gemini_text});
  for (auto& p : providers) {
    const std::string name(p.codec->name());
    EXPECT_EQ(p.codec->settings().base_url, p.base_url) << name;
    EXPECT_EQ(p.codec->settings().default_model, p.model) << name;
    auto call = p.codec->build(full_request());
    ASSERT_TRUE(call) << name;
    EXPECT_EQ(call->method, "POST") << name;
    EXPECT_EQ(call->url, p.url) << name;
    EXPECT_EQ(header(*call, "content-type"), "application/json") << name;
    EXPECT_TRUE(json::parse(call->body, nullptr, false).is_object()) << name;

    for (std::string_view body : {"[]", "7", "\"text\"", "null", ""}) {
      auto out = p.codec->parse(full_request(), reply(200, body));
      ASSERT_FALSE(out.reply) << name << " " << body;
      EXPECT_EQ(out.reply.error().code, core::errc::llm_error) << name;
      EXPECT_EQ(out.reply.error().message, name + ": malformed reply: body is not a JSON object");
      EXPECT_FALSE(out.retryable) << name;
    }
    // The status is checked before the body: a well-formed answer with a 503 is still a failure.
    auto out = p.codec->parse(full_request(), reply(503, p.text_sample));
    ASSERT_FALSE(out.reply) << name;
    EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable) << name;
    EXPECT_TRUE(out.retryable) << name;
  }
}

TEST(OpenaiCodec, ParsesToolCall) {
  auto codec = make_openai_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(200, s::openai_tool_call));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  ASSERT_EQ(out.reply->tool_calls.size(), 1u);
  EXPECT_EQ(out.reply->tool_calls[0].id, "call_abc123");
  EXPECT_EQ(out.reply->tool_calls[0].name, "list_files");
  EXPECT_EQ(out.reply->tool_calls[0].args, json({{"path", "/workspace"}}));
  EXPECT_EQ(out.reply->stop_reason, stop_reason::tool_use);
  EXPECT_EQ(out.reply->text, "");
}

TEST(OpenaiCodec, AcceptsObjectArgumentsFromOllama) {
  auto codec = make_openai_codec({"", "", ""});
  auto body = json::parse(s::openai_tool_call);
  body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = {{"path", "/tmp"}};
  auto out = codec->parse(full_request(), reply(200, body.dump()));
  ASSERT_TRUE(out.reply);
  EXPECT_EQ(out.reply->tool_calls[0].args["path"], "/tmp");
}

TEST(OpenaiCodec, UnknownToolAndBadArgumentsAreLlmErrors) {
  auto codec = make_openai_codec({"", "", ""});
  auto out = codec->parse(full_request(), reply(200, s::openai_unknown_tool));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_NE(out.reply.error().message.find("unknown tool 'format_disk'"), std::string::npos);
  EXPECT_FALSE(out.retryable);
  out = codec->parse(full_request(), reply(200, s::openai_bad_arguments));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_NE(out.reply.error().message.find("not valid JSON"), std::string::npos);
}

TEST(OpenaiCodec, ErrorBodiesMapToCodesWithoutTheKey) {
  auto codec = make_openai_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(401, s::openai_error_401));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_FALSE(out.retryable);
  const auto& msg = out.reply.error().message;
  EXPECT_NE(msg.find("openai: HTTP 401 invalid_request_error: Incorrect API key provided"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(key), std::string::npos) << msg;
  EXPECT_EQ(msg.find("sk-test-0123"), std::string::npos) << msg;

  out = codec->parse(full_request(), reply(429, s::openai_error_429, {{"retry-after-ms", "1500"}, {"retry-after", "2"}}));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  EXPECT_TRUE(out.retryable);
  ASSERT_TRUE(out.retry_after);
  EXPECT_EQ(out.retry_after->count(), 1500);

  out = codec->parse(full_request(), reply(500, s::openai_error_500));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  EXPECT_TRUE(out.retryable);
  EXPECT_FALSE(out.retry_after);
  EXPECT_NE(out.reply.error().message.find("server_error"), std::string::npos);
}

TEST(OpenaiCodec, GarbageIsLlmError) {
  auto codec = make_openai_codec({"", "", ""});
  for (std::string_view body : {s::garbage, std::string_view("{}"), std::string_view("[]"),
                                std::string_view(R"({"choices":[]})"), std::string_view(R"({"choices":[{"message":7}]})"),
                                std::string_view(R"({"choices":[{"message":{"tool_calls":[{"function":{}}]}}]})"),
                                std::string_view("")}) {
    auto out = codec->parse(full_request(), reply(200, body));
    ASSERT_FALSE(out.reply) << body;
    EXPECT_EQ(out.reply.error().code, core::errc::llm_error) << body;
    EXPECT_FALSE(out.retryable);
  }
  // A 5xx with an HTML body is still "unavailable", with a bounded prefix of the body.
  auto out = codec->parse(full_request(), reply(502, s::garbage));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  EXPECT_NE(out.reply.error().message.find("502 Bad Gateway"), std::string::npos);
}

// ---------------- Anthropic ----------------
TEST(AnthropicCodec, BuildsMessagesRequestMergingRoles) {
  auto codec = make_anthropic_codec({"http://127.0.0.1:9/", std::string(key), "claude-test"});
  llm_request r = full_request();
  // Two tool results in a row, then user text: all must merge into one user turn.
  r.messages[1].tool_calls.push_back({"call_2", "list_files", {{"path", "/tmp"}}});
  r.messages.insert(r.messages.begin() + 3, chat_message::tool_result("call_2", "list_files", "denied", true));
  r.messages.insert(r.messages.begin(), chat_message::system("Be brief."));
  auto call = codec->build(r);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://127.0.0.1:9/v1/messages");
  EXPECT_EQ(header(*call, "x-api-key"), key);
  EXPECT_EQ(header(*call, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(header(*call, "authorization"), "<none>");
  auto expected = json::parse(R"({
    "model": "claude-test", "max_tokens": 1024, "system": "You are Berth.\n\nBe brief.",
    "messages": [
      {"role": "user", "content": [{"type": "text", "text": "List all files in /workspace"}]},
      {"role": "assistant", "content": [
        {"type": "text", "text": "Listing."},
        {"type": "tool_use", "id": "call_1", "name": "list_files", "input": {"path": "/workspace"}},
        {"type": "tool_use", "id": "call_2", "name": "list_files", "input": {"path": "/tmp"}}]},
      {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt\nb.txt"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "denied", "is_error": true},
        {"type": "text", "text": "thanks"}]}],
    "tools": [{"name": "list_files", "description": "List files in a directory",
      "input_schema": {"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
                       "properties":{"path":{"type":"string"},"recursive":{"type":"boolean"}},
                       "required":["path"],"additionalProperties":false}}]})");
  EXPECT_EQ(json::parse(call->body), expected);
}

TEST(AnthropicCodec, MissingKeyIsAnError) {
  auto codec = make_anthropic_codec({"", "", ""});
  auto call = codec->build(full_request());
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code, core::errc::llm_error);
  EXPECT_NE(call.error().message.find("ANTHROPIC_API_KEY"), std::string::npos);
}

TEST(AnthropicCodec, ParsesTextAndToolUse) {
  auto codec = make_anthropic_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(200, s::anthropic_text));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  EXPECT_EQ(out.reply->text, "Hi! My name is Claude.");
  EXPECT_EQ(out.reply->stop_reason, stop_reason::end_turn);
  EXPECT_EQ(out.reply->usage.input_tokens, 2095u);
  EXPECT_EQ(out.reply->usage.output_tokens, 503u);

  out = codec->parse(full_request(), reply(200, s::anthropic_tool_use));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  EXPECT_EQ(out.reply->text, "I'll list the files in /workspace.");
  ASSERT_EQ(out.reply->tool_calls.size(), 1u);
  EXPECT_EQ(out.reply->tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
  EXPECT_EQ(out.reply->tool_calls[0].args, json({{"path", "/workspace"}}));
  EXPECT_EQ(out.reply->stop_reason, stop_reason::tool_use);

  llm_request no_tools = full_request();
  no_tools.tools.clear();
  out = codec->parse(no_tools, reply(200, s::anthropic_tool_use));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
}

TEST(AnthropicCodec, ErrorBodies) {
  auto codec = make_anthropic_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(401, s::anthropic_error_401));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_EQ(out.reply.error().message, "anthropic: HTTP 401 authentication_error: invalid x-api-key");
  out = codec->parse(full_request(), reply(400, s::anthropic_error_400));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_NE(out.reply.error().message.find("invalid_request_error"), std::string::npos);
  out = codec->parse(full_request(), reply(529, s::anthropic_error_529));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  EXPECT_TRUE(out.retryable);
  out = codec->parse(full_request(), reply(429, s::anthropic_error_429, {{"retry-after", "3"}}));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  ASSERT_TRUE(out.retry_after);
  EXPECT_EQ(out.retry_after->count(), 3000);
}

TEST(AnthropicCodec, Garbage) {
  auto codec = make_anthropic_codec({"", std::string(key), ""});
  for (std::string_view body : {s::garbage, std::string_view(R"({"content":"x"})"),
                                std::string_view(R"({"content":[{"type":"tool_use","name":"list_files"}]})"),
                                std::string_view(R"({"content":[{"text":"no type"}]})")}) {
    auto out = codec->parse(full_request(), reply(200, body));
    ASSERT_FALSE(out.reply) << body;
    EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  }
}

// Found by llm_anthropic_fuzz (bench/fuzz): a "type" member that is not a string made
// json::value() throw type_error out of parse() instead of classifying the reply.
TEST(AnthropicCodec, MistypedTypeMemberIsMalformedNotAnException) {
  auto codec = make_anthropic_codec({"", std::string(key), ""});
  const std::string_view body =
      R"({"id":"msg_013","type":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null})";
  parse_outcome out{core::make_error(core::errc::internal, "not run"), false, std::nullopt};
  EXPECT_NO_THROW(out = codec->parse(full_request(), reply(200, body)));
  ASSERT_FALSE(out.reply);
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  for (std::string_view typed : {R"({"type":1,"content":[]})", R"({"type":{"error":true},"content":[]})"}) {
    EXPECT_NO_THROW(out = codec->parse(full_request(), reply(200, typed))) << typed;
    EXPECT_TRUE(out.reply) << typed;  // an empty answer, not an error body
  }
}

// ---------------- Gemini ----------------
TEST(GeminiCodec, BuildsGenerateContentRequest) {
  auto codec = make_gemini_codec({"http://127.0.0.1:9", std::string(key), "gemini-test"});
  llm_request r = full_request();
  r.messages[2].name.clear();  // the function name is recovered from the call id
  auto call = codec->build(r);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->url, "http://127.0.0.1:9/v1beta/models/gemini-test:generateContent");
  EXPECT_EQ(call->url.find(key), std::string::npos);
  EXPECT_EQ(header(*call, "x-goog-api-key"), key);
  auto expected = json::parse(R"({
    "systemInstruction": {"parts": [{"text": "You are Berth."}]},
    "generationConfig": {"maxOutputTokens": 1024},
    "contents": [
      {"role": "user", "parts": [{"text": "List all files in /workspace"}]},
      {"role": "model", "parts": [{"text": "Listing."}, {"functionCall": {"name": "list_files", "args": {"path": "/workspace"}}}]},
      {"role": "user", "parts": [
        {"functionResponse": {"name": "list_files", "response": {"output": "a.txt\nb.txt"}}},
        {"text": "thanks"}]}],
    "tools": [{"functionDeclarations": [{"name": "list_files", "description": "List files in a directory",
      "parameters": {"type":"object","properties":{"path":{"type":"string"},"recursive":{"type":"boolean"}},
                     "required":["path"]}}]}]})");
  EXPECT_EQ(json::parse(call->body), expected);
}

TEST(GeminiCodec, RejectsPathInjectionInModelAndMissingKey) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  llm_request r = full_request();
  r.model = "../../v1/evil?x=";
  EXPECT_FALSE(codec->build(r));
  r.model = "models/gemini-2.0-flash";
  EXPECT_EQ(codec->build(r)->url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent");
  EXPECT_FALSE(make_gemini_codec({"", "", ""})->build(full_request()));
}

TEST(GeminiCodec, ErrorToolResultAndParameterlessTool) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  llm_request r = full_request();
  r.messages[2].is_error = true;
  r.tools.push_back({"ping", "no args", json{{"type", "object"}, {"properties", json::object()}}});
  auto body = json::parse(codec->build(r)->body);
  EXPECT_EQ(body["contents"][2]["parts"][0]["functionResponse"]["response"], json({{"error", "a.txt\nb.txt"}}));
  EXPECT_FALSE(body["tools"][0]["functionDeclarations"][1].contains("parameters"));
}

TEST(GeminiCodec, ParsesTextAndFunctionCall) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(200, s::gemini_text));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  EXPECT_EQ(out.reply->text, "Hello there! How can I help?");
  EXPECT_EQ(out.reply->stop_reason, stop_reason::end_turn);
  EXPECT_EQ(out.reply->usage.input_tokens, 8u);
  EXPECT_EQ(out.reply->usage.output_tokens, 7u);
  EXPECT_EQ(out.reply->model, "gemini-2.5-flash");

  out = codec->parse(full_request(), reply(200, s::gemini_function_call));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  ASSERT_EQ(out.reply->tool_calls.size(), 1u);
  EXPECT_EQ(out.reply->tool_calls[0].name, "list_files");
  EXPECT_EQ(out.reply->tool_calls[0].id, "call_4_1");  // 4 messages so far, first call
  EXPECT_EQ(out.reply->stop_reason, stop_reason::tool_use);
}

TEST(GeminiCodec, ErrorBodiesAndRetryInfo) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  auto out = codec->parse(full_request(), reply(400, s::gemini_error_400));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_EQ(out.reply.error().message,
            "gemini: HTTP 400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key.");
  out = codec->parse(full_request(), reply(429, s::gemini_error_429));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  ASSERT_TRUE(out.retry_after);
  EXPECT_EQ(out.retry_after->count(), 37000);
  out = codec->parse(full_request(), reply(503, s::gemini_error_503));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_unavailable);
  EXPECT_TRUE(out.retryable);
  out = codec->parse(full_request(), reply(200, s::gemini_blocked));
  EXPECT_EQ(out.reply.error().code, core::errc::llm_error);
  EXPECT_NE(out.reply.error().message.find("SAFETY"), std::string::npos);
}

// The same pattern as the fuzz-found Anthropic crash: "thought" that is not a boolean.
TEST(GeminiCodec, MistypedThoughtMemberDoesNotThrow) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  const std::string_view body =
      R"({"candidates":[{"content":{"parts":[{"thought":"yes","text":"kept"},{"thought":true,"text":"hidden"}]},"finishReason":"STOP"}]})";
  parse_outcome out{core::make_error(core::errc::internal, "not run"), false, std::nullopt};
  EXPECT_NO_THROW(out = codec->parse(full_request(), reply(200, body)));
  ASSERT_TRUE(out.reply) << out.reply.error().message;
  EXPECT_EQ(out.reply->text, "kept");
}

TEST(GeminiCodec, Garbage) {
  auto codec = make_gemini_codec({"", std::string(key), ""});
  for (std::string_view body :
       {s::garbage, std::string_view(R"({"candidates":[{"content":{"parts":{}}}]})"),
        std::string_view(R"({"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]})"),
        std::string_view(R"({"candidates":[3]})"),
        std::string_view(R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"list_files","args":[1]}}]}}]})")}) {
    auto out = codec->parse(full_request(), reply(200, body));
    ASSERT_FALSE(out.reply) << body;
    EXPECT_EQ(out.reply.error().code, core::errc::llm_error) << body;
  }
}

// ---------------- shared helpers ----------------
TEST(Redact, RemovesKeyAndMaskedEchoes) {
  EXPECT_EQ(redact("bad key sk-test-0123456789abcdef!", key), "bad key [redacted]!");
  EXPECT_EQ(redact("Incorrect API key provided: sk-test-****cdef. x", key), "Incorrect API key provided: [redacted] x");
  EXPECT_EQ(redact("nothing here", key), "nothing here");
  EXPECT_EQ(redact("abc", ""), "abc");
  EXPECT_EQ(redact("short k", "k"), "short [redacted]");
}

TEST(RetryAfter, ParsesSecondsAndMillis) {
  EXPECT_EQ(retry_after_hint(reply(429, "", {{"retry-after", "2"}}))->count(), 2000);
  EXPECT_EQ(retry_after_hint(reply(429, "", {{"retry-after-ms", "250"}}))->count(), 250);
  EXPECT_FALSE(retry_after_hint(reply(429, "", {{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}})));
  EXPECT_FALSE(retry_after_hint(reply(429, "", {{"retry-after", "-1"}})));
  EXPECT_FALSE(retry_after_hint(reply(429, "", {})));
}

}  // namespace
}  // namespace berth::llm
