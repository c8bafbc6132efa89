"""The chat messages sent upstream for one prompt, built in one place: the client sends
them, and the run layer counts them (``sent_chars``, ``MAX_PROMPT_CHARS``; the token
estimate, docs/adr/0302-token-estimate.md) before it opens a call.

A conversation's follow-up (docs/adr/0700-conversations.md) sends its earlier turns as
``history`` (user and assistant messages, alternating, rebuilt from the records) between
the first turn's system messages and the new user message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CONTEXT_PREFIX", "History", "chat_messages", "sent_chars"]

# Earlier turns of a conversation: {"role": "user" | "assistant", "content": ...}, in order.
History = Sequence[Mapping[str, str]]

# How the context goes upstream, ahead of the user's prompt.
CONTEXT_PREFIX = "Use the following context to answer the question:\n\n"


def chat_messages(
    prompt: str,
    system_prompt: str | None = None,
    context: str | None = None,
    history: History = (),
) -> list[dict[str, str]]:
    """The chat messages the client sends for a prompt: the one place they are built,
    so that ``sent_chars`` counts exactly what goes upstream."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if context:
        messages.append({"role": "system", "content": CONTEXT_PREFIX + context})
    messages.extend({"role": m["role"], "content": m["content"]} for m in history)
    messages.append({"role": "user", "content": prompt})
    return messages


def sent_chars(
    prompt: str,
    system_prompt: str | None = None,
    context: str | None = None,
    history: History = (),
) -> int:
    """The characters sent upstream for this prompt, for ``MAX_PROMPT_CHARS``: every
    message's content, the context's framing included."""
    return sum(len(m["content"]) for m in chat_messages(prompt, system_prompt, context, history))
