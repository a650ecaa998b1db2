"""An update's Write, encoded straight into protobuf: the same message the client library's
`WriteBatch.update` makes, at a fifth of its CPU.

The library builds an update through proto-plus wrappers, field path parsing and a walk of the
fields, about 0.6 ms for the fields a task's outcome writes: more than the rest of an atomic
attempt's work (docs/benchmarks.md). Every update firetasks writes goes through
`conditional.apply`, so this covers the claim, the outcome and the operators' moves. It encodes
the values a task's fields hold (None, bool, int, float, datetime, str, bytes, lists, maps with
string keys; SERVER_TIMESTAMP and DELETE_FIELD at the top level, under a field name that needs
no quoting) and declines anything else, which the library then encodes. tests/unit/
test_update_encoding.py checks, with generated fields, that the two messages are the same bytes:
it guards an upgrade of google-cloud-firestore (pinned in requirements.txt), whose batch
internals (`_add_write_pbs`, `_document_references`) this adds the message through.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds, to_microseconds
from google.cloud.firestore_v1 import _helpers, types
from google.cloud.firestore_v1.base_batch import BaseWriteBatch
from google.cloud.firestore_v1.transforms import DELETE_FIELD, SERVER_TIMESTAMP

SIMPLE_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")  # a field path that is its own name
WRITE = types.Write.pb()
REQUEST_TIME = types.DocumentTransform.FieldTransform.ServerValue.REQUEST_TIME


class Unsupported(Exception):
    """A value this encoder leaves to the library."""


def add_update(batch: Any, ref: Any, fields: Mapping[str, Any], option: Any) -> bool:
    """Add `batch.update(ref, fields, option=option)` to `batch` (a google-cloud-firestore
    WriteBatch) and return True; or return False, adding nothing, if `fields` hold what this
    module does not encode (the caller then calls `batch.update`)."""
    if not isinstance(batch, BaseWriteBatch) or not fields or not all(
            SIMPLE_NAME.match(name) for name in fields):
        return False
    write = WRITE()
    write.update.name = ref._document_path
    write.update_mask.SetInParent()
    try:
        for name in sorted(fields):  # the library's order: its mask and transforms are sorted
            value = fields[name]
            if value is SERVER_TIMESTAMP:
                write.update_transforms.add(field_path=name, set_to_server_value=REQUEST_TIME)
                continue
            write.update_mask.field_paths.append(name)
            if value is not DELETE_FIELD:
                encode(value, write.update.fields[name])
    except (Unsupported, TypeError, ValueError):  # the library raises its own error, if any
        return False
    wrapped = types.Write.wrap(write)
    (option or _helpers.ExistsOption(exists=True)).modify_write(wrapped)
    batch._document_references[ref._document_path] = ref
    batch._add_write_pbs([wrapped])
    return True


def encode(value: Any, pb: Any, in_array: bool = False) -> None:
    """Set the protobuf Value `pb` to `value`, as the library would. A map's names, outside
    arrays, are field path parts to it: an empty one is refused."""
    if value is None:
        pb.null_value = 0
    elif isinstance(value, bool):  # before int: a bool is one
        pb.boolean_value = value
    elif isinstance(value, int):
        pb.integer_value = value
    elif isinstance(value, float):
        pb.double_value = value
    elif isinstance(value, DatetimeWithNanoseconds):
        pb.timestamp_value.CopyFrom(value.timestamp_pb())
    elif isinstance(value, datetime.datetime):
        seconds, micros = divmod(to_microseconds(value), 10 ** 6)  # naive: UTC
        pb.timestamp_value.SetInParent()  # set even at the epoch, whose fields are zeros
        pb.timestamp_value.seconds, pb.timestamp_value.nanos = seconds, micros * 1000
    elif isinstance(value, str):
        pb.string_value = value
    elif type(value) is bytes:
        pb.bytes_value = value
    elif type(value) in (list, tuple):
        pb.array_value.SetInParent()
        for element in value:
            encode(element, pb.array_value.values.add(), in_array=True)
    elif type(value) is dict and all(isinstance(key, str) and (key or in_array)
                                     for key in value):
        pb.map_value.SetInParent()
        for key, element in value.items():
            encode(element, pb.map_value.fields[key], in_array)
    else:
        raise Unsupported(type(value).__name__)
