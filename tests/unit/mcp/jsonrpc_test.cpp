#include <gtest/gtest.h>

#include "berth/mcp/jsonrpc.hpp"

using namespace berth::mcp;
using nlohmann::json;

namespace {
std::vector<line_decoder::item> drain(line_decoder& d) {
  std::vector<line_decoder::item> out;
  while (auto i = d.next()) out.push_back(std::move(*i));
  return out;
}
}  // namespace

TEST(LineDecoder, EverySplitOfTheInputGivesTheSameLines) {
  const std::string input = "{\"a\":1}\r\n\n  \n{\"b\":\"x y\"}\n{\"c\":3}\n";
  for (std::size_t split = 0; split <= input.size(); ++split) {
    line_decoder d;
    d.feed(std::string_view(input).substr(0, split));
    d.feed(std::string_view(input).substr(split));
    auto items = drain(d);
    ASSERT_EQ(items.size(), 3u) << "split " << split;
    EXPECT_EQ(items[0].line, "{\"a\":1}");
    EXPECT_EQ(items[1].line, "{\"b\":\"x y\"}");
    EXPECT_EQ(items[2].line, "{\"c\":3}");
  }
}

TEST(LineDecoder, ByteByByte) {
  const std::string input = "{\"jsonrpc\":\"2.0\"}\n";
  line_decoder d;
  for (char c : input) {
    EXPECT_FALSE(d.next().has_value());
    d.feed(std::string_view(&c, 1));
  }
  auto i = d.next();
  ASSERT_TRUE(i);
  EXPECT_EQ(i->line, "{\"jsonrpc\":\"2.0\"}");
}

TEST(LineDecoder, IncompleteLineIsHeld) {
  line_decoder d;
  d.feed("{\"a\":");
  EXPECT_FALSE(d.next());
  EXPECT_EQ(d.buffered(), 5u);
}

TEST(LineDecoder, OverLongLineIsDroppedAndReportedOnceThenDecodingGoesOn) {
  line_decoder d(10);
  d.feed("0123456789");  // exactly the limit: fine so far
  EXPECT_FALSE(d.discarding());
  d.feed("abc");  // now over
  EXPECT_TRUE(d.discarding());
  EXPECT_EQ(d.buffered(), 0u);  // memory released, bounded
  d.feed(std::string(1000, 'x'));
  EXPECT_EQ(d.buffered(), 0u);
  d.feed("\nok\n");
  auto items = drain(d);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].too_long);
  EXPECT_EQ(items[0].dropped_bytes, 1013u);
  EXPECT_FALSE(items[1].too_long);
  EXPECT_EQ(items[1].line, "ok");
}

TEST(LineDecoder, LineOfExactlyMaxIsAccepted) {
  line_decoder d(4);
  d.feed("abcd\n");
  auto i = d.next();
  ASSERT_TRUE(i);
  EXPECT_FALSE(i->too_long);
  EXPECT_EQ(i->line, "abcd");
}

TEST(ParseMessage, Kinds) {
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"method":"ping"})").kind, message_kind::request);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":"a","method":"ping","params":{}})").kind, message_kind::request);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").kind, message_kind::notification);
  auto r = parse_message(R"({"jsonrpc":"2.0","id":3,"result":{"x":1}})");
  EXPECT_EQ(r.kind, message_kind::response);
  EXPECT_EQ(r.id, 3);
  EXPECT_EQ(r.result["x"], 1);
  auto e = parse_message(R"({"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"nope","data":[1]}})");
  EXPECT_EQ(e.kind, message_kind::error_response);
  EXPECT_EQ(e.error_code, -32601);
  EXPECT_EQ(e.error_message, "nope");
  EXPECT_EQ(e.error_data, json::array({1}));
}

TEST(ParseMessage, InvalidInputsArePreciselyClassified) {
  auto m = parse_message("hello");
  EXPECT_EQ(m.kind, message_kind::invalid);
  EXPECT_EQ(m.invalid_code, rpc_error::parse_error);
  struct c {
    const char* in;
    const char* reason_part;
  };
  for (auto [in, part] : {c{"[1,2]", "batch"}, c{"42", "not a JSON object"}, c{R"({"id":1,"method":"x"})", "jsonrpc"},
                          c{R"({"jsonrpc":"1.0","id":1,"method":"x"})", "jsonrpc"},
                          c{R"({"jsonrpc":"2.0","id":{},"method":"x"})", "id must be"},
                          c{R"({"jsonrpc":"2.0","id":null,"method":"x"})", "must not be null"},
                          c{R"({"jsonrpc":"2.0","id":1,"method":""})", "method"},
                          c{R"({"jsonrpc":"2.0","id":1,"method":7})", "method"},
                          c{R"({"jsonrpc":"2.0","id":1,"method":"x","params":5})", "params"},
                          c{R"({"jsonrpc":"2.0","id":1})", "exactly one"},
                          c{R"({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1}})", "exactly one"},
                          c{R"({"jsonrpc":"2.0","id":1,"error":{"message":"x"}})", "error.code"},
                          c{R"({"jsonrpc":"2.0","result":1})", "needs an id"}}) {
    auto x = parse_message(in);
    EXPECT_EQ(x.kind, message_kind::invalid) << in;
    EXPECT_EQ(x.invalid_code, rpc_error::invalid_request) << in;
    EXPECT_NE(x.invalid_reason.find(part), std::string::npos) << in << " -> " << x.invalid_reason;
  }
  // The id is kept when it could be read, so the error response can carry it.
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":9,"method":3})").id, 9);
}

TEST(Encode, LinesEndInNewlineAndInvalidUtf8IsReplaced) {
  auto s = make_result(1, json{{"text", std::string("a\xff" "b")}});
  ASSERT_EQ(s.back(), '\n');
  EXPECT_EQ(s.find('\n'), s.size() - 1);
  auto back = json::parse(s);
  EXPECT_EQ(back["result"]["text"], "a\xEF\xBF\xBD" "b");
  auto e = json::parse(make_error(nullptr, rpc_error::parse_error, "Parse error"));
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_EQ(e["error"]["code"], -32700);
  auto n = json::parse(make_notification("notifications/initialized", nullptr));
  EXPECT_FALSE(n.contains("params"));
  EXPECT_FALSE(n.contains("id"));
  auto r = json::parse(make_request("x", "tools/list", json::object()));
  EXPECT_EQ(r["id"], "x");
  EXPECT_EQ(r["jsonrpc"], "2.0");
}

namespace berth::mcp {
namespace {
// A container's stdout is untrusted: a line nested 100,000 deep is a parse error, not a crash.
TEST(jsonrpc, deeply_nested_lines_are_a_parse_error) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto m = parse_message(R"({"jsonrpc":"2.0","id":1,"result":)" + deep + "}");
  EXPECT_EQ(m.kind, message_kind::invalid);
  EXPECT_EQ(m.invalid_code, rpc_error::parse_error);
  EXPECT_NE(m.invalid_reason.find("nested deeper than 64"), std::string::npos) << m.invalid_reason;
}
}  // namespace
}  // namespace berth::mcp
