"""The kit's in-memory Firestore (firetasks.memory_client): a handler's `task.client`,
`task.ref` and `task.parent` read and write what the kit holds, at once, and what it does not
support fails at once, naming it (it used to reach for a real server: a five-minute hang)."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter, Or

from firetasks import HandlerRegistry, NewTask, Task
from firetasks.testing import MemoryQueue


def kit() -> MemoryQueue:
    queue = MemoryQueue(HandlerRegistry())
    for id, fields in {"a": {"n": 1, "tags": ["x"], "city": "Oslo", "m": {"k": 2}},
                       "b": {"n": 2, "tags": ["y", "x"], "city": "Rome"},
                       "c": {"n": 3, "tags": [], "city": None},
                       "d": {"n": "3", "city": "Oslo"}}.items():
        queue.write(f"shops/{id}", fields)
    queue.write("regions/r-1/shops/e", {"n": 5, "city": "Oslo"})
    return queue


def ids(snapshots) -> list[str]:
    return [snapshot.id for snapshot in snapshots]


def test_a_handler_reads_its_parent_and_writes_through_its_client():
    registry = HandlerRegistry()

    @registry.handler("invoice", "render")
    def render(task: Task) -> dict:
        invoice = task.parent.get()
        pdf = task.client.collection("pdfs").document(task.parent.id)
        pdf.set({"total": invoice.get("total"), "at": firestore.SERVER_TIMESTAMP})
        _, log = task.client.collection("log").add({"invoice": invoice.id})
        task.parent.update({"rendered": True, "renders": firestore.Increment(1)})
        return {"pdf": pdf.path, "log": log.path}

    queue = MemoryQueue(registry)
    queue.write("invoices/i-1", {"total": 42})
    ref = queue.enqueue("invoices/i-1", NewTask("invoice", "render"))
    queue.run()

    task = queue.get(ref)
    assert task.state == "completed", task.fields.get("error")
    assert queue.document("pdfs/i-1") == {"total": 42, "at": queue.clock()}
    assert queue.document(task.fields["result"]["log"]) == {"invoice": "i-1"}
    assert queue.document("invoices/i-1") == {"total": 42, "rendered": True, "renders": 1}


def test_documents_get_create_set_update_delete():
    queue = kit()
    client = queue.client
    shop = client.document("shops/a")
    snapshot = shop.get()
    assert snapshot.exists
    assert (snapshot.get("m.k"), snapshot.reference.path) == (2, "shops/a")
    assert shop.get(["n"]).to_dict() == {"n": 1}
    assert not client.document("shops/none").get().exists
    with pytest.raises(exceptions.Conflict):
        shop.create({"n": 9})
    with pytest.raises(exceptions.NotFound):
        client.document("shops/none").update({"n": 1})
    shop.set({"extra": True}, merge=True)
    shop.update({"m.k": 3, "city": firestore.DELETE_FIELD})
    assert queue.document("shops/a") == {"n": 1, "tags": ["x"], "m": {"k": 3}, "extra": True}
    shop.delete()
    assert queue.document("shops/a") is None
    new = client.collection("shops").document()
    assert (len(new.id), new.parent.id) == (20, "shops")


def test_a_write_conditional_on_a_version_fails_once_the_document_changed():
    queue = kit()
    shop = queue.client.document("shops/b")
    read = shop.get()
    shop.update({"n": 20}, option=queue.client.write_option(last_update_time=read.update_time))
    with pytest.raises(exceptions.FailedPrecondition):
        shop.update({"n": 21},
                    option=queue.client.write_option(last_update_time=read.update_time))
    assert queue.document("shops/b")["n"] == 20


@pytest.mark.parametrize(("field", "op", "value", "expected"), [
    ("n", "==", 1, ["a"]), ("n", "<", 3, ["a", "b"]), ("n", "<=", 3, ["a", "b", "c"]),
    ("n", ">", 1, ["b", "c"]), ("n", ">=", 2, ["b", "c"]), ("n", "!=", 2, ["a", "c", "d"]),
    ("n", "in", [1, 3], ["a", "c"]), ("n", "not-in", [1, 3], ["b", "d"]),
    ("tags", "array_contains", "x", ["a", "b"]), ("tags", "array_contains_any", ["y", "z"], ["b"]),
    ("city", "==", None, ["c"]), ("m.k", "==", 2, ["a"]),
])
def test_where_filters_match_as_firestore_s(field, op, value, expected):
    query = kit().client.collection("shops").where(filter=FieldFilter(field, op, value))
    assert sorted(ids(query.stream())) == expected


def test_order_by_limit_offset_count_and_or():
    client = kit().client
    shops = client.collection("shops")
    assert ids(shops.order_by("n", direction=firestore.Query.DESCENDING).stream()) == [
        "d", "c", "b", "a"]  # a string sorts after every number
    assert ids(shops.order_by("n").offset(1).limit(2).get()) == ["b", "c"]
    assert ids(shops.order_by("n").limit_to_last(1).get()) == ["d"]
    assert ids(shops.order_by("m.k").get()) == ["a"]  # those without the field are left out
    assert shops.where(filter=FieldFilter("city", "==", "Oslo")).count().get()[0][0].value == 2
    either = Or([FieldFilter("n", "==", 1), FieldFilter("city", "==", "Rome")])
    assert sorted(ids(shops.where(filter=either).stream())) == ["a", "b"]
    assert shops.select(["city"]).limit(1).get()[0].to_dict() == {"city": "Oslo"}


def test_collection_groups_get_all_and_listings():
    client = kit().client
    oslo = client.collection_group("shops").where(filter=FieldFilter("city", "==", "Oslo"))
    assert sorted(snapshot.reference.path for snapshot in oslo.stream()) == [
        "regions/r-1/shops/e", "shops/a", "shops/d"]
    found = client.get_all([client.document("shops/a"), client.document("shops/x")])
    assert [(snapshot.id, snapshot.exists) for snapshot in found] == [("a", True), ("x", False)]
    assert [ref.id for ref in client.collection("shops").list_documents()] == ["a", "b", "c", "d"]
    assert [c.id for c in client.document("regions/r-1").collections()] == ["shops"]


def test_a_batch_commits_all_or_nothing():
    queue = kit()
    client = queue.client
    batch = client.batch()
    batch.set(client.document("shops/f"), {"n": 6})
    batch.update(client.document("shops/a"), {"n": 10})
    batch.delete(client.document("shops/b"))
    batch.create(client.document("shops/c"), {"n": 0})  # exists: the whole batch fails
    with pytest.raises(exceptions.Conflict):
        batch.commit()
    assert queue.document("shops/f") is None
    assert queue.document("shops/a")["n"] == 1
    with client.batch() as batch:
        batch.set(client.document("shops/f"), {"n": 6})
        batch.delete(client.document("shops/b"))
    assert queue.document("shops/f") == {"n": 6}
    assert queue.document("shops/b") is None
    assert client.document("shops/f").get().update_time == queue.store.versions["shops/f"]


def test_a_task_written_through_the_client_is_a_trigger_event():
    registry = HandlerRegistry()
    registry.register("mail", "send", lambda task: "sent")
    queue = MemoryQueue(registry)
    queue.client.collection("orders").document("o-1").collection("tasks").add(
        {"type": "mail", "action": "send", "state": "scheduled", "data": {}})
    queue.run()
    [task] = queue.tasks()
    assert (task.state, task.fields["result"]) == ("completed", "sent")


def test_what_it_does_not_support_fails_at_once_naming_it():
    client = kit().client
    with pytest.raises(NotImplementedError, match=r"transactions .* task\.writes"):
        client.transaction()
    with pytest.raises(NotImplementedError, match="on_snapshot"):
        client.document("shops/a").on_snapshot(lambda *args: None)
    with pytest.raises(NotImplementedError, match="cursor"):
        client.collection("shops").order_by("n").start_after({"n": 1}).get()
    with pytest.raises(NotImplementedError, match="in-memory Firestore"):
        client.bulk_writer()
    with pytest.raises(NotImplementedError, match=r"in-memory Firestore"):
        client._firestore_api  # noqa: B018  (any call that would reach a server)
