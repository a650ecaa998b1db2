# mypy: disable-error-code="override"
# (its methods take the arguments of google-cloud-firestore's, the server-only ones as **options)
"""The test kit's Firestore client: google-cloud-firestore's own `Client`, document and collection
references and queries, reading and writing the kit's store (firetasks.memory) instead of a server.

So a handler's `task.client`, `task.ref` and `task.parent` work under MemoryQueue as they do
deployed: get, create, set, update and delete a document; add to a collection; query with where,
order_by, limit, offset, select, stream, get and count (firetasks.memory_query); collection groups;
`get_all`; batches. Every write goes through the store's `commit` (firetasks.memory_writes' rules,
one version per batch, a trigger event for each document written). What it does not do (a
transaction, a listener, cursors, sum and avg, a bulk writer) raises NotImplementedError at once,
naming it, rather than reaching for a server that is not there.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn, Protocol, cast

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.base_aggregation import AggregationResult
from google.cloud.firestore_v1.base_document import DocumentSnapshot
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import write as write_pb

from firetasks.conditional import Operation, Write
from firetasks.memory_query import matches, ordered

Snapshot = DocumentSnapshot[Any]
TRANSACTIONS = ("transactions are not supported by MemoryQueue's in-memory Firestore: stage the "
                "writes in an atomic handler's task.writes (committed with the task's outcome, "
                "exactly once), or write a batch (client.batch()) conditional on what was read "
                "(option=client.write_option(last_update_time=snapshot.update_time)); or test "
                "the handler against the Firestore emulator")


class Backend(Protocol):
    """What the client reads and writes: the kit's MemoryStore."""

    documents: dict[str, dict[str, Any]]
    versions: dict[str, datetime.datetime]
    created: dict[str, datetime.datetime]

    @property
    def clock(self) -> Callable[[], datetime.datetime]: ...

    def commit(self, writes: Sequence[Write]) -> datetime.datetime: ...


def unsupported(what: str) -> NoReturn:
    raise NotImplementedError(f"{what} is not supported by MemoryQueue's in-memory Firestore "
                              "(firetasks.memory_client): test it against the Firestore emulator")


class MemoryClient(firestore.Client):
    """A Firestore client whose documents are the backend's; it never reaches a server."""

    def __init__(self, backend: Backend, project: str = "firetasks-memory",
                 database: str = "(default)") -> None:
        super().__init__(project=project, credentials=AnonymousCredentials(), database=database)
        self.backend = backend

    @property
    def _firestore_api(self) -> Any:  # every call that would reach the server: refused, at once
        unsupported(sys._getframe(1).f_code.co_qualname)

    def document(self, *document_path: str) -> MemoryDocument:
        return MemoryDocument(*self._document_path_helper(*document_path), client=self)

    def collection(self, *collection_path: str) -> MemoryCollection:
        return MemoryCollection(*collection_path, client=self)

    def collection_group(self, collection_id: str) -> MemoryQuery:
        return MemoryQuery(self._get_collection_reference(collection_id), all_descendants=True)

    def get_all(self, references: Iterable[Any], field_paths: Iterable[str] | None = None,
                transaction: Any = None, **options: Any) -> Iterator[Snapshot]:
        if transaction is not None:
            raise NotImplementedError(TRANSACTIONS)
        for ref in references:
            yield self.snapshot(ref.path, field_paths)

    def collections(self, **options: Any) -> Iterator[MemoryCollection]:
        for id in sorted({path.split("/")[0] for path in self.backend.documents}):
            yield self.collection(id)

    def batch(self) -> MemoryBatch:
        return MemoryBatch(self)

    def transaction(self, **options: Any) -> NoReturn:
        raise NotImplementedError(TRANSACTIONS)

    def bulk_writer(self, options: Any = None) -> NoReturn:
        unsupported("client.bulk_writer() (use client.batch())")

    def recursive_delete(self, reference: Any, **options: Any) -> NoReturn:
        unsupported("client.recursive_delete()")

    def snapshot(self, path: str, field_paths: Iterable[str] | None = None) -> Snapshot:
        """The stored document at `path` as a get gives it (only `field_paths`, if given)."""
        backend, ref = self.backend, self.document(path)
        if path not in backend.documents:
            return DocumentSnapshot(ref, None, exists=False, read_time=backend.clock(),
                                    create_time=None, update_time=None)
        data = backend.documents[path]
        if field_paths is not None:
            data = _selected(data, field_paths)
        return DocumentSnapshot(ref, data, exists=True, read_time=backend.clock(),
                                create_time=backend.created[path],
                                update_time=backend.versions[path])

    def commit(self, writes: Sequence[Write]) -> list[write_pb.WriteResult]:
        version = self.backend.commit(writes) if writes else self.backend.clock()
        return [write_pb.WriteResult(update_time=version) for _ in writes]


