"""The SSE decoder against the WHATWG spec's examples, every split, and random re-chunking."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream import ServerSentEvent, SSEDecoder, SSELimitError, encode_comment, encode_event
from support import examples

E = ServerSentEvent


def decode_all(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.close())
    return events


# (name, stream bytes, expected events). Expectations are written from the spec text.
SPEC_CASES: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    (
        "spec example: stock ticker multi-line data",
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [E(data="YHOO\n+2\n10")],
    ),
    (
        "spec example: comment, ids and events",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        [E(data="first event", id="1"), E(data="second event", id=""), E(data=" third event")],
    ),
    (
        "spec example: empty data fields",
        b"data\n\ndata\ndata\n\ndata:\n",
        [E(data=""), E(data="\n")],
    ),
    (
        "spec example: space after colon is optional",
        b"data:test\n\ndata: test\n\n",
        [E(data="test"), E(data="test")],
    ),
    ("CR line ends", b"data: a\r\rdata: b\r\r", [E(data="a"), E(data="b")]),
    ("CRLF line ends", b"data: a\r\n\r\ndata: b\r\n\r\n", [E(data="a"), E(data="b")]),
    ("mixed line ends", b"data: a\r\ndata: b\rdata: c\n\r\n", [E(data="a\nb\nc")]),
    ("named event", b"event: error\ndata: {}\n\n", [E(data="{}", event="error")]),
    (
        "event name resets after dispatch",
        b"event: x\ndata: 1\n\ndata: 2\n\n",
        [E(data="1", event="x"), E(data="2")],
    ),
    ("event without data is not dispatched", b"event: x\n\ndata: 2\n\n", [E(data="2")]),
    ("retry field", b"retry: 3000\ndata: r\n\n", [E(data="r", retry=3000)]),
    ("bad retry ignored", b"retry: 3s\ndata: r\n\n", [E(data="r")]),
    (
        "id with NUL ignored",
        b"id: 7\ndata: a\n\nid: x\x00y\ndata: b\n\n",
        [E(data="a", id="7"), E(data="b", id="7")],
    ),
    ("id persists", b"id: 5\ndata: a\n\ndata: b\n\n", [E(data="a", id="5"), E(data="b", id="5")]),
    ("leading BOM stripped", b"\xef\xbb\xbfdata: x\n\n", [E(data="x")]),
    ("only one space stripped", b"data:   x\n\n", [E(data="  x")]),
    ("unknown field ignored", b"foo: bar\ndata: x\n\n", [E(data="x")]),
    ("field with no colon", b"data\n\n", [E(data="")]),
    (
        "OpenRouter keep-alive comments are never content",
        b': OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: {"a":1}\n\n',
        [E(data='{"a":1}')],
    ),
    ("unterminated event at EOF is discarded", b"data: a\n\ndata: b\n", [E(data="a")]),
    ("utf-8 content", "data: héllo — 世界 🎉\n\n".encode(), [E(data="héllo — 世界 🎉")]),
    ("long line, no limit", b"data: " + b"x" * 1_000_000 + b"\n\n", [E(data="x" * 1_000_000)]),
]


@pytest.mark.parametrize(("name", "stream", "expected"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_cases_decode_whole(name: str, stream: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode_all([stream]) == expected


@pytest.mark.parametrize(
    ("name", "stream", "expected"),
    [c for c in SPEC_CASES if len(c[1]) < 5000],
    ids=[c[0] for c in SPEC_CASES if len(c[1]) < 5000],
)
def test_every_split_point_gives_the_same_events(
    name: str, stream: bytes, expected: list[ServerSentEvent]
) -> None:
    for i in range(len(stream) + 1):
        assert decode_all([stream[:i], stream[i:]]) == expected, f"split at {i}"


def test_one_byte_at_a_time() -> None:
    stream = "data: 世界\r\n\r\nevent: e\rdata: 🎉\r\r".encode()
    assert decode_all([bytes([b]) for b in stream]) == [E(data="世界"), E(data="🎉", event="e")]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF completes the CRLF of the data line; the next CR is the blank line.
    assert decoder.feed(b"\n\r") == [E(data="a")]
    assert decoder.feed(b"\ndata: b\n\n") == [E(data="b")]


def test_cr_then_partial_line_does_not_swallow_next_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\rdat") == []
    assert decoder.feed(b"a: b\n\n") == [E(data="a\nb")]


def test_cr_then_unfinished_line_then_lf_ends_that_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\rdata: b") == []
    # This LF ends "data: b"; it is not the second half of the earlier CR.
    assert decoder.feed(b"\n\n") == [E(data="a\nb")]


def test_bom_split_across_reads() -> None:
    assert decode_all([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [E(data="x")]


def test_bom_only_stripped_at_start() -> None:
    events = decode_all([b"data: a\n\n\xef\xbb\xbfdata: b\n\n"])
    # A BOM later in the stream is part of the field name, so that line is ignored.
    assert events == [E(data="a")]


def test_comments_are_counted_not_emitted() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": ping\n: ping\n\n") == []
    assert decoder.comments == 2


# -- size limits -------------------------------------------------------------------

LIMITED = {"max_line_bytes": 64, "max_event_bytes": 100}


@pytest.mark.parametrize(
    ("name", "stream", "expected"),
    [
        ("a line of exactly the limit", b"data: " + b"x" * 58 + b"\n\n", [E(data="x" * 58)]),
        ("CRLF does not count", b"data: " + b"x" * 58 + b"\r\n\r\n", [E(data="x" * 58)]),
        (
            "data lines of an event add up",
            (b"data: " + b"x" * 44 + b"\n") * 2 + b"\n",
            [E(data="x" * 44 + "\n" + "x" * 44)],
        ),
        (
            "the count starts again per event",
            (b"data: " + b"x" * 50 + b"\n\n") * 3,
            [E(data="x" * 50)] * 3,
        ),
        (
            "comments count as lines only",
            b": " + b"c" * 62 + b"\n" * 200 + b"data: y\n\n",
            [E(data="y")],
        ),
    ],
    ids=lambda c: c if isinstance(c, str) else "",
)
def test_streams_within_the_limits_decode_at_every_split(
    name: str, stream: bytes, expected: list[ServerSentEvent]
) -> None:
    for i in range(len(stream) + 1):
        decoder = SSEDecoder(**LIMITED)
        assert decoder.feed(stream[:i]) + decoder.feed(stream[i:]) == expected, f"split at {i}"


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"data: " + b"x" * 59 + b"\n\n", id="one line one byte too long"),
        pytest.param(b"data: " + b"x" * 59, id="unfinished line too long"),
        pytest.param(b"data: " + b"x" * 10_000_000, id="endless line"),
        pytest.param(b": " + b"c" * 63 + b"\n", id="long comment"),
        pytest.param((b"data: " + b"x" * 40 + b"\n") * 3 + b"\n", id="event data too long"),
    ],
)
def test_a_line_or_event_over_the_limit_fails_at_every_split(stream: bytes) -> None:
    for i in range(0, len(stream) + 1, max(1, len(stream) // 97)):
        decoder = SSEDecoder(**LIMITED)
        with pytest.raises(SSELimitError):
            decoder.feed(stream[:i])
            decoder.feed(stream[i:])


def test_an_endless_line_fails_once_past_the_limit_without_reading_on() -> None:
    decoder = SSEDecoder(max_line_bytes=1 << 20)
    piece = b"x" * 65536
    fed = 0
    with pytest.raises(SSELimitError):
        for _ in range(10_000):
            fed += len(piece)
            decoder.feed(piece)
    assert fed == (1 << 20) + 65536


def test_a_long_line_in_small_reads_costs_linear_time() -> None:
    # 16 MiB in 16 KiB reads, no limit: joining the whole buffer again for every read
    # (as the decoder once did) copies about 8 GiB and takes seconds; pieces joined
    # once take milliseconds. The bound leaves a wide margin for a busy machine.
    decoder = SSEDecoder()
    piece = b"y" * 16384
    started = time.process_time()
    assert decoder.feed(b"data: ") == []
    for _ in range(1024):
        assert decoder.feed(piece) == []
    events = decoder.feed(b"\n\n")
    elapsed = time.process_time() - started
    assert len(events) == 1 and len(events[0].data) == 16 * 1024 * 1024
    assert elapsed < 1.5


# -- property-based ----------------------------------------------------------------

_field_values = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=30,
)
_events = st.lists(
    st.tuples(
        st.sampled_from([None, "message", "error", "end"]),
        st.lists(_field_values, min_size=1, max_size=3),
    ),
    max_size=8,
)
_newline = st.sampled_from(["\n", "\r", "\r\n"])


def _render(events: list[tuple[str | None, list[str]]], nl: str) -> bytes:
    out = []
    for name, lines in events:
        if name is not None:
            out.append(f"event:{name}{nl}")
        for line in lines:
            out.append(f"data:{line}{nl}")
        out.append(nl)
    return "".join(out).encode()


@settings(max_examples=examples(150), deadline=None)
@given(events=_events, nl=_newline, cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_random_rechunking_never_changes_the_events(
    events: list[tuple[str | None, list[str]]], nl: str, cuts: list[int]
) -> None:
    stream = _render(events, nl)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    # The spec strips exactly one space after the colon.
    expected = [
        E(data="\n".join(v[1:] if v.startswith(" ") else v for v in lines), event=name or "message")
        for name, lines in events
    ]
    assert decode_all([stream]) == expected
    assert decode_all(pieces) == expected


@settings(max_examples=examples(300), deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_never_crash_and_split_invariant(data: bytes, cuts: list[int]) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert decode_all(pieces) == decode_all([data])


# -- encoder -------------------------------------------------------------------------

ENCODER_CASES = [
    ({"data": "hello"}, b"data: hello\n\n"),
    ({"data": "a\nb"}, b"data: a\ndata: b\n\n"),
    ({"data": "a\r\nb\rc"}, b"data: a\ndata: b\ndata: c\n\n"),
    ({"data": "x", "event": "error"}, b"event: error\ndata: x\n\n"),
    ({"data": "x", "id": 3}, b"id: 3\ndata: x\n\n"),
    ({"data": "x", "id": "a\nb", "event": "e\r\nf"}, b"id: ab\nevent: ef\ndata: x\n\n"),
    ({"data": "x", "retry": 1500}, b"retry: 1500\ndata: x\n\n"),
    ({"data": ""}, b"data: \n\n"),
]


@pytest.mark.parametrize(("kwargs", "expected"), ENCODER_CASES)
def test_encoder_exact_bytes(kwargs: dict[str, object], expected: bytes) -> None:
    data = kwargs.pop("data")
    assert encode_event(str(data), **kwargs) == expected  # type: ignore[arg-type]


def test_encoder_comment() -> None:
    assert encode_comment("ping") == b": ping\n\n"
    assert encode_comment() == b":\n\n"


@settings(max_examples=examples(200), deadline=None)
@given(data=st.text(max_size=200), event=st.sampled_from([None, "error", "end"]))
def test_encoder_round_trips_through_decoder(data: str, event: str | None) -> None:
    decoded = decode_all([encode_event(data, event=event)])
    # Line ends inside data are normalised to LF by the protocol itself.
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decoded == [E(data=normalised, event=event or "message")]
