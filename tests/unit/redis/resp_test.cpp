#include <gtest/gtest.h>

#include "berth/redis/resp.hpp"

using namespace berth::redis;

namespace {

// A stream of replies covering every type, nesting, binary payloads and empty values.
const std::string kStream =
    "+OK\r\n"
    "-ERR wrong number of arguments\r\n"
    ":-42\r\n"
    "$5\r\nhe\r\no\r\n"
    "$0\r\n\r\n"
    "$-1\r\n"
    "*-1\r\n"
    "*0\r\n"
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+QUEUED\r\n"
    ":9223372036854775807\r\n";

std::vector<reply> expected_stream() {
  return {
      reply::make_status("OK"),
      reply::make_error("ERR wrong number of arguments"),
      reply::make_integer(-42),
      reply::make_string(std::string("he\r\no")),
      reply::make_string(""),
      reply::make_nil(),
      reply::make_nil(),
      reply::make_array({}),
      reply::make_array({reply::make_integer(1),
                         reply::make_array({reply::make_string("a"), reply::make_nil()}),
                         reply::make_status("QUEUED")}),
      reply::make_integer(9223372036854775807LL),
  };
}

std::vector<reply> drain(resp_reader& r) {
  std::vector<reply> out;
  for (int i = 0; i < 1000; ++i) {
    auto n = r.next();
    EXPECT_TRUE(n.has_value());
    if (!n || !*n) break;
    out.push_back(std::move(**n));
  }
  return out;
}

}  // namespace

TEST(resp_reader, whole_stream) {
  resp_reader r;
  ASSERT_TRUE(r.feed(kStream));
  EXPECT_EQ(drain(r), expected_stream());
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(resp_reader, split_at_every_position) {
  for (std::size_t cut = 0; cut <= kStream.size(); ++cut) {
    resp_reader r;
    ASSERT_TRUE(r.feed(std::string_view(kStream).substr(0, cut)));
    auto got = drain(r);
    ASSERT_TRUE(r.feed(std::string_view(kStream).substr(cut)));
    auto rest = drain(r);
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, expected_stream()) << "cut at " << cut;
  }
}

TEST(resp_reader, split_at_every_pair_of_positions) {
  // Three pieces: every (i, j) split of the nested-array part.
  const std::string s = "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+QUEUED\r\n";
  const auto want = reply::make_array({reply::make_integer(1), reply::make_array({reply::make_string("a"), reply::make_nil()}),
                                       reply::make_status("QUEUED")});
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      resp_reader r;
      std::vector<reply> got;
      for (auto piece : {s.substr(0, i), s.substr(i, j - i), s.substr(j)}) {
        ASSERT_TRUE(r.feed(piece));
        auto part = drain(r);
        got.insert(got.end(), part.begin(), part.end());
      }
      ASSERT_EQ(got.size(), 1u) << i << "," << j;
      EXPECT_EQ(got[0], want);
    }
  }
}

TEST(resp_reader, byte_by_byte) {
  resp_reader r;
  std::vector<reply> got;
  for (char c : kStream) {
    ASSERT_TRUE(r.feed(std::string_view(&c, 1)));
    auto part = drain(r);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, expected_stream());
}

TEST(resp_reader, protocol_error_is_sticky_until_reset) {
  resp_reader r;
  ASSERT_TRUE(r.feed("!bogus\r\n"));
  auto n = r.next();
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message.find("redis protocol"), std::string::npos);
  EXPECT_FALSE(r.feed("+OK\r\n"));
  EXPECT_FALSE(r.next().has_value());
  r.reset();
  ASSERT_TRUE(r.feed("+OK\r\n"));
  auto ok = r.next();
  ASSERT_TRUE(ok && *ok);
  EXPECT_EQ(**ok, reply::make_status("OK"));
}

TEST(resp_reader, bad_length_is_an_error) {
  resp_reader r;
  ASSERT_TRUE(r.feed("$abc\r\n"));
  EXPECT_FALSE(r.next().has_value());
}

TEST(resp_reader, too_deep_nesting_is_an_error_not_a_crash) {
  resp_reader r;
  std::string s;
  for (int i = 0; i < 20; ++i) s += "*1\r\n";
  s += ":1\r\n";
  ASSERT_TRUE(r.feed(s));
  EXPECT_FALSE(r.next().has_value());
}

TEST(resp_reader, buffered_bytes_are_bounded) {
  resp_reader r(64);
  ASSERT_TRUE(r.feed("$100\r\n"));
  auto fed = r.feed(std::string(100, 'x'));
  ASSERT_FALSE(fed.has_value());
  EXPECT_NE(fed.error().message.find("larger than 64"), std::string::npos);
}

// Found by resp_fuzz (bench/fuzz): "*1221221223" made hiredis calloc the element table of 1.2
// billion pointers (10 GB) before a single element arrived; the fuzzer timed out in memset.
TEST(resp_reader, huge_array_headers_are_refused_before_allocating) {
  for (const char* header : {"*1221221223\r\n", "*2147483647\r\n"}) {
    resp_reader r;
    ASSERT_TRUE(r.feed(header)) << header;
    auto n = r.next();
    ASSERT_FALSE(n.has_value()) << header;
    EXPECT_NE(n.error().message.find("elements refused (at most 1048576)"), std::string::npos) << n.error().message;
  }
  // Beyond int or below -1 hiredis refuses the length itself, before asking for an array.
  for (const char* header : {"*3000000000\r\n", "*-5\r\n"}) {
    resp_reader r;
    ASSERT_TRUE(r.feed(header)) << header;
    auto n = r.next();
    ASSERT_FALSE(n.has_value()) << header;
    EXPECT_NE(n.error().message.find("redis protocol: "), std::string::npos) << n.error().message;
  }
  // Nested: the inner header is refused too; and the limit is the reader's.
  resp_reader small(1024, 3);
  ASSERT_TRUE(small.feed("*3\r\n:1\r\n:2\r\n:3\r\n*1\r\n*4\r\n"));
  auto three = small.next();
  ASSERT_TRUE(three && *three);
  EXPECT_EQ((*three)->elements.size(), 3u);
  auto refused = small.next();
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("array of 4 elements refused (at most 3)"), std::string::npos);
  // reset() gives a working reader with the same limit.
  small.reset();
  ASSERT_TRUE(small.feed("*-1\r\n*0\r\n"));
  auto nil = small.next();
  ASSERT_TRUE(nil && *nil);  // "*-1" is the nil array, not a refused header
  auto empty = small.next();
  ASSERT_TRUE(empty && *empty);
}

TEST(resp_format, matches_hiredis_formatter) {
  std::vector<std::vector<std::string>> cases = {
      {"PING"},
      {"SET", "k", "v", "PX", "30000"},
      {"SET", std::string("bin\0\r\nary", 9), ""},
      {},
  };
  for (const auto& c : cases) {
    std::string mine;
    append_command(mine, c);
    EXPECT_EQ(mine, format_command(c));
  }
  std::string two;
  append_command(two, std::vector<std::string>{"GET", "a"});
  append_command(two, std::vector<std::string>{"GET", "b"});
  EXPECT_EQ(two, "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n");
}

TEST(resp_format, sha1_matches_redis) {
  // redis-cli SCRIPT LOAD "return 1" -> e0e1f9fabfc9d4800c877a703b823ac0578ff8db
  EXPECT_EQ(sha1_hex("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}
