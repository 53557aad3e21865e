#include <gtest/gtest.h>

#include "berth/socketio/packet.hpp"

using namespace berth::socketio;

namespace {
json bin(std::string_view s) { return json::binary(std::vector<std::uint8_t>(s.begin(), s.end())); }
json none() { return json(json::value_t::discarded); }

// The decoder with the packet it last completed, as these tests read it.
struct test_decoder : decoder {
  using decoder::decoder;
  packet last;
  status feed_text(std::string_view m) { return decoder::feed_text(m, last); }
  status feed_binary(std::string d) { return decoder::feed_binary(std::move(d), last); }
  packet take() { return std::move(last); }
};
}  // namespace

TEST(socketio_packet, encodes_the_reference_forms) {
  EXPECT_EQ(encode({packet_type::connect, "/", std::nullopt, json{{"sid", "x"}}}).text, R"(0{"sid":"x"})");
  EXPECT_EQ(encode({packet_type::connect_error, "/random", std::nullopt, json{{"message", "Invalid namespace"}}}).text,
            R"(4/random,{"message":"Invalid namespace"})");
  EXPECT_EQ(encode({packet_type::event, "/custom", std::nullopt, json::array({"auth", json::object()})}).text,
            R"(2/custom,["auth",{}])");
  EXPECT_EQ(encode({packet_type::ack, "/", 456, json::array({1, "2"})}).text, R"(3456[1,"2"])");
  EXPECT_EQ(encode({packet_type::disconnect, "/", std::nullopt, none()}).text, "1");
}

TEST(socketio_packet, binary_is_deconstructed_with_placeholders) {
  auto e = encode({packet_type::event, "/", std::nullopt, json::array({"m", bin("\x01\x02"), json{{"k", bin("\x03")}}})});
  EXPECT_EQ(e.text, R"(52-["m",{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}])");
  ASSERT_EQ(e.attachments.size(), 2u);
  EXPECT_EQ(e.attachments[1], "\x03");
  auto a = encode({packet_type::ack, "/", 789, json::array({bin("x")})});
  EXPECT_EQ(a.text, R"(61-789[{"_placeholder":true,"num":0}])");
}

TEST(socketio_packet, decode_round_trips_binary) {
  auto e = encode({packet_type::event, "/custom", 12, json::array({"m", bin("ab"), bin("cd")})});
  test_decoder d;
  ASSERT_EQ(d.feed_text(e.text), decoder::status::need_binary);
  ASSERT_EQ(d.feed_binary(e.attachments[0]), decoder::status::need_binary);
  ASSERT_EQ(d.feed_binary(e.attachments[1]), decoder::status::complete);
  auto p = d.take();
  EXPECT_EQ(p.type, packet_type::binary_event);
  EXPECT_EQ(p.nsp, "/custom");
  EXPECT_EQ(*p.id, 12u);
  ASSERT_TRUE(p.data[2].is_binary());
  EXPECT_EQ(std::string(p.data[2].get_binary().begin(), p.data[2].get_binary().end()), "cd");
}

TEST(socketio_packet, decodes_namespace_without_trailing_comma) {
  test_decoder d;
  ASSERT_EQ(d.feed_text("0/random"), decoder::status::complete);
  auto p = d.take();
  EXPECT_EQ(p.nsp, "/random");
  EXPECT_FALSE(p.has_data());
  ASSERT_EQ(d.feed_text(R"(0/custom,{"token":"abc"})"), decoder::status::complete);
  EXPECT_EQ(d.take().data["token"], "abc");
}

