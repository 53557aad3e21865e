// Anthropic Messages API: POST {base}/v1/messages, x-api-key + anthropic-version headers,
// content blocks text / tool_use / tool_result, strictly alternating roles.
#include "codec_common.hpp"

#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;
using namespace detail;

constexpr reply_words words{.stop_field = "stop_reason", .tool_use = "tool_use", .max_tokens = "max_tokens",
                            .end_turn = {"end_turn", "stop_sequence"}, .usage = "usage",
                            .input_tokens = "input_tokens", .output_tokens = "output_tokens", .model = "model"};

class anthropic_codec final : public json_codec {
 public:
  explicit anthropic_codec(codec_settings s) : json_codec(std::move(s)) {}
  std::string_view name() const noexcept override { return "anthropic"; }

  core::result<http_call> build(const llm_request& req) const override {
    if (settings_.api_key.empty())
      return core::make_error(core::errc::llm_error, "anthropic: no API key configured (ANTHROPIC_API_KEY)");
    std::string system = req.system_prompt;
    json messages = json::array();
    // The API requires alternating user/assistant turns: consecutive blocks of one role merge.
    auto append = [&](std::string_view r, json blocks) {
      if (blocks.empty()) return;
      if (!messages.empty() && messages.back()["role"] == r) {
        for (auto& b : blocks) messages.back()["content"].push_back(std::move(b));
      } else {
        messages.push_back({{"role", r}, {"content", std::move(blocks)}});
      }
    };
    for (const auto& m : req.messages) {
      json blocks = json::array();
      switch (m.role) {
        case role::system:
          if (!m.content.empty()) system += (system.empty() ? "" : "\n\n") + m.content;
          break;
        case role::user:
          // Empty text blocks are rejected by the API.
          if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
          append("user", std::move(blocks));
          break;
        case role::assistant:
          if (!m.content.empty()) blocks.push_back({{"type", "text"}, {"text", m.content}});
          for (const auto& c : m.tool_calls)
            blocks.push_back({{"type", "tool_use"},
                              {"id", c.id},
                              {"name", c.name},
                              {"input", c.args.is_object() ? c.args : json::object()}});
          append("assistant", std::move(blocks));
          break;
        case role::tool: {
          json b{{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}};
          if (m.is_error) b["is_error"] = true;
          blocks.push_back(std::move(b));
          append("user", std::move(blocks));
          break;
        }
      }
    }
    json body{{"model", req.model.empty() ? settings_.default_model : req.model},
              {"max_tokens", req.max_output_tokens},
              {"messages", std::move(messages)}};
    if (!system.empty()) body["system"] = system;
    if (!req.tools.empty()) {
      json tools = json::array();
      for (const auto& t : req.tools)
        tools.push_back({{"name", t.name}, {"description", t.description}, {"input_schema", t.input_schema}});
      body["tools"] = std::move(tools);
    }
    http_call call = json_post(join_url(settings_.base_url, "v1/messages"), body);
    call.headers.push_back({"anthropic-version", "2023-06-01", false});
    call.headers.push_back({"x-api-key", settings_.api_key, true});
    return call;
  }

  parse_outcome parse_object(const llm_request& req, const http_reply& rep, const json& j) const override {
    if (core::json_string(j, "type") == "error") {
      http_reply as_error = rep;
      as_error.status = 502;
      auto out = http_failure(name(), as_error, settings_.api_key);
      out.reply = core::make_error(core::errc::llm_unavailable, out.reply.error().message);
      return out;
    }
    if (!j.contains("content") || !j["content"].is_array()) return malformed(name(), "no content array", settings_.api_key);
    llm_reply out;
    for (const auto& b : j["content"]) {
      if (!b.is_object() || !b.contains("type") || !b["type"].is_string())
        return malformed(name(), "content block without type", settings_.api_key);
      const auto& type = b["type"].get_ref<const std::string&>();
      if (type == "text") {
        if (!b.contains("text") || !b["text"].is_string()) return malformed(name(), "text block without text", settings_.api_key);
        out.text += b["text"].get<std::string>();
      } else if (type == "tool_use") {
        if (!b.contains("id") || !b["id"].is_string() || !b.contains("name") || !b["name"].is_string())
          return malformed(name(), "tool_use block without id or name", settings_.api_key);
        tool_call call{b["id"].get<std::string>(), b["name"].get<std::string>(),
                       b.contains("input") ? b["input"] : json::object()};
        if (call.args.is_null()) call.args = json::object();
        out.tool_calls.push_back(std::move(call));
      }
      // Other block types (thinking, redacted_thinking, server tools) carry nothing we relay.
    }
    finish_reply(out, j, j, words);
    return accept(name(), req, std::move(out));
  }
};
}  // namespace

std::unique_ptr<provider_codec> make_anthropic_codec(codec_settings s) {
  return detail::make_codec<anthropic_codec>(std::move(s), "https://api.anthropic.com", default_anthropic_model);
}

}  // namespace berth::llm
