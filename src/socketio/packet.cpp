#include "berth/socketio/packet.hpp"

#include <charconv>

#include "berth/core/json.hpp"
#include "berth/core/text_validation.hpp"

namespace berth::socketio {
namespace {

bool has_binary(const json& j) {
  if (j.is_binary()) return true;
  if (j.is_array() || j.is_object())
    for (const auto& v : j)
      if (has_binary(v)) return true;
  return false;
}

json deconstruct(const json& j, std::vector<std::string>& out) {
  if (j.is_binary()) {
    const auto& b = j.get_binary();
    out.emplace_back(b.begin(), b.end());
    return json{{"_placeholder", true}, {"num", out.size() - 1}};
  }
  if (j.is_array()) {
    json a = json::array();
    for (const auto& v : j) a.push_back(deconstruct(v, out));
    return a;
  }
  if (j.is_object()) {
    json o = json::object();
    for (auto it = j.begin(); it != j.end(); ++it) o[it.key()] = deconstruct(it.value(), out);
    return o;
  }
  return j;
}

// Replaces placeholders in place; false on a malformed or out-of-range placeholder.
bool reconstruct(json& j, std::vector<std::string>& buffers) {
  if (j.is_object()) {
    auto ph = j.find("_placeholder");
    if (ph != j.end() && ph->is_boolean() && ph->get<bool>()) {
      auto num = j.find("num");
      if (num == j.end() || !num->is_number_unsigned()) return false;
      auto k = num->get<std::uint64_t>();
      if (k >= buffers.size()) return false;
      const auto& b = buffers[k];
      j = json::binary(std::vector<std::uint8_t>(b.begin(), b.end()));
      return true;
    }
    for (auto& v : j)
      if (!reconstruct(v, buffers)) return false;
  } else if (j.is_array()) {
    for (auto& v : j)
      if (!reconstruct(v, buffers)) return false;
  }
  return true;
}

bool payload_valid(packet_type t, const json& d) {
  switch (t) {
    case packet_type::connect: return !d.is_discarded() ? d.is_object() : true;
    case packet_type::disconnect: return d.is_discarded();
    case packet_type::event:
    case packet_type::binary_event:
      return d.is_array() && !d.empty() &&
             (d[0].is_number() || (d[0].is_string() && !is_reserved_event(d[0].get_ref<const std::string&>())));
    case packet_type::ack:
    case packet_type::binary_ack: return d.is_array();
    case packet_type::connect_error: return d.is_object() || d.is_string();
  }
  return false;
}

bool is_json_space(char c) noexcept { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string_view trim_json_space(std::string_view t) noexcept {
  while (!t.empty() && is_json_space(t.front())) t.remove_prefix(1);
  while (!t.empty() && is_json_space(t.back())) t.remove_suffix(1);
  return t;
}

// The elements of a JSON array's text, without its brackets: "" for an empty array.
std::string_view array_elements(std::string_view array_text) noexcept {
  auto t = trim_json_space(array_text);
  if (t.size() < 2) return {};
  return trim_json_space(t.substr(1, t.size() - 2));
}

// Appends `s` as a JSON string (valid UTF-8 is written as it is, as JSON.stringify does).
void append_json_string(std::string& out, std::string_view s) {
  for (const char c : s)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      return;
    }
  out += '"';
  out += s;
  out += '"';
}

// An event's validated array text split into its name and the array of its other elements:
// ["name", 1, 2] -> name, [1, 2]. False when the first element is not a string.
bool split_event(std::string_view array_text, std::string& name, std::string& args) {
  if (trim_json_space(array_text).front() != '[') return false;
  const auto elements = array_elements(array_text);
  if (elements.empty() || elements.front() != '"') return false;
  std::size_t end = 1;  // the closing quote (the text is valid JSON, so there is one)
  bool escaped = false;
  for (; elements[end] != '"'; ++end)
    if (elements[end] == '\\') {
      escaped = true;
      ++end;
    }
  const auto token = elements.substr(0, end + 1);
  if (escaped) name = json::parse(token, nullptr, false).get<std::string>();
  else name.assign(token.substr(1, token.size() - 2));
  const auto rest = trim_json_space(elements.substr(end + 1));  // "" or ", more"
  args = "[";
  if (!rest.empty()) args += trim_json_space(rest.substr(1));
  args += ']';
  return true;
}

}  // namespace

json packet::payload() const {
  if (args_text.empty()) return data;
  json args = json::parse(args_text, nullptr, false);
  if (args.is_discarded() || type != packet_type::event) return args;
  args.insert(args.begin(), event);
  return args;
}

bool is_reserved_event(std::string_view ev) noexcept {
  return ev == "connect" || ev == "connect_error" || ev == "disconnect" || ev == "disconnecting" ||
         ev == "newListener" || ev == "removeListener";
}

const char* to_string(decode_error e) noexcept {
  switch (e) {
    case decode_error::none: return "none";
    case decode_error::bad_type: return "unknown packet type";
    case decode_error::bad_attachments: return "invalid attachment count";
    case decode_error::bad_namespace: return "invalid namespace";
    case decode_error::bad_ack_id: return "invalid ack id";
    case decode_error::bad_json: return "invalid JSON payload";
    case decode_error::too_deep: return "JSON payload nested too deeply";
    case decode_error::bad_payload: return "invalid payload for packet type";
    case decode_error::bad_placeholder: return "invalid binary placeholder";
    case decode_error::unexpected_binary: return "unexpected binary attachment";
    case decode_error::attachments_too_large: return "binary attachments too large";
  }
  return "unknown";
}

encoded_packet encode(const packet& p) {
  encoded_packet out;
  packet_type type = p.type;
  json data;
  bool binary = p.has_data() && (type == packet_type::event || type == packet_type::ack ||
                                 type == packet_type::binary_event || type == packet_type::binary_ack) &&
                has_binary(p.data);
  if (binary) {
    data = deconstruct(p.data, out.attachments);
    if (type == packet_type::event) type = packet_type::binary_event;
    if (type == packet_type::ack) type = packet_type::binary_ack;
  }
  std::string& s = out.text;
  s += static_cast<char>('0' + static_cast<int>(type));
  if (type == packet_type::binary_event || type == packet_type::binary_ack) {
    s += std::to_string(out.attachments.size());
    s += '-';
  }
  if (p.nsp != "/") {
    s += p.nsp;
    s += ',';
  }
  if (p.id) s += std::to_string(*p.id);
  if (!p.args_text.empty()) {
    if (type != packet_type::event) {
      s += p.args_text;
      return out;
    }
    s += '[';
    append_json_string(s, p.event);
    if (const auto more = array_elements(p.args_text); !more.empty()) {
      s += ',';
      s += more;
    }
    s += ']';
    return out;
  }
  if (p.has_data()) s += (binary ? data : p.data).dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

decoder::status decoder::fail(decode_error e) {
  reset();
  error_ = e;
  return status::error;
}

void decoder::reset() noexcept { assembly_.reset(); }  // gives the memory back: attachments can be large

decoder::status decoder::feed_text(std::string_view msg, packet& out) {
  reset();
  out = packet{};
  out.data = json(json::value_t::discarded);
  error_ = decode_error::none;
  if (msg.empty() || msg[0] < '0' || msg[0] > '6') return fail(decode_error::bad_type);
  out.type = static_cast<packet_type>(msg[0] - '0');
  std::size_t i = 1;
  std::size_t attachments = 0;
  const bool binary = out.type == packet_type::binary_event || out.type == packet_type::binary_ack;
  if (binary) {
    auto dash = msg.find('-', i);
    if (dash == std::string_view::npos || dash == i || dash - i > 4) return fail(decode_error::bad_attachments);
    auto [p, ec] = std::from_chars(msg.data() + i, msg.data() + dash, attachments);
    if (ec != std::errc{} || p != msg.data() + dash || attachments > max_attachments) return fail(decode_error::bad_attachments);
    i = dash + 1;
  }
  if (i < msg.size() && msg[i] == '/') {
    auto comma = msg.find(',', i);
    auto end = comma == std::string_view::npos ? msg.size() : comma;
    out.nsp.assign(msg.substr(i, end - i));
    if (out.nsp.size() > 256) return fail(decode_error::bad_namespace);
    i = comma == std::string_view::npos ? msg.size() : comma + 1;
  }
  std::size_t id_start = i;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') ++i;
  if (i > id_start) {
    if (i - id_start > 15) return fail(decode_error::bad_ack_id);
    std::uint64_t id = 0;
    std::from_chars(msg.data() + id_start, msg.data() + i, id);
    out.id = id;
  }
  if (i < msg.size() && out.type == packet_type::event) {
    // Validated, not parsed: the tree is built only for a handler that asks for one.
    const auto text = msg.substr(i);
    if (const auto err = core::validate_json(text); err != core::json_error::none)
      return fail(err == core::json_error::too_deep ? decode_error::too_deep : decode_error::bad_json);
    if (split_event(text, out.event, out.args_text)) {
      if (is_reserved_event(out.event)) return fail(decode_error::bad_payload);
      return status::complete;
    }
    out.data = json::parse(text, nullptr, false);  // [number, ...] (checked below) or no event at all
    if (out.data.is_discarded()) return fail(decode_error::bad_json);
  } else if (i < msg.size()) {
    auto parsed = core::parse_json_checked(msg.substr(i));
    if (parsed.error == core::json_error::too_deep) return fail(decode_error::too_deep);
    if (!parsed) return fail(decode_error::bad_json);
    out.data = std::move(parsed.value);
  }
  if (!payload_valid(out.type, out.data)) return fail(decode_error::bad_payload);
  if (attachments == 0) {
    std::vector<std::string> none;
    if (binary && !reconstruct(out.data, none)) return fail(decode_error::bad_placeholder);
    return status::complete;
  }
  assembly_ = std::make_unique<assembly>();
  assembly_->head = std::move(out);
  assembly_->expected = attachments;
  out = packet{};
  return status::need_binary;
}

decoder::status decoder::feed_binary(std::string data, packet& out) {
  if (!assembly_) return fail(decode_error::unexpected_binary);
  auto& a = *assembly_;
  if (data.size() > max_attachment_bytes_ - a.buffered) return fail(decode_error::attachments_too_large);
  a.buffered += data.size();
  a.buffers.push_back(std::move(data));
  if (a.buffers.size() < a.expected) return status::need_binary;
  if (!reconstruct(a.head.data, a.buffers)) return fail(decode_error::bad_placeholder);
  out = std::move(a.head);
  reset();
  return status::complete;
}

}  // namespace berth::socketio
