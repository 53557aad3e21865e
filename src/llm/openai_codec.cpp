// OpenAI Chat Completions (and compatible servers: vLLM, Ollama, llama.cpp, LiteLLM).
// POST {base}/chat/completions, Authorization: Bearer (omitted when no key is configured).
#include "codec_common.hpp"

#include <map>

#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;
using namespace detail;

// Reasoning models reject max_tokens and require max_completion_tokens.
bool wants_max_completion_tokens(std::string_view model) {
  for (std::string_view p : {"o1", "o3", "o4", "gpt-5"})
    if (model.substr(0, p.size()) == p) return true;
  return false;
}

constexpr reply_words words{.stop_field = "finish_reason", .tool_use = "tool_calls", .max_tokens = "length",
                            .end_turn = {"stop"}, .usage = "usage", .input_tokens = "prompt_tokens",
                            .output_tokens = "completion_tokens", .model = "model"};

class openai_codec final : public json_codec {
 public:
  explicit openai_codec(codec_settings s) : json_codec(std::move(s)) {}
  std::string_view name() const noexcept override { return "openai"; }

  core::result<http::call> build(const llm_request& req) const override { return build_call(req, false); }
  core::result<http::call> build_stream(const llm_request& req) const override { return build_call(req, true); }
  std::unique_ptr<stream_decoder> make_stream_decoder(const llm_request& req) const override;

  core::result<http::call> build_call(const llm_request& req, bool stream) const {
    const std::string model = req.model.empty() ? settings_.default_model : req.model;
    json messages = json::array();
    if (!req.system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", req.system_prompt}});
    for (const auto& m : req.messages) {
      switch (m.role) {
        case role::system:
        case role::user:
          messages.push_back({{"role", to_string(m.role)}, {"content", m.content}});
          break;
        case role::assistant: {
          json msg{{"role", "assistant"}};
          msg["content"] = m.content.empty() && !m.tool_calls.empty() ? json(nullptr) : json(m.content);
          if (!m.tool_calls.empty()) {
            json calls = json::array();
            for (const auto& c : m.tool_calls)
              calls.push_back({{"id", c.id},
                               {"type", "function"},
                               {"function", {{"name", c.name}, {"arguments", c.args.dump()}}}});
            msg["tool_calls"] = std::move(calls);
          }
          messages.push_back(std::move(msg));
          break;
        }
        case role::tool:
          // No is_error field in this API: the model reads the failure from the text.
          messages.push_back({{"role", "tool"},
                              {"tool_call_id", m.tool_call_id},
                              {"content", m.is_error ? "Error: " + m.content : m.content}});
          break;
      }
    }
    json body{{"model", model}, {"messages", std::move(messages)}};
    body[wants_max_completion_tokens(model) ? "max_completion_tokens" : "max_tokens"] = req.max_output_tokens;
    if (!req.tools.empty()) {
      json tools = json::array();
      for (const auto& t : req.tools)
        tools.push_back({{"type", "function"},
                         {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.input_schema}}}});
      body["tools"] = std::move(tools);
    }
    if (stream) {
      body["stream"] = true;
      body["stream_options"] = {{"include_usage", true}};  // a last chunk with empty choices and usage
    }
    http::call call = json_post(join_url(settings_.base_url, "chat/completions"), body);
    if (!settings_.api_key.empty()) call.headers.push_back({"authorization", "Bearer " + settings_.api_key, true});
    return call;
  }

  parse_outcome parse_object(const llm_request& req, const http::reply& rep, const json& j) const override {
    // Some compatible servers answer 200 with an error object.
    if (j.contains("error") && !j["error"].is_null()) {
      http::reply as_error = rep;
      as_error.status = 502;
      auto out = http_failure(name(), as_error, settings_.api_key);
      out.reply = core::make_error(core::errc::llm_error, out.reply.error().message);
      out.retryable = false;
      return out;
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() || !j["choices"][0].is_object())
      return malformed(name(), "no choices", settings_.api_key);
    const auto& choice = j["choices"][0];
    if (!choice.contains("message") || !choice["message"].is_object())
      return malformed(name(), "choice without message", settings_.api_key);
    const auto& msg = choice["message"];
    llm_reply out;
    if (msg.contains("content") && msg["content"].is_string()) out.text = msg["content"].get<std::string>();
    if (msg.contains("tool_calls") && !msg["tool_calls"].is_null()) {
      if (!msg["tool_calls"].is_array()) return malformed(name(), "tool_calls is not an array", settings_.api_key);
      std::size_t index = 0;
      for (const auto& c : msg["tool_calls"]) {
        ++index;
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string())
          return malformed(name(), "tool call without function name", settings_.api_key);
        tool_call call;
        call.name = c["function"]["name"].get<std::string>();
        call.id = c.contains("id") && c["id"].is_string() && !c["id"].get<std::string>().empty()
                      ? c["id"].get<std::string>()
                      : "call_" + std::to_string(req.messages.size()) + "_" + std::to_string(index);
        const json& a = c["function"].contains("arguments") ? c["function"]["arguments"] : json(nullptr);
        if (a.is_string()) {
          const auto& s = a.get_ref<const std::string&>();
          call.args = s.empty() ? json::object() : core::parse_json(s);
          if (call.args.is_discarded())
            return malformed(name(), "arguments of tool '" + core::log_prefix(call.name) + "' are not valid JSON",
                             settings_.api_key);
        } else if (a.is_object()) {
          call.args = a;  // Ollama sends an object
        } else if (a.is_null()) {
          call.args = json::object();
        } else {
          return malformed(name(), "tool arguments are neither a string nor an object", settings_.api_key);
        }
        out.tool_calls.push_back(std::move(call));
      }
    }
    finish_reply(out, j, choice, words);
    return accept(name(), req, std::move(out));
  }
};

