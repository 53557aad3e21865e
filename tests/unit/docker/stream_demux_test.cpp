#include "berth/docker/stream_demux.hpp"

#include <gtest/gtest.h>

namespace berth::docker {
namespace {

std::string frame(std::uint8_t stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  const auto n = static_cast<std::uint32_t>(payload.size());
  f[4] = static_cast<char>((n >> 24) & 0xff);
  f[5] = static_cast<char>((n >> 16) & 0xff);
  f[6] = static_cast<char>((n >> 8) & 0xff);
  f[7] = static_cast<char>(n & 0xff);
  f.append(payload);
  return f;
}

struct collected {
  std::string out, err;
  std::string order;  // one letter per chunk boundary change
};

collected collect(const std::vector<stream_chunk>& chunks) {
  collected c;
  for (const auto& ch : chunks) {
    (ch.stream == stream_kind::stderr_ ? c.err : c.out) += ch.data;
    const char tag = ch.stream == stream_kind::stderr_ ? 'e' : 'o';
    if (c.order.empty() || c.order.back() != tag) c.order.push_back(tag);
  }
  return c;
}

TEST(StreamDemux, WholeInput) {
  const std::string in = frame(1, "hello ") + frame(2, "oops") + frame(1, "world") + frame(1, "");
  stream_demux d;
  std::vector<stream_chunk> out;
  EXPECT_EQ(d.feed(in, out), stream_demux::status::ok);
  const auto c = collect(out);
  EXPECT_EQ(c.out, "hello world");
  EXPECT_EQ(c.err, "oops");
  EXPECT_EQ(c.order, "oeo");
  EXPECT_TRUE(d.at_boundary());
}

TEST(StreamDemux, EverySingleSplitAndEveryDoubleSplit) {
  std::string big(300, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  const std::string in = frame(1, "out1") + frame(2, "err1") + frame(0, "in?") + frame(1, big) + frame(2, "") +
                         frame(2, std::string("\0\x01\xff", 3));
  const std::string want_out = "out1in?" + big;
  const std::string want_err = std::string("err1") + std::string("\0\x01\xff", 3);
  for (std::size_t i = 0; i <= in.size(); ++i) {
    for (std::size_t j = i; j <= in.size(); j += (in.size() > 100 ? 7 : 1)) {
      stream_demux d;
      std::vector<stream_chunk> out;
      ASSERT_EQ(d.feed(std::string_view(in).substr(0, i), out), stream_demux::status::ok);
      ASSERT_EQ(d.feed(std::string_view(in).substr(i, j - i), out), stream_demux::status::ok);
      ASSERT_EQ(d.feed(std::string_view(in).substr(j), out), stream_demux::status::ok);
      const auto c = collect(out);
      ASSERT_EQ(c.out, want_out) << i << "," << j;
      ASSERT_EQ(c.err, want_err) << i << "," << j;
      ASSERT_TRUE(d.at_boundary());
    }
  }
}

TEST(StreamDemux, ByteAtATime) {
  const std::string in = frame(2, "abc") + frame(1, "defg");
  stream_demux d;
  std::vector<stream_chunk> out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(d.feed(std::string_view(in).substr(i, 1), out), stream_demux::status::ok);
    ASSERT_EQ(d.at_boundary(), i + 1 == 11 || i + 1 == in.size()) << i;
  }
  const auto c = collect(out);
  EXPECT_EQ(c.err, "abc");
  EXPECT_EQ(c.out, "defg");
}

TEST(StreamDemux, BadStreamTypeIsStickyError) {
  stream_demux d;
  std::vector<stream_chunk> out;
  std::string in = frame(3, "x");
  EXPECT_EQ(d.feed(in, out), stream_demux::status::bad_stream_type);
  EXPECT_EQ(d.feed(frame(1, "ok"), out), stream_demux::status::bad_stream_type);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(d.at_boundary());
}

TEST(StreamDemux, NonZeroPaddingRejected) {
  stream_demux d;
  std::vector<stream_chunk> out;
  std::string in = frame(1, "x");
  in[2] = 1;
  EXPECT_EQ(d.feed(in, out), stream_demux::status::bad_header);
}

TEST(StreamDemux, OversizedFrameRejected) {
  stream_demux d(16);
  std::vector<stream_chunk> out;
  EXPECT_EQ(d.feed(frame(1, std::string(17, 'a')), out), stream_demux::status::frame_too_large);
  stream_demux ok(16);
  EXPECT_EQ(ok.feed(frame(1, std::string(16, 'a')), out), stream_demux::status::ok);
}

TEST(StreamDemux, PartialFrameIsNotBoundary) {
  stream_demux d;
  std::vector<stream_chunk> out;
  const std::string in = frame(1, "abcdef");
  EXPECT_EQ(d.feed(std::string_view(in).substr(0, 10), out), stream_demux::status::ok);
  EXPECT_FALSE(d.at_boundary());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "ab");  // payload is delivered as it arrives
}

}  // namespace
}  // namespace berth::docker
