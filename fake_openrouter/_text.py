"""What the fake model says: the demo text, the reasoning text, and how both are cut."""

from __future__ import annotations

import html
import re
from typing import Any

from ._knobs import strip_directives

__all__ = [
    "REASONING_TEXT",
    "UNICODE_SAMPLE",
    "count_words",
    "demo_markdown",
    "demo_text",
    "message_texts",
    "split_text",
    "user_prompt",
]

UNICODE_SAMPLE = " Unicode check: café, naïve, Ελληνικά, 日本語, 🚀."
REASONING_TEXT = "The user wants a short answer. I will reply plainly and keep it brief."
_ECHO_LIMIT = 80
_TOKEN = re.compile(r"\s*\S+\s*$|\s*\S+")


def message_texts(messages: list[Any]) -> list[str]:
    """The text of every message: plain string content or the `text` content parts."""
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
    return texts


def user_prompt(messages: list[Any]) -> str:
    """The last user message's text without directives, whitespace collapsed."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            text = " ".join(message_texts([message]))
            return " ".join(strip_directives(text).split())
    return ""


def count_words(texts: list[str]) -> int:
    return sum(len(strip_directives(text).split()) for text in texts)


def demo_text(prompt: str, *, unicode: bool = False) -> str:
    """Readable text that says where it comes from and echoes the prompt's start."""
    if len(prompt) > _ECHO_LIMIT:
        echo = prompt[:_ECHO_LIMIT].rstrip() + "..."
    else:
        echo = prompt
    text = (
        "Hello from the local demo model. This answer was streamed by the fake "
        "OpenRouter server on this machine because no OpenRouter API key is set, "
        "so no real model was called. "
    )
    text += f'You asked: "{echo}". ' if echo else "Your prompt was empty. "
    text += "Set OPENROUTER_API_KEY to get real answers."
    if unicode:
        text += UNICODE_SAMPLE
    return text


# The passages the functions put in the user message (promptstream's build_context).
_PASSAGE = re.compile(r'<passage number="(\d+)" source="([^"]*)">\n(.*?)\n</passage>', re.S)
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.S)


def demo_markdown(messages: list[Any]) -> str:
    """The demo answer as Markdown (a heading, a list, a table, code) that says where it
    comes from; with passages in the messages, one list item per passage quoting its
    first sentence and citing it as [n], as the web app renders citations."""
    texts = message_texts(messages)
    passages = [
        (int(n), html.unescape(source), " ".join(body.split()))
        for text in texts
        for n, source, body in _PASSAGE.findall(text)
    ]
    prompt = user_prompt(messages)
    if passages:
        # The question is what follows the last passage.
        prompt = " ".join(prompt.rsplit("</passage>", 1)[-1].split())
    # Twice the plain answer's echo: a prompt with documents ends with its question.
    limit = 2 * _ECHO_LIMIT
    echo = prompt if len(prompt) <= limit else prompt[:limit].rstrip() + "..."
    lines = ["## Hello from the local demo model", ""]
    lines.append(f'You asked: "{echo}"' if echo else "Your prompt was empty.")
    lines.append("")
    if passages:
        lines += ["The passages you gave me say:", ""]
        for n, source, body in passages:
            first = _SENTENCE.match(body)
            quote = first.group(1) if first else body
            lines.append(f"- **{source}**: {quote} [{n}]")
        lines += ["", "| passage | source |", "|---|---|"]
        lines += [f"| [{n}] | {source.replace('|', '/')} |" for n, source, _ in passages]
    else:
        lines += [
            "This answer shows what the web app renders:",
            "",
            "- a **list**, *emphasis* and `inline code`",
            "- a table and a code block",
            "- citations like [1] when the prompt names documents (try *Ask the handbooks*)",
            "",
            "| part | comes from |",
            "|---|---|",
            "| these words | the fake OpenRouter on this machine |",
            "| a real answer | OpenRouter, once a key is set |",
        ]
    lines += [
        "",
        "No real model was called, because no OpenRouter API key is set. To use one:",
        "",
        "```bash",
        "echo 'OPENROUTER_API_KEY=sk-or-...' > functions/.secret.local",
        "scripts/dev",
        "```",
    ]
    return "\n".join(lines)


def split_text(text: str, pieces: int) -> list[str]:
    """Cut `text` into `pieces` parts that join back to it.

    Parts are runs of whole words (each word keeps its leading whitespace, like model
    tokens), spread evenly; with fewer words than parts, code points are spread instead,
    and with fewer code points than parts the tail parts are empty. `pieces == 0` means
    one part per word.
    """
    words = _TOKEN.findall(text)
    if pieces == 0:
        return words or [text]
    units: list[str] = words if len(words) >= pieces else list(text)
    if len(units) < pieces:
        return units + [""] * (pieces - len(units))
    size, extra = divmod(len(units), pieces)
    parts: list[str] = []
    start = 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        parts.append("".join(units[start:end]))
        start = end
    return parts
