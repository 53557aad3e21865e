#include "berth/llm/sse.hpp"

#include <algorithm>

namespace berth::llm {

namespace {
constexpr std::string_view bom = "\xEF\xBB\xBF";
}

sse_status sse_parser::feed(std::string_view bytes, std::vector<sse_event>& out) {
  while (!started_ && !bytes.empty() && status_ == sse_status::ok) {
    if (bytes.front() == bom[bom_seen_]) {
      bytes.remove_prefix(1);
      if (++bom_seen_ == bom.size()) started_ = true;  // dropped
      continue;
    }
    started_ = true;
    consume(bom.substr(0, bom_seen_), out);  // a BOM prefix that was no BOM is ordinary input
  }
  if (status_ == sse_status::ok && !bytes.empty()) consume(bytes, out);
  return status_;
}

void sse_parser::consume(std::string_view bytes, std::vector<sse_event>& out) {
  while (!bytes.empty() && status_ == sse_status::ok) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const auto end = bytes.find_first_of("\r\n");
    const auto run = bytes.substr(0, end);
    if (line_.size() + run.size() + data_.size() > max_event_bytes_) {
      status_ = sse_status::event_too_large;
      return;
    }
    line_.append(run);
    if (end == std::string_view::npos) return;
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    on_line(out);
    line_.clear();
  }
}

void sse_parser::on_line(std::vector<sse_event>& out) {
  const std::string_view line = line_;
  if (line.empty()) {
    if (!data_.empty()) {
      sse_event ev;
      if (!type_.empty()) ev.type = std::move(type_);
      data_.pop_back();  // the "\n" after the last data line
      ev.data = std::move(data_);
      ev.last_event_id = last_id_;
      ev.retry = retry_;
      out.push_back(std::move(ev));
    }
    data_.clear();
    type_.clear();
    retry_.reset();
    has_fields_ = false;
    return;
  }
  if (line.front() == ':') {
    ++comments_;
    return;
  }
  has_fields_ = true;
  const auto colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    if (!value.empty() && value.size() <= 18 &&
        std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      std::uint64_t ms = 0;
      for (char c : value) ms = ms * 10 + static_cast<std::uint64_t>(c - '0');
      retry_ = ms;
    }
  }
  // Any other field is ignored (spec).
}

}  // namespace berth::llm