TEST(socketio_packet, malformed_catalogue) {
  struct bad_case {
    std::string text;
    decode_error err;
  } cases[] = {
      {"", decode_error::bad_type},
      {"abc", decode_error::bad_type},
      {"9[]", decode_error::bad_type},
      {"2{}", decode_error::bad_payload},
      {"2[]", decode_error::bad_payload},
      {"2abc[\"x\"]", decode_error::bad_json},
      {"2[\"connect\"]", decode_error::bad_payload},
      {"2[true]", decode_error::bad_payload},
      {"2[\"x\"", decode_error::bad_json},
      {"1{}", decode_error::bad_payload},
      {"0[]", decode_error::bad_payload},
      {"3{}", decode_error::bad_payload},
      {"5[\"x\"]", decode_error::bad_attachments},
      {"5x-[\"x\"]", decode_error::bad_attachments},
      {"599999-[\"x\"]", decode_error::bad_attachments},
      {"5257-[\"x\"]", decode_error::bad_attachments},
      {"21234567890123456[\"x\"]", decode_error::bad_ack_id},
      {"51-[\"x\",{\"_placeholder\":true,\"num\":\"0\"}]", decode_error::none},  // checked on completion
  };
  for (auto& c : cases) {
    test_decoder d;
    auto st = d.feed_text(c.text);
    if (c.err == decode_error::none) {
      ASSERT_EQ(st, decoder::status::need_binary);
      EXPECT_EQ(d.feed_binary("z"), decoder::status::error) << c.text;
      EXPECT_EQ(d.error(), decode_error::bad_placeholder);
      continue;
    }
    EXPECT_EQ(st, decoder::status::error) << c.text;
    EXPECT_EQ(d.error(), c.err) << c.text;
  }
}

// One unauthenticated message used to crash the process: arguments nested 100,000 deep (~600 KB)
// parsed, then overflowed the stack when copied or dumped. They are refused before parsing.
TEST(socketio_packet, deeply_nested_arguments_are_refused_as_too_deep) {
  std::string arrays = std::string(100000, '[') + std::string(100000, ']');
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(100000, '}');
  for (const std::string& prefix : {std::string("2[\"message\","), std::string("51-[\"message\",")}) {
    for (const auto* arg : {&arrays, &objects}) {
      test_decoder d;
      EXPECT_EQ(d.feed_text(prefix + *arg + "]"), decoder::status::error);
      EXPECT_EQ(d.error(), decode_error::too_deep);
    }
  }
  test_decoder connect;  // CONNECT's auth payload too, before any middleware runs
  EXPECT_EQ(connect.feed_text("0" + objects), decoder::status::error);
  EXPECT_EQ(connect.error(), decode_error::too_deep);
  EXPECT_STREQ(to_string(decode_error::too_deep), "JSON payload nested too deeply");
  test_decoder ok;  // nesting within the limit still decodes
  EXPECT_EQ(ok.feed_text("2[\"m\"," + std::string(60, '[') + std::string(60, ']') + "]"), decoder::status::complete);
}

TEST(socketio_packet, placeholder_out_of_range_and_unexpected_binary) {
  test_decoder d;
  ASSERT_EQ(d.feed_text(R"(51-["m",{"_placeholder":true,"num":5}])"), decoder::status::need_binary);
  EXPECT_EQ(d.feed_binary("x"), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::bad_placeholder);
  test_decoder e;
  EXPECT_EQ(e.feed_binary("x"), decoder::status::error);
  EXPECT_EQ(e.error(), decode_error::unexpected_binary);
  test_decoder f;  // a binary packet whose text has no placeholder for zero attachments completes at once
  EXPECT_EQ(f.feed_text(R"(50-["m",1])"), decoder::status::complete);
}

TEST(socketio_packet, every_prefix_of_a_valid_packet_never_crashes) {
  const std::string full = R"(52-/custom,42["message",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}])";
  for (std::size_t n = 0; n <= full.size(); ++n) {
    test_decoder d;
    auto st = d.feed_text(std::string_view(full).substr(0, n));
    if (n == full.size()) {
      EXPECT_EQ(st, decoder::status::need_binary);
    } else {
      EXPECT_NE(st, decoder::status::complete) << n;
    }
  }
}

