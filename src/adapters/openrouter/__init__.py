"""OpenRouter adapter: the chat model over httpx, its HTTP/1.1 transport, SSE, errors."""

from adapters.openrouter.client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    OpenRouterChatModel,
    build_http_client,
    fetch_context_lengths,
)
from adapters.openrouter.errors import (
    ContextTooLongError,
    error_from_exception,
    error_from_payload,
    error_from_response,
    parse_context_limit,
    parse_requested_tokens,
    parse_retry_after,
)
from adapters.openrouter.sse import SSEError, SSEEvent, SSEParser
from adapters.openrouter.transport import HTTP1Transport

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "ContextTooLongError",
    "HTTP1Transport",
    "OpenRouterChatModel",
    "SSEError",
    "SSEEvent",
    "SSEParser",
    "build_http_client",
    "error_from_exception",
    "error_from_payload",
    "error_from_response",
    "fetch_context_lengths",
    "parse_context_limit",
    "parse_requested_tokens",
    "parse_retry_after",
]
