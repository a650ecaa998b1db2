"""The in-memory kit's store applies writes as Firestore does: an atomic handler's staged writes
(set, set with merge, update with field paths, transforms, deletes) and the processor's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import firestore

from firetasks.enqueue import NewTask
from firetasks.registry import HandlerRegistry
from firetasks.testing import START, MemoryQueue

DOC = "carts/c-1"
Stage = Callable[[Any, Any], None]  # (task.writes, the document's ref)


@pytest.fixture
def plan() -> list[Stage]:
    return []


@pytest.fixture
def queue(plan) -> MemoryQueue:
    registry = HandlerRegistry()

    @registry.handler("cart", "edit", atomic=True)
    def edit(task) -> None:
        for stage in plan:
            stage(task.writes, task.client.document(DOC))

    memory = MemoryQueue(registry)
    memory.write(DOC, {"a": {"x": 1, "y": 2}, "b": 1, "n": 5, "tags": ["a", "x"],
                       "gone": "soon"})
    return memory


def staged(queue: MemoryQueue, plan: list[Stage], *stages: Stage) -> dict[str, Any] | None:
    plan[:] = stages
    ref = queue.enqueue("carts/c-1", NewTask("cart", "edit"))
    queue.run()
    assert queue.get(ref).state == "completed"
    return queue.document(DOC)


def test_set_with_merge_deep_merges_maps(queue, plan):
    document = staged(queue, plan, lambda writes, ref: writes.set(
        ref, {"a": {"y": 3, "z": 4}, "c": {}}, merge=True))
    assert document == {"a": {"x": 1, "y": 3, "z": 4}, "b": 1, "n": 5, "tags": ["a", "x"],
                        "gone": "soon", "c": {}}


def test_an_update_takes_dotted_names_as_field_paths(queue, plan):
    document = staged(queue, plan, lambda writes, ref: writes.update(
        ref, {"a.y": 3, "a.deep.er": True, "b": {"new": 1}}))
    assert document is not None
    assert document["a"] == {"x": 1, "y": 3, "deep": {"er": True}}
    assert document["b"] == {"new": 1}
    assert "a.y" not in document


def test_transforms_and_server_timestamps_are_applied_at_any_depth(queue, plan):
    document = staged(
        queue, plan,
        lambda writes, ref: writes.update(ref, {
            "n": firestore.Increment(2), "tags": firestore.ArrayUnion(["x", "b"]),
            "a.x": firestore.Increment(0.5), "a.seen": firestore.SERVER_TIMESTAMP,
            "fresh": firestore.ArrayRemove(["q"]), "top": firestore.Maximum(7)}),
        lambda writes, ref: writes.set(ref, {"meta": {"at": firestore.SERVER_TIMESTAMP,
                                                      "tags": firestore.ArrayRemove(["a"])}},
                                       merge=True),
    )
    assert document == {"a": {"x": 1.5, "y": 2, "seen": START}, "b": 1, "n": 7,
                         "tags": ["a", "x", "b"], "gone": "soon", "fresh": [], "top": 7,
                         "meta": {"at": START, "tags": []}}


def test_delete_field_deletes_nested_paths(queue, plan):
    document = staged(
        queue, plan,
        lambda writes, ref: writes.update(ref, {"a.x": firestore.DELETE_FIELD,
                                                "gone": firestore.DELETE_FIELD}),
        lambda writes, ref: writes.set(ref, {"a": {"y": firestore.DELETE_FIELD}}, merge=True),
    )
    assert document == {"a": {}, "b": 1, "n": 5, "tags": ["a", "x"]}


def test_set_replaces_the_document_and_transforms_start_from_nothing(queue, plan):
    document = staged(queue, plan, lambda writes, ref: writes.set(
        ref, {"n": firestore.Increment(2), "m": {"k.j": firestore.ArrayUnion([1])}}))
    assert document == {"n": 2, "m": {"k.j": [1]}}


def test_a_write_that_firestore_refuses_raises_naming_it_and_stores_nothing(queue):
    before = queue.document(DOC)
    with pytest.raises(ValueError, match="tags"):
        queue.store.put(DOC, {"n": 6, "tags": [firestore.SERVER_TIMESTAMP]})
    with pytest.raises(ValueError, match=r"at a\.x"):
        queue.store.put(DOC, {"a": {"x": firestore.DELETE_FIELD}})
    with pytest.raises(ValueError, match="conflicting"):
        queue.store.put(DOC, {"a": {}, "a.x": 2})
    assert queue.document(DOC) == before


def test_a_staged_write_that_firestore_refuses_fails_the_attempt_and_commits_nothing(queue, plan):
    plan[:] = [lambda writes, ref: writes.update(ref, {"b": 2}),
               lambda writes, ref: writes.update(ref, {"tags": [firestore.Increment(1)]})]
    before = queue.document(DOC)
    task = queue.get(queue.enqueue("carts/c-1", NewTask("cart", "edit", max_attempts=1)))
    queue.run()
    task = queue.get(task.ref)
    assert task.state == "failed"
    assert "Increment at tags" in task.fields["error"]["message"]
    assert queue.document(DOC) == before


def test_the_processors_writes_and_raw_writes_take_field_paths(queue):
    queue.write(DOC, {"a.z": 3, "meta": {"at": firestore.SERVER_TIMESTAMP}})
    assert queue.document(DOC)["a"] == {"x": 1, "y": 2, "z": 3}
    assert queue.document(DOC)["meta"] == {"at": START}


def test_dependents_match_only_the_items_of_an_after_list(queue):
    ref = queue.enqueue("orders/o-1", NewTask("cart", "edit", key="a"))
    queue.write("orders/o-1/tasks/bad", {"type": "cart", "action": "edit", "state": "waiting",
                                         "data": {}, "after": "charge"})
    queue.write("orders/o-1/tasks/good", {"type": "cart", "action": "edit", "state": "waiting",
                                          "data": {}, "after": ["a"]})
    assert [record.path for record in queue.store.dependents(ref)] == ["orders/o-1/tasks/good"]
