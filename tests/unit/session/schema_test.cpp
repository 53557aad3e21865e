#include <gtest/gtest.h>

#include "berth/session/schema.hpp"

using namespace berth::session;
using berth::core::errc;

TEST(session_schema, keys_use_the_prefix_and_hash_tags) {
  key_schema k;
  EXPECT_EQ(k.session("abc"), "berth:session:{abc}");
  EXPECT_EQ(k.lock("abc"), "berth:session-lock:{abc}");
  EXPECT_EQ(k.history("abc"), "berth:history:{abc}");
  EXPECT_EQ(k.inflight("u1"), "berth:inflight:{u1}");
  EXPECT_EQ(k.sessions(), "berth:sessions");
  EXPECT_EQ(k.replica("r1"), "berth:replica:r1");
  EXPECT_EQ(k.replicas(), "berth:replicas");
  EXPECT_EQ(k.orphan_lock(), "berth:orphan-reaper-lock");
  EXPECT_EQ(k.schema_version(), "berth:schema-version");
}

namespace {
// Redis Cluster's key -> slot mapping (cluster spec: CRC16-XMODEM of the hash tag, or of the whole
// key when it has none, mod 16384), written from the spec to check the tags do what they claim.
std::uint16_t crc16_xmodem(std::string_view s) {
  std::uint16_t crc = 0;
  for (unsigned char c : s) {
    crc = static_cast<std::uint16_t>(crc ^ (c << 8));
    for (int i = 0; i < 8; ++i)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}
unsigned cluster_slot(std::string_view key) {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16_xmodem(key) % 16384;
}
}  // namespace

TEST(session_schema, keys_of_one_session_share_a_cluster_slot) {
  EXPECT_EQ(crc16_xmodem("123456789"), 0x31C3);  // the spec's check value
  key_schema k;
  for (const std::string& sid : std::vector<std::string>{"abc", "s-1", "x_Y_9", std::string(64, 'z')}) {
    const auto slot = cluster_slot(k.session(sid));
    EXPECT_EQ(cluster_slot(k.history(sid)), slot) << sid;
    EXPECT_EQ(cluster_slot(k.lock(sid)), slot) << sid;
    EXPECT_EQ(slot, cluster_slot(sid)) << sid;
  }
  // Different sessions spread (they are not all forced into one slot by a shared tag).
  EXPECT_NE(cluster_slot(k.session("abc")), cluster_slot(k.session("abd")));
  EXPECT_EQ(cluster_slot(k.inflight("alice")), cluster_slot("alice"));
}

TEST(session_schema, legacy_keys_map_to_tagged_ones) {
  key_schema k;
  EXPECT_EQ(k.legacy_to_current("berth:session:abc"), "berth:session:{abc}");
  EXPECT_EQ(k.legacy_to_current("berth:session-lock:abc"), "berth:session-lock:{abc}");
  EXPECT_EQ(k.legacy_to_current("berth:history:abc"), "berth:history:{abc}");
  EXPECT_EQ(k.legacy_to_current("berth:inflight:alice@example.com"), "berth:inflight:{alice@example.com}");
  // Already tagged, not ours, or not per-session/per-user: left alone.
  EXPECT_FALSE(k.legacy_to_current("berth:session:{abc}"));
  EXPECT_FALSE(k.legacy_to_current("berth:inflight:{u}"));
  EXPECT_FALSE(k.legacy_to_current("berth:sessions"));
  EXPECT_FALSE(k.legacy_to_current("berth:replica:r1"));
  EXPECT_FALSE(k.legacy_to_current("berth:replicas"));
  EXPECT_FALSE(k.legacy_to_current("berth:session:"));
  EXPECT_FALSE(k.legacy_to_current("other:session:abc"));
  EXPECT_FALSE(k.legacy_to_current("berth:schema-version"));
  key_schema custom{.prefix = "t:"};
  EXPECT_EQ(custom.legacy_to_current("t:history:s"), "t:history:{s}");
  EXPECT_FALSE(custom.legacy_to_current("berth:history:s"));
}

TEST(session_schema, session_id_validation) {
  EXPECT_TRUE(validate_session_id("a"));
  EXPECT_TRUE(validate_session_id("AZaz09_-"));
  EXPECT_TRUE(validate_session_id(std::string(64, 'x')));
  auto empty = validate_session_id("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, errc::invalid_payload);
  EXPECT_EQ(empty.error().message, "sessionId is empty");
  EXPECT_EQ(validate_session_id(std::string(65, 'x')).error().message, "sessionId is longer than 64 characters");
  for (std::string bad : std::vector<std::string>{"a b", "a:b", "a*", "é", std::string("a\0b", 3), "a/b", "a.b"}) {
    auto r = validate_session_id(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::invalid_payload);
  }
  EXPECT_TRUE(validate_user_id("alice@example.com"));
  EXPECT_FALSE(validate_user_id(""));
  EXPECT_FALSE(validate_user_id(std::string(257, 'u')));
  EXPECT_FALSE(validate_user_id("a\nb"));
}

TEST(session_schema, sha256_and_compare) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
}

TEST(session_schema, decode_session_hash) {
  auto r = decode_session_hash("s1", {"user", "u", "container", "c", "replica", "r", "created_ms", "10", "last_seen_ms",
                                      "20", "resume_token_hash", "h"})
               .value();
  EXPECT_EQ(r.id, "s1");
  EXPECT_EQ(r.user, "u");
  EXPECT_EQ(r.container, "c");
  EXPECT_EQ(r.replica, "r");
  EXPECT_EQ(r.created_ms, 10);
  EXPECT_EQ(r.last_seen_ms, 20);
  EXPECT_EQ(r.resume_token_hash, "h");
  EXPECT_FALSE(decode_session_hash("s", {"user"}));
  EXPECT_FALSE(decode_session_hash("s", {"user", "u"}));                        // no created_ms
  EXPECT_FALSE(decode_session_hash("s", {"user", "u", "created_ms", "12x"}));   // garbled number
}

TEST(session_schema, resume_rules) {
  session_record rec;
  rec.user = "alice";
  rec.resume_token_hash = sha256_hex("tok");
  EXPECT_TRUE(authorize_resume(rec, "alice", std::nullopt));
  EXPECT_TRUE(authorize_resume(rec, std::nullopt, "tok"));
  // In JWT mode the session is bound to its subject: the owner's token in another user's hands
  // (leaked, or copied from a shared machine) does not let that user in.
  auto stolen = authorize_resume(rec, "mallory", "tok");
  ASSERT_FALSE(stolen);
  EXPECT_EQ(stolen.error().code, errc::session_forbidden);
  EXPECT_EQ(stolen.error().message, "session belongs to another user");
  EXPECT_TRUE(authorize_resume(rec, "alice", "tok"));
  EXPECT_TRUE(authorize_resume(rec, "alice", "wrong"));  // the subject is the proof; the token is not needed
  auto forged = authorize_resume(rec, std::nullopt, "tok2");
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, errc::session_forbidden);
  EXPECT_EQ(authorize_resume(rec, "mallory", std::nullopt).error().code, errc::session_forbidden);
  EXPECT_EQ(authorize_resume(rec, std::nullopt, std::nullopt).error().code, errc::session_forbidden);
  EXPECT_EQ(authorize_resume(rec, "", "").error().code, errc::session_forbidden);
  // A record without a hash never matches an empty or any token.
  session_record nohash;
  nohash.user = "bob";
  EXPECT_FALSE(authorize_resume(nohash, std::nullopt, "x"));
  // The hash itself is not a token.
  EXPECT_FALSE(authorize_resume(rec, std::nullopt, rec.resume_token_hash));
}

