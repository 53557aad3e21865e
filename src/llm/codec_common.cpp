#include "codec_common.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "berth/core/logging.hpp"
#include "berth/core/json.hpp"

namespace berth::llm {

std::string_view to_string(role r) noexcept {
  switch (r) {
    case role::system: return "system";
    case role::user: return "user";
    case role::assistant: return "assistant";
    case role::tool: return "tool";
  }
  return "user";
}

std::string_view to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::end_turn: return "end_turn";
    case stop_reason::tool_use: return "tool_use";
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::other: return "other";
  }
  return "other";
}

std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  constexpr std::string_view mask = "[redacted]";
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + mask.size()))
    text.replace(pos, secret.size(), mask);
  // Providers echo masked keys ("sk-proj-abcd****wxyz"): drop any word sharing the key's first
  // characters. Short keys are skipped, as a 3-character prefix would hit ordinary words.
  if (secret.size() < 12) return text;
  const std::string_view head = secret.substr(0, 8);
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      out += text[i++];
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    std::string_view word(text.data() + i, j - i);
    out += word.find(head) != std::string_view::npos ? mask : word;
    i = j;
  }
  return out;
}

std::optional<std::chrono::milliseconds> retry_after_hint(const http::reply& rep) {
  auto number = [](std::string_view s) -> std::optional<std::uint64_t> {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v > 86'400'000) return std::nullopt;
    return v;
  };
  if (auto ms = number(rep.header("retry-after-ms"))) return std::chrono::milliseconds(*ms);
  // HTTP-date forms are ignored: exponential backoff applies instead.
  if (auto s = number(rep.header("retry-after")); s && *s <= 86'400) return std::chrono::milliseconds(*s * 1000);
  return std::nullopt;
}

namespace detail {

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string out(base);
  out += '/';
  out += path;
  return out;
}

std::string text_of(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return {};
  return j.dump();
}

namespace {
// Gemini puts the delay in the body: error.details[] {"@type": ".../google.rpc.RetryInfo", "retryDelay": "37s"}.
std::optional<std::chrono::milliseconds> body_retry_delay(const nlohmann::json& err) {
  if (!err.is_object() || !err.contains("details") || !err["details"].is_array()) return std::nullopt;
  for (const auto& d : err["details"]) {
    if (!d.is_object() || !d.contains("retryDelay") || !d["retryDelay"].is_string()) continue;
    auto s = d["retryDelay"].get<std::string>();
    if (s.empty() || s.back() != 's') continue;
    s.pop_back();
    char* end = nullptr;
    double secs = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || !(secs >= 0) || secs > 86'400) continue;
    return std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000.0));
  }
  return std::nullopt;
}
}  // namespace

void finish_reply(llm_reply& out, const nlohmann::json& j, const nlohmann::json& stop_holder,
                  const reply_words& words) {
  const std::string field(words.stop_field);
  out.raw_stop_reason = stop_holder.contains(field) ? text_of(stop_holder[field]) : "";
  const std::string_view raw = out.raw_stop_reason;
  auto ends_turn = [&] {
    for (auto w : words.end_turn)
      if (raw == w) return true;
    return raw.empty();
  };
  if (!out.tool_calls.empty() || (!words.tool_use.empty() && raw == words.tool_use)) out.stop_reason = stop_reason::tool_use;
  else if (raw == words.max_tokens) out.stop_reason = stop_reason::max_tokens;
  else if (ends_turn()) out.stop_reason = stop_reason::end_turn;
  else out.stop_reason = stop_reason::other;
  const std::string usage(words.usage), model(words.model);
  if (j.contains(usage)) {
    out.usage.input_tokens = core::json_uint(j[usage], words.input_tokens);
    out.usage.output_tokens = core::json_uint(j[usage], words.output_tokens);
  }
  if (j.contains(model) && j[model].is_string()) out.model = j[model].get<std::string>();
}

namespace {
struct error_body {
  std::string kind;  // the provider's error type/status/code, when it gives one
  std::string text;  // its message
};

// Every provider wraps errors in {"error": {...}}, in an HTTP body or a stream event alike: Gemini
// {code,message,status}, OpenAI {message,type,code}, Anthropic {"type":"error","error":{type,
// message}}; Ollama uses a string. `hint`, when given, receives a retry delay found in the body.
error_body read_error_body(std::string_view body, std::optional<std::chrono::milliseconds>* hint) {
  error_body out;
  auto j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object() || !j.contains("error")) return out;
  const auto& e = j["error"];
  if (e.is_string()) {
    out.text = e.get<std::string>();
  } else if (e.is_object()) {
    if (e.contains("message")) out.text = text_of(e["message"]);
    for (auto key : {"status", "type", "code"})
      if (out.kind.empty() && e.contains(key) && e[key].is_string()) out.kind = e[key].get<std::string>();
    if (hint) *hint = body_retry_delay(e);
  }
  return out;
}
}  // namespace

