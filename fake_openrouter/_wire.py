"""OpenRouter's bytes: chunk, usage, error and completion bodies.

JSON is compact (no spaces) and keys come in OpenRouter's order, as its servers send
them. The per-stream prefix and suffixes are built once, so a chunk costs one
`json.dumps` of its text.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "COMMENT",
    "DONE",
    "MALFORMED",
    "StreamTemplate",
    "completion_body",
    "error_body",
    "usage_dict",
]

COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
# Looks like the start of a chunk but is cut off: a decoder must reject it as JSON.
MALFORMED = b'data: {"id":"gen-malformed","object":"chat.completion.chunk","choices":[{"delta":\n\n'


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _number(value: float) -> float | int:
    # JavaScript prints 0.0 as 0; so does OpenRouter.
    return int(value) if float(value).is_integer() else value


def usage_dict(
    *, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int, cost: float
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": _number(cost),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "image_tokens": 0},
    }


def error_body(code: int, message: str, metadata: dict[str, Any] | None = None) -> bytes:
    """`{"error": {"code", "message", "metadata"?}}`, the shape of every pre-stream error."""
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata:
        error["metadata"] = metadata
    return _dumps({"error": error}).encode()


class StreamTemplate:
    """The bytes of one stream's events, with the constant parts prebuilt."""

    __slots__ = ("_content_tail", "_head")

    def __init__(self, *, gen_id: str, provider: str, model: str, created: int) -> None:
        # ASCII escapes here: a hostile `model` knob may hold a lone surrogate, which
        # only a \u escape can carry (as a real upstream would send it).
        self._head = (
            f'data: {{"id":{json.dumps(gen_id)},"provider":{json.dumps(provider)},'
            f'"model":{json.dumps(model)},"object":"chat.completion.chunk","created":{created}'
        ).encode()
        self._content_tail = (
            b'},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
        )

    def content(
        self, text: str, *, finish_reason: str | None = None, sent_ns: int | None = None
    ) -> bytes:
        head = (
            self._head if sent_ns is None else self._head + b',"x_sent_ns":' + str(sent_ns).encode()
        )
        delta = (
            b',"choices":[{"index":0,"delta":{"role":"assistant","content":' + _dumps(text).encode()
        )
        if finish_reason is None:
            return head + delta + self._content_tail
        reason = _dumps(finish_reason).encode()
        return (
            head
            + delta
            + b'},"finish_reason":'
            + reason
            + b',"native_finish_reason":'
            + reason
            + b',"logprobs":null}]}\n\n'
        )

    def reasoning(self, text: str) -> bytes:
        quoted = _dumps(text)
        return (
            self._head
            + b',"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":'
            + quoted.encode()
            + b',"reasoning_details":[{"type":"reasoning.text","text":'
            + quoted.encode()
            + b',"format":"unknown","index":0}]'
            + self._content_tail
        )

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._head + b',"choices":[],"usage":' + _dumps(usage).encode() + b"}\n\n"

    def error(self, code: str, message: str) -> bytes:
        # The documented mid-stream shape: top-level `error`, finish_reason "error".
        return (
            self._head
            + b',"error":'
            + _dumps({"code": code, "message": message}).encode()
            + b',"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}\n\n'
        )


def completion_body(
    *,
    gen_id: str,
    provider: str,
    model: str,
    created: int,
    content: str,
    reasoning: str | None,
    finish_reason: str,
    usage: dict[str, Any],
) -> bytes:
    """A non-streaming `chat.completion` object."""
    body = {
        "id": gen_id,
        "provider": provider,
        "model": model,
        "object": "chat.completion",
        "created": created,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "reasoning": reasoning,
                },
            }
        ],
        "usage": usage,
    }
    # A lone surrogate (a hostile `model` knob) goes out as the \u escape JSON allows.
    return _dumps(body).encode("utf-8", "backslashreplace")
