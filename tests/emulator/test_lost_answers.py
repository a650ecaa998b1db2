"""A commit that applied and whose answer was lost (UNAVAILABLE), played below the client
library's own retry layer, where a real one happens: firetasks' conditional write still knows it
landed. The chaos run (functions/testing/chaos.py) plays its faults above that layer."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions
from google.cloud import firestore

from firetasks import conditional


def losing_the_next_answer(client: firestore.Client) -> list[str]:
    """Make `client`'s next commit apply, then fail with UNAVAILABLE, under the library's retry
    (the wrapped RPC's target). The calls it sees, in order."""
    transport = client._firestore_api._transport
    rpc = transport._wrapped_methods[transport.commit]
    target: Callable[..., Any] = rpc._target
    calls: list[str] = []

    def commit(*args: Any, **kwargs: Any) -> Any:
        answer = target(*args, **kwargs)
        if calls:
            calls.append("answered")
            return answer
        calls.append("applied, answer lost")
        raise exceptions.ServiceUnavailable("the answer was lost")  # type: ignore[no-untyped-call]

    rpc._target = commit
    return calls


def test_a_conditional_write_whose_answer_was_lost_is_known_to_have_landed(uid):
    client = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    ref = client.document(f"lostAnswers/{uid}")
    ref.set({"n": 0})
    version = ref.get().update_time
    calls = losing_the_next_answer(client)
    written = conditional.write_if_unchanged(ref, version, {"n": 1})
    assert calls[0] == "applied, answer lost"
    assert written is not None  # not "another write came first": it was this one
    assert written == ref.get().update_time
    assert ref.get().get("n") == 1


def test_a_conditional_write_that_lost_its_race_still_says_so(uid):
    client = firestore.Client(project=os.environ.get("GCLOUD_PROJECT", "demo-firetasks"))
    ref = client.document(f"lostAnswers/{uid}")
    ref.set({"n": 0})
    version = ref.get().update_time
    ref.update({"n": 2})  # another writer, first
    assert conditional.write_if_unchanged(ref, version, {"n": 1}) is None
    assert ref.get().get("n") == 2
