"""A prompt's versions (``prompts/{id}/versions/{n}``, immutable) and labels, for a run
that names one: the version a request asks for, and the prompt as that version holds it.
The web app writes versions under ``firestore.rules``; the backend only reads them.

The prompt document holds its latest version (the rules keep the two equal), so a run of
the latest reads nothing more. See docs/adr/0900-prompt-versions.md.
"""

from __future__ import annotations

import dataclasses

from .._errors import ErrorCode, HttpError
from ._firestore import Document, FirestoreRest
from ._prompts import Prompt, shaping_fields

__all__ = ["VERSIONS", "as_asked", "at_version", "version_path", "wanted"]

VERSIONS = "versions"


def version_path(prompt_path: str, n: int) -> str:
    return f"{prompt_path}/{VERSIONS}/{n}"


async def as_asked(
    db: FirestoreRest,
    prompt_path: str,
    prompt: Prompt,
    version: int | None,
    label: str | None,
    known: dict[str, Document | None],
) -> Prompt:
    """``prompt`` (as read from ``prompt_path``) at the version the request asks for.
    ``known`` holds the version documents read so far (the opening reads one named by
    number with the prompt); one a label names is read here, unless it is the latest.
    Raises ``HttpError`` for a version the prompt lacks."""
    n = wanted(prompt, version, label)
    path = version_path(prompt_path, n)
    if n != prompt.version and path not in known:
        known[path] = (await db.get_all([path])).get(path)
    return at_version(prompt, n, known.get(path))


def wanted(prompt: Prompt, version: int | None, label: str | None) -> int:
    """The version a request asks for: ``version``, the one ``label`` names, else the
    latest. Raises ``HttpError`` (``version_not_found``) for one the prompt lacks."""
    if label is not None:
        n = prompt.labels.get(label)
        if n is None:
            raise HttpError(
                ErrorCode.VERSION_NOT_FOUND,
                f"The prompt has no label {label!r}.",
                {"label": label},
            )
        return n
    if version is None:
        return prompt.version
    if version > prompt.version:
        raise HttpError(
            ErrorCode.VERSION_NOT_FOUND,
            f"The prompt has no version {version}; its latest is {prompt.version}.",
            {"version": version, "latest": prompt.version},
        )
    return version


def at_version(prompt: Prompt, n: int, doc: Document | None) -> Prompt:
    """``prompt`` as its version ``n`` holds it: the prompt itself for its latest, else
    ``doc`` (that version's document). Raises ``HttpError`` when ``doc`` is absent."""
    if n == prompt.version:
        return prompt
    if doc is None or not doc.data or not isinstance(doc.data.get("content"), str):
        # A label past the versions written, or a version lost: the rules allow neither.
        raise HttpError(
            ErrorCode.VERSION_NOT_FOUND,
            f"The prompt has no version {n}.",
            {"version": n, "latest": prompt.version},
        )
    return dataclasses.replace(prompt, version=n, **shaping_fields(doc.data))
