#pragma once
// Incremental decoder for Docker's multiplexed exec/attach stream (Tty=false): each frame is an
// 8-byte header {stream(1), 0, 0, 0, size(4, big-endian)} followed by `size` payload bytes.
// Pure (no I/O): bytes in, chunks out. Payload is delivered as soon as it arrives, so a frame may
// yield several chunks; any byte split of the input gives the same concatenated output.
// Lifetime: one per stream. Thread-safety: none (owned by one reader).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::docker {

enum class stream_kind : std::uint8_t { stdin_ = 0, stdout_ = 1, stderr_ = 2 };

struct stream_chunk {
  stream_kind stream = stream_kind::stdout_;
  std::string data;
};

class stream_demux {
 public:
  enum class status { ok, bad_stream_type, bad_header, frame_too_large };

  // max_frame bounds one frame's declared size (a garbled header must not look like 4 GiB).
  explicit stream_demux(std::uint32_t max_frame = 16u * 1024 * 1024) : max_frame_(max_frame) {}

  // Consumes all of `in`, appending payload chunks to `out`. After an error the decoder stays
  // failed and consumes nothing more.
  status feed(std::string_view in, std::vector<stream_chunk>& out);

  status state() const noexcept { return status_; }
  // True between frames (a clean place for the stream to end).
  bool at_boundary() const noexcept { return status_ == status::ok && header_len_ == 0 && remaining_ == 0; }

 private:
  std::uint32_t max_frame_;
  status status_ = status::ok;
  unsigned char header_[8] = {};
  std::size_t header_len_ = 0;
  std::uint32_t remaining_ = 0;
  stream_kind current_ = stream_kind::stdout_;
  bool merge_ok_ = false;  // may append to out.back() (set only within one feed call)
};

std::string_view to_string(stream_demux::status s) noexcept;

}  // namespace berth::docker
