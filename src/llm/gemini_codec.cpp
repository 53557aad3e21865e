// Google Gemini generateContent: POST {base}/v1beta/models/{model}:generateContent with the key in
// x-goog-api-key (never in the URL, so it cannot leak through URL logging), roles user/model,
// parts text / functionCall / functionResponse, tools[].functionDeclarations.
#include "codec_common.hpp"

#include <algorithm>
#include <cctype>

#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;
using namespace detail;

// Gemini's `parameters` is an OpenAPI subset: JSON-Schema-only keywords are rejected with 400.
json sanitize_schema(const json& s) {
  if (s.is_array()) {
    json out = json::array();
    for (const auto& v : s) out.push_back(sanitize_schema(v));
    return out;
  }
  if (!s.is_object()) return s;
  json out = json::object();
  for (auto it = s.begin(); it != s.end(); ++it) {
    const auto& k = it.key();
    if (k == "$schema" || k == "$id" || k == "additionalProperties" || k == "$defs" || k == "definitions" ||
        k == "examples" || k == "$comment")
      continue;
    // `properties` maps names to schemas: recurse into the values, keep every name.
    if (k == "properties" && it->is_object()) {
      json props = json::object();
      for (auto p = it->begin(); p != it->end(); ++p) props[p.key()] = sanitize_schema(*p);
      out[k] = std::move(props);
    } else {
      out[k] = sanitize_schema(*it);
    }
  }
  return out;
}

