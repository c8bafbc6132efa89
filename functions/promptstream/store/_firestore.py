"""The two kinds of Firestore call the relay makes (a batch read, a commit), over
Firestore's REST API on the request's loop.

Opening an execution reads two documents and commits two writes; closing it commits two
more. Here they are JSON over one aiohttp session on the loop, rather than
google-cloud-firestore's gRPC clients: the sync one and the async one alike cost the
instance far more CPU per execution, taken from the core that relays every stream
(docs/adr/0001-firestore-over-rest.md).

Documents are JSON objects of Firestore's ``Value`` type; ``encode_value`` and
``decode_value`` convert them to and from plain Python values.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from .._config import DEFAULTS
from .._json import dumps, loads

__all__ = [
    "Document",
    "FirestoreError",
    "FirestoreRest",
    "Vector",
    "decode_value",
    "encode_value",
    "field_path",
    "structured_query",
]

_PRODUCTION_URL = "https://firestore.googleapis.com"
_SCOPES = ("https://www.googleapis.com/auth/datastore",)
# Errors a read may be retried on: the request was not served.
_RETRY_READ = {429, 500, 502, 503, 504}
_SIMPLE_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_INT64 = (-(2**63), 2**63 - 1)
_JSON = "application/json"
# Reads and commits before a conditional commit is given up on (each loser reads again).
_ATTEMPTS = 20
R = TypeVar("R")
Step = Callable[[], Awaitable[tuple[list[dict[str, Any]], R]]]


class FirestoreError(Exception):
    """A refusal from Firestore: its HTTP status and canonical status name."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(f"Firestore {http_status} {status}: {message}")
        self.http_status = http_status
        self.status = status
        self.message = message

    @property
    def conflict(self) -> bool:
        """A precondition failed, so nothing was written: read again and retry."""
        return self.status in {"FAILED_PRECONDITION", "ALREADY_EXISTS", "ABORTED"}


@dataclass(frozen=True, slots=True)
class Document:
    """One read: ``data`` is ``None`` when the document does not exist."""

    path: str
    data: dict[str, Any] | None
    update_time: str | None


@dataclass(frozen=True, slots=True)
class Vector:
    """A Firestore vector value (what ``find_nearest`` searches): a map with
    ``__type__: "__vector__"`` and the numbers in ``value``, as the SDKs write it."""

    values: tuple[float, ...]

    def __init__(self, values: Iterable[float]) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in values))


def field_path(*segments: str) -> str:
    """A field path in Firestore's syntax: segments that are not plain identifiers are
    quoted with backticks (an execution id may start with a digit)."""
    out = []
    for segment in segments:
        if _SIMPLE_SEGMENT.fullmatch(segment):
            out.append(segment)
        else:
            out.append("`" + segment.replace("\\", "\\\\").replace("`", "\\`") + "`")
    return ".".join(out)


def encode_value(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore ``Value`` (JSON form)."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, Vector):
        numbers = [{"doubleValue": v} for v in value.values]
        return {
            "mapValue": {
                "fields": {
                    "__type__": {"stringValue": "__vector__"},
                    "value": {"arrayValue": {"values": numbers}},
                }
            }
        }
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"integer out of Firestore's 64-bit range: {value}")
        return {"integerValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: Firestore timestamps need a time zone")
        utc = value.astimezone(dt.UTC)
        return {"timestampValue": utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": encode_fields(value)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    raise TypeError(f"cannot store a {type(value).__name__} in Firestore")


def encode_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    for key in fields:
        if not isinstance(key, str):
            raise TypeError(f"Firestore map keys are strings, not {type(key).__name__}")
    return {key: encode_value(v) for key, v in fields.items()}


def decode_value(value: Mapping[str, Any]) -> Any:
    """A Firestore ``Value`` (JSON form) as a Python value. Timestamps become aware
    datetimes; references and geo points stay in their JSON form."""
    if "stringValue" in value:
        return value["stringValue"]
    if "integerValue" in value:
        return int(value["integerValue"])
    if "booleanValue" in value:
        return bool(value["booleanValue"])
    if "nullValue" in value:
        return None
    if "mapValue" in value:
        fields = value["mapValue"].get("fields") or {}
        if fields.get("__type__") == {"stringValue": "__vector__"} and "value" in fields:
            return Vector(decode_value(fields["value"]))
        return decode_fields(fields)
    if "arrayValue" in value:
        return [decode_value(v) for v in value["arrayValue"].get("values") or []]
    if "doubleValue" in value:
        return float(value["doubleValue"])  # also "NaN", "Infinity", "-Infinity"
    if "timestampValue" in value:
        return dt.datetime.fromisoformat(value["timestampValue"])
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    if "referenceValue" in value:
        return value["referenceValue"]
    if "geoPointValue" in value:
        return dict(value["geoPointValue"])
    raise ValueError(f"not a Firestore value: {sorted(value)}")


def decode_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: decode_value(v) for key, v in fields.items()}


