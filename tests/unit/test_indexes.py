"""firestore.indexes.json holds exactly the indexes main.py's queue needs (`firetasks indexes`)."""

from __future__ import annotations

import json

import main
from firetasks import HandlerRegistry, TaskQueue, cli
from firetasks.indexes import index_config, merged
from tests.support import ROOT

INDEXES = ROOT / "firestore.indexes.json"


def test_the_indexes_file_has_every_collection_s_indexes():
    current = json.loads(INDEXES.read_text())
    assert merged(current, main.queue) == current, (
        "run `cd functions && FIRETASKS_QUEUE=main:queue firetasks indexes --write "
        "../firestore.indexes.json`")
    sweeper = {"collectionGroup": "jobs", "queryScope": "COLLECTION_GROUP",
               "fields": [{"fieldPath": "state", "order": "ASCENDING"},
                          {"fieldPath": "leaseExpiresAt", "order": "ASCENDING"}]}
    assert sweeper in current["indexes"]


def test_writing_keeps_other_indexes_and_check_says_when_stale(tmp_path, capsys):
    theirs = {"collectionGroup": "books", "queryScope": "COLLECTION",
              "fields": [{"fieldPath": "title", "order": "ASCENDING"}]}
    path = tmp_path / "firestore.indexes.json"
    path.write_text(json.dumps({"indexes": [theirs], "fieldOverrides": []}))
    assert cli.main(["--queue", "main:queue", "indexes", "--check", str(path)]) == 1
    assert cli.main(["--queue", "main:queue", "indexes", "--write", str(path)]) == 0
    written = json.loads(path.read_text())
    assert written["indexes"] == [theirs, *index_config(main.queue)["indexes"]]
    assert cli.main(["--queue", "main:queue", "indexes", "--check", str(path)]) == 0
    capsys.readouterr()


def fields(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"fieldPath": path, "order": order} for path, order in pairs]


def test_each_searchable_data_field_is_indexed_for_its_searches_in_every_collection():
    registry = HandlerRegistry()
    registry.register("order", "charge", print, searchable=("orderId", "email"))
    registry.register("order", "ship", print, searchable=("orderId",))
    config = index_config(TaskQueue(registry, collections=("tasks", "jobs")))
    for collection in ("tasks", "jobs"):
        for field in ("orderId", "email"):
            overrides = [entry for entry in config["fieldOverrides"]
                         if (entry["collectionGroup"], entry["fieldPath"])
                         == (collection, f"data.{field}")]
            assert overrides == [{"collectionGroup": collection, "fieldPath": f"data.{field}",
                                  "indexes": [{"order": "ASCENDING", "queryScope": "COLLECTION"},
                                              {"order": "ASCENDING",
                                               "queryScope": "COLLECTION_GROUP"}]}]
            searched = [entry for entry in config["indexes"]
                        if entry["collectionGroup"] == collection
                        and any(each["fieldPath"] == f"data.{field}" for each in entry["fields"])]
            newest = ("createdAt", "DESCENDING")
            assert searched == [
                {"collectionGroup": collection, "queryScope": scope, "fields": fields(*prefix)}
                for prefix in ([(f"data.{field}", "ASCENDING"), newest],
                               [("state", "ASCENDING"), (f"data.{field}", "ASCENDING"), newest])
                for scope in ("COLLECTION_GROUP", "COLLECTION")]
    assert {"collectionGroup": "tasks", "fieldPath": "data", "indexes": []} in config[
        "fieldOverrides"]  # the rest of data stays unindexed


def test_without_searchable_fields_no_data_field_is_indexed():
    config = index_config(TaskQueue(HandlerRegistry()))
    assert not [entry for entry in config["indexes"]
                if any(each["fieldPath"].startswith("data") for each in entry["fields"])]
    assert [entry["fieldPath"] for entry in config["fieldOverrides"]
            if entry["fieldPath"].startswith("data")] == ["data"]