bool valid_model_name(std::string_view m) {
  return !m.empty() && std::all_of(m.begin(), m.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

// No tool-use stop word: a reply that calls functions still ends with STOP.
constexpr reply_words words{.stop_field = "finishReason", .tool_use = "", .max_tokens = "MAX_TOKENS",
                            .end_turn = {"STOP"}, .usage = "usageMetadata", .input_tokens = "promptTokenCount",
                            .output_tokens = "candidatesTokenCount", .model = "modelVersion"};

class gemini_codec final : public json_codec {
 public:
  explicit gemini_codec(codec_settings s) : json_codec(std::move(s)) {}
  std::string_view name() const noexcept override { return "gemini"; }

  core::result<http::call> build(const llm_request& req) const override { return build_call(req, false); }
  core::result<http::call> build_stream(const llm_request& req) const override { return build_call(req, true); }
  std::unique_ptr<stream_decoder> make_stream_decoder(const llm_request& req) const override;

  core::result<http::call> build_call(const llm_request& req, bool stream) const {
    if (settings_.api_key.empty())
      return core::make_error(core::errc::llm_error, "gemini: no API key configured (GEMINI_API_KEY)");
    std::string model = req.model.empty() ? settings_.default_model : req.model;
    if (model.rfind("models/", 0) == 0) model.erase(0, 7);
    if (!valid_model_name(model))
      return core::make_error(core::errc::llm_error, "gemini: invalid model name '" + core::log_prefix(model) + "'");

    std::string system = req.system_prompt;
    json contents = json::array();
    auto append = [&](std::string_view r, json parts) {
      if (parts.empty()) return;
      if (!contents.empty() && contents.back()["role"] == r) {
        for (auto& p : parts) contents.back()["parts"].push_back(std::move(p));
      } else {
        contents.push_back({{"role", r}, {"parts", std::move(parts)}});
      }
    };
    for (std::size_t i = 0; i < req.messages.size(); ++i) {
      const auto& m = req.messages[i];
      json parts = json::array();
      switch (m.role) {
        case role::system:
          if (!m.content.empty()) system += (system.empty() ? "" : "\n\n") + m.content;
          break;
        case role::user:
          if (!m.content.empty()) parts.push_back({{"text", m.content}});
          append("user", std::move(parts));
          break;
        case role::assistant:
          if (!m.content.empty()) parts.push_back({{"text", m.content}});
          for (const auto& c : m.tool_calls)
            parts.push_back({{"functionCall", {{"name", c.name}, {"args", c.args.is_object() ? c.args : json::object()}}}});
          append("model", std::move(parts));
          break;
        case role::tool: {
          // functionResponse needs the function's name; find it from the call when not given.
          std::string fn = m.name;
          for (std::size_t k = i; fn.empty() && k-- > 0;)
            for (const auto& c : req.messages[k].tool_calls)
              if (c.id == m.tool_call_id) fn = c.name;
          json response = m.is_error ? json{{"error", m.content}} : json{{"output", m.content}};
          parts.push_back({{"functionResponse", {{"name", fn}, {"response", std::move(response)}}}});
          append("user", std::move(parts));
          break;
        }
      }
    }
    json body{{"contents", std::move(contents)}, {"generationConfig", {{"maxOutputTokens", req.max_output_tokens}}}};
    if (!system.empty()) body["systemInstruction"] = {{"parts", json::array({{{"text", system}}})}};
    if (!req.tools.empty()) {
      json decls = json::array();
      for (const auto& t : req.tools) {
        json d{{"name", t.name}, {"description", t.description}};
        // An object schema without properties is rejected: omit parameters for argument-less tools.
        if (t.input_schema.is_object() && t.input_schema.contains("properties") && t.input_schema["properties"].is_object() &&
            !t.input_schema["properties"].empty())
          d["parameters"] = sanitize_schema(t.input_schema);
        decls.push_back(std::move(d));
      }
      body["tools"] = json::array({{{"functionDeclarations", std::move(decls)}}});
    }
    const std::string method = stream ? ":streamGenerateContent?alt=sse" : ":generateContent";
    http::call call = json_post(join_url(settings_.base_url, "v1beta/models/" + model + method), body);
    call.headers.push_back({"x-goog-api-key", settings_.api_key, true});
    return call;
  }

  parse_outcome parse_object(const llm_request& req, const http::reply&, const json& j) const override {
    if (!j.contains("candidates") || !j["candidates"].is_array() || j["candidates"].empty()) {
      if (j.contains("promptFeedback") && j["promptFeedback"].is_object() && j["promptFeedback"].contains("blockReason"))
        return {core::make_error(core::errc::llm_error,
                                 "gemini: prompt blocked (" +
                                     core::log_prefix(text_of(j["promptFeedback"]["blockReason"])) + ")"),
                false, std::nullopt};
      return malformed(name(), "no candidates", settings_.api_key);
    }
    const auto& cand = j["candidates"][0];
    if (!cand.is_object()) return malformed(name(), "candidate is not an object", settings_.api_key);
    llm_reply out;
    if (cand.contains("content")) {
      const auto& content = cand["content"];
      if (!content.is_object()) return malformed(name(), "content is not an object", settings_.api_key);
      if (content.contains("parts")) {
        if (!content["parts"].is_array()) return malformed(name(), "parts is not an array", settings_.api_key);
        std::size_t index = 0;
        for (const auto& p : content["parts"]) {
          if (!p.is_object()) return malformed(name(), "part is not an object", settings_.api_key);
          if (core::json_bool(p, "thought")) continue;  // thinking summaries are not part of the answer
          if (p.contains("text") && p["text"].is_string()) {
            out.text += p["text"].get<std::string>();
          } else if (p.contains("functionCall")) {
            const auto& fc = p["functionCall"];
            if (!fc.is_object() || !fc.contains("name") || !fc["name"].is_string())
              return malformed(name(), "functionCall without name", settings_.api_key);
            ++index;
            tool_call call;
            call.name = fc["name"].get<std::string>();
            // Older models send no call id: derive one that is unique within the conversation.
            call.id = fc.contains("id") && fc["id"].is_string() && !fc["id"].get<std::string>().empty()
                          ? fc["id"].get<std::string>()
                          : "call_" + std::to_string(req.messages.size()) + "_" + std::to_string(index);
            call.args = fc.contains("args") && !fc["args"].is_null() ? fc["args"] : json::object();
            out.tool_calls.push_back(std::move(call));
          }
        }
      }
    }
    finish_reply(out, j, cand, words);
    return accept(name(), req, std::move(out));
  }
};

// streamGenerateContent with alt=sse: every event's data is a whole GenerateContentResponse
// holding the next piece: candidates[0].content.parts (text pieces; a functionCall part comes
// whole), finishReason on the last candidate, usageMetadata (cumulative) and modelVersion. The
// stream has no end marker: it ends with the response, after the chunk with finishReason.
class gemini_stream final : public stream_decoder {
 public:
  gemini_stream(const llm_request& req, std::string secret) : req_(req), secret_(std::move(secret)) {}

  stream_progress on_event(const sse_event& ev) override {
    stream_progress p;
    const json j = core::parse_json(ev.data);
    if (j.is_discarded() || !j.is_object()) {
      p.failed = malformed("gemini", "stream event is not a JSON object", secret_);
      return p;
    }
    if (j.contains("error")) {
      p.failed = stream_error("gemini", ev.data, secret_);
      return p;
    }
    if (j.contains("usageMetadata") && j["usageMetadata"].is_object()) tail_["usageMetadata"] = j["usageMetadata"];
    if (j.contains("modelVersion") && j["modelVersion"].is_string()) tail_["modelVersion"] = j["modelVersion"];
    if (!j.contains("candidates") || !j["candidates"].is_array() || j["candidates"].empty()) {
      if (j.contains("promptFeedback") && j["promptFeedback"].is_object() && j["promptFeedback"].contains("blockReason"))
        p.failed = parse_outcome{core::make_error(core::errc::llm_error,
                                                  "gemini: prompt blocked (" +
                                                      core::log_prefix(text_of(j["promptFeedback"]["blockReason"])) + ")"),
                                 false, std::nullopt};
      return p;  // a usage-only chunk
    }
    const auto& cand = j["candidates"][0];
    if (!cand.is_object()) {
      p.failed = malformed("gemini", "candidate is not an object", secret_);
      return p;
    }
    if (cand.contains("finishReason") && cand["finishReason"].is_string()) finish_["finishReason"] = cand["finishReason"];
    if (!cand.contains("content") || !cand["content"].is_object() || !cand["content"].contains("parts") ||
        !cand["content"]["parts"].is_array())
      return p;
    for (const auto& part : cand["content"]["parts"]) {
      if (!part.is_object() || core::json_bool(part, "thought")) continue;
      if (part.contains("text") && part["text"].is_string()) {
        p.text += part["text"].get<std::string>();
      } else if (part.contains("functionCall")) {
        const auto& fc = part["functionCall"];
        if (!fc.is_object() || !fc.contains("name") || !fc["name"].is_string()) {
          p.failed = malformed("gemini", "functionCall without name", secret_);
          return p;
        }
        tool_call call;
        call.name = fc["name"].get<std::string>();
        call.id = fc.contains("id") && fc["id"].is_string() && !fc["id"].get<std::string>().empty()
                      ? fc["id"].get<std::string>()
                      : "call_" + std::to_string(req_.messages.size()) + "_" + std::to_string(calls_.size() + 1);
        call.args = fc.contains("args") && !fc["args"].is_null() ? fc["args"] : json::object();
        calls_.push_back(std::move(call));
      }
    }
    text_ += p.text;
    return p;
  }

  parse_outcome finish() override {
    if (finish_.empty()) return stream_cut("gemini", "a candidate with finishReason");
    llm_reply out;
    out.text = std::move(text_);
    out.tool_calls = std::move(calls_);
    finish_reply(out, tail_, finish_, words);
    return accept("gemini", req_, std::move(out));
  }

 private:
  const llm_request& req_;
  std::string secret_;
  std::string text_;
  std::vector<tool_call> calls_;
  json finish_ = json::object();
  json tail_ = json::object();
};

std::unique_ptr<stream_decoder> gemini_codec::make_stream_decoder(const llm_request& req) const {
  return std::make_unique<gemini_stream>(req, settings_.api_key);
}
}  // namespace

std::unique_ptr<provider_codec> make_gemini_codec(codec_settings s) {
  return detail::make_codec<gemini_codec>(std::move(s), "https://generativelanguage.googleapis.com", default_gemini_model);
}

}  // namespace berth::llm