TEST(session_schema, history_entry_round_trip) {
  history_entry e{"tool", "out\n\"quoted\"", "list_files", "call_1", 1234};
  auto json = encode_history_entry(e);
  EXPECT_EQ(decode_history_entry(json).value(), e);
  history_entry plain{"user", "hi", std::nullopt, std::nullopt, 5};
  EXPECT_EQ(encode_history_entry(plain), R"({"content":"hi","role":"user","ts":5})");
  EXPECT_EQ(decode_history_entry(encode_history_entry(plain)).value(), plain);
}

TEST(session_schema, history_entry_bad_input) {
  for (const char* bad : {"", "nope", "[]", R"({"role":"user"})", R"({"role":1,"content":"x","ts":1})",
                          R"({"role":"user","content":"x"})", R"({"role":"user","content":"x","ts":"1"})",
                          R"({"role":"user","content":"x","ts":1,"name":5})",
                          R"({"role":"user","content":"x","ts":1,"callId":[]})"}) {
    auto r = decode_history_entry(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, errc::internal);
  }
  // Invalid UTF-8 content is replaced, not thrown.
  history_entry e{"tool", std::string("\xff\xfe", 2), std::nullopt, std::nullopt, 1};
  EXPECT_TRUE(decode_history_entry(encode_history_entry(e)));
}

TEST(session_schema, token_estimate_and_trim_policy) {
  EXPECT_EQ(estimate_tokens(""), 0u);
  EXPECT_EQ(estimate_tokens("a"), 1u);
  EXPECT_EQ(estimate_tokens("abcd"), 1u);
  EXPECT_EQ(estimate_tokens("abcde"), 2u);
  // Four entries of the same size: user, a tool call, its result, the answer; then a new turn.
  auto entry = [](std::string role, std::optional<std::string> call) {
    return history_entry{std::move(role), std::string(20, 'x'), call ? std::optional<std::string>("run") : std::nullopt,
                         std::move(call), 1000};
  };
  std::vector<history_entry> h{entry("user", {}), entry("assistant", "c1"), entry("tool", "c1"), entry("assistant", {}),
                               entry("user", {})};
  const std::size_t all = estimate_tokens(encode_history_entry(h[0])) + estimate_tokens(encode_history_entry(h[1])) +
                          estimate_tokens(encode_history_entry(h[2])) + estimate_tokens(encode_history_entry(h[3])) +
                          estimate_tokens(encode_history_entry(h[4]));
  EXPECT_EQ(entries_to_drop(h, all), 0u);
  // One token short: the plain cut (1) would start at the tool call; the turn boundary is at 4.
  EXPECT_EQ(entries_to_drop(h, all - 1), 4u);
  EXPECT_EQ(entries_to_drop(h, 1), 4u);  // the newest turn is kept
  EXPECT_EQ(entries_to_drop(std::vector<history_entry>{}, 5), 0u);
  // A stored history that starts with an orphan result (an old trim) loses it.
  std::vector<history_entry> damaged{entry("tool", "c0"), entry("assistant", {}), entry("user", {})};
  EXPECT_EQ(entries_to_drop(damaged, 100000), 2u);
}
