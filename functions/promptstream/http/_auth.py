"""Who is calling: the Firebase ID token in ``Authorization: Bearer``, checked off the loop.

firebase-admin's ``verify_id_token`` is synchronous, and in production it may fetch
Google's public keys over HTTP, so it runs in a worker thread: a slow check holds that
thread, never the loop that relays every stream. The threads are the authenticator's
own (``CONTROL_THREADS``), not the loop's default pool, so a check never waits behind
other blocking work (docs/adr/0307-cpu-bounds.md). A token already verified is
remembered until it expires (a browser sends the same one for an hour), so most
requests skip the thread entirely.

With ``FIREBASE_AUTH_EMULATOR_HOST`` set, firebase-admin accepts unsigned tokens. The
``EmulatorGuard`` lets that happen only where the process can show it runs under the
local emulator stack (docs/adr/0304-emulator-auth-guard.md); otherwise every token is
refused with 500 ``configuration_error``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._errors import ErrorCode, HttpError

__all__ = ["CONTROL_THREADS", "Authenticator", "Claims", "EmulatorGuard", "firebase_verifier"]

# What a verifier returns: the uid and the token's expiry (seconds since the epoch).
Claims = tuple[str, float]
# Tokens remembered at most; the oldest is forgotten first.
_CACHE_SIZE = 4096
# Tolerated difference between our clock and the token issuer's.
_CLOCK_SKEW = 5
# Threads for the short blocking calls a request waits on before any user work: the
# token check and the emulator guard's probe (the Firestore credential refresh has its own).
CONTROL_THREADS = 4


# How long the Auth emulator has to answer the guard's probe, and how long a failed proof
# stands before it is tried again (the emulator may start after the function).
_PROBE_TIMEOUT = 2.0
_RETRY_AFTER_FAILED_PROOF = 10.0


class EmulatorGuard:
    """Whether unsigned tokens may be accepted: only when ``FIREBASE_AUTH_EMULATOR_HOST``
    is unset (firebase-admin then checks signatures) or when all of these hold:

    - the host is a loopback address (``127.0.0.0/8``, ``::1`` or ``localhost``);
    - ``K_CONFIGURATION`` is absent: Cloud Run sets it on every service, the Functions
      emulator does not (it does set ``K_SERVICE`` and ``K_REVISION``, so those prove
      nothing, nor does ``FUNCTIONS_EMULATOR``, an ordinary variable);
    - an Auth emulator answers there: ``GET /emulator/v1/projects/{project}/config``
      is 200 with a JSON object holding ``signIn`` (an endpoint only the emulator has).

    Proven once, off the loop, on the first token; a failed proof is retried after a
    while."""

    def __init__(
        self,
        project: str,
        env: Mapping[str, str] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self._executor = executor
        self.host = env.get("FIREBASE_AUTH_EMULATOR_HOST") or None
        self._project = project
        self._cloud_run = "K_CONFIGURATION" in env
        self._allowed = self.host is None
        self._proving: asyncio.Future[bool] | None = None
        self._next_try = 0.0

    async def allows(self) -> bool:
        if self._allowed:
            return True
        proving = self._proving
        if proving is None:
            if time.monotonic() < self._next_try:
                return False
            loop = asyncio.get_running_loop()
            # No executor given: the loop's default pool (a guard built alone, in tests).
            # Not a TaskGroup's: the proof is shared by every request that waits for it and
            # outlives any one of them.
            proving = asyncio.ensure_future(loop.run_in_executor(self._executor, self.prove))
            self._proving = proving
        allowed = await asyncio.shield(proving)
        if self._proving is proving:
            self._proving = None
            self._allowed = allowed
            self._next_try = time.monotonic() + _RETRY_AFTER_FAILED_PROOF
        return allowed

    def prove(self) -> bool:
        """The checks above, blocking (one HTTP GET on loopback at most)."""
        host = self.host
        if host is None:
            return True
        if self._cloud_run or not _is_loopback(host):
            return False
        url = f"http://{host}/emulator/v1/projects/{self._project}/config"
        try:
            with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT) as resp:
                answer = json.loads(resp.read(65536))
        except (OSError, ValueError):
            return False
        return isinstance(answer, dict) and isinstance(answer.get("signIn"), dict)


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Authenticator:
    def __init__(
        self,
        verify: Callable[[str], Claims],
        guard: EmulatorGuard | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._verify = verify
        self._known: dict[str, Claims] = {}
        # One check per token at a time: a burst carrying one new token waits on one
        # verification instead of queueing one per request on the control threads.
        self._checking: dict[str, asyncio.Future[Claims]] = {}
        self._guard = guard
        self._executor = executor or ThreadPoolExecutor(CONTROL_THREADS, "control")

    async def uid(self, header: str | None) -> str:
        """The caller's uid, or ``HttpError`` (401; 500 when the guard refuses)."""
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            raise HttpError(
                ErrorCode.UNAUTHENTICATED,
                "Sign in: an 'Authorization: Bearer <ID token>' header is required.",
            )
        guard = self._guard
        if guard is not None and not await guard.allows():
            raise HttpError(ErrorCode.CONFIGURATION_ERROR, "The server is misconfigured.")
        token = header[7:].strip()
        known = self._known.get(token)
        if known is not None and known[1] > time.time() + _CLOCK_SKEW:
            return known[0]
        checking = self._checking.get(token)
        if checking is None:
            checking = asyncio.get_running_loop().run_in_executor(
                self._executor, self._verify, token
            )
            self._checking[token] = checking
            checking.add_done_callback(lambda _: self._checking.pop(token, None))
        try:
            # Shielded: a caller that leaves must not cancel the check others wait on.
            claims = await asyncio.shield(checking)
        except asyncio.CancelledError:
            raise
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
