#include "berth/mcp/jsonrpc.hpp"
#include "berth/core/json.hpp"

namespace berth::mcp {

using nlohmann::json;

void line_decoder::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto nl = bytes.find('\n');
    const std::string_view chunk = nl == std::string_view::npos ? bytes : bytes.substr(0, nl);
    if (discarding_) {
      discarded_ += chunk.size();
    } else if (partial_.size() + chunk.size() > max_) {
      // Drop what we hold and skip to the next newline: the peer can never grow us past max_.
      discarding_ = true;
      discarded_ = partial_.size() + chunk.size();
      partial_.clear();
      partial_.shrink_to_fit();
    } else {
      partial_.append(chunk);
    }
    if (nl == std::string_view::npos) return;
    finish_line();
    bytes.remove_prefix(nl + 1);
  }
}

void line_decoder::finish_line() {
  if (discarding_) {
    ready_.push_back(item{{}, true, discarded_});
    discarding_ = false;
    discarded_ = 0;
    return;
  }
  if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
  const bool blank = partial_.find_first_not_of(" \t\r") == std::string::npos;
  if (!blank) ready_.push_back(item{std::move(partial_), false, 0});
  partial_.clear();
}

std::optional<line_decoder::item> line_decoder::next() {
  if (ready_.empty()) return std::nullopt;
  auto it = std::move(ready_.front());
  ready_.pop_front();
  return it;
}

namespace {

bool valid_id(const json& id) { return id.is_string() || id.is_number_integer() || id.is_number_unsigned(); }

message invalid(int code, std::string reason, json id = nullptr) {
  message m;
  m.kind = message_kind::invalid;
  m.invalid_code = code;
  m.invalid_reason = std::move(reason);
  m.id = std::move(id);
  return m;
}

}  // namespace

message parse_message(std::string_view line) {
  auto parsed = core::parse_json_checked(line);
  if (parsed.error == core::json_error::too_deep)
    return invalid(rpc_error::parse_error, "JSON nested deeper than " + std::to_string(core::max_json_depth) + " levels");
  if (!parsed) return invalid(rpc_error::parse_error, "not valid JSON");
  json j = std::move(parsed.value);
  if (j.is_array()) return invalid(rpc_error::invalid_request, "batches are not supported");
  if (!j.is_object()) return invalid(rpc_error::invalid_request, "message is not a JSON object");
  json id = nullptr;
  if (auto it = j.find("id"); it != j.end()) {
    if (!valid_id(*it) && !it->is_null()) return invalid(rpc_error::invalid_request, "id must be a string or an integer");
    id = *it;
  }
  auto ver = j.find("jsonrpc");
  if (ver == j.end() || !ver->is_string() || ver->get<std::string>() != "2.0")
    return invalid(rpc_error::invalid_request, "\"jsonrpc\" must be \"2.0\"", id);

  message m;
  m.id = id;
  if (auto meth = j.find("method"); meth != j.end()) {
    if (!meth->is_string() || meth->get_ref<const std::string&>().empty())
      return invalid(rpc_error::invalid_request, "\"method\" must be a non-empty string", id);
    m.method = meth->get<std::string>();
    if (auto p = j.find("params"); p != j.end()) {
      if (!p->is_object() && !p->is_array() && !p->is_null())
        return invalid(rpc_error::invalid_request, "\"params\" must be an object or an array", id);
      m.params = *p;
    }
    if (j.contains("id")) {
      if (id.is_null()) return invalid(rpc_error::invalid_request, "a request id must not be null");
      m.kind = message_kind::request;
    } else {
      m.kind = message_kind::notification;
    }
    return m;
  }
  const bool has_result = j.contains("result");
  auto err = j.find("error");
  if (has_result == (err != j.end()))
    return invalid(rpc_error::invalid_request, "a response needs exactly one of \"result\" and \"error\"", id);
  if (has_result) {
    if (id.is_null()) return invalid(rpc_error::invalid_request, "a response needs an id");
    m.kind = message_kind::response;
    m.result = j["result"];
    return m;
  }
  if (!err->is_object()) return invalid(rpc_error::invalid_request, "\"error\" must be an object", id);
  auto code = err->find("code");
  if (code == err->end() || !code->is_number_integer())
    return invalid(rpc_error::invalid_request, "\"error.code\" must be an integer", id);
  m.kind = message_kind::error_response;
  m.error_code = code->get<int>();
  if (auto msg = err->find("message"); msg != err->end() && msg->is_string()) m.error_message = msg->get<std::string>();
  if (auto d = err->find("data"); d != err->end()) m.error_data = *d;
  return m;
}

std::string encode_line(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  s.push_back('\n');
  return s;
}

std::string make_request(const json& id, std::string_view method, const json& params) {
  json j{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return encode_line(j);
}

std::string make_notification(std::string_view method, const json& params) {
  json j{{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return encode_line(j);
}

std::string make_result(const json& id, const json& result) {
  return encode_line(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string make_error(const json& id, int code, std::string_view message, const json& data) {
  json e{{"code", code}, {"message", message}};
  if (!data.is_null()) e["data"] = data;
  return encode_line(json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(e)}});
}

std::string id_key(const json& id) { return id.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace berth::mcp
