// Providers against local fake servers speaking each provider's real wire format, over real
// sockets on 127.0.0.1: text, tool calls, error bodies, retries (429 then success, Retry-After
// honoured), 5xx exhaustion, garbage, deadlines, keys never leaking, HTTPS verification, and
// conversations each API accepts (the fakes refuse, with a 400, what the real ones refuse).
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "berth/agent/turn_fsm.hpp"
#include "berth/core/logging.hpp"
#include "berth/llm/provider.hpp"
#include "fakes/fake_llm_server.hpp"
#include "stream_samples.hpp"
#include "wire_samples.hpp"

namespace berth::llm {
namespace {
namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::fake_llm_server;
using testing::fake_reply;
namespace s = samples;

constexpr std::string_view operator_key = "sk-operator-SECRET-0123456789";
constexpr std::string_view user_key = "sk-user-PRIVATE-9876543210";

tool_spec list_files_spec() {
  return {"list_files", "List files",
          json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}, {"required", {"path"}}}};
}

llm_request list_request() {
  llm_request r;
  r.system_prompt = "You are Berth.";
  r.tools = {list_files_spec()};
  r.messages.push_back(chat_message::user("List all files in /workspace"));
  r.max_output_tokens = 256;
  return r;
}

// Fast retries so a test never waits on the default backoff; tests that check Retry-After
// set a hint larger than this base, so honouring it is visible in the request timestamps.
provider_options fast_options() {
  provider_options o;
  o.retry.max_attempts = 3;
  o.retry.base_backoff = 1ms;
  o.retry.max_backoff = 5ms;
  o.retry.max_retry_after = 5s;
  o.http.connect_timeout = 5s;
  o.http.total_timeout = 10s;
  return o;
}

class ProviderHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    auto log = core::logger("llm");
    saved_level_ = log->level();
    log->set_level(spdlog::level::debug);
    log->sinks().push_back(sink_);
  }
  void TearDown() override {
    auto log = core::logger("llm");
    auto& sinks = log->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    log->set_level(saved_level_);
    server_.reset();
  }

  core::config config_for(std::string provider, const std::string& base) {
    core::config c;
    c.llm_provider = std::move(provider);
    c.openai_base_url = base + "/v1";
    c.anthropic_base_url = base;
    c.gemini_base_url = base;
    c.openai_api_key = c.anthropic_api_key = c.gemini_api_key = std::string(operator_key);
    c.llm_model = "test-model";
    return c;
  }

  fake_llm_server& serve(std::vector<fake_reply> script, asio::ssl::context* tls = nullptr) {
    server_ = std::make_unique<fake_llm_server>(ioc_, std::move(script), tls);
    return *server_;
  }

  std::unique_ptr<llm_provider> provider(const core::config& c, provider_options o = fast_options(),
                                         std::optional<std::string> user = std::nullopt) {
    auto p = make_provider(c, ioc_.get_executor(), metrics_, std::move(user), std::move(o));
    EXPECT_TRUE(p) << (p ? "" : p.error().message);
    return p ? std::move(*p) : nullptr;
  }

  // Runs one completion to the end (bounded: 30 s of wall time at most).
  core::result<llm_reply> complete(llm_provider& p, const llm_request& req) {
    std::optional<core::result<llm_reply>> out;
    asio::co_spawn(ioc_, p.complete(req), [&](std::exception_ptr e, core::result<llm_reply> r) {
      if (e) std::rethrow_exception(e);
      out = std::move(r);
      ioc_.stop();
    });
    ioc_.restart();
    ioc_.run_for(30s);
    if (!out) return core::make_error(core::errc::internal, "test: completion did not finish in 30 s");
    return std::move(*out);
  }

  // Runs one streamed completion to the end; `deltas` gets the pieces as they came.
  core::result<llm_reply> stream(llm_provider& p, const llm_request& req, std::vector<std::string>& deltas) {
    std::optional<core::result<llm_reply>> out;
    delta_fn on_delta = [&deltas](std::string_view t) { deltas.emplace_back(t); };
    asio::co_spawn(ioc_, p.stream(req, on_delta), [&](std::exception_ptr e, core::result<llm_reply> r) {
      if (e) std::rethrow_exception(e);
      out = std::move(r);
      ioc_.stop();
    });
    ioc_.restart();
    ioc_.run_for(30s);
    if (!out) return core::make_error(core::errc::internal, "test: stream did not finish in 30 s");
    return std::move(*out);
  }

  std::uint64_t counter(const std::string& name, const std::string& labels) {
    return metrics_.get_counter(name, "", labels).value();
  }

  asio::io_context ioc_;
  core::metrics metrics_;
  std::unique_ptr<fake_llm_server> server_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  spdlog::level::level_enum saved_level_ = spdlog::level::info;
};

