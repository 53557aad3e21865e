#pragma once
// The chat UI and the socket.io client bundle: found where an install, the container image or a
// source checkout puts them (or where STATIC_DIR / CLIENT_BUNDLE_DIR say), loaded into memory.
#include "berth/core/config.hpp"
#include "berth/http/static_files.hpp"

namespace berth::app {

struct web_assets {
  http::static_files chat_ui;        // mounted at "/"
  http::static_files client_bundle;  // mounted at SOCKETIO_PATH (socket.io.js and its kin)
};

// Loads both and logs where from (a warning when one is missing: its URLs answer 404). Each is
// taken from the first folder that exists of: the configured one, the working directory's, the
// installed share/ folder, the image's /app, the build tree's.
web_assets load_web_assets(const core::config& cfg);

}  // namespace berth::app
