"""The token check with the verifier injected: the header's form, the cache of verified
tokens, and the guard that allows unsigned (emulator) tokens only under the emulator."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from typing import Any

import pytest

from promptstream import HttpError
from promptstream.http._auth import (
    Authenticator,
    Claims,
    EmulatorGuard,
    _is_loopback,
    firebase_verifier,
)


class Verifier:
    """Takes the token for the uid, valid for ``lifetime`` seconds; counts its calls."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.calls: list[str] = []
        self.lifetime = lifetime

    def __call__(self, token: str) -> Claims:
        self.calls.append(token)
        if token.startswith("bad"):
            raise ValueError("signature")
        return token, time.time() + self.lifetime


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Bearer    ", "Basic YWxpY2U=", "bearer alice"]
)
async def test_a_missing_or_malformed_header_is_401_without_a_check(header: str | None) -> None:
    verify = Verifier()
    with pytest.raises(HttpError) as refused:
        await Authenticator(verify).uid(header)
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")
    assert "Bearer" in refused.value.message
    assert verify.calls == []


async def test_a_token_the_verifier_refuses_is_401_without_its_reason() -> None:
    with pytest.raises(HttpError) as refused:
        await Authenticator(Verifier()).uid("Bearer bad-token")
    assert refused.value.status == 401
    assert "signature" not in refused.value.message


async def test_a_verified_token_is_remembered_until_it_expires() -> None:
    verify = Verifier()
    auth = Authenticator(verify)
    assert await auth.uid("Bearer alice") == "alice"
    assert await auth.uid("Bearer  alice ") == "alice"
    assert verify.calls == ["alice"]
    # A token within the clock skew of its expiry is checked again.
    short = Verifier(lifetime=2)
    auth = Authenticator(short)
    await auth.uid("Bearer bob")
    await auth.uid("Bearer bob")
    assert short.calls == ["bob", "bob"]


async def test_the_cache_forgets_the_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("promptstream.http._auth._CACHE_SIZE", 2)
    verify = Verifier()
    auth = Authenticator(verify)
    for uid in ("a", "b", "c", "b", "a"):
        await auth.uid(f"Bearer {uid}")
    assert verify.calls == ["a", "b", "c", "a"]


class Guard:
    def __init__(self, allows: bool) -> None:
        self._allows = allows

    async def allows(self) -> bool:
        return self._allows


async def test_a_guard_that_refuses_makes_every_token_a_configuration_error() -> None:
    verify = Verifier()
    with pytest.raises(HttpError) as refused:
        await Authenticator(verify, Guard(False)).uid("Bearer alice")  # type: ignore[arg-type]
    assert (refused.value.status, refused.value.code) == (500, "configuration_error")
    assert verify.calls == []
    assert await Authenticator(verify, Guard(True)).uid("Bearer alice") == "alice"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:9099", True),
        ("127.8.9.1:1", True),
        ("localhost:9099", True),
        ("[::1]:9099", True),
        ("::1", True),
        ("0.0.0.0:9099", False),
        ("10.0.0.2:9099", False),
        ("auth.example:9099", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert _is_loopback(host) is loopback


def answering(payload: Any) -> Any:
    def urlopen(url: str, timeout: float) -> Any:
        answering.url = url  # type: ignore[attr-defined]
        return io.BytesIO(json.dumps(payload).encode())

    return urlopen


def test_without_the_emulator_host_signed_tokens_are_checked_and_allowed() -> None:
    assert EmulatorGuard("p", env={}).prove() is True


@pytest.mark.parametrize(
    ("env", "answer", "allowed"),
    [
        ({}, {"signIn": {"allowDuplicateEmails": False}}, True),
        ({}, {"signIn": "yes"}, False),  # not the emulator's config
        ({}, ["signIn"], False),
        ({"K_CONFIGURATION": "svc"}, {"signIn": {}}, False),  # on Cloud Run
    ],
)
def test_the_guard_allows_unsigned_tokens_only_under_the_emulator(
    env: dict[str, str], answer: Any, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("urllib.request.urlopen", answering(answer))
    guard = EmulatorGuard("demo-p", env={"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099", **env})
    assert guard.prove() is allowed
    if not env:
        assert answering.url == "http://127.0.0.1:9099/emulator/v1/projects/demo-p/config"  # type: ignore[attr-defined]


def test_the_guard_refuses_a_host_that_is_not_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("urllib.request.urlopen", answering({"signIn": {}}))
    assert EmulatorGuard("p", env={"FIREBASE_AUTH_EMULATOR_HOST": "0.0.0.0:9099"}).prove() is False


def test_the_guard_refuses_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(url: str, timeout: float) -> Any:
        raise ConnectionRefusedError

    monkeypatch.setattr("urllib.request.urlopen", refused)
    assert EmulatorGuard("p", env={"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9"}).prove() is False


async def test_a_failed_proof_is_not_tried_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[str] = []

    def refused(url: str, timeout: float) -> Any:
        tries.append(url)
        raise ConnectionRefusedError

    monkeypatch.setattr("urllib.request.urlopen", refused)
    guard = EmulatorGuard("p", env={"FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9"})
    assert await guard.allows() is False
    assert await guard.allows() is False
    assert len(tries) == 1


@pytest.mark.parametrize(
    ("expires_in", "issued_ago", "ok"),
    [
        (60, 0, True),
        (-60, 3600, False),  # expired
        (60, -600, False),  # issued in the future
        (None, 0, False),  # no expiry
    ],
)
def test_the_firebase_verifier_checks_the_times_itself(
    expires_in: int | None, issued_ago: int, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the Auth emulator on, firebase-admin checks neither exp nor iat.
    now = time.time()
    claims: dict[str, Any] = {"uid": "alice", "iat": now - issued_ago}
    if expires_in is not None:
        claims["exp"] = now + expires_in
    monkeypatch.setattr("firebase_admin.auth.verify_id_token", lambda *a, **k: claims)
    verify = firebase_verifier(app=None)
    if ok:
        assert verify("token") == ("alice", claims["exp"])
    else:
        with pytest.raises(ValueError):
            verify("token")


async def test_a_token_check_does_not_wait_behind_the_loops_default_pool() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    # Every thread of the default pool held, as PDF parsing in threads once held them.
    held = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        auth = Authenticator(Verifier())
        assert await asyncio.wait_for(auth.uid("Bearer alice"), 5) == "alice"
    finally:
        release.set()
        await asyncio.gather(*held)


async def test_a_burst_with_one_new_token_verifies_it_once_and_a_leaver_cancels_nothing() -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow_verify(token: str) -> Claims:
        calls.append(token)
        release.wait(5)
        return token, time.time() + 3600

    auth = Authenticator(slow_verify)
    waiters = [asyncio.create_task(auth.uid("Bearer carol")) for _ in range(50)]
    await asyncio.sleep(0.05)
    waiters[0].cancel()  # the first caller leaves while the check runs
    release.set()
    uids = await asyncio.gather(*waiters[1:])
    assert calls == ["carol"]
    assert set(uids) == {"carol"}
    assert waiters[0].cancelled()
