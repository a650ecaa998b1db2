"""Firestore's query semantics, in memory, for the test kit's client (firetasks.memory_client):
which documents a query's filters match and in what order it returns them.

The filters and orders are google-cloud-firestore's own (built by its `where`, `order_by`,
`FieldFilter`, `Or` and `And`), evaluated here on plain documents: ==, !=, <, <=, >, >=, in,
not-in, array_contains, array_contains_any, is null and is NaN, with Firestore's ordering of values
across types (null, booleans, numbers, timestamps, strings, bytes, references, geopoints, arrays,
maps). A document lacks a match for any filter on a field it does not have, and is left out of a
query ordered by a field it does not have, as in Firestore.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_document import BaseDocumentReference
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import query as query_pb

_MISSING = object()
DOCUMENT_ID = "__name__"
_Field = query_pb.StructuredQuery.FieldFilter.Operator
_Unary = query_pb.StructuredQuery.UnaryFilter.Operator
_RANGE = {_Field.LESS_THAN: lambda a, b: a < b, _Field.LESS_THAN_OR_EQUAL: lambda a, b: a <= b,
          _Field.GREATER_THAN: lambda a, b: a > b,
          _Field.GREATER_THAN_OR_EQUAL: lambda a, b: a >= b}


def value_at(path: str, document: Mapping[str, Any], name: str) -> Any:
    """The value at field path `name` (as the API spells it) of the document at `path`:
    `__name__` is the document's path, as a tuple of its segments."""
    if name == DOCUMENT_ID:
        return _path_key(path)
    value: Any = document
    for part in FieldPath.from_api_repr(name).parts:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def order_key(value: Any) -> tuple[Any, ...]:
    """A sort key that orders values as Firestore does, across types."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, 0, 0) if math.isnan(value) else (2, 1, value)
    if isinstance(value, datetime.datetime):
        return (3, value if value.tzinfo else value.replace(tzinfo=datetime.UTC))
    if isinstance(value, str):
        return (4, value)
    if isinstance(value, bytes):
        return (5, value)
    if isinstance(value, BaseDocumentReference):
        return (6, _path_key(value.path))
    if isinstance(value, tuple):  # a path, as value_at gives `__name__`
        return (6, value)
    if isinstance(value, list):
        return (8, tuple(order_key(item) for item in value))
    if isinstance(value, dict):
        return (9, tuple(sorted((name, order_key(item)) for name, item in value.items())))
    if hasattr(value, "latitude"):
        return (7, value.latitude, value.longitude)
    raise ValueError(f"{type(value).__name__} is not a Firestore value")


def matches(path: str, document: Mapping[str, Any], filter: Any, client: Any) -> bool:
    """Whether the document at `path` matches one of a query's filters (a FieldFilter,
    UnaryFilter, CompositeFilter or Filter message)."""
    if isinstance(filter, query_pb.StructuredQuery.Filter):
        kind = query_pb.StructuredQuery.Filter.pb(filter).WhichOneof("filter_type")
        return matches(path, document, getattr(filter, kind), client)
    if isinstance(filter, query_pb.StructuredQuery.CompositeFilter):
        results = (matches(path, document, each, client) for each in filter.filters)
        if filter.op == query_pb.StructuredQuery.CompositeFilter.Operator.OR:
            return any(results)
        return all(results)
    value = value_at(path, document, filter.field.field_path)
    if value is _MISSING:
        return False
    if isinstance(filter, query_pb.StructuredQuery.UnaryFilter):
        nan = isinstance(value, float) and math.isnan(value)
        return {_Unary.IS_NULL: value is None, _Unary.IS_NOT_NULL: value is not None,
                _Unary.IS_NAN: nan, _Unary.IS_NOT_NAN: not nan}[filter.op]
    given = _helpers.decode_value(filter.value, client)
    return _compare(filter.op, value, given, filter.field.field_path == DOCUMENT_ID)


def _compare(op: Any, value: Any, given: Any, by_id: bool) -> bool:
    if by_id:
        given = [_id_key(item) for item in given] if isinstance(given, list) and op in (
            _Field.IN, _Field.NOT_IN) else _id_key(given)
    if op in _RANGE:
        mine, theirs = order_key(value), order_key(given)
        return mine[0] == theirs[0] and bool(_RANGE[op](mine, theirs))
    if op == _Field.EQUAL:
        return _same(value, given)
    if op == _Field.NOT_EQUAL:
        return not _same(value, given)
    if op == _Field.IN:
        return any(_same(value, item) for item in given)
    if op == _Field.NOT_IN:
        return not any(_same(value, item) for item in given)
    if op == _Field.ARRAY_CONTAINS:
        return isinstance(value, list) and any(_same(item, given) for item in value)
    if op == _Field.ARRAY_CONTAINS_ANY:
        return isinstance(value, list) and any(_same(item, each) for item in value
                                               for each in given)
    raise NotImplementedError(f"the filter operator {op!r} is not supported in memory")


def ordered(
    found: Sequence[tuple[str, Mapping[str, Any]]], orders: Sequence[Any],
    filters: Sequence[Any],
) -> list[tuple[str, Mapping[str, Any]]]:
    """The documents in a query's order: its `order_by` fields (else the field of an inequality
    filter), then the document path; those lacking an ordered field are left out."""
    fields = [(order.field.field_path,
               order.direction == query_pb.StructuredQuery.Direction.DESCENDING)
              for order in orders]
    if not fields:
        fields = [(name, False) for name in _inequality_fields(filters)]
    last = fields[-1][1] if fields else False
    if DOCUMENT_ID not in (name for name, _ in fields):
        fields.append((DOCUMENT_ID, last))
    kept = [(path, document) for path, document in found
            if all(value_at(path, document, name) is not _MISSING for name, _ in fields)]
    for name, descending in reversed(fields):
        kept.sort(key=lambda item: order_key(value_at(item[0], item[1], name)),
                  reverse=descending)
    return kept


def _inequality_fields(filters: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for filter in filters:
        inequality = isinstance(filter, query_pb.StructuredQuery.FieldFilter) and filter.op in (
            *_RANGE, _Field.NOT_EQUAL, _Field.NOT_IN)
        if inequality and filter.field.field_path not in names:
            names.append(filter.field.field_path)
    return sorted(names)


def _same(a: Any, b: Any) -> bool:
    return order_key(a) == order_key(b)


def _path_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def _id_key(value: Any) -> Any:
    """A `__name__` filter's value as the path key value_at gives."""
    if isinstance(value, BaseDocumentReference):
        return _path_key(value.path)
    return _path_key(value) if isinstance(value, str) else value
