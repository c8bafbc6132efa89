"""What an upload reserves, and this instance's bounds on uploads before any body is read."""

from __future__ import annotations

import asyncio

import pytest

from promptstream import HttpError, Settings
from promptstream.knowledge._chunking import split_passages
from promptstream.run._uploads import UploadSlots, embedding_bound, upload_reservation
from promptstream.store._limits import LimitExceeded

SETTINGS = Settings()


@pytest.mark.parametrize(
    "text",
    [
        "Proofing takes longer in a cold kitchen. " * 500,
        "请总结以下文档的要点。" * 1000,
        "😀 " * 5000,
        "\n\n".join(f"Paragraph {n}, short." for n in range(1500)),
        "x" * 20_000,  # no space to cut at
    ],
)
def test_the_reservation_bounds_the_embedding_of_any_text_of_that_size(text: str) -> None:
    passages = split_passages(text, markdown=False, max_chars=1200, overlap_chars=150)
    size = len(text.encode())
    assert embedding_bound([p.embedding_text() for p in passages]) <= upload_reservation(
        size, SETTINGS
    )


def test_the_reservation_of_a_file_is_bounded_by_the_longest_text_allowed() -> None:
    cap = upload_reservation(4 * SETTINGS.max_document_chars, SETTINGS)
    assert upload_reservation(5 * 1024 * 1024, SETTINGS) == cap


def test_the_bound_counts_bytes_and_each_inputs_marks() -> None:
    assert embedding_bound(["ab", "é", "😀"]) == 2 + 2 + 4 + 3 * 2


async def test_a_users_uploads_past_the_limit_are_refused_at_once() -> None:
    slots = UploadSlots(Settings(max_concurrent_uploads=2))
    async with slots.slot("alice"), slots.slot("alice"):
        with pytest.raises(LimitExceeded) as refused:
            async with slots.slot("alice"):
                pass
        assert (refused.value.code, refused.value.retry_after) == ("concurrency_limit", 5)
        async with slots.slot("bob"):  # another user is not affected
            pass
    async with slots.slot("alice"), slots.slot("alice"):  # released
        pass


async def test_uploads_past_the_instances_bound_wait_their_turn_then_get_503() -> None:
    slots = UploadSlots(Settings(max_uploads_per_instance=1, upload_queue_timeout_seconds=0.2))
    async with slots.slot("alice"):
        waiting = asyncio.create_task(slots.slot("bob").__aenter__())
        with pytest.raises(HttpError) as busy:
            await waiting
        assert (busy.value.status, busy.value.retry_after) == (503, 5)
    async with slots.slot("bob"):  # bob's count went back down with the refusal
        pass
