"""The fake's Markdown demo answer (`markdown` knob, on under scripts/dev): a heading, a
list, a table and code, and each passage the functions sent cited by its number."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from fake_openrouter import FakeOpenRouterThread
from promptstream.knowledge._context import build_context
from promptstream.knowledge._passages import Source

PASSAGES = [
    Source(
        "bakery", "Bakery handbook", 0, "Deliveries", "Within 3 km it is free. Beyond, £4.", 0.9
    ),
    Source("cli", 'The "nimbus" CLI', 1, "", "Run nimbus deploy --dry-run first. It prints.", 0.8),
]


def answer(fake: FakeOpenRouterThread, content: str, **knobs: Any) -> str:
    body = {
        "model": "demo/local-model",
        "stream": False,
        "messages": [{"role": "user", "content": content}],
    }
    req = urllib.request.Request(
        f"{fake.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": "Bearer sk-or-demo",
            "Content-Type": "application/json",
            "X-Fake-Scenario": json.dumps(knobs),
        },
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        text: str = json.loads(resp.read())["choices"][0]["message"]["content"]
        return text


def test_markdown_answer_cites_each_passage_it_was_given() -> None:
    # The passages exactly as the functions put them in the user message.
    content = f"{build_context(PASSAGES)}\n\nAnswer from the passages: how much is delivery?"
    with FakeOpenRouterThread(delay=0) as fake:
        text = answer(fake, content, markdown=True)
        plain = answer(fake, content)
    assert text.startswith("## ")
    assert 'You asked: "Answer from the passages: how much is delivery?"' in text
    assert "- **Bakery handbook — Deliveries**: Within 3 km it is free. [1]" in text
    assert '- **The "nimbus" CLI**: Run nimbus deploy --dry-run first. [2]' in text
    assert '| [2] | The "nimbus" CLI |' in text
    assert re.search(r"^```bash$", text, re.M)
    assert "local demo model" in plain and "## " not in plain  # off unless asked for


def test_markdown_answer_without_passages_shows_every_element() -> None:
    with FakeOpenRouterThread(delay=0, markdown=True) as fake:
        text = answer(fake, "Write a haiku about otters")
    assert 'You asked: "Write a haiku about otters"' in text
    for element in (r"^## ", r"^- ", r"^\|---\|---\|$", r"^```bash$", r"\*\*\w+\*\*", r"`[^`]+`"):
        assert re.search(element, text, re.M), element
