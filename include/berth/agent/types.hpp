#pragma once
// The provider-neutral chat types the agent works with. They are the LLM module's types
// (berth/llm/types.hpp: plain values, no I/O) re-exported here, so the turn loop, the providers
// and the history store share one definition:
//   chat_message{role, content, tool_calls[], tool_call_id, name, is_error}
//   tool_call{id, name, args (json object)}, tool_spec{name, description, input_schema},
//   llm_reply{text, tool_calls[], stop_reason, ...}.
#include "berth/llm/types.hpp"

namespace berth::agent {

using llm::chat_message;
using llm::llm_reply;
using llm::role;
using llm::tool_call;
using llm::tool_spec;

}  // namespace berth::agent
