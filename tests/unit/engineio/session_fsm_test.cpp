#include <gtest/gtest.h>

#include "berth/engineio/session_fsm.hpp"

using namespace berth::engineio;
using namespace std::chrono_literals;

namespace {
// The state machine keeps a reference to its options: one set for every test.
const session_options& opts() {
  static const session_options o = [] {
    session_options v;
    v.ping_interval = 300ms;
    v.ping_timeout = 200ms;
    v.max_outbound_bytes = 1000;
    return v;
  }();
  return o;
}
const clock::time_point t0{};
}  // namespace

TEST(session_fsm, handshake_json_has_exactly_the_reference_keys) {
  EXPECT_EQ(session_fsm::handshake_json("abc", true, opts()),
            R"({"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000})");
}

TEST(session_fsm, poll_waits_then_batches_everything_queued) {
  session_fsm s(opts(), transport_kind::polling, t0);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::wait);
  EXPECT_FALSE(s.poll_ready());
  s.send({packet_type::message, "a", false});
  s.send({packet_type::message, "b", true});
  EXPECT_TRUE(s.poll_ready());
  EXPECT_EQ(s.take_polling_body(), "4a\x1e" "bYg==");
  EXPECT_FALSE(s.poll_pending());
}

TEST(session_fsm, heartbeat_pings_then_times_out_without_pong) {
  session_fsm s(opts(), transport_kind::polling, t0);
  EXPECT_EQ(s.next_deadline(), t0 + 300ms);
  s.on_timer(t0 + 299ms);
  EXPECT_FALSE(s.has_outbound());
  s.on_timer(t0 + 300ms);
  ASSERT_TRUE(s.has_outbound());
  EXPECT_EQ(s.on_poll_get(), poll_get_result::respond_now);
  EXPECT_EQ(s.take_polling_body(), "2");
  EXPECT_EQ(s.next_deadline(), t0 + 500ms);
  s.on_timer(t0 + 500ms);
  EXPECT_TRUE(s.closed());
  EXPECT_EQ(s.reason(), close_reason::ping_timeout);
}

TEST(session_fsm, pong_schedules_the_next_ping_from_its_arrival) {
  session_fsm s(opts(), transport_kind::polling, t0);
  s.on_timer(t0 + 300ms);
  std::vector<packet> delivered;
  EXPECT_EQ(s.on_post("3", delivered, t0 + 350ms), post_result::ok);
  EXPECT_EQ(s.next_deadline(), t0 + 650ms);
  s.on_timer(t0 + 600ms);
  EXPECT_FALSE(s.closed());
}

TEST(session_fsm, duplicate_poll_closes_and_first_gets_close_packet) {
  session_fsm s(opts(), transport_kind::polling, t0);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::wait);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::duplicate);
  EXPECT_TRUE(s.closed());
  EXPECT_TRUE(s.poll_ready());
  EXPECT_EQ(s.take_polling_body(), "1");  // nothing buffered: the close packet at once
}

TEST(session_fsm, client_close_releases_pending_get_with_noop) {
  session_fsm s(opts(), transport_kind::polling, t0);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::wait);
  std::vector<packet> delivered;
  EXPECT_EQ(s.on_post("1", delivered, t0), post_result::closed_by_client);
  EXPECT_TRUE(s.poll_ready());
  EXPECT_EQ(s.take_polling_body(), "6");
  EXPECT_EQ(s.reason(), close_reason::transport_close);
}

TEST(session_fsm, invalid_packets_close_with_parse_error) {
  for (std::string_view body : {"abc", "0", "2", "5", "4a\x1e" "9"}) {
    session_fsm s(opts(), transport_kind::polling, t0);
    std::vector<packet> delivered;
    EXPECT_EQ(s.on_post(body, delivered, t0), post_result::bad_packet) << body;
    EXPECT_EQ(s.reason(), close_reason::parse_error);
  }
}

TEST(session_fsm, messages_before_a_bad_packet_are_delivered_in_order) {
  session_fsm s(opts(), transport_kind::polling, t0);
  std::vector<packet> delivered;
  EXPECT_EQ(s.on_post("4one\x1e" "4two", delivered, t0), post_result::ok);
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(delivered[1].data, "two");
}

TEST(session_fsm, upgrade_probe_then_upgrade) {
  session_fsm s(opts(), transport_kind::polling, t0);
  s.send({packet_type::message, "queued", false});
  ASSERT_TRUE(s.can_upgrade());
  s.upgrade_started(t0);
  EXPECT_FALSE(s.can_upgrade());
  EXPECT_EQ(s.on_probe_frame("2probe"), session_fsm::probe_result::reply_probe);
  EXPECT_EQ(s.on_probe_frame("5"), session_fsm::probe_result::upgraded);
  EXPECT_EQ(s.transport(), transport_kind::websocket);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::not_polling);
  auto frames = s.take_ws_frames();
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].first, "4queued");
}

TEST(session_fsm, probe_releases_pending_poll_with_noop) {
  session_fsm s(opts(), transport_kind::polling, t0);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::wait);
  s.upgrade_started(t0);
  s.on_probe_frame("2probe");
  EXPECT_TRUE(s.poll_ready());
  EXPECT_EQ(s.take_polling_body(), "6");
}

