#include "berth/docker/stream_demux.hpp"

#include <algorithm>

namespace berth::docker {

stream_demux::status stream_demux::feed(std::string_view in, std::vector<stream_chunk>& out) {
  while (!in.empty() && status_ == status::ok) {
    if (remaining_ == 0) {
      // Header: collect 8 bytes (they may arrive one at a time).
      const std::size_t take = std::min<std::size_t>(8 - header_len_, in.size());
      std::copy_n(in.data(), take, header_ + header_len_);
      header_len_ += take;
      in.remove_prefix(take);
      if (header_len_ < 8) break;
      header_len_ = 0;
      if (header_[0] > 2) return status_ = status::bad_stream_type;
      if (header_[1] != 0 || header_[2] != 0 || header_[3] != 0) return status_ = status::bad_header;
      const std::uint32_t size = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                                 (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
      if (size > max_frame_) return status_ = status::frame_too_large;
      current_ = static_cast<stream_kind>(header_[0]);
      remaining_ = size;  // an empty frame is legal and yields nothing
      continue;
    }
    const std::size_t take = std::min<std::size_t>(remaining_, in.size());
    // Merge with the previous chunk of the same stream from this feed: fewer tiny strings.
    if (!out.empty() && out.back().stream == current_ && merge_ok_) {
      out.back().data.append(in.data(), take);
    } else {
      out.push_back(stream_chunk{current_, std::string(in.data(), take)});
    }
    merge_ok_ = true;
    remaining_ -= static_cast<std::uint32_t>(take);
    in.remove_prefix(take);
  }
  merge_ok_ = false;
  return status_;
}

std::string_view to_string(stream_demux::status s) noexcept {
  switch (s) {
    case stream_demux::status::ok: return "ok";
    case stream_demux::status::bad_stream_type: return "bad stream type";
    case stream_demux::status::bad_header: return "bad frame header";
    case stream_demux::status::frame_too_large: return "frame too large";
  }
  return "unknown";
}

}  // namespace berth::docker
