#pragma once
// Unpredictable identifiers (session ids, resume tokens) from the kernel's CSPRNG.
#include <cstddef>
#include <string>

namespace berth::core {

// `bytes` random bytes as unpadded base64url (so 15 bytes -> 20 characters).
std::string random_token(std::size_t bytes = 15);

// base64 / base64url helpers shared by the protocol codecs.
std::string base64_encode(std::string_view in, bool url = false);
// Returns false on any character outside the alphabet or bad padding.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace berth::core
