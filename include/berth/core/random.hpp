#pragma once
// Unpredictable identifiers (session ids, resume tokens) from the kernel's CSPRNG.
#include <cstddef>
#include <string>

#include "berth/core/base64.hpp"  // random_token() encodes with it; callers use it too

namespace berth::core {

// `bytes` random bytes as unpadded base64url (so 15 bytes -> 20 characters).
std::string random_token(std::size_t bytes = 15);

}  // namespace berth::core