def structured_query(
    collection: str, where_equal: Mapping[str, Any], *, select: Sequence[str] | None = None
) -> dict[str, Any]:
    """A ``runQuery`` structured query over ``collection``: its fields equal to
    ``where_equal``'s values (ANDed), reading back only ``select`` when given."""
    query: dict[str, Any] = {"from": [{"collectionId": collection}]}
    filters = [
        {
            "fieldFilter": {
                "field": {"fieldPath": field_path(name)},
                "op": "EQUAL",
                "value": encode_value(value),
            }
        }
        for name, value in where_equal.items()
    ]
    if len(filters) == 1:
        query["where"] = filters[0]
    elif filters:
        query["where"] = {"compositeFilter": {"op": "AND", "filters": filters}}
    if select is not None:
        query["select"] = {"fields": [{"fieldPath": field_path(name)} for name in select]}
    return query


class FirestoreRest:
    """Batch reads and commits on one database, on the loop that owns ``session``.

    Against the emulator (``emulator_host``) it calls as the owner, as the Admin SDK
    does; otherwise with an OAuth token from the instance's credentials, refreshed in a
    thread of its own when it nears expiry.
    """

    def __init__(
        self,
        project: str,
        session: aiohttp.ClientSession,
        *,
        emulator_host: str | None = None,
        credentials: Any = None,
        timeout: float = DEFAULTS.firestore_timeout_seconds,
        read_attempts: int = 3,
    ) -> None:
        self.root = f"projects/{project}/databases/(default)/documents"
        base = f"http://{emulator_host}" if emulator_host else _PRODUCTION_URL
        self._url = f"{base}/v1/{self.root}"
        self._session = session
        self._emulator = bool(emulator_host)
        self._credentials = credentials
        self._refresh_lock = asyncio.Lock()
        self._refresher: ThreadPoolExecutor | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._read_attempts = read_attempts

    async def close(self) -> None:
        await self._session.close()

    def name(self, path: str) -> str:
        return f"{self.root}/{path}"

    async def get_all(self, paths: Sequence[str]) -> dict[str, Document]:
        """The documents at ``paths`` (relative, ``collection/id``), read at one time."""
        body = {"documents": [self.name(p) for p in paths]}
        results = await self._post_read(":batchGet", body)
        wanted = {self.name(path): path for path in paths}
        out: dict[str, Document] = {}
        for item in results:
            found = item.get("found")
            name = found["name"] if found else item.get("missing")
            path = wanted.get(name)
            if path is None:
                continue  # a read time alone, or a name we did not ask for
            if found:
                data = decode_fields(found.get("fields") or {})
                out[path] = Document(path, data, found["updateTime"])
            else:
                out[path] = Document(path, None, None)
        return out

    async def commit(self, writes: Iterable[Mapping[str, Any]]) -> list[str | None]:
        """Apply ``writes`` (REST ``Write`` objects) atomically; each write's update time
        (``None`` for a delete). Not retried: a commit that failed in transit may still
        have been applied."""
        answer = await self._post(":commit", {"writes": list(writes)})
        results = answer.get("writeResults") or [] if isinstance(answer, dict) else []
        return [r.get("updateTime") for r in results]

    async def committed(self, step: Step[R]) -> tuple[R, list[str | None]]:
        """``step`` reads, decides and returns its writes (conditional on what it read)
        with its result; they are committed, and when another writer changed a document
        since the read (another request, another instance), ``step`` runs again after a
        growing jittered wait. The result, and each write's update time (none when
        ``step`` had no writes: nothing is committed)
        (docs/adr/0002-conditional-commits.md)."""
        for attempt in range(_ATTEMPTS):
            writes, result = await step()
            if not writes:
                return result, []
            try:
                times = await self.commit(writes)
            except FirestoreError as exc:
                if not exc.conflict or attempt + 1 == _ATTEMPTS:
                    raise
                # Jittered and growing: rivals on one document spread out.
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                continue
            return result, times
        raise AssertionError("unreachable")

    async def run_query(
        self, structured_query: Mapping[str, Any], *, parent: str = ""
    ) -> list[Document]:
        """The documents a REST ``StructuredQuery`` finds (under ``parent``, a relative
        document path, or the root), in the order Firestore gives them. Retried like a
        read."""
        verb = f"/{parent}:runQuery" if parent else ":runQuery"
        results = await self._post_read(verb, {"structuredQuery": structured_query})
        prefix = self.root + "/"
        out: list[Document] = []
        for item in results:
            if "error" in item:
                error = item["error"]
                raise FirestoreError(
                    500, str(error.get("status") or "UNKNOWN"), str(error.get("message"))[:300]
                )
            found = item.get("document")
            if found:
                path = found["name"].removeprefix(prefix)
                out.append(
                    Document(
                        path, decode_fields(found.get("fields") or {}), found.get("updateTime")
                    )
                )
        return out

    async def find_nearest(
        self,
        collection: str,
        vector_field: str,
        query_vector: Sequence[float],
        *,
        limit: int,
        where_equal: Mapping[str, Any] | None = None,
        distance_field: str = "distance",
        select: Sequence[str] | None = None,
    ) -> list[Document]:
        """The ``limit`` documents of ``collection`` nearest ``query_vector`` by COSINE
        distance (0 = same direction, 2 = opposite), nearest first, each with its
        distance in ``data[distance_field]``. ``where_equal`` is the equality pre-filter
        (a composite vector index must cover it in production); ``select`` limits the
        fields read back (the distance field is always there)."""
        query = structured_query(collection, where_equal or {})
        if select is not None:
            # A projection drops the distance unless it names it (the emulator too).
            names = [*select, distance_field] if distance_field not in select else list(select)
            query["select"] = {"fields": [{"fieldPath": field_path(name)} for name in names]}
        query["findNearest"] = {
            "vectorField": {"fieldPath": field_path(vector_field)},
            "queryVector": encode_value(Vector(query_vector)),
            "distanceMeasure": "COSINE",
            "limit": limit,
            "distanceResultField": distance_field,
        }
        return await self.run_query(query)

    async def _post_read(self, verb: str, body: Mapping[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                return await self._post(verb, body)
            except FirestoreError as exc:
                attempt += 1
                if exc.http_status not in _RETRY_READ or attempt >= self._read_attempts:
                    raise
            await asyncio.sleep(0.05 * 2**attempt)

    async def _post(self, verb: str, body: Mapping[str, Any]) -> Any:
        headers = {"Authorization": await self._authorization(), "Content-Type": _JSON}
        # orjson both ways (docs/adr/1002-opening-cpu.md): aiohttp's ``json=`` and
        # ``resp.json()`` take the standard library's, several times slower.
        async with self._session.post(
            self._url + verb, data=dumps(body), headers=headers, timeout=self._timeout
        ) as resp:
            if resp.status == 200:
                return loads(await resp.read())
            text = await resp.text(errors="replace")
        status, message = "UNKNOWN", text[:300]
        try:
            error = json.loads(text)["error"]
            status, message = str(error.get("status") or status), str(error.get("message"))
        except (ValueError, KeyError, TypeError):
            pass
        raise FirestoreError(resp.status, status, message[:300])

    def _credential_thread(self) -> ThreadPoolExecutor:
        # Its own thread, not the loop's default pool: a refresh every request waits on
        # must not queue behind other blocking work (docs/adr/0307-cpu-bounds.md). One
        # suffices, the refresh lock lets one run at a time.
        if self._refresher is None:
            self._refresher = ThreadPoolExecutor(1, "credentials")
        return self._refresher

    async def _authorization(self) -> str:
        if self._emulator:
            return "Bearer owner"
        credentials = self._credentials
        if credentials is None:
            import google.auth

            loop = asyncio.get_running_loop()
            credentials, _ = await loop.run_in_executor(
                self._credential_thread(), lambda: google.auth.default(scopes=_SCOPES)
            )
            self._credentials = credentials
        if not credentials.valid:
            async with self._refresh_lock:
                if not credentials.valid:
                    from google.auth.transport.requests import Request

                    await asyncio.get_running_loop().run_in_executor(
                        self._credential_thread(), credentials.refresh, Request()
                    )
        return f"Bearer {credentials.token}"
