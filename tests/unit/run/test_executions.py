"""Execution records with the store injected (a FakeStore): what the record is opened
with and reserves, and how it is finished, logged and, when the final commit fails,
settled apart. (The checks that need the prompt: test_prepare.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from promptstream import ExecuteRequest, HttpError, Settings
from promptstream.knowledge._passages import Source
from promptstream.run._executions import Executions
from promptstream.run._prepare import Execution, Outcome
from support.fakes import FakeStore, prompt

SETTINGS = Settings(max_prompt_chars=200, max_context_chars=100, record_text_chars=10)


def request(**fields: Any) -> ExecuteRequest:
    return ExecuteRequest(prompt_id="p1", **{"variables": {"topic": "owls"}, **fields})


async def test_open_writes_the_record_and_reserves_the_prompt_and_max_tokens() -> None:
    store = FakeStore(SETTINGS, {"p1": prompt()})
    executions = Executions(SETTINGS, store, str)  # type: ignore[arg-type]
    ex = await executions.open("alice", request(max_tokens=100))
    assert ex.execution_id == "e1"
    record = store.records["e1"]
    assert (record["status"], record["prompt_id"], record["variables"]) == (
        "streaming",
        "p1",
        {"topic": "owls"},
    )
    assert store.limits["alice"]["reserved"] == {"e1": ex.prompt_tokens + 100}


async def test_a_refusal_at_open_writes_nothing() -> None:
    store = FakeStore(SETTINGS, {"p1": prompt(owner_uid="bob")})
    with pytest.raises(HttpError):
        await Executions(SETTINGS, store, str).open("alice", request())  # type: ignore[arg-type]
    assert store.records == {} and store.limits == {}


async def opened(settings: Settings = SETTINGS) -> tuple[FakeStore, Executions, Execution]:
    store = FakeStore(settings, {"p1": prompt()})
    executions = Executions(settings, store, lambda text: text.replace("SECRET", "[key]"))  # type: ignore[arg-type]
    return store, executions, await executions.open("alice", request())


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_finish_debits_the_reported_usage_and_logs_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, executions, ex = await opened()
    outcome = Outcome("completed", output="short", usage={"total_tokens": 42}, finish_reason="stop")
    await executions.finish(ex, outcome)
    record = store.records[ex.execution_id]
    assert (record["status"], record["output"], record["tokens_debited"]) == (
        "completed",
        "short",
        42,
    )
    assert (record["truncated"], record["error_code"], record["finish_reason"]) == (
        False,
        None,
        "stop",
    )
    assert store.limits["alice"]["leases"] == {} and store.limits["alice"]["tokens_today"] == 42
    [line] = log_lines(capsys.readouterr().out)
    assert (line["message"], line["status"], line["tokens"], line["usage_reported"]) == (
        "execution",
        "completed",
        42,
        True,
    )
    assert "prompt" not in line


async def test_without_usage_an_estimate_is_debited_and_the_error_logged_as_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, executions, ex = await opened()
    outcome = Outcome("error", output="partial text", error=("upstream_error", "broke"))
    await executions.finish(ex, outcome)
    record = store.records[ex.execution_id]
    assert record["tokens_debited"] > ex.prompt_tokens  # the prompt and the partial output
    assert (record["error_code"], record["error_message"]) == ("upstream_error", "broke")
    [line] = log_lines(capsys.readouterr().err)
    assert (line["severity"], line["usage_reported"]) == ("WARNING", False)


async def test_a_long_answer_is_cut_in_the_record_which_says_so() -> None:
    store, executions, ex = await opened()
    await executions.finish(ex, Outcome("completed", output="o" * 8, reasoning="r" * 8))
    record = store.records[ex.execution_id]
    assert (record["output"], record["reasoning"], record["truncated"]) == ("o" * 8, "rr", True)


async def test_debug_logging_adds_the_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    _, executions, ex = await opened(SETTINGS.model_copy(update={"debug_logging": True}))
    await executions.finish(ex, Outcome("cancelled"))
    [line] = log_lines(capsys.readouterr().out)
    assert line["prompt"] == "Tell me about owls."


async def test_a_failed_final_commit_releases_the_lease_apart_and_writes_a_short_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, executions, ex = await opened()
    store.fail_finish = True
    await executions.finish(ex, Outcome("completed", output="text", usage={"total_tokens": 9}))
    record = store.records[ex.execution_id]
    assert record["status"] == "completed" and record["truncated"] is True
    assert record["output"] == ""  # the short record leaves the output out
    assert store.limits["alice"]["leases"] == {} and store.limits["alice"]["tokens_today"] == 9
    messages = [line["message"] for line in log_lines(capsys.readouterr().err)]
    assert messages[:2] == ["record not finalised", "lease released apart"]


async def test_a_lease_already_released_is_not_debited_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, executions, ex = await opened()
    await store.release(uid="alice", execution_id=ex.execution_id, tokens=9)
    store.fail_finish = True
    await executions.finish(ex, Outcome("completed", usage={"total_tokens": 9}))
    assert store.limits["alice"]["tokens_today"] == 9
    assert "lease already released" in capsys.readouterr().err


async def test_a_record_the_repair_ended_first_keeps_its_end_and_is_debited_nothing_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, executions, ex = await opened()
    # The repair judged the execution dead: interrupted, debited, the lease released.
    store.records[ex.execution_id].update(status="interrupted", output="part")
    await store.release(uid="alice", execution_id=ex.execution_id, tokens=7)
    await executions.finish(ex, Outcome("completed", output="whole", usage={"total_tokens": 9}))
    record = store.records[ex.execution_id]
    assert (record["status"], record["output"]) == ("interrupted", "part")
    assert store.limits["alice"]["tokens_today"] == 7
    logged = capsys.readouterr()
    [warning] = log_lines(logged.err)
    assert warning["message"] == "record finished by the repair already"
    [line] = log_lines(logged.out)
    assert (line["message"], line["tokens"]) == ("execution", 0)


async def test_the_record_keeps_the_prompt_s_estimate_for_the_repair() -> None:
    store, _, ex = await opened()
    assert store.records[ex.execution_id]["prompt_tokens_estimate"] == ex.prompt_tokens


async def test_the_sources_and_the_query_s_tokens_go_into_the_record() -> None:
    store = FakeStore(SETTINGS, {"p1": prompt(document_ids=("d1",))})
    executions = Executions(SETTINGS.model_copy(update={"record_source_chars": 3}), store, str)  # type: ignore[arg-type]
    ex = await executions.open("alice", request())
    ex.sources = [Source("d1", "Doc", 0, "H", "passage text", 0.9)]
    ex.retrieval_tokens = 4
    await executions.finish(ex, Outcome("completed", usage={"total_tokens": 10}))
    record = store.records[ex.execution_id]
    assert record["document_ids"] == ["d1"]
    assert [s["text"] for s in record["sources"]] == ["pas"]
    assert (record["retrieval_tokens"], record["tokens_debited"]) == (4, 14)
    assert ex.upstream_prompt.endswith("Tell me about owls.")
    assert "passage text" in ex.upstream_prompt


def test_log_failure_redacts_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    executions = Executions(SETTINGS, FakeStore(SETTINGS), lambda t: t.replace("SECRET", "[key]"))  # type: ignore[arg-type]
    try:
        raise RuntimeError("the key SECRET leaked")
    except RuntimeError:
        executions.log_failure("boom")
    [line] = log_lines(capsys.readouterr().err)
    assert line["message"] == "boom" and line["severity"] == "ERROR"
    assert "[key]" in line["traceback"] and "SECRET" not in line["traceback"]
