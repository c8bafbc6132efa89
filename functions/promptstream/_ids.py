"""Firestore document ids for Firebase uids.

Firebase accepts almost any uid in a custom token (``a/b/c``, ``..``, ``__x__``), but a
Firestore document id cannot contain ``/``, be ``.`` or ``..``, or match ``__.*__``.
``uid_key`` maps every uid to an id that is always valid, different uids to different
ids, and an ordinary uid (letters, digits, ``_``, ``-``) to itself.
"""

from __future__ import annotations

import re

__all__ = ["MAX_KEY_BYTES", "uid_key"]

# Firestore's limit on a document id.
MAX_KEY_BYTES = 1500

_ORDINARY = re.compile(r"[A-Za-z0-9_-]+")
# Starts every encoded key. An ordinary uid never contains it, so the two kinds of key
# cannot meet; and it is URL-unreserved, so a key needs no quoting in a REST path.
_MARK = "~"
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def uid_key(uid: str) -> str:
    """The document id for ``uid`` (in ``user_limits`` and wherever a uid names a doc).

    An ordinary uid is its own key, unless it starts with ``__``. Any other uid becomes
    ``~`` followed by the uid with each byte outside ``[A-Za-z0-9_-]`` of its UTF-8 form
    written ``~XX`` (so ``a/b`` is ``~a~2Fb``). Raises ``ValueError`` only for a uid
    whose key would pass Firestore's 1,500-byte limit (Firebase's own uids are at most
    128 characters, which always fit).
    """
    if _ORDINARY.fullmatch(uid) and not uid.startswith("__") and len(uid) <= MAX_KEY_BYTES:
        return uid
    raw = uid.encode("utf-8", "surrogatepass")
    key = _MARK + "".join(chr(b) if b in _KEEP else f"~{b:02X}" for b in raw)
    if len(key) > MAX_KEY_BYTES:
        raise ValueError(f"uid too long for a document id ({len(raw)} bytes)")
    return key