parse_outcome http_failure(std::string_view provider, const http::reply& rep, std::string_view secret) {
  std::optional<std::chrono::milliseconds> hint = retry_after_hint(rep);
  auto [kind, text] = read_error_body(rep.body, hint ? nullptr : &hint);
  if (text.empty()) text = rep.body.empty() ? "(empty body)" : core::log_prefix(rep.body, 200);
  std::string msg = std::string(provider) + ": HTTP " + std::to_string(rep.status);
  if (!kind.empty()) msg += " " + kind;
  msg += ": " + core::log_prefix(text, 300);
  msg = redact(std::move(msg), secret);
  const bool unavailable = rep.status == 429 || rep.status == 408 || rep.status >= 500;
  parse_outcome out{core::make_error(unavailable ? core::errc::llm_unavailable : core::errc::llm_error, msg),
                    unavailable, hint};
  return out;
}

parse_outcome stream_error(std::string_view provider, std::string_view event_data, std::string_view secret) {
  auto [kind, text] = read_error_body(event_data, nullptr);
  if (text.empty()) text = core::log_prefix(event_data, 200);
  std::string lower = kind;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // overloaded_error, api_error (Anthropic), server_error, rate_limit* (OpenAI), INTERNAL,
  // UNAVAILABLE, RESOURCE_EXHAUSTED (Gemini); an error without a kind is taken as the server's.
  const bool unavailable = kind.empty() || lower.find("overload") != std::string::npos ||
                           lower.find("server") != std::string::npos || lower.find("rate") != std::string::npos ||
                           lower == "api_error" || lower == "internal" || lower == "unavailable" ||
                           lower == "resource_exhausted" || lower == "deadline_exceeded";
  std::string msg = std::string(provider) + ": error in the reply stream";
  if (!kind.empty()) msg += " (" + core::log_prefix(kind, 60) + ")";
  msg += ": " + core::log_prefix(text, 300);
  return {core::make_error(unavailable ? core::errc::llm_unavailable : core::errc::llm_error,
                           redact(std::move(msg), secret)),
          unavailable, std::nullopt};
}

parse_outcome stream_cut(std::string_view provider, std::string_view missing) {
  return {core::make_error(core::errc::llm_unavailable, std::string(provider) + ": the reply stream ended before " +
                                                            std::string(missing) + " (connection cut)"),
          true, std::nullopt};
}

parse_outcome malformed(std::string_view provider, std::string_view what, std::string_view secret) {
  std::string msg = std::string(provider) + ": malformed reply: " + std::string(what);
  return {core::make_error(core::errc::llm_error, redact(std::move(msg), secret)), false, std::nullopt};
}

parse_outcome accept(std::string_view provider, const llm_request& req, llm_reply reply) {
  for (const auto& call : reply.tool_calls) {
    bool known = std::any_of(req.tools.begin(), req.tools.end(), [&](const tool_spec& t) { return t.name == call.name; });
    if (!known)
      return {core::make_error(core::errc::llm_error, std::string(provider) + ": model called unknown tool '" +
                                                          core::log_prefix(call.name, 64) + "'"),
              false, std::nullopt};
    if (!call.args.is_object())
      return {core::make_error(core::errc::llm_error, std::string(provider) + ": arguments of tool '" +
                                                          core::log_prefix(call.name, 64) + "' are not a JSON object"),
              false, std::nullopt};
  }
  return {std::move(reply), false, std::nullopt};
}

parse_outcome json_codec::parse(const llm_request& req, const http::reply& rep) const {
  if (rep.status < 200 || rep.status > 299) return http_failure(name(), rep, settings_.api_key);
  const auto j = core::parse_json(rep.body);
  if (j.is_discarded() || !j.is_object()) return malformed(name(), "body is not a JSON object", settings_.api_key);
  return parse_object(req, rep, j);
}

http::call json_codec::json_post(std::string url, const nlohmann::json& body) {
  http::call call;
  call.url = std::move(url);
  call.headers.push_back({"content-type", "application/json", false});
  call.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return call;
}

}  // namespace detail
}  // namespace berth::llm
