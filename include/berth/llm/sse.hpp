#pragma once
// Server-sent events (text/event-stream, WHATWG HTML "Server-sent events" 9.2.6) as a sans-I/O
// parser: bytes in, events out. Lines end with CRLF, LF or CR (a CR at the end of one chunk and
// an LF at the start of the next are one line end); a leading UTF-8 BOM is dropped; lines that
// start with ':' are comments; `data` lines join with "\n"; `event`, `id` (ignored when it holds
// NUL) and `retry` (ASCII digits only) as the spec says; other fields are ignored. A blank line
// dispatches the event (none when no data was given). An event (or a line) larger than
// max_event_bytes stops the parser with an error instead of growing without bound.
// Lifetime: one per HTTP response. Thread-safety: none.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::llm {

struct sse_event {
  std::string type = "message";       // the `event` field, "message" when absent
  std::string data;                   // `data` lines joined with "\n"
  std::string last_event_id;          // the last `id` seen in the stream, as the spec keeps it
  std::optional<std::uint64_t> retry; // a `retry` field given in this event (milliseconds)
};

enum class sse_status { ok, event_too_large };

class sse_parser {
 public:
  static constexpr std::size_t default_max_event_bytes = 1024 * 1024;
  explicit sse_parser(std::size_t max_event_bytes = default_max_event_bytes) : max_event_bytes_(max_event_bytes) {}

  // Consumes `bytes`, appending every completed event to `out`. After an error, input is ignored
  // and the same error is returned.
  sse_status feed(std::string_view bytes, std::vector<sse_event>& out);
  // True when the stream stopped inside an event (data or fields not yet dispatched): per the
  // spec that event is discarded at end of stream; the caller may report a cut stream.
  bool mid_event() const noexcept { return !line_.empty() || has_fields_; }
  sse_status status() const noexcept { return status_; }
  std::size_t comments() const noexcept { return comments_; }

 private:
  void consume(std::string_view bytes, std::vector<sse_event>& out);
  void on_line(std::vector<sse_event>& out);

  std::size_t max_event_bytes_;
  sse_status status_ = sse_status::ok;
  bool started_ = false;   // the BOM check is done
  std::size_t bom_seen_ = 0;  // bytes of a BOM matched so far (it may arrive split)
  bool after_cr_ = false;  // the previous byte was a CR: an LF now belongs to that line end
  bool has_fields_ = false;
  std::string line_;
  std::string data_;
  std::string type_;
  std::string last_id_;
  std::optional<std::uint64_t> retry_;
  std::size_t comments_ = 0;
};

}  // namespace berth::llm