class MemoryDocument(firestore.DocumentReference):
    """A document reference of a MemoryClient."""

    @property
    def _memory(self) -> MemoryClient:
        return cast(MemoryClient, self._client)

    def create(self, document_data: dict[str, Any], **options: Any) -> write_pb.WriteResult:
        return self._write("create", document_data)

    def set(self, document_data: dict[str, Any], merge: bool | list[str] = False,
            **options: Any) -> write_pb.WriteResult:
        return self._write("set", document_data, merge=merge)

    def update(self, field_updates: dict[str, Any], option: Any = None,
               **options: Any) -> write_pb.WriteResult:
        return self._write("update", field_updates, option=option)

    def delete(self, option: Any = None, **options: Any) -> Any:
        return self._write("delete", None, option=option).update_time

    def get(self, field_paths: Iterable[str] | None = None, transaction: Any = None,
            **options: Any) -> Snapshot:
        if transaction is not None:
            raise NotImplementedError(TRANSACTIONS)
        return self._memory.snapshot(self.path, field_paths)

    def collections(self, page_size: int | None = None,
                    **options: Any) -> Iterator[MemoryCollection]:
        prefix = self.path + "/"
        ids = {path[len(prefix):].split("/")[0] for path in self._memory.backend.documents
               if path.startswith(prefix)}
        for id in sorted(ids):
            yield self.collection(id)

    def on_snapshot(self, callback: Any) -> NoReturn:
        unsupported("on_snapshot (a listener)")

    def _write(self, operation: Operation, fields: dict[str, Any] | None, merge: Any = False,
               option: Any = None) -> write_pb.WriteResult:
        [result] = self._memory.commit([_write(operation, self, fields, merge, option)])
        return result


class MemoryCollection(firestore.CollectionReference):
    """A collection reference of a MemoryClient: its queries are MemoryQuery."""

    def _query(self) -> MemoryQuery:
        return MemoryQuery(self)

    def add(self, document_data: dict[str, Any], document_id: str | None = None,
            **options: Any) -> tuple[Any, MemoryDocument]:
        ref = cast(MemoryDocument, self.document(document_id))
        return ref.create(document_data).update_time, ref

    def list_documents(self, page_size: int | None = None,
                       **options: Any) -> Iterator[MemoryDocument]:
        prefix = self._path_string() + "/"
        ids = {path[len(prefix):].split("/")[0] for path in self._client.backend.documents
               if path.startswith(prefix)}
        for id in sorted(ids):
            yield cast(MemoryDocument, self.document(id))

    def get(self, transaction: Any = None, **options: Any) -> list[Snapshot]:
        return self._query().get(transaction=transaction)

    def stream(self, transaction: Any = None, **options: Any) -> Iterator[Snapshot]:
        return self._query().stream(transaction=transaction)

    def count(self, alias: str | None = None) -> MemoryCount:
        return self._query().count(alias)

    def on_snapshot(self, callback: Any) -> NoReturn:
        unsupported("on_snapshot (a listener)")

    def _path_string(self) -> str:
        return "/".join(self._path)


