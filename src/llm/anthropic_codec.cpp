// Anthropic Messages API: POST {base}/v1/messages, x-api-key + anthropic-version headers,
// content blocks text / tool_use / tool_result, strictly alternating roles.
#include "codec_common.hpp"

#include <map>

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

  core::result<http::call> build(const llm_request& req) const override { return build_call(req, false); }
  core::result<http::call> build_stream(const llm_request& req) const override { return build_call(req, true); }
  std::unique_ptr<stream_decoder> make_stream_decoder(const llm_request& req) const override;

  core::result<http::call> build_call(const llm_request& req, bool stream) const {
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
    if (stream) body["stream"] = true;
    http::call call = json_post(join_url(settings_.base_url, "v1/messages"), body);
    call.headers.push_back({"anthropic-version", "2023-06-01", false});
    call.headers.push_back({"x-api-key", settings_.api_key, true});
    return call;
  }

  parse_outcome parse_object(const llm_request& req, const http::reply& rep, const json& j) const override {
    if (core::json_string(j, "type") == "error") {
      http::reply as_error = rep;
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

// Messages streaming: message_start {message: model, usage}, then per content block
// content_block_start {index, content_block: text | tool_use {id, name, input}},
// content_block_delta {index, delta: text_delta {text} | input_json_delta {partial_json} | ...},
// content_block_stop; message_delta {delta: {stop_reason}, usage: {output_tokens}};
// message_stop. `ping` events may come anywhere; `error` events end the stream with a failure.
// Unknown event and delta types are skipped, as the API's versioning policy asks.
class anthropic_stream final : public stream_decoder {
 public:
  anthropic_stream(const llm_request& req, std::string secret) : req_(req), secret_(std::move(secret)) {}

  stream_progress on_event(const sse_event& ev) override {
    stream_progress p;
    const json j = core::parse_json(ev.data);
    if (j.is_discarded() || !j.is_object()) {
      p.failed = malformed("anthropic", "stream event is not a JSON object", secret_);
      return p;
    }
    const std::string type = j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ev.type;
    if (type == "error") {
      p.failed = stream_error("anthropic", ev.data, secret_);
    } else if (type == "message_start") {
      if (j.contains("message") && j["message"].is_object()) {
        const auto& m = j["message"];
        if (m.contains("model") && m["model"].is_string()) tail_["model"] = m["model"];
        if (m.contains("usage") && m["usage"].is_object()) tail_["usage"] = m["usage"];
      }
    } else if (type == "content_block_start") {
      const auto index = block_index(j);
      if (!index || !j.contains("content_block") || !j["content_block"].is_object()) {
        p.failed = malformed("anthropic", "content_block_start without index or block", secret_);
        return p;
      }
      auto& b = blocks_[*index];
      const auto& cb = j["content_block"];
      b.type = core::json_string(cb, "type");
      if (b.type == "text" && cb.contains("text") && cb["text"].is_string()) {
        b.text = cb["text"].get<std::string>();
        p.text = b.text;
      } else if (b.type == "tool_use") {
        b.id = cb.contains("id") && cb["id"].is_string() ? cb["id"].get<std::string>() : "";
        b.name = cb.contains("name") && cb["name"].is_string() ? cb["name"].get<std::string>() : "";
        if (cb.contains("input") && cb["input"].is_object()) b.input = cb["input"];
      }
    } else if (type == "content_block_delta") {
      const auto index = block_index(j);
      if (!index || !j.contains("delta") || !j["delta"].is_object()) {
        p.failed = malformed("anthropic", "content_block_delta without index or delta", secret_);
        return p;
      }
      auto& b = blocks_[*index];
      const auto& d = j["delta"];
      const std::string dtype(core::json_string(d, "type"));
      if (dtype == "text_delta" && d.contains("text") && d["text"].is_string()) {
        if (b.type.empty()) b.type = "text";
        p.text = d["text"].get<std::string>();
        b.text += p.text;
      } else if (dtype == "input_json_delta" && d.contains("partial_json") && d["partial_json"].is_string()) {
        b.partial_json += d["partial_json"].get<std::string>();
      }
      // thinking_delta, signature_delta, citations_delta: nothing we relay.
    } else if (type == "message_delta") {
      if (j.contains("delta") && j["delta"].is_object() && j["delta"].contains("stop_reason") &&
          j["delta"]["stop_reason"].is_string())
        tail_["stop_reason"] = j["delta"]["stop_reason"];
      if (j.contains("usage") && j["usage"].is_object()) {
        // Cumulative output_tokens; input_tokens stays as message_start gave it unless repeated.
        if (!tail_.contains("usage")) tail_["usage"] = json::object();
        for (auto it = j["usage"].begin(); it != j["usage"].end(); ++it)
          if (!it->is_null()) tail_["usage"][it.key()] = *it;
      }
    } else if (type == "message_stop") {
      stopped_ = true;
      p.done = true;
    }
    // ping, content_block_stop and unknown events: nothing to do.
    return p;
  }

  parse_outcome finish() override {
    if (!stopped_) return stream_cut("anthropic", "message_stop");
    llm_reply out;
    for (auto& [index, b] : blocks_) {
      if (b.type == "text") {
        out.text += b.text;
      } else if (b.type == "tool_use") {
        if (b.id.empty() || b.name.empty()) return malformed("anthropic", "tool_use block without id or name", secret_);
        tool_call call{b.id, b.name, b.input};
        if (!b.partial_json.empty()) {
          call.args = core::parse_json(b.partial_json);
          if (call.args.is_discarded())
            return malformed("anthropic", "input of tool '" + core::log_prefix(b.name) + "' is not valid JSON", secret_);
        }
        out.tool_calls.push_back(std::move(call));
      }
    }
    finish_reply(out, tail_, tail_, words);
    return accept("anthropic", req_, std::move(out));
  }

 private:
  struct block {
    std::string type, text, id, name, partial_json;
    json input = json::object();
  };
  static std::optional<std::size_t> block_index(const json& j) {
    if (!j.contains("index") || !j["index"].is_number_unsigned()) return std::nullopt;
    const auto i = j["index"].get<std::size_t>();
    if (i > 1024) return std::nullopt;
    return i;
  }
  const llm_request& req_;
  std::string secret_;
  std::map<std::size_t, block> blocks_;
  json tail_ = json::object();
  bool stopped_ = false;
};

std::unique_ptr<stream_decoder> anthropic_codec::make_stream_decoder(const llm_request& req) const {
  return std::make_unique<anthropic_stream>(req, settings_.api_key);
}
}  // namespace

std::unique_ptr<provider_codec> make_anthropic_codec(codec_settings s) {
  return detail::make_codec<anthropic_codec>(std::move(s), "https://api.anthropic.com", default_anthropic_model);
}

}  // namespace berth::llm