TEST(session_fsm, bad_probe_sequences_fail_the_upgrade_only) {
  for (auto seq : {std::vector<std::string>{"5"}, {"2probe", "2probe"}, {"4hello"}}) {
    session_fsm s(opts(), transport_kind::polling, t0);
    s.upgrade_started(t0);
    session_fsm::probe_result r{};
    for (auto& f : seq) r = s.on_probe_frame(f);
    EXPECT_EQ(r, session_fsm::probe_result::invalid);
    EXPECT_FALSE(s.closed());
    EXPECT_EQ(s.transport(), transport_kind::polling);
  }
}

TEST(session_fsm, upgrade_times_out) {
  auto o = opts();
  o.upgrade_timeout = 100ms;
  o.ping_interval = 10s;
  session_fsm s(o, transport_kind::polling, t0);
  s.upgrade_started(t0);
  EXPECT_EQ(s.next_deadline(), t0 + 100ms);
  s.on_timer(t0 + 100ms);
  EXPECT_FALSE(s.upgrading());
  EXPECT_TRUE(s.can_upgrade());
}

TEST(session_fsm, outbound_overflow_closes) {
  session_fsm s(opts(), transport_kind::websocket, t0);
  EXPECT_TRUE(s.send({packet_type::message, std::string(900, 'a'), false}));
  EXPECT_FALSE(s.send({packet_type::message, std::string(200, 'a'), false}));
  EXPECT_EQ(s.reason(), close_reason::outbound_overflow);
  EXPECT_FALSE(s.has_outbound());
}

TEST(session_fsm, polling_server_close_sends_buffered_packets_before_the_close_packet) {
  session_fsm s(opts(), transport_kind::polling, t0);
  s.send({packet_type::message, "41", false});
  s.close(close_reason::server_close);
  EXPECT_EQ(s.on_poll_get(), poll_get_result::respond_now);
  EXPECT_EQ(s.take_polling_body(), "441");
  EXPECT_TRUE(s.close_packet_owed());
  EXPECT_EQ(s.take_polling_body(), "1");
  EXPECT_FALSE(s.close_packet_owed());
}

TEST(session_fsm, other_packets_extend_the_pong_deadline_once) {
  session_fsm s(opts(), transport_kind::polling, t0);
  s.on_timer(t0 + 300ms);  // ping sent, pong due at 500ms
  std::vector<packet> delivered;
  s.on_post("4busy", delivered, t0 + 450ms);
  EXPECT_EQ(s.next_deadline(), t0 + 650ms);
  s.on_post("4busy", delivered, t0 + 600ms);  // only once
  EXPECT_EQ(s.next_deadline(), t0 + 650ms);
  s.on_timer(t0 + 650ms);
  EXPECT_EQ(s.reason(), close_reason::ping_timeout);
}

TEST(session_fsm, server_close_owes_the_close_packet) {
  session_fsm s(opts(), transport_kind::websocket, t0);
  s.send({packet_type::message, "bye", false});
  s.close(close_reason::server_close);
  EXPECT_FALSE(s.send({packet_type::message, "late", false}));
  auto frames = s.take_ws_frames();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].first, "1");
  EXPECT_FALSE(s.close_packet_owed());
}

TEST(session_fsm, websocket_frames_and_client_ping_is_a_violation) {
  session_fsm s(opts(), transport_kind::websocket, t0);
  std::vector<packet> delivered;
  EXPECT_TRUE(s.on_ws_frame("4hi", false, delivered, t0));
  EXPECT_TRUE(s.on_ws_frame(std::string("\x01", 1), true, delivered, t0));
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_TRUE(delivered[1].binary);
  EXPECT_FALSE(s.on_ws_frame("2", false, delivered, t0));
  EXPECT_EQ(s.reason(), close_reason::parse_error);
}

TEST(session_fsm, append_ws_frames_frames_in_place_then_the_close_packet) {
  session_fsm s(opts(), transport_kind::websocket, t0);
  std::string out;
  EXPECT_FALSE(s.append_ws_frames(out));
  EXPECT_TRUE(out.empty());
  s.send({packet_type::message, "hi", false});
  s.send({packet_type::message, std::string("\x00\x01", 2), true});
  s.close(close_reason::server_close);
  EXPECT_TRUE(s.append_ws_frames(out));
  // text "4hi", binary 00 01, text "1": FIN + opcode, unmasked length, payload
  EXPECT_EQ(out, std::string("\x81\x03" "4hi" "\x82\x02\x00\x01" "\x81\x01" "1", 12));
  EXPECT_FALSE(s.has_outbound());
  EXPECT_FALSE(s.close_packet_owed());
  EXPECT_EQ(s.outbound_bytes(), 0u);
  s.shrink();
  EXPECT_FALSE(s.append_ws_frames(out));
}

TEST(session_fsm, append_ws_frames_uses_extended_lengths) {
  session_fsm s(opts(), transport_kind::websocket, t0);
  s.send({packet_type::message, std::string(200, 'x'), false});
  std::string out;
  EXPECT_TRUE(s.append_ws_frames(out));
  ASSERT_EQ(out.size(), 4u + 201u);
  EXPECT_EQ(static_cast<unsigned char>(out[1]), 126u);
  EXPECT_EQ((static_cast<unsigned char>(out[2]) << 8) | static_cast<unsigned char>(out[3]), 201);
  EXPECT_EQ(out[4], '4');
}

TEST(session_fsm, new_close_reasons_have_names) {
  EXPECT_STREQ(to_string(close_reason::buffer_overflow), "buffer limit");
  EXPECT_STREQ(to_string(close_reason::control_overflow), "control frames not read");
  EXPECT_STREQ(to_string(close_reason::overloaded), "server overloaded");
  EXPECT_STREQ(to_string(close_reason::policy_violation), "policy violation");
}
