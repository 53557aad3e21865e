#pragma once
// Reply bodies in each provider's real wire format (shapes taken from the public API references),
// shared by the unit tests (codecs) and the integration tests (fake servers).
#include <string_view>

namespace berth::llm::samples {

// ---- OpenAI Chat Completions ----
inline constexpr std::string_view openai_text = R"({
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null,
               "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
  "service_tier": "default", "system_fingerprint": "fp_06737a9306"})";

inline constexpr std::string_view openai_tool_call = R"({
  "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1699896916, "model": "gpt-4o-mini",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_abc123", "type": "function",
       "function": {"name": "list_files", "arguments": "{\n\"path\": \"/workspace\"\n}"}}]},
    "logprobs": null, "finish_reason": "tool_calls"}],
  "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}})";

inline constexpr std::string_view openai_unknown_tool = R"({
  "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "format_disk", "arguments": "{}"}}]},
    "finish_reason": "tool_calls"}]})";

inline constexpr std::string_view openai_bad_arguments = R"({
  "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_1", "type": "function", "function": {"name": "list_files", "arguments": "{\"path\": "}}]},
    "finish_reason": "tool_calls"}]})";

inline constexpr std::string_view openai_error_401 = R"({
  "error": {"message": "Incorrect API key provided: sk-test-0123456789abcdef. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})";

inline constexpr std::string_view openai_error_429 = R"({
  "error": {"message": "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}})";

inline constexpr std::string_view openai_error_500 = R"({
  "error": {"message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": null, "code": null}})";

// ---- Anthropic Messages ----
inline constexpr std::string_view anthropic_text = R"({
  "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [{"type": "text", "text": "Hi! My name is Claude."}],
  "stop_reason": "end_turn", "stop_sequence": null,
  "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})";

inline constexpr std::string_view anthropic_tool_use = R"({
  "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
  "content": [{"type": "text", "text": "I'll list the files in /workspace."},
              {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "list_files",
               "input": {"path": "/workspace"}}],
  "stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 472, "output_tokens": 91}})";

inline constexpr std::string_view anthropic_error_401 = R"({
  "type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
  "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})";

inline constexpr std::string_view anthropic_error_400 = R"({
  "type": "error", "error": {"type": "invalid_request_error",
  "message": "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row"},
  "request_id": "req_011"})";

inline constexpr std::string_view anthropic_error_529 = R"({
  "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_012"})";

inline constexpr std::string_view anthropic_error_429 = R"({
  "type": "error", "error": {"type": "rate_limit_error",
  "message": "This request would exceed the rate limit for your organization of 50 requests per minute."},
  "request_id": "req_013"})";

// ---- Gemini generateContent ----
inline constexpr std::string_view gemini_text = R"({
  "candidates": [{"content": {"parts": [{"text": "Hello there! "}, {"text": "How can I help?"}], "role": "model"},
                  "finishReason": "STOP", "avgLogprobs": -0.0512}],
  "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 7, "totalTokenCount": 15,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
  "modelVersion": "gemini-2.5-flash", "responseId": "Q3mPaKf1Ko6xz7IPi5K4iQ4"})";

inline constexpr std::string_view gemini_function_call = R"({
  "candidates": [{"content": {"parts": [{"functionCall": {"name": "list_files", "args": {"path": "/workspace"}}}],
                              "role": "model"}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 12, "totalTokenCount": 132},
  "modelVersion": "gemini-2.5-flash"})";

inline constexpr std::string_view gemini_blocked = R"({
  "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
  "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})";

inline constexpr std::string_view gemini_error_400 = R"({
  "error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}})";

inline constexpr std::string_view gemini_error_429 = R"({
  "error": {"code": 429, "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                 "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                 "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})";

inline constexpr std::string_view gemini_error_503 = R"({
  "error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})";

inline constexpr std::string_view garbage = "<html><body>502 Bad Gateway</body></html>";

}  // namespace berth::llm::samples
