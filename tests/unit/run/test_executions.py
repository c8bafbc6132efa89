"""Execution records with the store injected (a FakeStore): the checks that need the
prompt, what the record is opened with and reserves, and how it is finished, logged and,
when the final commit fails, settled apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from promptstream import ExecuteRequest, HttpError, Settings
from promptstream.knowledge._passages import Source
from promptstream.run._executions import Execution, Executions, Outcome, prepare
from support.fakes import FakeStore, declared, prompt

SETTINGS = Settings(max_prompt_chars=200, max_context_chars=100, record_text_chars=10)


def request(**fields: Any) -> ExecuteRequest:
    return ExecuteRequest(prompt_id="p1", **{"variables": {"topic": "owls"}, **fields})


def test_someone_elses_private_prompt_is_not_found_like_a_missing_one() -> None:
    for found in (None, prompt(owner_uid="bob")):
        with pytest.raises(HttpError) as refused:
            prepare("alice", request(), found, SETTINGS)
        assert (refused.value.status, refused.value.code) == (404, "prompt_not_found")
    assert prepare("alice", request(), prompt(owner_uid="bob", public=True), SETTINGS)


@pytest.mark.parametrize(
    ("content", "variables", "code", "details"),
    [
        ("{{a}} {{b}}", {}, "missing_variables", {"missing": ["a", "b"]}),
        ("{{a}}", {"a": "1", "z": "2"}, "unknown_variables", {"unknown": ["z"]}),
        ("{{__x__}}", {}, "invalid_variable_names", {"invalid": ["__x__"]}),
    ],
)
def test_variable_errors_name_the_variables(
    content: str, variables: dict[str, str], code: str, details: dict[str, Any]
) -> None:
    with pytest.raises(HttpError) as refused:
        prepare("alice", request(variables=variables), prompt(content), SETTINGS)
    assert (refused.value.status, refused.value.code, refused.value.details) == (
        400,
        code,
        details,
    )


def test_the_render_fills_defaults_and_records_only_what_it_used() -> None:
    found = prompt(
        "Hi {{name}}",
        system_prompt="Be {{tone}}.",
        variables=[declared("tone", default="kind"), declared("unused", default="u" * 50)],
    )
    ex = prepare("alice", request(variables={"name": "Ann"}), found, SETTINGS)
    assert (ex.user_prompt, ex.system_prompt) == ("Hi Ann", "Be kind.")
    assert ex.values == {"name": "Ann", "tone": "kind"}
    assert ex.prompt_tokens > 0
    assert ex.overrides(77) == {
        "model": SETTINGS.default_model,
        "max_tokens": 77,
        "temperature": None,
    }
    assert (
        prepare("alice", request(max_tokens=5), prompt(), SETTINGS).overrides(77)["max_tokens"] == 5
    )


def test_the_context_and_its_framing_count_against_the_prompt_limit() -> None:
    with pytest.raises(HttpError) as refused:
        prepare("alice", request(context="c" * 101), prompt(), SETTINGS)
    assert refused.value.code == "prompt_too_large"
    # 95 characters of context fit alone, but not with the prompt and the framing.
    with pytest.raises(HttpError):
        prepare("alice", request(context="c" * 95), prompt("x" * 100), SETTINGS)


def test_the_request_s_documents_and_top_k_win_within_the_bounds() -> None:
    settings = Settings(max_documents_per_prompt=2, retrieval_top_k_max=3)
    found = prompt(
        "Q: {{q}}",
        variables=[declared("q", required=False)],
        document_ids=("d1", "../bad", "d1", "d2", "d3"),
        top_k=2,
        retrieval_query_variable="q",
    )
    ex = prepare("alice", request(variables={"q": "cost?"}), found, settings)
    assert (ex.document_ids, ex.top_k, ex.query) == (("d1", "d2"), 2, "cost?")
    ex = prepare(
        "alice", request(variables={"q": " "}, document_ids=["d9"], top_k=9), found, settings
    )
    assert (ex.document_ids, ex.top_k, ex.query) == (("d9",), 3, "Q:  ")


@pytest.mark.parametrize(
    ("content", "query_variable", "values", "query"),
    [
        # The named variable wins.
        ("Answer {{q}} for {{who}}", "q", {"q": "cost?", "who": "Ann"}, "cost?"),
        # None named: the values, in the order the template uses them, not the template.
        ("Answer {{q}} for {{who}}", None, {"q": "cost?", "who": "Ann"}, "cost?\nAnn"),
        ("Please answer, with care: {{q}}", None, {"q": "cost?"}, "cost?"),
        # A named variable left blank: the other values.
        ("{{q}} {{who}}", "q", {"q": " ", "who": "Ann"}, "Ann"),
        # Blank values, or no variables at all: the rendered prompt.
        ("Q: {{q}}", None, {"q": " "}, "Q:  "),
        ("What is the refund policy?", None, {}, "What is the refund policy?"),
    ],
)
def test_the_query_is_the_chosen_variable_else_the_values_else_the_prompt(
    content: str, query_variable: str | None, values: dict[str, str], query: str
) -> None:
    found = prompt(
        content,
        variables=[declared(name, required=False) for name in values],
        document_ids=("d1",),
        retrieval_query_variable=query_variable,
    )
    assert prepare("alice", request(variables=values), found, Settings()).query == query


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
