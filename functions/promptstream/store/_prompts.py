"""The prompt document (``prompts/{id}``) read as a typed ``Prompt``: junk in any field
becomes its default, so the run layer never sees an untyped value. The security rules
(``firestore.rules``, docs/adr/0301-rules-variables.md) keep what users may write; a
prompt's versions and labels: ``_versions`` (docs/adr/0900-prompt-versions.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._firestore import Document

__all__ = ["Prompt", "prompt_from", "shaping_fields"]


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    owner_uid: str
    content: str
    system_prompt: str | None
    variables: list[Any]
    public: bool
    # Knowledge bases: the documents the prompt draws on, passages per run, and the
    # declared variable whose value is the search query (else the rendered prompt).
    document_ids: tuple[str, ...] = ()
    top_k: int | None = None
    retrieval_query_variable: str | None = None
    # Models (issue 18): the default model of its runs, and the fallbacks it names.
    # Checked against ALLOWED_MODELS when used, not here.
    preferred_model: str | None = None
    fallback_models: tuple[str, ...] = ()
    # Versions (issue 27): the version these fields are (the prompt document holds its
    # latest; one without `version` is at 1), and the labels naming versions.
    version: int = 1
    labels: Mapping[str, int] = field(default_factory=dict)

    def readable_by(self, uid: str) -> bool:
        """Public, or the caller's own: the rules' read of a prompt and its versions."""
        return self.public or self.owner_uid == uid


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _count(value: Any) -> int | None:
    """A positive int, else ``None`` (a bool is not a count)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return value if ok else None


def shaping_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """What shapes a run, typed, from a prompt or a version document: the fields a
    version holds."""
    system_prompt = data.get("system_prompt")
    variables = data.get("variables")
    top_k = data.get("top_k")
    query_variable = data.get("retrieval_query_variable")
    preferred = data.get("preferred_model")
    return {
        "content": data["content"],
        "system_prompt": system_prompt if isinstance(system_prompt, str) else None,
        "variables": variables if isinstance(variables, list) else [],
        "document_ids": _strings(data.get("document_ids")),
        "top_k": top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else None,
        "retrieval_query_variable": query_variable if isinstance(query_variable, str) else None,
        "preferred_model": preferred if isinstance(preferred, str) and preferred else None,
        "fallback_models": _strings(data.get("fallback_models"))[:3],
    }


def prompt_from(doc: Document | None) -> Prompt | None:
    if doc is None or not doc.data or not isinstance(doc.data.get("content"), str):
        return None
    data = doc.data
    labels = data.get("labels")
    return Prompt(
        id=doc.path.rsplit("/", 1)[1],
        owner_uid=str(data.get("owner_uid") or ""),
        public=data.get("public") is True,
        version=_count(data.get("version")) or 1,
        labels=(
            {k: n for k, v in labels.items() if (n := _count(v)) is not None}
            if isinstance(labels, dict)
            else {}
        ),
        **shaping_fields(data),
    )
