"""firestore.indexes.json holds exactly the indexes main.py's queue needs (`firetasks indexes`)."""

from __future__ import annotations

import json

import main
from firetasks import cli
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