class MemoryQuery(firestore.Query):
    """A query of a MemoryClient: google-cloud-firestore builds it, firetasks.memory_query
    answers it from the backend's documents."""

    def stream(self, transaction: Any = None, **options: Any) -> Iterator[Snapshot]:
        if self._limit_to_last:
            raise ValueError("a query with limit_to_last cannot be streamed: use get()")
        return iter(self._results(transaction))

    def get(self, transaction: Any = None, **options: Any) -> list[Snapshot]:
        return self._results(transaction)

    def count(self, alias: str | None = None) -> MemoryCount:
        return MemoryCount(self, alias)

    def sum(self, field_ref: Any, alias: str | None = None) -> NoReturn:
        unsupported("a sum() aggregation")

    def avg(self, field_ref: Any, alias: str | None = None) -> NoReturn:
        unsupported("an avg() aggregation")

    def on_snapshot(self, callback: Any) -> NoReturn:
        unsupported("on_snapshot (a listener)")

    def _results(self, transaction: Any) -> list[Snapshot]:
        if transaction is not None:
            raise NotImplementedError(TRANSACTIONS)
        if self._start_at or self._end_at:
            unsupported("a query cursor (start_at, start_after, end_at, end_before)")
        client = cast(MemoryClient, self._client)
        parent = "/".join(self._parent._path)
        found = [(path, document) for path, document in client.backend.documents.items()
                 if self._holds(path, parent)
                 and all(matches(path, document, filter, client)
                         for filter in self._field_filters)]
        kept = ordered(found, self._orders, self._field_filters)[self._offset or 0:]
        if self._limit is not None:
            kept = kept[-self._limit:] if self._limit_to_last else kept[:self._limit]
        fields = ([field.field_path for field in self._projection.fields]
                  if self._projection else None)
        return [client.snapshot(path, fields) for path, _ in kept]

    def _holds(self, path: str, parent: str) -> bool:
        collection = path.rsplit("/", 1)[0]
        if self._all_descendants:
            return collection.rsplit("/", 1)[-1] == parent
        return collection == parent


class MemoryCount:
    """`query.count()` in memory: `get()` gives `[[AggregationResult]]`, as Firestore's."""

    def __init__(self, query: MemoryQuery, alias: str | None) -> None:
        self.query = query
        self.alias = alias or "field_1"

    def get(self, transaction: Any = None, **options: Any) -> list[list[AggregationResult]]:
        count = len(self.query.get(transaction=transaction))
        return [[AggregationResult(alias=self.alias, value=count,
                                   read_time=self.query._client.backend.clock())]]

    def stream(self, transaction: Any = None,
               **options: Any) -> Iterator[list[AggregationResult]]:
        return iter(self.get(transaction=transaction))


class MemoryBatch:
    """`client.batch()` in memory: the writes committed together, all or nothing."""

    def __init__(self, client: MemoryClient) -> None:
        self._memory = client
        self.writes: list[Write] = []

    def create(self, reference: Any, document_data: dict[str, Any]) -> None:
        self.writes.append(_write("create", reference, document_data))

    def set(self, reference: Any, document_data: dict[str, Any],
            merge: bool | list[str] = False) -> None:
        self.writes.append(_write("set", reference, document_data, merge))

    def update(self, reference: Any, field_updates: dict[str, Any], option: Any = None) -> None:
        self.writes.append(_write("update", reference, field_updates, option=option))

    def delete(self, reference: Any, option: Any = None) -> None:
        self.writes.append(_write("delete", reference, None, option=option))

    def commit(self, **options: Any) -> list[write_pb.WriteResult]:
        writes, self.writes = self.writes, []
        return self._memory.commit(writes)

    def __len__(self) -> int:
        return len(self.writes)

    def __enter__(self) -> MemoryBatch:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if error is None:
            self.commit()


def _write(operation: Operation, ref: Any, fields: dict[str, Any] | None, merge: Any = False,
           option: Any = None) -> Write:
    if not isinstance(ref, MemoryDocument):
        raise TypeError(f"{ref!r} is not a document of MemoryQueue's in-memory Firestore: make "
                        "references with task.client (or queue.client)")
    if not isinstance(merge, bool):
        unsupported("set(merge=[field paths]) (merge=True is)")
    if option is not None and getattr(option, "_last_update_time", None) is None:
        unsupported("a write option other than last_update_time")
    version = getattr(option, "_last_update_time", None)
    return Write(operation, ref, fields, merge=merge, if_version=version)


def _selected(data: dict[str, Any], field_paths: Iterable[str]) -> dict[str, Any]:
    """Only the given field paths of a document, as a get or a select gives them."""
    result: dict[str, Any] = {}
    for name in field_paths:
        parts = FieldPath.from_string(name).parts if "`" not in name else (
            FieldPath.from_api_repr(name).parts)
        value: Any = data
        for part in parts:
            value = value.get(part, _Absent) if isinstance(value, dict) else _Absent
        if value is not _Absent:
            target = result
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
    return result


class _Absent:
    pass
