"""Vector values in the codec (checked against google-cloud-firestore's own) and
``find_nearest`` over REST ``:runQuery`` against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import document
from google.cloud.firestore_v1.vector import Vector as OfficialVector
from google.protobuf import json_format

from promptstream.store._firestore import (
    FirestoreRest,
    Vector,
    decode_value,
    encode_fields,
    encode_value,
)
from support import PROJECT, FirestoreEmulator


def official_json(value: Any) -> dict[str, Any]:
    return json_format.MessageToDict(_helpers.encode_value(value)._pb)  # type: ignore[no-any-return]


def official_decode(value_json: dict[str, Any]) -> Any:
    pb = json_format.ParseDict(value_json, document.Value()._pb)
    return _helpers.decode_value(pb, client=None)


def test_a_vector_is_encoded_as_the_sdk_encodes_it_and_back() -> None:
    numbers = [0.25, -1.0, 3.5, 0.0]
    ours = encode_value(Vector(numbers))
    assert ours == official_json(OfficialVector(numbers))
    assert ours["mapValue"]["fields"]["__type__"] == {"stringValue": "__vector__"}
    assert decode_value(ours) == Vector(numbers)
    assert list(official_decode(ours)) == numbers
    assert decode_value(official_json(OfficialVector(numbers))).values == tuple(numbers)


def test_a_plain_map_with_other_fields_stays_a_map() -> None:
    value = {"__type__": "something else", "value": [1.0]}
    assert decode_value(encode_value(value)) == value


@pytest.fixture
async def rest(firestore_emulator: FirestoreEmulator, db: Any) -> AsyncIterator[FirestoreRest]:
    async with aiohttp.ClientSession() as session:
        yield FirestoreRest(PROJECT, session, emulator_host=firestore_emulator.host)


async def put(rest: FirestoreRest, path: str, **fields: Any) -> None:
    await rest.commit([{"update": {"name": rest.name(path), "fields": encode_fields(fields)}}])


async def test_find_nearest_orders_by_cosine_distance_within_the_prefilter(
    rest: FirestoreRest,
) -> None:
    await put(rest, "vecs/east", group="a", label="east", embedding=Vector([1, 0, 0]))
    await put(rest, "vecs/north", group="a", label="north", embedding=Vector([0, 1, 0]))
    await put(rest, "vecs/west", group="a", label="west", embedding=Vector([-1, 0, 0]))
    await put(rest, "vecs/east-b", group="b", label="east-b", embedding=Vector([1, 0, 0]))
    found = await rest.find_nearest(
        "vecs", "embedding", [1.0, 0.2, 0.0], limit=5, where_equal={"group": "a"}
    )
    assert [d.data["label"] for d in found if d.data] == ["east", "north", "west"]
    distances = [d.data["distance"] for d in found if d.data]
    assert distances == sorted(distances)
    assert distances[0] == pytest.approx(1 - 1 / (1.04**0.5), abs=1e-6)
    assert distances[-1] == pytest.approx(2 - distances[0], abs=1e-6)
    assert found[0].path == "vecs/east"
    assert isinstance(found[0].data and found[0].data["embedding"], Vector)


async def test_find_nearest_limit_select_and_two_equality_filters(rest: FirestoreRest) -> None:
    for i in range(6):
        await put(
            rest, f"vecs/v{i}", group="a", n=i % 2, label=f"v{i}", embedding=Vector([1, i, 0])
        )
    found = await rest.find_nearest(
        "vecs",
        "embedding",
        [1.0, 0.0, 0.0],
        limit=2,
        where_equal={"group": "a", "n": 1},
        select=["label"],
        distance_field="d",
    )
    assert [d.data for d in found] == [
        {"label": "v1", "d": pytest.approx(1 - 1 / 2**0.5)},
        {"label": "v3", "d": pytest.approx(1 - 1 / 10**0.5)},
    ]


async def test_run_query_returns_relative_paths_and_nothing_for_no_match(
    rest: FirestoreRest,
) -> None:
    await put(rest, "things/t1", kind="x")
    query = {
        "from": [{"collectionId": "things"}],
        "where": {
            "fieldFilter": {
                "field": {"fieldPath": "kind"},
                "op": "EQUAL",
                "value": {"stringValue": "x"},
            }
        },
    }
    [found] = await rest.run_query(query)
    assert (found.path, found.data) == ("things/t1", {"kind": "x"})
    query["where"]["fieldFilter"]["value"] = {"stringValue": "y"}
    assert await rest.run_query(query) == []


async def test_commit_returns_each_writes_update_time(rest: FirestoreRest) -> None:
    times = await rest.commit(
        [
            {"update": {"name": rest.name("things/a"), "fields": {}}},
            {"delete": rest.name("things/b")},
        ]
    )
    assert len(times) == 2 and times[0] is not None and times[0].endswith("Z")
