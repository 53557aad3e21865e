#pragma once
// What the session's core and its two transports share (private to src/engineio): per-thread
// buffers and socket calls that never wait.
#include <array>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/engineio/packet.hpp"
#include "berth/engineio/websocket_codec.hpp"

namespace berth::engineio::detail {

namespace asio = boost::asio;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr core::log_task_failure log_failure{"engineio"};

// Per-thread buffers: reads land in one and are decoded, outbound frames are assembled in
// another and written, before the next suspension, so idle sockets own no buffer. Defined out
// of line (never inlined): a coroutine may resume on another thread (THREADS > 1) and must not
// reuse a thread_local address computed before it suspended.
std::array<char, 64 * 1024>& read_scratch();
std::string& write_scratch();
std::vector<ws_message>& message_scratch();
std::vector<packet>& delivered_scratch();

bool would_block(const boost::system::error_code& ec);
// One send or recv that never waits (MSG_DONTWAIT), whatever mode Asio has put the socket in.
std::size_t send_now(asio::ip::tcp::socket& sock, asio::const_buffer b, boost::system::error_code& ec);
std::size_t recv_now(asio::ip::tcp::socket& sock, asio::mutable_buffer b, boost::system::error_code& ec);

}  // namespace berth::engineio::detail