// Chat Completions streaming: `data:` chunks of chat.completion.chunk objects whose
// choices[0].delta carries content pieces and tool_calls pieces keyed by `index` (id, type and
// function.name in the first piece, function.arguments split across pieces); finish_reason in
// the last choice chunk; with include_usage a chunk with empty choices and usage; then
// `data: [DONE]`. An {"error": ...} object in the stream is the server failing mid-reply.
class openai_stream final : public stream_decoder {
 public:
  openai_stream(const llm_request& req, std::string secret) : req_(req), secret_(std::move(secret)) {}

  stream_progress on_event(const sse_event& ev) override {
    stream_progress p;
    if (ev.data == "[DONE]") {
      done_ = true;
      p.done = true;
      return p;
    }
    if (ev.type == "error") {
      p.failed = stream_error("openai", ev.data, secret_);
      return p;
    }
    const json j = core::parse_json(ev.data);
    if (j.is_discarded() || !j.is_object()) {
      p.failed = malformed("openai", "stream event is not a JSON object", secret_);
      return p;
    }
    if (j.contains("error") && !j["error"].is_null()) {
      p.failed = stream_error("openai", ev.data, secret_);
      return p;
    }
    if (j.contains("model") && j["model"].is_string()) tail_["model"] = j["model"];
    if (j.contains("usage") && j["usage"].is_object()) tail_["usage"] = j["usage"];
    if (!j.contains("choices") || !j["choices"].is_array()) return p;
    for (const auto& c : j["choices"]) {
      if (!c.is_object() || (c.contains("index") && c["index"] != 0)) continue;  // n=1: one choice
      if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish_["finish_reason"] = c["finish_reason"];
      if (!c.contains("delta") || !c["delta"].is_object()) continue;
      const auto& d = c["delta"];
      if (d.contains("content") && d["content"].is_string()) {
        p.text += d["content"].get<std::string>();
        text_ += d["content"].get<std::string>();
      }
      if (!d.contains("tool_calls") || !d["tool_calls"].is_array()) continue;
      for (const auto& piece : d["tool_calls"]) {
        if (!piece.is_object()) continue;
        const auto index = piece.contains("index") && piece["index"].is_number_unsigned() ? piece["index"].get<std::size_t>()
                                                                                           : calls_.size();
        if (index > 128) {
          p.failed = malformed("openai", "tool call index out of range", secret_);
          return p;
        }
        auto& call = calls_[index];
        if (piece.contains("id") && piece["id"].is_string()) call.id += piece["id"].get<std::string>();
        if (!piece.contains("function") || !piece["function"].is_object()) continue;
        const auto& f = piece["function"];
        if (f.contains("name") && f["name"].is_string()) call.name += f["name"].get<std::string>();
        if (f.contains("arguments") && f["arguments"].is_string()) call.args += f["arguments"].get<std::string>();
      }
    }
    return p;
  }

  parse_outcome finish() override {
    if (!done_ && finish_.empty()) return stream_cut("openai", "finish_reason and [DONE]");
    llm_reply out;
    out.text = std::move(text_);
    std::size_t n = 0;
    for (auto& [index, c] : calls_) {
      ++n;
      if (c.name.empty()) return malformed("openai", "streamed tool call without function name", secret_);
      tool_call call;
      call.name = std::move(c.name);
      call.id = !c.id.empty() ? std::move(c.id) : "call_" + std::to_string(req_.messages.size()) + "_" + std::to_string(n);
      call.args = c.args.empty() ? json::object() : core::parse_json(c.args);
      if (call.args.is_discarded())
        return malformed("openai", "arguments of tool '" + core::log_prefix(call.name) + "' are not valid JSON", secret_);
      out.tool_calls.push_back(std::move(call));
    }
    finish_reply(out, tail_, finish_, words);
    return accept("openai", req_, std::move(out));
  }

 private:
  struct partial_call {
    std::string id, name, args;
  };
  const llm_request& req_;
  std::string secret_;
  std::string text_;
  std::map<std::size_t, partial_call> calls_;
  json finish_ = json::object();
  json tail_ = json::object();
  bool done_ = false;
};

std::unique_ptr<stream_decoder> openai_codec::make_stream_decoder(const llm_request& req) const {
  return std::make_unique<openai_stream>(req, settings_.api_key);
}
}  // namespace

std::unique_ptr<provider_codec> make_openai_codec(codec_settings s) {
  return detail::make_codec<openai_codec>(std::move(s), "https://api.openai.com/v1", default_openai_model);
}

}  // namespace berth::llm