// What each API refuses in a conversation, from its documentation and its error texts: a tool
// result that does not answer a call of the message right before it, a call left without its
// result, and (Anthropic) roles that do not alternate from a user message; (Gemini) a function
// call turn that does not follow a user or function response turn. nullopt: accepted.
std::optional<std::string> openai_conversation_error(const json& body) {
  std::set<std::string> open;  // calls of the last assistant message not answered yet
  for (const auto& m : body.at("messages")) {
    const auto role = m.at("role").get<std::string>();
    if (role == "tool") {
      if (!open.erase(m.value("tool_call_id", "")))
        return "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.";
      continue;
    }
    if (!open.empty())
      return "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'.";
    if (role == "assistant" && m.contains("tool_calls"))
      for (const auto& c : m["tool_calls"]) open.insert(c.at("id").get<std::string>());
  }
  if (!open.empty()) return "An assistant message with 'tool_calls' must be followed by tool messages.";
  return std::nullopt;
}

std::optional<std::string> anthropic_conversation_error(const json& body) {
  const auto& msgs = body.at("messages");
  if (msgs.empty() || msgs[0].at("role") != "user") return "messages: first message must use the \"user\" role";
  std::set<std::string> open;  // tool_use ids of the last assistant message
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const auto role = msgs[i].at("role").get<std::string>();
    if (i > 0 && msgs[i - 1].at("role") == role) return "messages: roles must alternate between \"user\" and \"assistant\"";
    std::set<std::string> uses, results;
    if (msgs[i].at("content").is_array())
      for (const auto& b : msgs[i]["content"]) {
        if (b.value("type", "") == "tool_use") uses.insert(b.at("id").get<std::string>());
        if (b.value("type", "") == "tool_result") results.insert(b.at("tool_use_id").get<std::string>());
      }
    if (role == "user") {
      for (const auto& r : results)
        if (!open.count(r)) return "messages." + std::to_string(i) + ": unexpected `tool_use_id` found in `tool_result` blocks: " + r;
      if (results.size() != open.size())
        return "messages." + std::to_string(i) + ": `tool_use` ids were found without `tool_result` blocks immediately after";
      open.clear();
    } else {
      open = std::move(uses);
    }
  }
  return std::nullopt;
}

std::optional<std::string> gemini_conversation_error(const json& body) {
  const auto& contents = body.at("contents");
  std::multiset<std::string> open;  // function calls of the last model turn
  std::string previous_kind = "none";  // user | function_response | model
  for (const auto& c : contents) {
    std::multiset<std::string> calls, responses;
    for (const auto& part : c.at("parts")) {
      if (part.contains("functionCall")) calls.insert(part["functionCall"].at("name").get<std::string>());
      if (part.contains("functionResponse")) responses.insert(part["functionResponse"].at("name").get<std::string>());
    }
    if ((!open.empty() || !responses.empty()) && responses != open)
      return "Please ensure that the number of function response parts is equal to the number of function call parts "
             "of the function call turn.";
    if (!calls.empty() && previous_kind != "user" && previous_kind != "function_response")
      return "Please ensure that function call turn comes immediately after a user turn or after a function response turn.";
    open = c.at("role") == "model" ? std::move(calls) : std::multiset<std::string>{};
    previous_kind = c.at("role") == "model" ? "model" : (responses.empty() ? "user" : "function_response");
  }
  return std::nullopt;
}

// Each provider's 400 with the reason in the body, as its API writes it.
fake_reply conversation_refusal(const std::string& provider, const std::string& why) {
  if (provider == "anthropic")
    return {400, json{{"type", "error"}, {"error", {{"type", "invalid_request_error"}, {"message", why}}}}.dump()};
  if (provider == "gemini")
    return {400, json{{"error", {{"code", 400}, {"message", why}, {"status", "INVALID_ARGUMENT"}}}}.dump()};
  return {400, json{{"error", {{"message", why}, {"type", "invalid_request_error"}, {"param", "messages"}}}}.dump()};
}

// ---------------- OpenAI ----------------
TEST_F(ProviderHttp, OpenaiTextReplyAndWireRequest) {
  auto& srv = serve({{200, std::string(s::openai_text)}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text, "Hello! How can I help?");
  ASSERT_EQ(srv.seen().size(), 1u);
  const auto& req = srv.seen()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/v1/chat/completions");
  EXPECT_EQ(req.headers.at("authorization"), "Bearer " + std::string(operator_key));
  EXPECT_EQ(req.headers.at("content-type"), "application/json");
  auto body = json::parse(req.body);
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["max_tokens"], 256);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "list_files");
  EXPECT_EQ(counter("berth_llm_requests_total", "provider=\"openai\",outcome=\"ok\""), 1u);
}

