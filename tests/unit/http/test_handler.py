"""The two execution endpoints, called in-process as ASGI apps on a Service whose parts
are injected (support.fakes: a FakeStore, a token check that takes the token for the
uid, a FakeClient for the upstream): the order of the checks, what each refusal writes
(nothing), and how a stream, an upstream refusal and a disconnect end the record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from promptstream import (
    MidStreamError,
    PaymentRequiredError,
    RateLimitError,
    StreamChunk,
    execute_app,
    stream_app,
)
from support import body
from support.fakes import API_KEY, FakeStream, UnitService, asgi_call, chunk
from support.http import Reply

ALICE = {"authorization": "Bearer alice", "content-type": "application/json"}


async def asgi_post(
    app: object = stream_app,
    payload: bytes | None = None,
    headers: dict[str, str] = ALICE,
    **kwargs: object,
) -> Reply:
    payload = body(variables={"topic": "owls"}) if payload is None else payload
    return await asgi_call(app, "POST", payload, headers, **kwargs)  # type: ignore[arg-type]


def assert_nothing_written(service: UnitService) -> None:
    assert service.fake_store.records == {} and service.fake_store.limits == {}
    assert service.fake_client.calls == []


# -- before any work ---------------------------------------------------------------------


def no_service() -> None:
    raise AssertionError("the service was asked for")


async def test_the_health_probe_touches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("promptstream.http._endpoint.get_service", no_service)
    got = await asgi_call(stream_app, "GET", path="/__/health")
    assert (got.status, got.raw) == (200, b"ok")


async def test_a_preflight_is_answered_without_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("promptstream.http._endpoint.get_service", no_service)
    got = await asgi_call(execute_app, "OPTIONS")
    assert got.status == 204 and got.raw == b""


async def test_other_methods_are_405_naming_post(service: UnitService) -> None:
    got = await asgi_call(stream_app, "PUT", b"{}", ALICE)
    assert got.status == 405
    assert got.error()["code"] == "method_not_allowed"
    assert got.headers["Allow"] == "POST, OPTIONS"
    assert_nothing_written(service)


async def test_no_api_key_is_a_configuration_error_before_the_token(service: UnitService) -> None:
    service.api_key = None
    got = await asgi_post(headers={"content-type": "application/json"})
    assert (got.status, got.error()["code"]) == (500, "configuration_error")
    assert_nothing_written(service)


async def test_a_declared_length_over_the_limit_is_413_and_closes(service: UnitService) -> None:
    too_long = str(service.settings.max_body_bytes + 1)
    got = await asgi_post(headers={**ALICE, "content-length": too_long})
    assert (got.status, got.error()["code"]) == (413, "payload_too_large")
    assert got.headers["Connection"] == "close"
    assert_nothing_written(service)


@pytest.mark.parametrize("token", [None, "Bearer bad"])
async def test_no_valid_token_is_401(service: UnitService, token: str | None) -> None:
    headers = {"content-type": "application/json", **({"authorization": token} if token else {})}
    got = await asgi_post(headers=headers)
    assert (got.status, got.error()["code"]) == (401, "unauthenticated")
    assert_nothing_written(service)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"[]", 400, "invalid_request"),
        (body(variables={"topic": "x"}, model="not/allowed"), 400, "model_not_allowed"),
        (body("nope", variables={"topic": "x"}), 404, "prompt_not_found"),
        (body(variables={"zzz": "x"}), 400, "unknown_variables"),
    ],
)
async def test_a_refused_request_writes_nothing_and_calls_no_upstream(
    service: UnitService, payload: bytes, status: int, code: str
) -> None:
    got = await asgi_post(payload=payload)
    assert (got.status, got.error()["code"]) == (status, code)
    assert_nothing_written(service)


async def test_a_user_over_the_limit_is_429_with_retry_after(service: UnitService) -> None:
    service.fake_store.limits["alice"] = {"leases": {f"e{i}": 10**13 for i in range(5)}}
    got = await asgi_post()
    assert (got.status, got.error()["code"]) == (429, "concurrency_limit")
    assert got.headers["Retry-After"] == "5"
    assert service.fake_client.calls == []


async def test_past_the_users_rate_it_is_429_before_the_body_and_closes(
    service: UnitService,
) -> None:
    burst = service.settings.open_rate_burst
    for _ in range(burst):
        assert (await asgi_post(execute_app)).status == 200
    got = await asgi_post(payload=b"not even JSON")  # refused before the body is read
    assert (got.status, got.error()["code"]) == (429, "rate_limited")
    assert int(got.headers["Retry-After"]) >= 1
    assert got.headers["Connection"] == "close"
    assert len(service.fake_store.records) == len(service.fake_client.calls) == burst
    bob = {**ALICE, "authorization": "Bearer bob"}
    assert (
        await asgi_post(payload=body("pub", variables={"topic": "x"}), headers=bob)
    ).status == 200


async def test_a_store_that_cannot_open_is_503_and_nothing_goes_upstream(
    service: UnitService, capsys: pytest.CaptureFixture[str]
) -> None:
    service.fake_store.fail_open = ConnectionError("firestore unreachable")
    got = await asgi_post()
    assert (got.status, got.error()["code"]) == (503, "unavailable")
    assert service.fake_client.calls == []
    assert "request failed" in capsys.readouterr().err


# -- the stream --------------------------------------------------------------------------


async def test_a_stream_relays_the_chunks_and_completes_the_record(service: UnitService) -> None:
    got = await asgi_post(payload=body(variables={"topic": "owls"}, max_tokens=50))
    assert got.status == 200
    assert got.headers["Content-Type"].startswith("text/event-stream")
    assert got.kinds == ["start", "message", "message", "end", "message"]
    [start] = got.named("start")
    assert start["execution_id"] == got.headers["X-Execution-Id"] == "e1"
    assert got.text() == "Hi!" and got.events[-1].data == "[DONE]"
    record = service.fake_store.records["e1"]
    assert (record["status"], record["output"], record["usage"]) == (
        "completed",
        "Hi!",
        {"total_tokens": 3},
    )
    assert service.fake_store.limits["alice"]["leases"] == {}
    [(user_prompt, system, context, overrides)] = service.fake_client.calls
    assert (user_prompt, system, context) == ("Tell me about owls.", None, None)
    assert overrides == {
        "model": service.settings.default_model,
        "fallbacks": (),
        "history": (),
        "max_tokens": 50,
        "temperature": None,
    }
    assert service.fake_client.stream.closed


async def test_a_public_prompt_of_someone_else_runs(service: UnitService) -> None:
    got = await asgi_post(payload=body("pub", variables={"topic": "x"}))
    assert got.status == 200 and got.named("end")
    assert service.fake_store.records["e1"]["owner_uid"] == "alice"


async def test_an_upstream_refusal_before_content_is_its_status_and_redacted(
    service: UnitService,
) -> None:
    refusal = PaymentRequiredError(f"key {API_KEY} has no credits", status_code=402)
    service.fake_client.stream = FakeStream([], refusal=refusal)
    got = await asgi_post()
    assert got.status == 402
    error = got.error()
    assert error["code"] == "out_of_credits" and API_KEY not in error["message"]
    record = service.fake_store.records["e1"]
    assert (record["status"], record["error_code"]) == ("error", "out_of_credits")
    assert API_KEY not in record["error_message"]
    assert service.fake_store.limits["alice"]["leases"] == {}


async def test_an_error_mid_stream_is_an_error_event_and_keeps_the_partial(
    service: UnitService,
) -> None:
    error = MidStreamError("provider broke", partial="a b")
    service.fake_client.stream = FakeStream([[chunk("a "), chunk("b")]], error=error)
    got = await asgi_post()
    assert got.status == 200
    assert got.kinds == ["start", "message", "message", "error", "message"]
    assert got.named("error")[0]["code"] == "upstream_error"
    record = service.fake_store.records["e1"]
    assert (record["status"], record["output"]) == ("error", "a b")


class Crashing(FakeStream):
    async def _run(self) -> AsyncIterator[StreamChunk]:
        yield chunk("a")
        raise KeyError("a bug in the relay")


async def test_a_bug_mid_stream_is_an_internal_error_event_without_details(
    service: UnitService, capsys: pytest.CaptureFixture[str]
) -> None:
    service.fake_client.stream = Crashing([])
    got = await asgi_post()
    assert got.kinds[-2:] == ["error", "message"]
    assert got.named("error")[0]["code"] == "internal"
    assert "KeyError" not in got.raw.decode()
    assert service.fake_store.records["e1"]["error_code"] == "internal"
    assert "relay failed" in capsys.readouterr().err


class Endless(FakeStream):
    async def _run(self) -> AsyncIterator[StreamChunk]:
        yield chunk("first ")
        self.yielded.set()
        await asyncio.sleep(60)
        yield chunk("never")

    def __init__(self) -> None:
        super().__init__([])
        self.yielded = asyncio.Event()


async def test_a_disconnect_cancels_the_stream_and_the_record_ends_cancelled(
    service: UnitService,
) -> None:
    stream = Endless()
    service.fake_client.stream = stream
    gone = asyncio.Event()
    task = asyncio.create_task(asgi_post(disconnect=gone))
    await asyncio.wait_for(stream.yielded.wait(), 5)
    gone.set()
    got = await asyncio.wait_for(task, 5)
    assert got.status == 200
    assert stream.aborted and stream.closed
    record = service.fake_store.records["e1"]
    assert (record["status"], record["output"]) == ("cancelled", "first ")
    assert service.fake_store.limits["alice"]["leases"] == {}


# -- the non-streaming sibling --------------------------------------------------------


async def test_execute_returns_the_whole_answer_as_json(service: UnitService) -> None:
    got = await asgi_post(execute_app)
    assert got.status == 200
    answer = got.json
    assert (answer["execution_id"], answer["content"], answer["finish_reason"]) == (
        "e1",
        "whole",
        "stop",
    )
    assert "sources" not in answer
    record = service.fake_store.records["e1"]
    assert (record["status"], record["output"]) == ("completed", "whole")


async def test_execute_maps_an_upstream_error_to_its_status(service: UnitService) -> None:
    service.fake_client.error = RateLimitError("slow down", status_code=429, retry_after=7)
    got = await asgi_post(execute_app)
    assert (got.status, got.error()["code"], got.headers["Retry-After"]) == (
        429,
        "rate_limited",
        "7",
    )
    assert service.fake_store.records["e1"]["error_code"] == "rate_limited"


async def test_execute_answers_a_bug_with_an_internal_error(
    service: UnitService, capsys: pytest.CaptureFixture[str]
) -> None:
    service.fake_client.error = ZeroDivisionError()
    got = await asgi_post(execute_app)
    assert (got.status, got.error()["code"]) == (500, "internal")
    assert service.fake_store.records["e1"]["status"] == "error"
    assert "execution failed" in capsys.readouterr().err
