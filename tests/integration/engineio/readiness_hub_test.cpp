// The websocket readiness hub over real loopback TCP sockets: a parked reader is woken by data,
// cancel() ends its wait, a slot given back never hears of its old socket, and more sockets than
// one epoll batch are all woken.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

#include <boost/asio.hpp>

#include "src/engineio/readiness_hub.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using berth::engineio::detail::read_signal;
using berth::engineio::detail::readiness_hub;

namespace {

struct socket_pair {
  tcp::socket client;
  tcp::socket server;
};

class hub_fixture : public ::testing::Test {
 protected:
  socket_pair connect_pair() {
    tcp::socket client(ioc_);
    client.connect(acceptor_.local_endpoint());
    tcp::socket server = acceptor_.accept();
    return {std::move(client), std::move(server)};
  }
  std::shared_ptr<read_signal> watch(tcp::socket& s) {
    auto signal = hub_.watch(s.native_handle(), asio::make_strand(ioc_));
    EXPECT_NE(signal, nullptr);
    if (signal) signal->set_maybe_readable(false);  // as a reader does before its first recv
    return signal;
  }
  // Runs the io_context until done() or a 5 s bound; a hub that never delivers fails the test.
  template <class Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) ioc_.run_for(std::chrono::milliseconds(20));
    return done();
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_, {asio::ip::make_address("127.0.0.1"), 0}};
  readiness_hub hub_{ioc_};
};

TEST_F(hub_fixture, WakesAParkedReaderWhenDataArrives) {
  auto pair = connect_pair();
  auto signal = watch(pair.server);
  std::optional<boost::system::error_code> woken;
  signal->async_wait([&](boost::system::error_code ec) { woken = ec; });
  ioc_.poll();
  EXPECT_FALSE(woken) << "woken before any data";
  asio::write(pair.client, asio::buffer("hello", 5));
  ASSERT_TRUE(run_until([&] { return woken.has_value(); }));
  EXPECT_FALSE(*woken);
  EXPECT_TRUE(signal->maybe_readable());
}

TEST_F(hub_fixture, WakesAgainForEachNewArrival) {
  auto pair = connect_pair();
  auto signal = watch(pair.server);
  int wakes = 0;
  for (int i = 0; i < 3; ++i) {
    signal->set_maybe_readable(false);
    signal->async_wait([&](boost::system::error_code ec) { wakes += ec ? 0 : 1; });
    asio::write(pair.client, asio::buffer("x", 1));
    ASSERT_TRUE(run_until([&] { return wakes == i + 1; })) << "arrival " << i;
    char buf[8];
    EXPECT_EQ(pair.server.read_some(asio::buffer(buf)), 1u);  // drained, as the reader does
  }
}

TEST_F(hub_fixture, CancelEndsTheWaitWithOperationAborted) {
  auto pair = connect_pair();
  auto signal = watch(pair.server);
  std::optional<boost::system::error_code> woken;
  signal->async_wait([&](boost::system::error_code ec) { woken = ec; });
  signal->cancel();
  EXPECT_FALSE(woken) << "cancel() must not run the reader inside the caller";
  ASSERT_TRUE(run_until([&] { return woken.has_value(); }));
  EXPECT_EQ(*woken, asio::error::operation_aborted);
}

TEST_F(hub_fixture, HangupWakesTheReader) {
  auto pair = connect_pair();
  auto signal = watch(pair.server);
  std::optional<boost::system::error_code> woken;
  signal->async_wait([&](boost::system::error_code ec) { woken = ec; });
  pair.client.close();
  ASSERT_TRUE(run_until([&] { return woken.has_value(); }));
  EXPECT_FALSE(*woken);
}

TEST_F(hub_fixture, ASlotGivenBackNeverHearsOfItsOldSocket) {
  auto first = connect_pair();
  auto old_signal = watch(first.server);
  hub_.unwatch(*old_signal);
  auto second = connect_pair();
  auto new_signal = watch(second.server);  // takes the slot just given back, one generation on
  auto marker = connect_pair();
  auto marker_signal = watch(marker.server);
  // The old socket is still registered (it is open): its event carries the old generation. It
  // is written first, so once the marker's event is delivered, the old one has been too.
  asio::write(first.client, asio::buffer("old", 3));
  asio::write(marker.client, asio::buffer("mark", 4));
  ASSERT_TRUE(run_until([&] { return marker_signal->maybe_readable(); }));
  EXPECT_FALSE(new_signal->maybe_readable()) << "the slot's new owner was woken by the old socket";
  EXPECT_FALSE(old_signal->maybe_readable()) << "an unwatched signal was told of its socket";
}

TEST_F(hub_fixture, MoreSocketsThanOneBatchAreAllWoken) {
  constexpr int count = 300;  // the hub harvests 256 events per epoll_wait
  std::vector<socket_pair> pairs;
  std::vector<std::shared_ptr<read_signal>> signals;
  int woken = 0;
  for (int i = 0; i < count; ++i) {
    pairs.push_back(connect_pair());
    signals.push_back(watch(pairs.back().server));
    signals.back()->async_wait([&](boost::system::error_code ec) { woken += ec ? 0 : 1; });
  }
  for (auto& p : pairs) asio::write(p.client, asio::buffer("x", 1));
  ASSERT_TRUE(run_until([&] { return woken == count; })) << woken << " of " << count << " woken";
}

}  // namespace
