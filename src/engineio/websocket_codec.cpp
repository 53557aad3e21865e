#include "berth/engineio/websocket_codec.hpp"

#include <algorithm>
#include <cstring>

#include <openssl/sha.h>

#include "berth/core/random.hpp"
#include "berth/core/text_validation.hpp"

namespace berth::engineio {
namespace {
bool is_control(ws_opcode op) { return static_cast<std::uint8_t>(op) >= 8; }
bool known_opcode(std::uint8_t op) { return op <= 2 || (op >= 8 && op <= 10); }

// XORs the 4-byte client mask over `payload`, eight bytes per step.
void unmask(std::string& payload, const char* mask) noexcept {
  std::uint32_t m32;
  std::memcpy(&m32, mask, 4);
  const std::uint64_t m64 = (std::uint64_t{m32} << 32) | m32;
  char* p = payload.data();
  const std::size_t n = payload.size();
  std::size_t i = 0;
  for (; n - i >= 8; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= m64;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ mask[i & 3]);
}
}  // namespace

std::size_t websocket_decoder::parse_frame(std::string_view in, std::vector<ws_message>& out, ws_close_code& err) {
  if (in.size() < 2) return 0;
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto b1 = static_cast<std::uint8_t>(in[1]);
  const bool fin = b0 & 0x80;
  const std::uint8_t opcode = b0 & 0x0F;
  const bool masked = b1 & 0x80;
  std::uint64_t len = b1 & 0x7F;
  std::size_t header = 2;
  if ((b0 & 0x70) != 0 || !known_opcode(opcode) || !masked) {  // no extensions; clients must mask
    err = ws_close_code::protocol_error;
    return 0;
  }
  const auto op = static_cast<ws_opcode>(opcode);
  if (len == 126) {
    if (in.size() < 4) return 0;
    len = (std::uint64_t(std::uint8_t(in[2])) << 8) | std::uint8_t(in[3]);
    header = 4;
  } else if (len == 127) {
    if (in.size() < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | std::uint8_t(in[2 + static_cast<std::size_t>(i)]);
    header = 10;
  }
  if (is_control(op) && (len > 125 || !fin)) {
    err = ws_close_code::protocol_error;
    return 0;
  }
  // Reject oversize before buffering it: the bound must hold for partial frames too.
  const std::uint64_t already = in_message_ && !is_control(op) ? message_.size() : 0;
  if (len > max_message_ || already + len > max_message_) {
    err = ws_close_code::too_big;
    return 0;
  }
  header += 4;
  if (in.size() < header + len) {
    incomplete_frame_bytes_ = header + static_cast<std::size_t>(len);
    return 0;
  }
  const char* mask = in.data() + header - 4;
  std::string payload(in.substr(header, static_cast<std::size_t>(len)));
  unmask(payload, mask);

  if (is_control(op)) {
    if (op == ws_opcode::close && payload.size() == 1) {
      err = ws_close_code::protocol_error;
      return 0;
    }
    out.push_back({op, std::move(payload)});
  } else if (op == ws_opcode::continuation) {
    if (!in_message_) {
      err = ws_close_code::protocol_error;
      return 0;
    }
    message_ += payload;
    if (fin) {
      if (message_op_ == ws_opcode::text && !core::is_valid_utf8(message_)) {
        err = ws_close_code::invalid_payload;
        return 0;
      }
      out.push_back({message_op_, std::move(message_)});
      message_ = {};
      in_message_ = false;
    }
  } else {
    if (in_message_) {  // a new data frame inside a fragmented message
      err = ws_close_code::protocol_error;
      return 0;
    }
    if (fin) {
      if (op == ws_opcode::text && !core::is_valid_utf8(payload)) {
        err = ws_close_code::invalid_payload;
        return 0;
      }
      out.push_back({op, std::move(payload)});
    } else {
      in_message_ = true;
      message_op_ = op;
      message_ = std::move(payload);
    }
  }
  return header + static_cast<std::size_t>(len);
}

ws_close_code websocket_decoder::feed(std::string_view bytes, std::vector<ws_message>& out) {
  ws_close_code err = ws_close_code::none;
  // A frame carried from the last read is completed first, taking from `bytes` only what it
  // lacks (its header, then the size the header announced): the carry never holds more than its
  // own frame, however the reads are split, and the rest is parsed in place below.
  while (!pending_.empty()) {
    if (bytes.empty()) return ws_close_code::none;
    constexpr std::size_t longest_header = 14;
    const std::size_t target = incomplete_frame_bytes_ != 0 ? incomplete_frame_bytes_ : std::max(longest_header, pending_.size() + 1);
    const std::size_t take = std::min(bytes.size(), target - pending_.size());
    const std::size_t need = pending_.size() + take;
    if (need > pending_.capacity()) {
      // Grow by doubling (a drip-fed frame costs O(log n) copies), but never past the frame's
      // size once its header is in; nor reserve the whole frame up front: a 14-byte header must
      // not buy a megabyte.
      std::size_t capacity = std::max(need, 2 * pending_.capacity());
      if (incomplete_frame_bytes_ != 0) capacity = std::max(need, std::min(capacity, incomplete_frame_bytes_));
      std::string grown;
      grown.reserve(capacity);
      grown.append(pending_);
      pending_.swap(grown);
    }
    pending_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    incomplete_frame_bytes_ = 0;
    const auto n = parse_frame(pending_, out, err);
    if (err != ws_close_code::none) return err;
    if (n == 0) continue;  // still incomplete (incomplete_frame_bytes_ is known once the header is in)
    // Usually the whole carry; while the header was incomplete a few bytes of the next frame may
    // have come along, and are carried on.
    pending_.erase(0, n);
    // A big frame that just completed must not leave its buffer held (and counted against
    // MAX_CONNECTION_BUFFER_BYTES).
    if (pending_.capacity() > 2 * pending_.size() + 4096) pending_.shrink_to_fit();
  }
  std::size_t used = 0;
  incomplete_frame_bytes_ = 0;
  while (used < bytes.size()) {
    auto n = parse_frame(bytes.substr(used), out, err);
    if (err != ws_close_code::none) return err;
    if (n == 0) break;
    used += n;
  }
  if (used < bytes.size()) pending_.assign(bytes.substr(used));
  return ws_close_code::none;
}

void append_ws_frame(std::string& out, ws_opcode op, std::string_view payload) {
  append_ws_frame_header(out, op, payload.size());
  out.append(payload);
}

void append_ws_frame_header(std::string& out, ws_opcode op, std::size_t n) {
  out += static_cast<char>(0x80 | static_cast<std::uint8_t>(op));
  if (n < 126) {
    out += static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((std::uint64_t(n) >> shift) & 0xFF);
  }
}

void append_ws_close(std::string& out, ws_close_code code, std::string_view reason) {
  std::string payload;
  const auto c = static_cast<std::uint16_t>(code);
  payload += static_cast<char>(c >> 8);
  payload += static_cast<char>(c & 0xFF);
  payload.append(reason.substr(0, 120));
  append_ws_frame(out, ws_opcode::close, payload);
}

std::string websocket_accept_key(std::string_view client_key) {
  std::string s(client_key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  return core::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

}  // namespace berth::engineio
