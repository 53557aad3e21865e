#include "berth/socketio/packet.hpp"

#include <charconv>

#include "berth/core/json.hpp"

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

}  // namespace

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
  if (p.has_data()) s += (binary ? data : p.data).dump(-1, ' ', false, json::error_handler_t::replace);
  return out;
}

decoder::status decoder::fail(decode_error e) {
  reset();
  error_ = e;
  return status::error;
}

void decoder::reset() noexcept {
  expected_ = 0;
  buffers_ = {};  // gives the memory back: attachments can be large
  buffered_ = 0;
  packet_ = packet{};
}

decoder::status decoder::feed_text(std::string_view msg) {
  reset();
  packet_.data = json(json::value_t::discarded);
  error_ = decode_error::none;
  if (msg.empty() || msg[0] < '0' || msg[0] > '6') return fail(decode_error::bad_type);
  packet_.type = static_cast<packet_type>(msg[0] - '0');
  std::size_t i = 1;
  const bool binary = packet_.type == packet_type::binary_event || packet_.type == packet_type::binary_ack;
  if (binary) {
    auto dash = msg.find('-', i);
    if (dash == std::string_view::npos || dash == i || dash - i > 4) return fail(decode_error::bad_attachments);
    std::size_t n = 0;
    auto [p, ec] = std::from_chars(msg.data() + i, msg.data() + dash, n);
    if (ec != std::errc{} || p != msg.data() + dash || n > max_attachments) return fail(decode_error::bad_attachments);
    expected_ = n;
    i = dash + 1;
  }
  if (i < msg.size() && msg[i] == '/') {
    auto comma = msg.find(',', i);
    auto end = comma == std::string_view::npos ? msg.size() : comma;
    packet_.nsp.assign(msg.substr(i, end - i));
    if (packet_.nsp.size() > 256) return fail(decode_error::bad_namespace);
    i = comma == std::string_view::npos ? msg.size() : comma + 1;
  }
  std::size_t id_start = i;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') ++i;
  if (i > id_start) {
    if (i - id_start > 15) return fail(decode_error::bad_ack_id);
    std::uint64_t id = 0;
    std::from_chars(msg.data() + id_start, msg.data() + i, id);
    packet_.id = id;
  }
  if (i < msg.size()) {
    auto parsed = core::parse_json_checked(msg.substr(i));
    if (parsed.error == core::json_error::too_deep) return fail(decode_error::too_deep);
    if (!parsed) return fail(decode_error::bad_json);
    packet_.data = std::move(parsed.value);
  }
  if (!payload_valid(packet_.type, packet_.data)) return fail(decode_error::bad_payload);
  if (expected_ == 0) {
    if (binary && !reconstruct(packet_.data, buffers_)) return fail(decode_error::bad_placeholder);
    return status::complete;
  }
  return status::need_binary;
}

decoder::status decoder::feed_binary(std::string data) {
  if (expected_ == 0) return fail(decode_error::unexpected_binary);
  if (data.size() > max_attachment_bytes_ - buffered_) return fail(decode_error::attachments_too_large);
  buffered_ += data.size();
  buffers_.push_back(std::move(data));
  if (--expected_ > 0) return status::need_binary;
  if (!reconstruct(packet_.data, buffers_)) return fail(decode_error::bad_placeholder);
  buffers_ = {};
  buffered_ = 0;
  return status::complete;
}

}  // namespace berth::socketio
