"""The prompt document (``prompts/{id}``) read as a typed ``Prompt``: junk in any field
becomes its default, so the run layer never sees an untyped value. The security rules
(``firestore.rules``, docs/adr/0301-rules-variables.md) keep what users may write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._firestore import Document

__all__ = ["Prompt", "prompt_from"]


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


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def prompt_from(doc: Document | None) -> Prompt | None:
    if doc is None or not doc.data or not isinstance(doc.data.get("content"), str):
        return None
    data = doc.data
    system_prompt = data.get("system_prompt")
    variables = data.get("variables")
    top_k = data.get("top_k")
    query_variable = data.get("retrieval_query_variable")
    preferred = data.get("preferred_model")
    return Prompt(
        id=doc.path.rsplit("/", 1)[1],
        owner_uid=str(data.get("owner_uid") or ""),
        content=data["content"],
        system_prompt=system_prompt if isinstance(system_prompt, str) else None,
        variables=variables if isinstance(variables, list) else [],
        public=data.get("public") is True,
        document_ids=_strings(data.get("document_ids")),
        top_k=top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else None,
        retrieval_query_variable=query_variable if isinstance(query_variable, str) else None,
        preferred_model=preferred if isinstance(preferred, str) and preferred else None,
        fallback_models=_strings(data.get("fallback_models"))[:3],
    )
