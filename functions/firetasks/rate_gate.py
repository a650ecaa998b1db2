"""Rate gates: a limited handler's starts held to its rate in every window, in Firestore."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from google.cloud import firestore

from firetasks.conditional import put_if_unchanged, read_all
from firetasks.limits import Rate

RATE_COLLECTION = "firetasksRates"  # {type.action}/slots/{0..count-1}: the rate gates' slots


class RateGate:
    """Holds a limited handler's starts to its rate in every window, not on average.

    Cloud Tasks paces dispatches with a token bucket, which lets a burst of up to about a
    second's tokens through at once (then the rate): a window can hold nearly twice the rate.
    The gate admits each start through one of `count` slot documents, each taken again only a
    full period after its last start, with a write conditional on the version read: so no window
    of the period holds more than `count` starts, across instances. The start records the time
    it was admitted as its `startedAt`, so the windows hold by that field exactly.

    Slot `i` is due during the `i`-th `period / count` of each cycle (its turn); a start reads
    the slot of the current turn and of the LOOK_BACK turns before it (one read each, in one
    call) and takes the one free the longest, so a turn that nobody used is caught up; if none is
    free it waits for the earliest to free or the next turn. Steady starts cost LOOK_BACK + 1
    reads and one write. Each slot is written about once a period: within Firestore's sustained
    rate of one write a second per document for periods of a second and more.
    """

    LOOK_BACK = 2

    def __init__(
        self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clock = clock
        self.sleep = sleep

    def admit(self, client: firestore.Client, name: str, rate: Rate) -> float:
        """Wait until `name` may start once more at `rate`; the time it may (seconds since the
        epoch), which the start records as its `startedAt`."""
        slots = client.collection(RATE_COLLECTION).document(name).collection("slots")
        turn = rate.per / rate.count
        looked = min(self.LOOK_BACK, rate.count - 1)
        while True:
            index = math.floor(self.clock() / turn)
            refs = [slots.document(str((index - back) % rate.count))
                    for back in range(looked, -1, -1)]
            snapshots = read_all(client, refs)
            frees = [_last(snapshot) + rate.per for snapshot in snapshots]
            now = self.clock()
            oldest = min(range(len(refs)), key=lambda i: frees[i])
            if now < frees[oldest]:  # all taken this cycle: wait for one, or for the next turn
                self.sleep(max(0.0, min(frees[oldest], (index + 1) * turn) - now))
                continue
            if put_if_unchanged(snapshots[oldest], {"at": now}) is not None:
                return now


def _last(snapshot: Any) -> float:
    """When the slot was last taken (seconds since the epoch), -inf if never."""
    last = snapshot.get("at") if snapshot.exists else None
    return last if isinstance(last, float) else -math.inf
