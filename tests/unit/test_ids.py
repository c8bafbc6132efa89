"""Document ids for uids: always valid for Firestore, one per uid, readable when they can be."""

from __future__ import annotations

import operator
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptstream._ids import MAX_KEY_BYTES, uid_key
from support import examples

_RESERVED = re.compile(r"__.*__", re.DOTALL)
_URL_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def valid_document_id(key: str) -> bool:
    return (
        bool(key)
        and "/" not in key
        and key not in (".", "..")
        and not _RESERVED.fullmatch(key)
        and len(key.encode()) <= MAX_KEY_BYTES
    )


@pytest.mark.parametrize(
    ("uid", "key"),
    [
        ("Xq3fL9aBcD0eFgH1iJ2kL3mN4o", "Xq3fL9aBcD0eFgH1iJ2kL3mN4o"),
        ("alice", "alice"),
        ("user_1-a", "user_1-a"),
        ("_x_", "_x_"),
        ("x__", "x__"),
        ("a/b/c", "~a~2Fb~2Fc"),
        (".", "~~2E"),
        ("..", "~~2E~2E"),
        ("__x__", "~__x__"),
        ("__x", "~__x"),
        ("~a", "~~7Ea"),
        ("a b", "~a~20b"),
        ("é", "~~C3~A9"),
        ("", "~"),
    ],
)
def test_uid_keys(uid: str, key: str) -> None:
    assert uid_key(uid) == key
    assert valid_document_id(key)


def test_firebase_longest_uids_fit() -> None:
    uids = ("a" * 128, "/" * 128, "日" * 128, "🚀" * 64, "\ud800" * 128)
    keys = [uid_key(uid) for uid in uids]
    assert all(valid_document_id(key) for key in keys) and len(set(keys)) == len(uids)


def test_a_uid_too_long_for_any_id_is_refused() -> None:
    with pytest.raises(ValueError):
        uid_key("/" * 600)


_uids = st.one_of(
    st.text(max_size=128),
    st.text(alphabet="ab_-~./%", max_size=12),
    st.text(alphabet=string.ascii_lowercase, max_size=3).map(lambda m: f"__{m}__"),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
)


@settings(max_examples=examples(300), deadline=None)
@given(uid=_uids)
def test_every_key_is_a_valid_url_safe_document_id(uid: str) -> None:
    key = uid_key(uid)
    assert valid_document_id(key)
    assert _URL_UNRESERVED.fullmatch(key)


@settings(max_examples=examples(300), deadline=None)
@given(a=_uids, b=_uids)
def test_different_uids_get_different_keys(a: str, b: str) -> None:
    assert (uid_key(a) == uid_key(b)) == (a == b)


# (Strategies built from characters rather than st.from_regex: the same strings, drawn
# several times faster, which keeps the unit layer quick.)
_KEY_CHARS = string.ascii_letters + string.digits
_ordinary = st.builds(
    operator.add,
    st.sampled_from(_KEY_CHARS + "-"),
    st.text(alphabet=_KEY_CHARS + "_-", max_size=127),
)


@settings(max_examples=examples(300), deadline=None)
@given(uid=_ordinary)
def test_ordinary_uids_are_their_own_keys(uid: str) -> None:
    assert uid_key(uid) == uid
