"""Seed data over the emulators' REST APIs: a demo user, three prompts, two documents
(uploaded through the real ingest_document function) and a prompt that draws on them;
and the one read a user needs with the Emulator UI off: an execution record."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ._firebase import functions_package

functions_package()
from promptstream.store._firestore import decode_fields, encode_value  # noqa: E402

DEMO_UID = "demo-user"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
# The Auth emulator accepts any API key.
API_KEY = "fake-api-key-for-emulators"

PROMPTS: dict[str, dict[str, Any]] = {
    "product-announcement": {
        "title": "Product announcement",
        "content": (
            "Write a short announcement of {{product}} for {{audience}}. "
            "Keep the tone {{tone}} and end with one call to action."
        ),
        "system_prompt": "You are a concise product marketer.",
        "variables": [
            {
                "name": "product",
                "required": True,
                "default": None,
                "description": "what is being announced",
            },
            {"name": "audience", "required": True, "default": None, "description": "who reads it"},
            {"name": "tone", "required": False, "default": "friendly"},
        ],
        "public": True,
    },
    "summarize-context": {
        "title": "Summarize the context",
        "content": "Summarize the context in {{sentences}} sentences for a {{reader}}.",
        "variables": [
            {"name": "sentences", "required": False, "default": "3"},
            {
                "name": "reader",
                "required": True,
                "default": None,
                "description": "e.g. new engineer",
            },
        ],
        "public": False,
    },
    "explain-like-five": {
        "title": "Explain like I'm five",
        "content": "Explain {{topic}} to a five-year-old in a short paragraph.",
        "variables": [{"name": "topic", "required": True, "default": None}],
        "public": False,
    },
}

# Knowledge bases: devstack/documents/*.md, uploaded as the demo user, and a prompt
# that names them (the query is its question variable).
DOCUMENTS_DIR = Path(__file__).resolve().parent / "documents"
DOCUMENTS: dict[str, tuple[str, str]] = {
    "bakery-handbook": ("Orchard Lane Bakery handbook", "bakery-handbook.md"),
    "nimbus-cli": ("Nimbus CLI reference", "nimbus-cli.md"),
}
KB_PROMPT_ID = "ask-the-handbooks"
KB_PROMPT: dict[str, Any] = {
    "title": "Ask the handbooks",
    "content": "Answer from the passages, citing them like [1]: {{question}}",
    "variables": [
        {
            "name": "question",
            "required": True,
            "default": None,
            "description": "e.g. how much is delivery beyond three kilometres?",
        }
    ],
    "public": False,
    "document_ids": list(DOCUMENTS),
    "top_k": 4,
    "retrieval_query_variable": "question",
}

# The line scripts/dev prints: it streams this prompt with these variables.
CURL_PROMPT_ID = "product-announcement"
CURL_VARIABLES = {"product": "the RAG Prompt Library", "audience": "developers"}


def _request(method: str, url: str, body: dict[str, Any] | None, *, owner: bool = False) -> Any:
    """The JSON answer (an object, or a list for ``runQuery``); RuntimeError on a status."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if owner:
        # The emulators' admin credential: skips security rules.
        headers["Authorization"] = "Bearer owner"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        raise RuntimeError(f"{method} {url} -> {exc.code}: {detail}") from exc
    return json.loads(payload) if payload else {}


def firestore_value(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore REST `Value`: the functions' own codec."""
    return encode_value(value)


def create_demo_user(auth_host: str, project_id: str) -> None:
    _request(
        "POST",
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/projects/{project_id}/accounts",
        {
            "localId": DEMO_UID,
            "email": DEMO_EMAIL,
            "password": DEMO_PASSWORD,
            "displayName": "Demo User",
            "emailVerified": True,
        },
        owner=True,
    )


def sign_in(auth_host: str, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
    """A fresh ID token from the Auth emulator."""
    answer = _request(
        "POST",
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword"
        f"?key={API_KEY}",
        {"email": email, "password": password, "returnSecureToken": True},
    )
    token = answer["idToken"]
    assert isinstance(token, str)
    return token


def seed_prompts(firestore_host: str, project_id: str, owner_uid: str = DEMO_UID) -> list[str]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = f"http://{firestore_host}/v1/projects/{project_id}/databases/(default)/documents"
    for prompt_id, prompt in PROMPTS.items():
        fields = {**prompt, "owner_uid": owner_uid, "created_at": now, "updated_at": now}
        _request(
            "PATCH",
            f"{base}/prompts/{prompt_id}",
            {"fields": {k: firestore_value(v) for k, v in fields.items()}},
            owner=True,
        )
    return list(PROMPTS)


def upload_document(
    ingest_url: str,
    token: str,
    document_id: str,
    data: bytes,
    *,
    title: str,
    filename: str,
    content_type: str = "text/markdown",
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Upload one document through ingest_document (POST, the raw file as the body)."""
    query = urllib.parse.urlencode(
        {"document_id": document_id, "title": title, "filename": filename}
    )
    req = urllib.request.Request(
        f"{ingest_url}?{query}",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        raise RuntimeError(f"upload of {document_id} -> {exc.code}: {detail}") from exc


def seed_documents(ingest_url: str, token: str, *, wait: float = 90.0) -> list[str]:
    """Upload DOCUMENTS as the token's user; retried while the Functions emulator still
    answers 404 for a function it has not loaded yet."""
    deadline = time.monotonic() + wait
    for document_id, (title, filename) in DOCUMENTS.items():
        data = (DOCUMENTS_DIR / filename).read_bytes()
        while True:
            try:
                upload_document(
                    ingest_url, token, document_id, data, title=title, filename=filename
                )
                break
            except RuntimeError as exc:
                if "-> 404" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    return list(DOCUMENTS)


def seed_kb_prompt(firestore_host: str, project_id: str, owner_uid: str = DEMO_UID) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    base = f"http://{firestore_host}/v1/projects/{project_id}/databases/(default)/documents"
    fields = {**KB_PROMPT, "owner_uid": owner_uid, "created_at": now, "updated_at": now}
    _request(
        "PATCH",
        f"{base}/prompts/{KB_PROMPT_ID}",
        {"fields": {k: firestore_value(v) for k, v in fields.items()}},
        owner=True,
    )
    return KB_PROMPT_ID


def seed(auth_host: str, firestore_host: str, project_id: str) -> list[str]:
    create_demo_user(auth_host, project_id)
    return seed_prompts(firestore_host, project_id)


def execution_record(
    firestore_host: str, project_id: str, execution_id: str | None = None
) -> dict[str, Any]:
    """The record ``executions/{execution_id}`` as plain values, read as the owner; the
    newest one (by ``created_at``) without an id. RuntimeError when there is none."""
    base = f"http://{firestore_host}/v1/projects/{project_id}/databases/(default)/documents"
    if execution_id:
        url = f"{base}/executions/{urllib.parse.quote(execution_id)}"
        doc = _request("GET", url, None, owner=True)
    else:
        query = {
            "from": [{"collectionId": "executions"}],
            "orderBy": [{"field": {"fieldPath": "created_at"}, "direction": "DESCENDING"}],
            "limit": 1,
        }
        rows = _request("POST", f"{base}:runQuery", {"structuredQuery": query}, owner=True)
        found = [row["document"] for row in rows if "document" in row]
        if not found:
            raise RuntimeError("no execution record yet: run a prompt first")
        doc = found[0]
    return {
        "execution_id": str(doc["name"]).rsplit("/", 1)[-1],
        **decode_fields(doc.get("fields") or {}),
    }
