"""Per-key concurrency: at most N attempts of a handler running at once for each value of its
`key` (one job at a time per warehouse, 5 calls per merchant), held in Firestore.

Cloud Tasks holds a handler's own limits (firetasks.limits), but a queue per key would run into the
project's queue quota, and a deploy cannot create queues as keys appear. So each key has N slot
documents, `firetasksKeySlots/{type.action}~{key digest}/firetasksKeySlot/{0..N-1}`, each either
absent (free) or naming its holder and the end of the holder's lease. A dispatch of a keyed task
takes a free slot with a write conditional on the version read (never a transaction: contended
transactions abort in lockstep), runs the attempt, then deletes the slot (conditional on its own
write) and wakes the oldest task waiting for that key. A dispatch that finds no slot free leaves
its task waiting (`scheduled` with `queuedAt` and `limitKey`): the release that frees a slot
starts it, so starts come from the finishing attempt, never from polling.

Why nothing is lost: a task's `limitKey` is written before it is ever dispatched, so a release
always finds every task that may have missed a slot; a dispatch that lost a race for a slot lost it
to an attempt whose release comes later. A crashed attempt never releases: its slot is free again
once its lease has passed (a take treats it as free), and the sweeper reclaims such slots and wakes
the key's oldest waiting task (`reclaim_expired`).
"""

from __future__ import annotations

import datetime
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud import firestore
from google.cloud.firestore import DocumentReference

from firetasks.clock import Clock, utc_now
from firetasks.conditional import delete_if_unchanged, put_if_unchanged, read_all
from firetasks.task import split_limit_key

SLOTS_COLLECTION = "firetasksKeySlots"  # {type.action}~{key digest}/firetasksKeySlot/{i}
SLOT_GROUP = "firetasksKeySlot"  # a collection group of its own: the sweeper queries it
TAKE_ATTEMPTS = 4  # a take that lost every race leaves its task to a release


@dataclass(frozen=True)
class Slot:
    """A slot taken: its document, and the version the take wrote (its release is conditional
    on it: a slot reclaimed after its lease and taken again is not released by the old holder)."""

    ref: DocumentReference
    version: Any


class KeySlots:
    """Takes and releases the slots of a handler's keys."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep,
                 clock: Clock = utc_now) -> None:
        self.sleep = sleep
        self.clock = clock

    def take(self, client: firestore.Client, key: str, count: int, holder: DocumentReference,
             lease: datetime.timedelta) -> Slot | None:
        """A free slot of `key` (a `limitKey`), or None when all `count` are held."""
        parent = client.collection(SLOTS_COLLECTION).document(key_id(key))
        refs = [parent.collection(SLOT_GROUP).document(str(i)) for i in range(count)]
        for _ in range(TAKE_ATTEMPTS):
            now = self.clock()
            free = [snapshot for snapshot in read_all(client, refs) if _is_free(snapshot, now)]
            if not free:
                return None
            chosen = random.choice(free)  # spread contending takes over the free slots
            written = put_if_unchanged(chosen, {"holder": holder.path, "key": key,
                                                "until": now + lease})
            if written is not None:
                return Slot(chosen.reference, written)
            self.sleep(random.uniform(0.01, 0.1))  # another take won it: look again
        return None

    def release(self, slot: Slot) -> None:
        """Free the slot, unless it was reclaimed after its lease since."""
        delete_if_unchanged(slot.ref, slot.version)


def reclaim_expired(
    client: firestore.Client, now: datetime.datetime,
    wake: Callable[[DocumentReference, str], None],
) -> int:
    """Delete the slots whose holder's lease has passed (a crashed attempt's), calling
    `wake(holder, key)` for each so that the key's oldest waiting task starts; how many."""
    reclaimed = 0
    for snapshot in (client.collection_group(SLOT_GROUP)
                     .where(filter=firestore.FieldFilter("until", "<", now)).stream()):
        if not delete_if_unchanged(snapshot.reference, snapshot.update_time):
            continue  # taken again meanwhile
        reclaimed += 1
        wake(client.document(str(snapshot.get("holder"))), str(snapshot.get("key")))
    return reclaimed


def _is_free(snapshot: Any, now: datetime.datetime) -> bool:
    return not snapshot.exists or snapshot.get("until") <= now


def key_id(key: str) -> str:
    """A document id for one key (a `limitKey`, which may hold any character): its slots', and
    its rate gate's (firetasks.limits)."""
    handler = split_limit_key(key)[0]
    return f"{handler}~{hashlib.sha256(key.encode()).hexdigest()[:24]}"
