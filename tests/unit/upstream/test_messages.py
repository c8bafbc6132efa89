"""The chat messages sent upstream, and the characters they count."""

from __future__ import annotations

import pytest

from promptstream.upstream._messages import CONTEXT_PREFIX, chat_messages, sent_chars


@pytest.mark.parametrize(
    ("prompt", "system", "context"),
    [
        ("q", None, None),
        ("q", "sys", None),
        ("q", "sys", "ctx " * 100),
        ("日本語", "", ""),
    ],
)
def test_sent_chars_counts_every_message_the_client_sends(
    prompt: str, system: str | None, context: str | None
) -> None:
    messages = chat_messages(prompt, system, context)
    assert sent_chars(prompt, system, context) == sum(len(m["content"]) for m in messages)
    expected = len(prompt) + len(system or "")
    if context:
        expected += len(CONTEXT_PREFIX) + len(context)
    assert sent_chars(prompt, system, context) == expected


def test_a_conversation_s_history_goes_between_the_system_messages_and_the_new_turn() -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
    ]
    messages = chat_messages("next", "sys", "ctx", history)
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": CONTEXT_PREFIX + "ctx"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "next"},
    ]
    assert sent_chars("next", "sys", "ctx", history) == sum(len(m["content"]) for m in messages)
