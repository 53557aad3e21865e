#pragma once
// Connection state recovery (Socket.IO 4.6+), the pure part: numbering the events a socket is
// sent, the bounded buffer a reconnecting client replays from, which offsets may be recovered,
// and the state a disconnected socket leaves behind (serialized for Redis). No sockets, no Asio.
//
// The rules, as socket.io's server and socket.io-client 4.8 apply them:
// - with recovery on, CONNECT is answered {sid, pid}: pid is the socket's private session id;
// - every EVENT the server sends the socket (not an ack, not an event that asks for an ack) gets
//   its offset appended as the last argument; the client remembers the last one it saw;
// - a client that reconnects sends {...auth, pid, offset} in its CONNECT; when the server still
//   has that session and that offset, it answers {sid: <the same socket id>, pid} (the client then
//   sets socket.recovered) and sends every event after `offset`, in order, exactly once;
// - otherwise it is a new connection (new sid, the middlewares run, recovered false).
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::socketio {

// Offsets travel as decimal strings (the client treats them as opaque). nullopt: not one of ours.
std::string format_offset(std::uint64_t offset);
std::optional<std::uint64_t> parse_offset(std::string_view text) noexcept;

// Disconnect reasons after which a socket's state is kept for recovery (socket.io's
// RECOVERABLE_DISCONNECT_REASONS); a namespace disconnect by either side is final.
bool is_recoverable_reason(std::string_view reason) noexcept;

struct buffered_event {
  std::uint64_t offset = 0;
  nlohmann::json args;  // [event, ...arguments, "<offset>"]: what the client is sent
};

// The events a socket was sent, numbered from 1, the newest `capacity` of them kept.
class outbox {
 public:
  explicit outbox(std::size_t capacity, std::uint64_t last_offset = 0) : capacity_(capacity), last_(last_offset) {}
  // Appends the next offset to `args` (a JSON array) and keeps a copy.
  void stamp(nlohmann::json& args);
  // Keeps an event that already carries its offset (restoring a buffer).
  void restore(buffered_event e);
  std::uint64_t last_offset() const noexcept { return last_; }
  const std::deque<buffered_event>& events() const noexcept { return events_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Events after `offset`, or nullopt when `offset` cannot be recovered: never issued (newer than
  // the last), or older than what the buffer still holds (the cap dropped events after it).
  std::optional<std::vector<buffered_event>> after(std::uint64_t offset) const;

 private:
  std::size_t capacity_;
  std::uint64_t last_;
  std::deque<buffered_event> events_;
};

// What a disconnected socket leaves for its recovery: its id, namespace, the application's data
// (socket.io's socket.data) and its outbox.
struct detached_state {
  std::string sid;
  std::string nsp;
  nlohmann::json data;
  std::uint64_t last_offset = 0;
  std::vector<buffered_event> events;
};
std::string serialize(const detached_state& s);
// nullopt: not a state this code wrote (the caller treats it as unknown).
std::optional<detached_state> deserialize_detached(std::string_view text);

}  // namespace berth::socketio
