"""firetasks.update_encoding makes the very message the client library's `WriteBatch.update` makes
(the same bytes), or declines and adds nothing. No RPC is made: a batch only encodes until it is
committed, so the real client runs here, pointed at an emulator address that is never called."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from hypothesis import given, settings
from hypothesis import strategies as st

from firetasks.update_encoding import add_update


@pytest.fixture(scope="module")
def client(monkeypatch_module: pytest.MonkeyPatch) -> firestore.Client:
    monkeypatch_module.setenv("FIRESTORE_EMULATOR_HOST", "localhost:1")
    return firestore.Client(project="demo-encoding")


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def library_write(client: firestore.Client, fields: dict[str, Any], option: Any) -> bytes:
    batch = client.batch()
    batch.update(client.document("orders/o1/tasks/t1"), fields, option=option)
    return bytes(batch._write_pbs[0]._pb.SerializeToString(deterministic=True))


def encoded_write(client: firestore.Client, fields: dict[str, Any], option: Any) -> bytes | None:
    batch = client.batch()
    ref = client.document("orders/o1/tasks/t1")
    if not add_update(batch, ref, fields, option):
        assert batch._write_pbs == []
        assert len(batch) == 0
        return None
    assert batch._document_references == {ref._document_path: ref}
    return bytes(batch._write_pbs[0]._pb.SerializeToString(deterministic=True))


NOW = datetime.datetime(2026, 12, 1, 6, 30, 15, 123456, tzinfo=datetime.UTC)
OUTCOME = {  # what an atomic attempt of a no-op handler writes (firetasks.transitions)
    "attempts": 1, "retryBase": 0, "startedAt": NOW, "state": "completed",
    "updatedAt": firestore.SERVER_TIMESTAMP, "finishedAt": firestore.SERVER_TIMESTAMP,
    "history": [{"attempt": 1, "startedAt": NOW, "finishedAt": NOW, "outcome": "completed",
                 "error": None}],
    "expireAt": NOW + datetime.timedelta(days=30), "leaseId": firestore.DELETE_FIELD,
}
VERSION = DatetimeWithNanoseconds(2026, 12, 1, 6, 30, 14, nanosecond=123456789,
                                  tzinfo=datetime.UTC)


def test_an_outcome_is_encoded_as_the_library_encodes_it(client: firestore.Client) -> None:
    for option in (None, client.write_option(last_update_time=VERSION)):
        assert encoded_write(client, OUTCOME, option) == library_write(client, OUTCOME, option)


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize("value", [
    EPOCH, EPOCH.replace(tzinfo=None), VERSION, NOW.astimezone(datetime.timezone(
        datetime.timedelta(hours=-5))), -0.0, [], {}, [{"": 1}], ("a", 1), b"", 2 ** 63 - 1,
])
def test_edge_values_are_encoded_as_the_library_encodes_them(
        client: firestore.Client, value: Any) -> None:
    fields = {"value": value}
    assert encoded_write(client, fields, None) == library_write(client, fields, None)


@pytest.mark.parametrize("fields", [
    {"data.total": 3},  # a field path: the library parses it
    {"`odd name`": 1},
    {"tags": firestore.ArrayUnion(["a"])},
    {"count": firestore.Increment(1)},
    {"data": {"at": firestore.SERVER_TIMESTAMP}},  # a sentinel in a map
    {"where": firestore.GeoPoint(1.0, 2.0)},
    {"tags": {"a", "b"}},  # a set: the library's order of it is not ours to copy
    {"data": {1: "a"}},
    {"data": {"": "a"}},  # the library refuses an empty name
    {},
])
def test_what_it_does_not_encode_is_left_to_the_library(
        client: firestore.Client, fields: dict[str, Any]) -> None:
    assert encoded_write(client, fields, None) is None


def test_a_value_the_library_refuses_is_refused_by_the_library(
        client: firestore.Client) -> None:
    fields = {"n": 2 ** 64}  # out of int64: the library's own error reaches the caller
    assert encoded_write(client, fields, None) is None
    with pytest.raises(ValueError, match="out of range"):
        library_write(client, fields, None)


names = st.from_regex(r"[_a-zA-Z][_a-zA-Z0-9]{0,8}", fullmatch=True)
scalars = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=10) | st.binary(max_size=10)
           | st.datetimes(timezones=st.none() | st.just(datetime.UTC)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
tops = values | st.sampled_from([firestore.SERVER_TIMESTAMP, firestore.DELETE_FIELD])


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(names, tops, min_size=1, max_size=8), conditional=st.booleans())
def test_generated_fields_are_encoded_as_the_library_encodes_them(
        client: firestore.Client, fields: dict[str, Any], conditional: bool) -> None:
    option = client.write_option(last_update_time=VERSION) if conditional else None
    try:
        expected: bytes | None = library_write(client, fields, option)
    except ValueError:  # refused: then declined here, and the library raises its own error
        expected = None
    assert encoded_write(client, fields, option) == expected
