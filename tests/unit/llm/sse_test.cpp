// The SSE parser against the WHATWG rules, and the same stream cut at every byte: one-shot,
// split in two at each position, and byte by byte must give the same events.
#include <gtest/gtest.h>

#include "berth/llm/sse.hpp"

namespace berth::llm {
namespace {

std::vector<sse_event> parse_all(std::string_view in, std::size_t max = sse_parser::default_max_event_bytes) {
  sse_parser p(max);
  std::vector<sse_event> out;
  p.feed(in, out);
  return out;
}

bool same(const std::vector<sse_event>& a, const std::vector<sse_event>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].type != b[i].type || a[i].data != b[i].data || a[i].last_event_id != b[i].last_event_id ||
        a[i].retry != b[i].retry)
      return false;
  return true;
}

// Every split point and byte-at-a-time give what one feed gives.
void expect_split_invariant(std::string_view in) {
  const auto whole = parse_all(in);
  for (std::size_t cut = 0; cut <= in.size(); ++cut) {
    sse_parser p;
    std::vector<sse_event> out;
    p.feed(in.substr(0, cut), out);
    p.feed(in.substr(cut), out);
    ASSERT_TRUE(same(out, whole)) << "split at " << cut;
  }
  sse_parser p;
  std::vector<sse_event> out;
  for (char c : in) p.feed(std::string_view(&c, 1), out);
  EXPECT_TRUE(same(out, whole)) << "byte by byte";
}

TEST(Sse, DataLinesJoinAndBlankLineDispatches) {
  auto ev = parse_all("data: hello\ndata:  world\ndata\n\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, "message");
  EXPECT_EQ(ev[0].data, "hello\n world\n");  // one leading space dropped; bare `data` adds an empty line
}

TEST(Sse, CrLfCrAndLfLineEndsAllWork) {
  for (std::string_view in : {"event: a\r\ndata: x\r\n\r\n", "event: a\rdata: x\r\r", "event: a\ndata: x\n\n",
                              "event: a\r\ndata: x\r\r\n"}) {
    auto ev = parse_all(in);
    ASSERT_EQ(ev.size(), 1u) << in;
    EXPECT_EQ(ev[0].type, "a");
    EXPECT_EQ(ev[0].data, "x");
  }
  // A CR then LF split across feeds is one line end, not an empty line (which would dispatch).
  sse_parser p;
  std::vector<sse_event> out;
  p.feed("data: a\r", out);
  p.feed("\ndata: b\r\n\r\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "a\nb");
}

TEST(Sse, CommentsIdRetryAndUnknownFields) {
  auto ev = parse_all(": keep-alive\nid: 7\nretry: 1500\nfoo: bar\ndata: x\n\n: another\ndata: y\nretry: 12a\n\n");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].last_event_id, "7");
  EXPECT_EQ(ev[0].retry, 1500u);
  EXPECT_EQ(ev[1].last_event_id, "7");  // kept across events
  EXPECT_FALSE(ev[1].retry.has_value());  // not all digits: ignored
  sse_parser p;
  std::vector<sse_event> out;
  p.feed(": a\n: b\n", out);
  EXPECT_EQ(p.comments(), 2u);
  EXPECT_TRUE(out.empty());
}

TEST(Sse, IdWithNulIsIgnoredAndEventWithoutDataIsNotDispatched) {
  using namespace std::string_literals;
  auto ev = parse_all("id: 1\n\nid: a\0b\nevent: x\n\ndata: z\n\n"s);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].last_event_id, "1");
  EXPECT_EQ(ev[0].type, "message");  // the event type of the data-less event does not leak
}

TEST(Sse, FieldWithoutColonAndColonWithoutSpace) {
  auto ev = parse_all("data:x:y\nevent\ndata\n\n");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "x:y\n");
  EXPECT_EQ(ev[0].type, "message");  // `event` with an empty value
}

TEST(Sse, LeadingBomIsDroppedOnceEvenWhenSplit) {
  const std::string in = "\xEF\xBB\xBF" "data: a\n\n\xEF\xBB\xBF" "data: b\n\n";
  auto ev = parse_all(in);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, "a");
  // Not at the start, a BOM is part of the field name: that line is an unknown field, ignored.
  expect_split_invariant(in);
  // A BOM prefix that turns out to be something else is kept as input.
  auto odd = parse_all("\xEF\xBB" "data: c\n\n");
  EXPECT_TRUE(odd.empty());  // "\xEF\xBB" "data" is an unknown field name
}

TEST(Sse, IncompleteEventAtEndIsPendingNotDispatched) {
  sse_parser p;
  std::vector<sse_event> out;
  p.feed("data: partial\n", out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(p.mid_event());
  p.feed("\n", out);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_FALSE(p.mid_event());
}

TEST(Sse, OversizedEventStopsTheParser) {
  sse_parser p(64);
  std::vector<sse_event> out;
  EXPECT_EQ(p.feed("data: " + std::string(40, 'a') + "\n", out), sse_status::ok);
  EXPECT_EQ(p.feed("data: " + std::string(40, 'b') + "\n\n", out), sse_status::event_too_large);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.feed("data: ok\n\n", out), sse_status::event_too_large);  // stays stopped
  // A line without an end is bounded too.
  sse_parser q(64);
  EXPECT_EQ(q.feed(std::string(65, 'x'), out), sse_status::event_too_large);
}

TEST(Sse, ProviderStreamsAreSplitInvariant) {
  expect_split_invariant(
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n"
      ": ping\r"
      "data: [DONE]\r\r");
  expect_split_invariant(
      "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
      "event: ping\ndata: {\"type\": \"ping\"}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n"
      "data: \"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
      "id: 42\nretry: 3000\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

}  // namespace
}  // namespace berth::llm
