#include <gtest/gtest.h>

#include "berth/engineio/packet.hpp"

using namespace berth::engineio;

TEST(engineio_packet, encodes_text_and_binary_for_polling) {
  std::vector<packet> ps{{packet_type::message, "hello", false},
                         {packet_type::message, std::string("\x01\x02\x03\x04", 4), true},
                         {packet_type::ping, "", false}};
  EXPECT_EQ(encode_payload(ps), "4hello\x1e" "bAQIDBA==\x1e" "2");
}

TEST(engineio_packet, websocket_binary_has_no_prefix) {
  EXPECT_EQ(encode_ws({packet_type::message, std::string("\x01\x02", 2), true}), std::string("\x01\x02", 2));
  EXPECT_EQ(encode_ws({packet_type::message, "x", false}), "4x");
  EXPECT_EQ(encode_ws({packet_type::noop, "", false}), "6");
}

TEST(engineio_packet, decodes_payload_round_trip) {
  auto ps = decode_payload("4test1\x1e" "4test2\x1e" "bAQIDBA==");
  ASSERT_TRUE(ps);
  ASSERT_EQ(ps->size(), 3u);
  EXPECT_EQ((*ps)[0].data, "test1");
  EXPECT_TRUE((*ps)[2].binary);
  EXPECT_EQ((*ps)[2].data, std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(encode_payload(*ps), "4test1\x1e" "4test2\x1e" "bAQIDBA==");
}

TEST(engineio_packet, malformed_payloads_are_rejected) {
  for (std::string_view bad : {std::string_view(""), std::string_view("abc"), std::string_view("7x"),
                               std::string_view("4a\x1e"), std::string_view("\x1e" "4a"),
                               std::string_view("b!!!"), std::string_view("4a\x1e\x1e" "4b"),
                               std::string_view("b", 1)}) {
    if (bad == "b") {  // "b" alone is an empty binary packet: valid
      EXPECT_TRUE(decode_payload(bad));
      continue;
    }
    EXPECT_FALSE(decode_payload(bad)) << bad;
  }
  EXPECT_FALSE(decode_ws_text(""));
  EXPECT_FALSE(decode_ws_text("9"));
}

TEST(engineio_packet, error_bodies_match_the_reference) {
  EXPECT_EQ(error_body(http_error::unknown_sid), R"({"code":1,"message":"Session ID unknown"})");
  EXPECT_EQ(error_body(http_error::unsupported_protocol_version), R"({"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(error_body(http_error::unknown_transport), R"({"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(error_body(http_error::bad_handshake_method), R"({"code":2,"message":"Bad handshake method"})");
}
