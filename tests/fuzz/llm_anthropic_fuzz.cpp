// libFuzzer target: the anthropic codec's reply parsing (status, retry hints, body). See llm_codec_fuzz.hpp.
#include "berth/core/logging.hpp"
#include "llm_codec_fuzz.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  berth::core::init_logging("off", "text");  // the codecs log refusals: not per execution
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto codec = berth::llm::make_anthropic_codec({"https://provider.invalid/v1", "sk-fuzz-secret", "model"});
  return berth::fuzz::fuzz_codec(*codec, data, size);
}