TEST_F(ProviderHttp, OpenaiToolCallAndKeylessCompatibleServer) {
  auto& srv = serve({{200, std::string(s::openai_tool_call)}});
  auto cfg = config_for("openai", srv.base_url());
  cfg.openai_api_key.clear();  // vLLM / Ollama style
  auto p = provider(cfg);
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name, "list_files");
  EXPECT_EQ(r->tool_calls[0].args["path"], "/workspace");
  EXPECT_EQ(srv.seen().at(0).headers.count("authorization"), 0u);
}

TEST_F(ProviderHttp, Openai401NeverLeaksTheKey) {
  // The fake echoes the whole key back, worse than the real API (which masks the middle).
  std::string body = R"({"error":{"message":"Incorrect API key provided: )" + std::string(operator_key) +
                     R"(.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})";
  auto& srv = serve({{401, body}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_EQ(srv.seen().size(), 1u);  // 4xx is not retried
  EXPECT_NE(r.error().message.find("HTTP 401"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find(operator_key), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("sk-opera"), std::string::npos) << r.error().message;
  EXPECT_EQ(log_.str().find(operator_key), std::string::npos) << log_.str();
  EXPECT_NE(log_.str().find("HTTP 401"), std::string::npos) << "the failure is logged";
  EXPECT_EQ(counter("berth_llm_requests_total", "provider=\"openai\",outcome=\"llm_error\""), 1u);
}

TEST_F(ProviderHttp, Openai429ThenSuccessHonoursRetryAfterMs) {
  auto& srv = serve({{429, std::string(s::openai_error_429), {{"retry-after-ms", "300"}}},
                     {200, std::string(s::openai_text)}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(srv.seen().size(), 2u);
  // The base backoff is 1 ms: a gap of at least 300 ms can only come from the server's hint.
  EXPECT_GE(srv.seen()[1].at - srv.seen()[0].at, 300ms);
  EXPECT_EQ(srv.seen()[0].body, srv.seen()[1].body);
  EXPECT_EQ(counter("berth_llm_retries_total", "provider=\"openai\""), 1u);
}

TEST_F(ProviderHttp, Openai500RepeatedIsUnavailableAfterBoundedAttempts) {
  auto& srv = serve({{500, std::string(s::openai_error_500)}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_EQ(srv.seen().size(), 3u);  // max_attempts
  EXPECT_NE(r.error().message.find("gave up after 3 attempts"), std::string::npos) << r.error().message;
  EXPECT_EQ(counter("berth_llm_retries_total", "provider=\"openai\""), 2u);
  EXPECT_EQ(counter("berth_llm_requests_total", "provider=\"openai\",outcome=\"llm_unavailable\""), 1u);
}

TEST_F(ProviderHttp, OpenaiGarbageBodyIsLlmErrorWithoutRetry) {
  auto& srv = serve({{200, std::string(s::garbage), {{"content-type", "text/html"}}}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_NE(r.error().message.find("malformed"), std::string::npos);
  EXPECT_EQ(srv.seen().size(), 1u);
}

TEST_F(ProviderHttp, UnknownToolIsLlmError) {
  auto& srv = serve({{200, std::string(s::openai_unknown_tool)}});
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_NE(r.error().message.find("unknown tool 'format_disk'"), std::string::npos);
}

// ---------------- Anthropic ----------------
TEST_F(ProviderHttp, AnthropicToolUseAndHeaders) {
  auto& srv = serve({{200, std::string(s::anthropic_tool_use)}});
  auto p = provider(config_for("anthropic", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
  const auto& req = srv.seen().at(0);
  EXPECT_EQ(req.target, "/v1/messages");
  EXPECT_EQ(req.headers.at("x-api-key"), operator_key);
  EXPECT_EQ(req.headers.at("anthropic-version"), "2023-06-01");
  auto body = json::parse(req.body);
  EXPECT_EQ(body["system"], "You are Berth.");
  EXPECT_EQ(body["max_tokens"], 256);
  EXPECT_EQ(body["tools"][0]["input_schema"]["required"][0], "path");
}

TEST_F(ProviderHttp, AnthropicOverloadedThenTextHonoursRetryAfterSeconds) {
  auto& srv = serve({{529, std::string(s::anthropic_error_529), {{"retry-after", "1"}}},
                     {200, std::string(s::anthropic_text)}});
  auto p = provider(config_for("anthropic", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text, "Hi! My name is Claude.");
  ASSERT_EQ(srv.seen().size(), 2u);
  EXPECT_GE(srv.seen()[1].at - srv.seen()[0].at, 1000ms);
}

TEST_F(ProviderHttp, AnthropicAuthErrorBody) {
  auto& srv = serve({{401, std::string(s::anthropic_error_401)}});
  auto p = provider(config_for("anthropic", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_EQ(r.error().message, "anthropic: HTTP 401 authentication_error: invalid x-api-key");
}

// ---------------- Gemini ----------------
TEST_F(ProviderHttp, GeminiFunctionCallRoundTrip) {
  auto& srv = serve({{200, std::string(s::gemini_function_call)}, {200, std::string(s::gemini_text)}});
  auto p = provider(config_for("gemini", srv.base_url()));
  llm_request req = list_request();
  auto first = complete(*p, req);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->tool_calls.size(), 1u);
  req.messages.push_back(chat_message::assistant(first->text, first->tool_calls));
  req.messages.push_back(chat_message::tool_result(first->tool_calls[0].id, "list_files", "notes.txt"));
  auto second = complete(*p, req);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->text, "Hello there! How can I help?");
  ASSERT_EQ(srv.seen().size(), 2u);
  EXPECT_EQ(srv.seen()[0].target, "/v1beta/models/test-model:generateContent");
  EXPECT_EQ(srv.seen()[0].headers.at("x-goog-api-key"), operator_key);
  EXPECT_EQ(srv.seen()[0].target.find(operator_key), std::string::npos);
  auto body = json::parse(srv.seen()[1].body);
  EXPECT_EQ(body["contents"][1]["role"], "model");
  EXPECT_EQ(body["contents"][2]["parts"][0]["functionResponse"],
            json({{"name", "list_files"}, {"response", {{"output", "notes.txt"}}}}));
}

TEST_F(ProviderHttp, GeminiQuotaWithLongRetryInfoFailsFast) {
  auto& srv = serve({{429, std::string(s::gemini_error_429)}});
  auto p = provider(config_for("gemini", srv.base_url()));  // max_retry_after 5 s < 37 s
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_NE(r.error().message.find("retry after 37 s"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().retry_after, std::chrono::milliseconds(37000));  // the client gets retryAfterMs
  EXPECT_EQ(srv.seen().size(), 1u);
}

TEST_F(ProviderHttp, Gemini503ThenSuccessWithBackoff) {
  auto& srv = serve({{503, std::string(s::gemini_error_503)}, {200, std::string(s::gemini_text)}});
  auto p = provider(config_for("gemini", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(srv.seen().size(), 2u);
}

TEST_F(ProviderHttp, GeminiBadRequestBody) {
  auto& srv = serve({{400, std::string(s::gemini_error_400)}});
  auto p = provider(config_for("gemini", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_NE(r.error().message.find("INVALID_ARGUMENT"), std::string::npos);
}

// ---------------- keys, factory, network ----------------
TEST_F(ProviderHttp, PerUserKeyOnlyWhenOperatorAllows) {
  auto& srv = serve({{200, std::string(s::anthropic_text)}});
  auto cfg = config_for("anthropic", srv.base_url());
  auto p = provider(cfg, fast_options(), std::string(user_key));
  ASSERT_TRUE(complete(*p, list_request()));
  EXPECT_EQ(srv.seen().at(0).headers.at("x-api-key"), operator_key);
  cfg.allow_user_api_key = true;
  p = provider(cfg, fast_options(), std::string(user_key));
  ASSERT_TRUE(complete(*p, list_request()));
  EXPECT_EQ(srv.seen().at(1).headers.at("x-api-key"), user_key);
}

TEST_F(ProviderHttp, FactoryErrorsAndLocalDefault) {
  core::config cfg;
  cfg.llm_provider = "gemini";
  auto p = make_provider(cfg, ioc_.get_executor(), metrics_);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, core::errc::llm_error);
  EXPECT_NE(p.error().message.find("GEMINI_API_KEY"), std::string::npos);
  cfg.llm_provider = "openai";
  cfg.openai_base_url = "ftp://example";
  EXPECT_FALSE(make_provider(cfg, ioc_.get_executor(), metrics_));
  cfg.openai_base_url = "http://127.0.0.1:1";
  auto o = fast_options();
  o.http.extra_ca_file = "/nonexistent/ca.pem";
  p = make_provider(cfg, ioc_.get_executor(), metrics_, std::nullopt, o);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("cannot load CA file"), std::string::npos);

  core::config local;  // LLM_PROVIDER defaults to local
  auto lp = make_provider(local, ioc_.get_executor(), metrics_);
  ASSERT_TRUE(lp);
  EXPECT_EQ((*lp)->name(), "local");
  EXPECT_EQ((*lp)->model(), "berth-local");
  llm_request req = list_request();
  req.tools.push_back({"read_file", "", json::object()});
  auto r = complete(**lp, req);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name, "list_files");
  EXPECT_EQ(r->tool_calls[0].args, json({{"path", "/workspace"}}));
}

TEST_F(ProviderHttp, ConnectionRefusedIsUnavailable) {
  std::uint16_t closed_port = 0;
  {
    asio::ip::tcp::acceptor a(ioc_, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = a.local_endpoint().port();
  }
  auto p = provider(config_for("openai", "http://127.0.0.1:" + std::to_string(closed_port)));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_NE(r.error().message.find("cannot connect to 127.0.0.1"), std::string::npos) << r.error().message;
}

TEST_F(ProviderHttp, TotalDeadlineBoundsAHangingServer) {
  auto& srv = serve({{200, "", {}, true}});
  auto o = fast_options();
  o.retry.max_attempts = 2;
  o.http.total_timeout = 200ms;
  auto p = provider(config_for("openai", srv.base_url()), o);
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_NE(r.error().message.find("within 200 ms"), std::string::npos) << r.error().message;
  EXPECT_EQ(srv.seen().size(), 2u);
}

TEST_F(ProviderHttp, OversizedReplyIsRejected) {
  auto& srv = serve({{200, std::string(100'000, ' ') + std::string(s::openai_text)}});
  auto o = fast_options();
  o.http.max_response_bytes = 4096;
  auto p = provider(config_for("openai", srv.base_url()), o);
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_NE(r.error().message.find("exceeds 4096 bytes"), std::string::npos) << r.error().message;
}

// ---------------- HTTPS ----------------
// A throw-away CA and server certificates made with the openssl CLI for this test run.
class Https : public ProviderHttp {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("berth-llm-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    std::ofstream(d + "/good.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                      "extendedKeyUsage=serverAuth\n";
    std::ofstream(d + "/wrong.ext") << "subjectAltName=DNS:wrong.example\nbasicConstraints=CA:FALSE\n"
                                       "extendedKeyUsage=serverAuth\n";
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; cd '" + d + "'; "
        "openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 2 -subj '/CN=Berth Test CA' "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; "
        "for n in good wrong; do "
        "openssl req " + ec + " -keyout $n.key -out $n.csr -subj /CN=berth-test 2>/dev/null; "
        "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 "
        "-extfile $n.ext 2>/dev/null; done";
    ok_ = std::system(script.c_str()) == 0;  // std::system runs /bin/sh -c
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  void SetUp() override {
    ProviderHttp::SetUp();
    ASSERT_TRUE(ok_) << "openssl CLI failed to make test certificates in " << dir_;
  }
  std::unique_ptr<asio::ssl::context> server_tls(const std::string& name) {
    auto c = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    c->use_certificate_chain_file((dir_ / (name + ".pem")).string());
    c->use_private_key_file((dir_ / (name + ".key")).string(), asio::ssl::context::pem);
    return c;
  }
  static inline std::filesystem::path dir_;
  static inline bool ok_ = false;
};

TEST_F(Https, UntrustedCertificateIsRejected) {
  auto tls = server_tls("good");
  auto& srv = serve({{200, std::string(s::openai_text)}}, tls.get());
  auto p = provider(config_for("openai", srv.base_url()));
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_NE(r.error().message.find("certificate verify failed"), std::string::npos) << r.error().message;
  EXPECT_EQ(srv.seen().size(), 0u);  // nothing (not even the key) was sent
  EXPECT_EQ(srv.tls_handshakes_failed(), 1u);  // a verification failure is not retried
}

TEST_F(Https, TrustedTestCaIsAccepted) {
  auto tls = server_tls("good");
  auto& srv = serve({{200, std::string(s::anthropic_text)}}, tls.get());
  auto o = fast_options();
  o.http.extra_ca_file = (dir_ / "ca.pem").string();
  auto p = provider(config_for("anthropic", srv.base_url()), o);
  auto r = complete(*p, list_request());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text, "Hi! My name is Claude.");
  EXPECT_EQ(srv.seen().at(0).headers.at("x-api-key"), operator_key);
}

TEST_F(Https, HostNameMismatchIsRejectedEvenWithTrustedCa) {
  auto tls = server_tls("wrong");
  auto& srv = serve({{200, std::string(s::gemini_text)}}, tls.get());
  auto o = fast_options();
  o.http.extra_ca_file = (dir_ / "ca.pem").string();
  auto p = provider(config_for("gemini", srv.base_url()), o);
  auto r = complete(*p, list_request());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
  EXPECT_NE(r.error().message.find("certificate verify failed"), std::string::npos) << r.error().message;
  EXPECT_EQ(srv.seen().size(), 0u);
}

// ---------------- streaming (issue 16) ----------------

std::string concat(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += x;
  return out;
}

// Issue 14, item 5: what the turn machine sends from a long resumed history, trimmed to its token
// budget at turn boundaries, and then mid-turn after a tool round, is a conversation every
// provider accepts; a history cut inside a turn is refused (so the check can fail).
TEST_F(ProviderHttp, TrimmedHistoryAndToolRoundsAreConversationsEveryProviderAccepts) {
  struct provider_case {
    std::string name;
    std::string_view tool_call_reply, text_reply;
    std::optional<std::string> (*refuses)(const json&);
  };
  const std::vector<provider_case> cases = {
      {"openai", s::openai_tool_call, s::openai_text, openai_conversation_error},
      {"anthropic", s::anthropic_tool_use, s::anthropic_text, anthropic_conversation_error},
      {"gemini", s::gemini_function_call, s::gemini_text, gemini_conversation_error},
  };
  // Twelve finished turns, each a tool round: user, the call, its (long) result, the answer.
  std::vector<chat_message> history;
  for (int t = 0; t < 12; ++t) {
    const std::string id = "call_old_" + std::to_string(t);
    history.push_back(chat_message::user("list /workspace, take " + std::to_string(t)));
    history.push_back(chat_message::assistant("", {tool_call{id, "list_files", json{{"path", "/workspace"}}}}));
    history.push_back(chat_message::tool_result(id, "list_files", std::string(400, 'f')));
    history.push_back(chat_message::assistant("Listed, take " + std::to_string(t) + "."));
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto& srv = serve({{200, std::string(c.tool_call_reply)}, {200, std::string(c.text_reply)}});
    srv.check = [name = c.name, refuses = c.refuses](const testing::seen_request& r) -> std::optional<fake_reply> {
      if (auto why = refuses(json::parse(r.body))) return conversation_refusal(name, *why);
      return std::nullopt;
    };
    auto p = provider(config_for(c.name, srv.base_url()));
    agent::turn_options opts;
    opts.max_history_tokens = 700;  // a few of the twelve turns fit
    agent::turn_fsm fsm(opts, {list_files_spec()}, history);
    auto request_of = [](const std::vector<agent::action>& acts) -> std::optional<llm_request> {
      for (const auto& a : acts)
        if (auto* call = std::get_if<agent::call_llm>(&a)) {
          llm_request req = list_request();
          req.messages = call->messages;
          req.tools = call->tools;
          return req;
        }
      return std::nullopt;
    };
    auto first = request_of(fsm.on_user_message("and once more"));
    ASSERT_TRUE(first);
    EXPECT_LT(first->messages.size(), history.size()) << "the budget trimmed old turns";
    EXPECT_EQ(first->messages.front().role, role::user);
    auto reply = complete(*p, *first);
    ASSERT_TRUE(reply) << reply.error().message;
    ASSERT_EQ(reply->tool_calls.size(), 1u);
    // The tool round: approved, run, its result back to the model in the same turn.
    fsm.on_llm_reply(*reply);
    fsm.on_approval(reply->tool_calls[0].id, true);
    auto second = request_of(fsm.on_tool_result(reply->tool_calls[0].id, "notes.txt", false, 5ms));
    ASSERT_TRUE(second);
    auto answer = complete(*p, *second);
    ASSERT_TRUE(answer) << answer.error().message;
    EXPECT_FALSE(answer->text.empty());
    EXPECT_EQ(srv.seen().size(), 2u);

    // Cut inside a turn (the call dropped, its result kept): refused with the provider's 400.
    llm_request cut = *first;
    for (auto it = cut.messages.begin(); it != cut.messages.end(); ++it)
      if (!it->tool_calls.empty()) {
        cut.messages.erase(it);
        break;
      }
    auto refused = complete(*p, cut);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, core::errc::llm_error);
    EXPECT_NE(refused.error().message.find("400"), std::string::npos) << refused.error().message;
  }
}

TEST_F(ProviderHttp, EveryProviderStreamsOverItsWireFormat) {
  const std::vector<std::string> pieces{"Hel", "lo ", "from ", "a ", "stream."};
  struct cas {
    std::string provider;
    std::vector<std::string> events;
    std::string target;
  };
  for (const auto& c : {cas{"openai", s::openai_text_stream(pieces), "/v1/chat/completions"},
                        cas{"anthropic", s::anthropic_text_stream(pieces), "/v1/messages"},
                        cas{"gemini", s::gemini_text_stream(pieces),
                            "/v1beta/models/test-model:streamGenerateContent?alt=sse"}}) {
    for (bool chunked : {true, false}) {
      auto reply = fake_reply::stream(c.events);
      reply.chunked = chunked;
      reply.gap = 2ms;  // separate TCP writes: the client sees them one by one
      auto& srv = serve({reply});
      auto p = provider(config_for(c.provider, srv.base_url()));
      std::vector<std::string> deltas;
      auto r = stream(*p, list_request(), deltas);
      ASSERT_TRUE(r) << c.provider << ": " << r.error().message;
      EXPECT_EQ(r->text, "Hello from a stream.");
      EXPECT_EQ(concat(deltas), "Hello from a stream.");
      EXPECT_EQ(deltas.size(), pieces.size()) << c.provider << (chunked ? " chunked" : " close-delimited");
      ASSERT_EQ(srv.seen().size(), 1u);
      EXPECT_EQ(srv.seen()[0].target, c.target);
      EXPECT_EQ(srv.seen()[0].headers.at("accept"), "text/event-stream, application/json");
      if (c.provider != "gemini") {
        EXPECT_EQ(json::parse(srv.seen()[0].body)["stream"], true);
      }
      EXPECT_GT(r->usage.output_tokens, 0u) << c.provider;
    }
  }
}

TEST_F(ProviderHttp, StreamedToolCallsArriveWhole) {
  for (auto [provider_name, events] : {std::pair{"openai", s::openai_tool_stream()},
                                       std::pair{"anthropic", s::anthropic_tool_stream()},
                                       std::pair{"gemini", s::gemini_tool_stream()}}) {
    auto& srv = serve({fake_reply::stream(events)});
    auto p = provider(config_for(provider_name, srv.base_url()));
    std::vector<std::string> deltas;
    auto r = stream(*p, list_request(), deltas);
    ASSERT_TRUE(r) << provider_name << ": " << r.error().message;
    EXPECT_EQ(concat(deltas), "Let me look.");
    ASSERT_EQ(r->tool_calls.size(), 1u);
    EXPECT_EQ(r->tool_calls[0].args, (json{{"path", "/workspace"}})) << provider_name;
    EXPECT_EQ(r->stop_reason, stop_reason::tool_use);
  }
}

TEST_F(ProviderHttp, ErrorBeforeAnyTextIsRetriedThenStreams) {
  auto& srv = serve({{429, std::string(s::openai_error_429)}, fake_reply::stream(s::openai_text_stream({"ok"}))});
  auto p = provider(config_for("openai", srv.base_url()));
  std::vector<std::string> deltas;
  auto r = stream(*p, list_request(), deltas);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text, "ok");
  EXPECT_EQ(srv.seen().size(), 2u);
  EXPECT_EQ(deltas, (std::vector<std::string>{"ok"}));
}

TEST_F(ProviderHttp, ServerThatIgnoresStreamingStillAnswers) {
  // An OpenAI-compatible server answering one JSON body (no text/event-stream): one delta.
  auto& srv = serve({{200, std::string(s::openai_text)}});
  auto p = provider(config_for("openai", srv.base_url()));
  std::vector<std::string> deltas;
  auto r = stream(*p, list_request(), deltas);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(deltas, (std::vector<std::string>{"Hello! How can I help?"}));
}

TEST_F(ProviderHttp, MidStreamErrorEventFailsWithoutRetry) {
  for (auto [provider_name, events] :
       {std::pair{"openai", std::vector<std::string>{s::openai_text_stream({"par"})[0], s::openai_text_stream({"par"})[1],
                                                      s::openai_stream_error()}},
        std::pair{"anthropic", std::vector<std::string>{s::anthropic_text_stream({"par"})[0],
                                                         s::anthropic_text_stream({"par"})[1],
                                                         s::anthropic_text_stream({"par"})[3], s::anthropic_stream_error()}},
        std::pair{"gemini", std::vector<std::string>{s::gemini_text_stream({"par", "x"})[0], s::gemini_stream_error()}}}) {
    auto& srv = serve({fake_reply::stream(events)});
    auto p = provider(config_for(provider_name, srv.base_url()));
    std::vector<std::string> deltas;
    auto r = stream(*p, list_request(), deltas);
    ASSERT_FALSE(r) << provider_name;
    EXPECT_EQ(r.error().code, core::errc::llm_unavailable) << provider_name;
    EXPECT_NE(r.error().message.find("after part of the answer was streamed"), std::string::npos) << r.error().message;
    EXPECT_EQ(concat(deltas), "par");
    EXPECT_EQ(srv.seen().size(), 1u);  // shown text cannot be taken back: no retry
  }
}

TEST_F(ProviderHttp, StreamCutMidwayIsUnavailable) {
  for (bool chunked : {true, false}) {
    auto reply = fake_reply::stream(s::anthropic_text_stream({"one ", "two ", "three"}));
    reply.cut_after = 4;  // message_start, block start, ping, first delta; then the connection closes
    reply.chunked = chunked;
    auto& srv = serve({reply});
    auto p = provider(config_for("anthropic", srv.base_url()));
    std::vector<std::string> deltas;
    auto r = stream(*p, list_request(), deltas);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, core::errc::llm_unavailable);
    EXPECT_EQ(concat(deltas), "one ");
    EXPECT_EQ(srv.seen().size(), 1u);
    EXPECT_EQ(r.error().message.find(operator_key), std::string::npos);
  }
}

TEST_F(ProviderHttp, StalledStreamHitsTheIdleDeadline) {
  auto reply = fake_reply::stream(s::openai_text_stream({"a", "b"}));
  reply.stall_after = 2;
  auto& srv = serve({reply});
  auto o = fast_options();
  o.http.idle_timeout = 300ms;
  auto p = provider(config_for("openai", srv.base_url()), o);
  std::vector<std::string> deltas;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = stream(*p, list_request(), deltas);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no data from"), std::string::npos) << r.error().message;
  EXPECT_EQ(concat(deltas), "a");
  EXPECT_EQ(srv.seen().size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST_F(ProviderHttp, StreamBytesAreCapped) {
  std::vector<std::string> big;
  for (int i = 0; i < 200; ++i) big.push_back(std::string(1000, 'x'));
  auto& srv = serve({fake_reply::stream(s::openai_text_stream(big))});
  auto o = fast_options();
  o.http.max_response_bytes = 64 * 1024;
  auto p = provider(config_for("openai", srv.base_url()), o);
  std::vector<std::string> deltas;
  auto r = stream(*p, list_request(), deltas);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::llm_error);
  EXPECT_NE(r.error().message.find("exceeds"), std::string::npos) << r.error().message;
  EXPECT_LT(concat(deltas).size(), 64u * 1024u);
}

TEST_F(ProviderHttp, AbortingTheAwaitClosesTheConnection) {
  // The gateway stops a turn by ending the awaiting operation (`||` with a cancelled timer).
  std::vector<std::string> pieces(200, "tok ");
  auto reply = fake_reply::stream(s::openai_text_stream(pieces));
  reply.gap = 5ms;
  auto& srv = serve({reply});
  auto p = provider(config_for("openai", srv.base_url()));
  asio::steady_timer abort(ioc_, std::chrono::steady_clock::time_point::max());
  std::size_t got = 0;
  delta_fn on_delta = [&](std::string_view) {
    if (++got == 3) abort.cancel();
  };
  bool finished = false;
  std::size_t which = 99;
  auto run = [](llm_provider& prov, llm_request req, delta_fn sink, asio::steady_timer& t) -> asio::awaitable<std::size_t> {
    using namespace asio::experimental::awaitable_operators;
    auto streamed = prov.stream(req, std::move(sink));
    auto aborted = t.async_wait(asio::as_tuple(asio::use_awaitable));
    auto r = co_await (std::move(streamed) || std::move(aborted));
    co_return r.index();
  };
  asio::co_spawn(ioc_, run(*p, list_request(), on_delta, abort), [&](std::exception_ptr e, std::size_t idx) {
    if (e) std::rethrow_exception(e);
    which = idx;
    finished = true;
  });
  ioc_.restart();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && (!finished || srv.streams_abandoned() == 0)) ioc_.run_for(20ms);
  ASSERT_TRUE(finished);
  EXPECT_EQ(which, 1u);
  EXPECT_EQ(got, 3u);
  EXPECT_EQ(srv.streams_abandoned(), 1u);  // its next write failed: the connection was closed
  EXPECT_LT(srv.events_written(), 100u);
}

TEST_F(Https, StreamsOverTls) {
  auto tls = server_tls("good");
  auto reply = fake_reply::stream(s::gemini_text_stream({"se", "cure"}));
  auto& srv = serve({reply}, tls.get());
  auto o = fast_options();
  o.http.extra_ca_file = (dir_ / "ca.pem").string();
  auto p = provider(config_for("gemini", srv.base_url()), o);
  std::vector<std::string> deltas;
  auto r = stream(*p, list_request(), deltas);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(concat(deltas), "secure");
}

}  // namespace
}  // namespace berth::llm
