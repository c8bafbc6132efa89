"""Who is calling: the Firebase ID token in ``Authorization: Bearer``, checked off the loop.

firebase-admin's ``verify_id_token`` is synchronous, and in production it may fetch
Google's public keys over HTTP, so it runs in a worker thread: a slow check holds that
thread, never the loop that relays every stream. A token already verified is
remembered until it expires (a browser sends the same one for an hour), so most
requests skip the thread entirely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ._errors import ErrorCode, HttpError

__all__ = ["Authenticator", "Claims", "firebase_verifier"]

# What a verifier returns: the uid and the token's expiry (seconds since the epoch).
Claims = tuple[str, float]
# Tokens remembered at most; the oldest is forgotten first.
_CACHE_SIZE = 4096
# Tolerated difference between our clock and the token issuer's.
_CLOCK_SKEW = 5


class Authenticator:
    def __init__(self, verify: Callable[[str], Claims]) -> None:
        self._verify = verify
        self._known: dict[str, Claims] = {}

    async def uid(self, header: str | None) -> str:
        """The caller's uid, or ``HttpError`` (401)."""
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            raise HttpError(
                ErrorCode.UNAUTHENTICATED,
                "Sign in: an 'Authorization: Bearer <ID token>' header is required.",
            )
        token = header[7:].strip()
        known = self._known.get(token)
        if known is not None and known[1] > time.time() + _CLOCK_SKEW:
            return known[0]
        try:
            claims = await asyncio.to_thread(self._verify, token)
        except Exception:
            raise HttpError(
                ErrorCode.UNAUTHENTICATED, "The ID token is invalid or expired."
            ) from None
        if len(self._known) >= _CACHE_SIZE:
            del self._known[next(iter(self._known))]
        self._known[token] = claims
        return claims[0]


def firebase_verifier(app: Any) -> Callable[[str], Claims]:
    """firebase-admin's check of an ID token, for the project of ``app``."""
    from firebase_admin import auth

    def verify(token: str) -> Claims:
        claims = auth.verify_id_token(token, app=app, clock_skew_seconds=_CLOCK_SKEW)
        # With the Auth emulator on, firebase-admin checks neither exp nor iat (it accepts
        # unsigned tokens and stops there), so an expired token would pass. Check the
        # times here; in production this repeats what google-auth already did.
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now - _CLOCK_SKEW:
            raise ValueError("ID token expired")
        if not isinstance(iat, int | float) or iat > now + _CLOCK_SKEW:
            raise ValueError("ID token issued in the future")
        return str(claims["uid"]), float(exp)

    return verify
