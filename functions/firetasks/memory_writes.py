"""Firestore's write semantics, in memory, for the test kit's store (firetasks.memory): what a
create, a set (with or without merge), an update or a delete makes of a document.

A create or a set replaces the document; a set with merge deep-merges maps; an update takes each
top-level name as a field path ("a.b" is field b of map a) and replaces the value there.
SERVER_TIMESTAMP becomes the given time and Increment, ArrayUnion, ArrayRemove, Maximum and Minimum
are applied, at any depth; DELETE_FIELD deletes (in an update, only as a top-level path, as
Firestore's client allows). What Firestore refuses (a sentinel inside an array, DELETE_FIELD in a
create or a plain set, conflicting paths in one update) raises ValueError naming it.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.transforms import Sentinel, _NumericValue, _ValueList

from firetasks.conditional import Write

Path = tuple[str, ...]
_MISSING = object()
_TRANSFORMS = (firestore.Increment, firestore.ArrayUnion, firestore.ArrayRemove, firestore.Maximum,
               firestore.Minimum)


def applied(
    operation: str, document: Mapping[str, Any] | None, fields: Mapping[str, Any],
    now: datetime.datetime, *, merge: bool = False,
) -> dict[str, Any] | None:
    """The document after a write of `fields` (a StagedWrite's operation) to `document` (None:
    missing): a new dict (None after a delete). Raises ValueError for what Firestore refuses."""
    if operation == "delete":
        return None
    top = operation == "update"
    values, deletes, transforms = _extract(fields, expand_dots=top)
    if operation == "update":
        tops = [_field_path(name) for name in fields]
        for path in tops:
            for other in tops:
                if other != path and other[:len(path)] == path:
                    raise ValueError(f"conflicting field paths in one update: "
                                     f"{_dotted(path)}, {_dotted(other)}")
        nested = [path for path in deletes if path not in tops]
        if nested:
            raise ValueError(f"DELETE_FIELD may only be a top-level path of an update, not "
                             f"nested at {_dotted(nested[0])}")
        result = copy.deepcopy(dict(document or {}))
        for path in tops:
            if path not in transforms:
                _delete_at(result, path)
    elif merge:
        result = copy.deepcopy(dict(document or {}))
        for path in deletes:
            _delete_at(result, path)
    else:
        if deletes:
            raise ValueError(f"DELETE_FIELD at {_dotted(deletes[0])} in a {operation} "
                             "without merge: Firestore refuses it")
        result = {}
    for path, value in values.items():
        _set_at(result, path, value)
    for path, transform in transforms.items():
        _set_at(result, path, _transformed(_get_at(result, path), transform, path, now))
    return result


def _transformed(current: Any, transform: Any, path: Path, now: datetime.datetime) -> Any:
    if transform is firestore.SERVER_TIMESTAMP:
        return now
    if isinstance(transform, firestore.Increment | firestore.Maximum | firestore.Minimum):
        operand = transform.value
        if not _is_number(current):
            return operand
        if isinstance(transform, firestore.Increment):
            return current + operand
        pick = max if isinstance(transform, firestore.Maximum) else min
        return current if pick(current, operand) == current else operand
    items = list(current) if isinstance(current, list) else []
    values = [_plain(value, path) for value in transform.values]
    if isinstance(transform, firestore.ArrayUnion):
        for value in values:
            if not any(_same(value, item) for item in items):
                items.append(value)
        return items
    return [item for item in items if not any(_same(item, value) for value in values)]


def batch_applied(
    writes: Sequence[Write], document: Callable[[str], Mapping[str, Any] | None],
    version: Callable[[str], Any], now: datetime.datetime,
) -> dict[str, dict[str, Any] | None]:
    """The documents a batch of writes leaves, by path (None: deleted), all worked out before any
    is applied, as Firestore commits a batch: all or nothing. `document` and `version` say what
    is stored now. Raises Conflict (a create of an existing document), NotFound (an update of a
    missing one), FailedPrecondition (a write conditional on a version the document left) and
    ValueError (what `applied` refuses)."""
    after: dict[str, dict[str, Any] | None] = {}
    for write in writes:
        path = write.ref.path
        current = after[path] if path in after else document(path)
        if write.operation == "create" and current is not None:
            raise exceptions.Conflict(  # type: ignore[no-untyped-call]
                f"document already exists: {path}")
        if write.operation == "update" and current is None:
            raise exceptions.NotFound(  # type: ignore[no-untyped-call]
                f"no document to update: {path}")
        if write.if_version is not None and version(path) != write.if_version:
            raise exceptions.FailedPrecondition(  # type: ignore[no-untyped-call]
                f"changed since it was read: {path}")
        after[path] = applied(write.operation, current, write.fields or {}, now,
                              merge=write.merge)
    return after


def _extract(
    fields: Mapping[str, Any], *, expand_dots: bool
) -> tuple[dict[Path, Any], list[Path], dict[Path, Any]]:
    """A write's fields as Firestore's client splits them: the values at their paths (maps walked
    down to their leaves; an empty map is a value), the paths to delete, and the transforms."""
    values: dict[Path, Any] = {}
    deletes: list[Path] = []
    transforms: dict[Path, Any] = {}

    def walk(path: Path, value: Any) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk((*path, _name(name)), item)
        elif value is firestore.DELETE_FIELD:
            deletes.append(path)
        elif value is firestore.SERVER_TIMESTAMP or isinstance(value, _TRANSFORMS):
            transforms[path] = value
        else:
            values[path] = _plain(value, path)

    for name, value in fields.items():
        walk(_field_path(name) if expand_dots else (_name(name),), value)
    return values, deletes, transforms


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"a field name must be a string, got {name!r}")
    return name


def _field_path(name: object) -> Path:
    return tuple(FieldPath.from_string(_name(name)).parts)


def _plain(value: Any, path: Path) -> Any:
    """A copy of a value to store, refusing the sentinels Firestore refuses there (in arrays)."""
    if isinstance(value, dict):
        return {_name(name): _plain(item, (*path, name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, path) for item in value]
    if isinstance(value, Sentinel | _ValueList | _NumericValue):
        raise ValueError(f"{_sentinel(value)} at {_dotted(path)} is not supported by MemoryStore: "
                         "Firestore takes transforms and sentinels only as field values, not in "
                         "arrays")
    return copy.deepcopy(value)


def _sentinel(value: object) -> str:
    for name in ("DELETE_FIELD", "SERVER_TIMESTAMP"):
        if value is getattr(firestore, name):
            return name
    return type(value).__name__


def _dotted(path: Path) -> str:
    return ".".join(path) or "(the document)"


def _set_at(document: dict[str, Any], path: Path, value: Any) -> None:
    for name in path[:-1]:
        if not isinstance(document.get(name), dict):
            document[name] = {}
        document = document[name]
    document[path[-1]] = value


def _get_at(document: Mapping[str, Any], path: Path) -> Any:
    value: Any = document
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _MISSING
        value = value[name]
    return value


def _delete_at(document: dict[str, Any], path: Path) -> None:
    parent = _get_at(document, path[:-1])
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: object, b: object) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def array_contains(array: object, value: object) -> bool:
    """Firestore's array-contains: only an array's items match."""
    return isinstance(array, list) and any(_same(item, value) for item in array)
