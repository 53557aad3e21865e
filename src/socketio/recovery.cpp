#include "berth/socketio/recovery.hpp"

#include <array>
#include <charconv>

#include "berth/core/json.hpp"

namespace berth::socketio {

using json = nlohmann::json;

std::string format_offset(std::uint64_t offset) { return std::to_string(offset); }

std::optional<std::uint64_t> parse_offset(std::string_view text) noexcept {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v == 0) return std::nullopt;
  return v;
}

bool is_recoverable_reason(std::string_view reason) noexcept {
  static constexpr std::array<std::string_view, 6> recoverable{
      "transport error", "transport close", "forced close", "ping timeout", "server shutting down", "forced server close"};
  for (auto r : recoverable)
    if (r == reason) return true;
  return false;
}

void outbox::stamp(json& args) {
  ++last_;
  args.push_back(format_offset(last_));
  if (capacity_ == 0) return;
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back({last_, args});
}

void outbox::restore(buffered_event e) {
  if (e.offset > last_) last_ = e.offset;
  if (capacity_ == 0) return;
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back(std::move(e));
}

std::optional<std::vector<buffered_event>> outbox::after(std::uint64_t offset) const {
  if (offset > last_) return std::nullopt;  // never issued
  // The first event after `offset` must still be here (or there is none after it).
  const std::uint64_t oldest = events_.empty() ? last_ + 1 : events_.front().offset;
  if (offset + 1 < oldest) return std::nullopt;  // dropped by the cap
  std::vector<buffered_event> out;
  for (const auto& e : events_)
    if (e.offset > offset) out.push_back(e);
  return out;
}

std::string serialize(const detached_state& s) {
  json events = json::array();
  for (const auto& e : s.events) events.push_back(json::array({e.offset, e.args}));
  json j{{"v", 1}, {"sid", s.sid}, {"nsp", s.nsp}, {"data", s.data}, {"last", s.last_offset}, {"events", std::move(events)}};
  return j.dump();
}

std::optional<detached_state> deserialize_detached(std::string_view text) {
  // Written by this code, but Redis is shared: read as carefully as any input.
  json j = core::parse_json(text);
  if (!j.is_object() || !j.contains("v") || j["v"] != 1) return std::nullopt;
  auto sid = j.find("sid");
  auto nsp = j.find("nsp");
  auto last = j.find("last");
  auto events = j.find("events");
  if (sid == j.end() || !sid->is_string() || nsp == j.end() || !nsp->is_string() || last == j.end() ||
      !last->is_number_unsigned() || events == j.end() || !events->is_array())
    return std::nullopt;
  detached_state s;
  s.sid = sid->get<std::string>();
  s.nsp = nsp->get<std::string>();
  s.data = j.value("data", json());
  s.last_offset = last->get<std::uint64_t>();
  std::uint64_t previous = 0;
  for (auto& e : *events) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() || !e[1].is_array()) return std::nullopt;
    const auto offset = e[0].get<std::uint64_t>();
    if (offset <= previous || offset > s.last_offset) return std::nullopt;  // in order, issued
    previous = offset;
    s.events.push_back({offset, std::move(e[1])});
  }
  return s;
}

}  // namespace berth::socketio