TEST(socketio_packet, the_header_names_the_namespace_before_any_attachment_is_buffered) {
  test_decoder d;
  ASSERT_EQ(d.feed_text(R"(52-/admin,7["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"),
            decoder::status::need_binary);
  EXPECT_EQ(d.pending().nsp, "/admin");
  EXPECT_EQ(d.pending().type, packet_type::binary_event);
  EXPECT_EQ(d.pending().id, 7u);
  EXPECT_EQ(d.pending_attachments(), 2u);
  EXPECT_EQ(d.buffered_bytes(), 0u);
  ASSERT_EQ(d.feed_binary("abc"), decoder::status::need_binary);
  EXPECT_EQ(d.buffered_bytes(), 3u);
  d.reset();  // the caller refuses it: nothing is held any more
  EXPECT_FALSE(d.awaiting_binary());
  EXPECT_EQ(d.buffered_bytes(), 0u);
  EXPECT_EQ(d.feed_binary("x"), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::unexpected_binary);
}

TEST(socketio_packet, attachments_of_one_packet_are_bounded_in_bytes) {
  test_decoder d(10);
  ASSERT_EQ(d.feed_text(R"(53-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}])"),
            decoder::status::need_binary);
  EXPECT_EQ(d.feed_binary(std::string(6, 'a')), decoder::status::need_binary);
  EXPECT_EQ(d.feed_binary(std::string(4, 'b')), decoder::status::need_binary);  // exactly 10: fits
  EXPECT_EQ(d.feed_binary("c"), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::attachments_too_large);
  EXPECT_EQ(d.buffered_bytes(), 0u);  // the refused packet's attachments are given back
  // The bound is per packet: the next one starts from zero.
  ASSERT_EQ(d.feed_text(R"(51-["e",{"_placeholder":true,"num":0}])"), decoder::status::need_binary);
  EXPECT_EQ(d.feed_binary(std::string(10, 'd')), decoder::status::complete);
  EXPECT_EQ(d.buffered_bytes(), 0u);
  // One attachment alone over the bound.
  ASSERT_EQ(d.feed_text(R"(51-["e",{"_placeholder":true,"num":0}])"), decoder::status::need_binary);
  EXPECT_EQ(d.feed_binary(std::string(11, 'e')), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::attachments_too_large);
}

// Events named by a string are validated, not parsed: the name and the other arguments' array
// text come out as the client wrote them, and encode writes them back without a dump.
TEST(socketio_packet, string_named_events_carry_their_arguments_as_text) {
  test_decoder d;
  ASSERT_EQ(d.feed_text(R"(2/chat,7[ "ev" , 1, {"a":[2]} ] )"), decoder::status::complete);
  auto p = d.take();
  EXPECT_EQ(p.nsp, "/chat");
  EXPECT_EQ(*p.id, 7u);
  EXPECT_EQ(p.event, "ev");
  EXPECT_EQ(p.args_text, R"([1, {"a":[2]}])");
  EXPECT_TRUE(p.data.is_discarded());
  EXPECT_EQ(p.payload(), json::parse(R"(["ev",1,{"a":[2]}])"));
  EXPECT_EQ(encode(p).text, R"(2/chat,7["ev",1, {"a":[2]}])");

  ASSERT_EQ(d.feed_text(R"(2["only"])"), decoder::status::complete);
  p = d.take();
  EXPECT_EQ(p.args_text, "[]");
  EXPECT_EQ(encode(p).text, R"(2["only"])");

  // An escaped name is unescaped (and escaped again on the way out).
  ASSERT_EQ(d.feed_text(R"(2["a\"b\u00e9",null])"), decoder::status::complete);
  p = d.take();
  EXPECT_EQ(p.event, "a\"b\xc3\xa9");
  EXPECT_EQ(encode(p).text, "2[\"a\\\"b\xc3\xa9\",null]");
  ASSERT_EQ(d.feed_text(R"(2["conn\u0065ct"])"), decoder::status::error);  // "connect", spelled with an escape
  EXPECT_EQ(d.error(), decode_error::bad_payload);

  // A number as the name still gives a tree, as does an ack.
  ASSERT_EQ(d.feed_text(R"(2[1,"x"])"), decoder::status::complete);
  p = d.take();
  EXPECT_TRUE(p.args_text.empty());
  EXPECT_EQ(p.data, json::parse(R"([1,"x"])"));

  // Invalid text is refused by the validator, as the parser would.
  ASSERT_EQ(d.feed_text("2[\"ev\",\"\xff\"]"), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::bad_json);
  ASSERT_EQ(d.feed_text(R"(2["ev",01])"), decoder::status::error);
  EXPECT_EQ(d.error(), decode_error::bad_json);
}

TEST(socketio_packet, acks_carried_as_text_are_written_as_they_are) {
  packet a{packet_type::ack, "/", 12, none()};
  a.args_text = R"(["x",{"y":1}])";
  EXPECT_EQ(encode(a).text, R"(312["x",{"y":1}])");
  EXPECT_EQ(a.payload(), json::parse(R"(["x",{"y":1}])"));
  packet e{packet_type::event, "/", std::nullopt, none(), "tab\tname", "[ ]"};
  EXPECT_EQ(encode(e).text, R"(2["tab\tname"])");
}
