"""Rate gates: a limited handler's starts held to its rate in every window, in Firestore."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from typing import cast

from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from firetasks.conditional import with_backoff
from firetasks.limits import Rate

RATE_COLLECTION = "firetasksRates"  # {type.action or key id}: each gate's one document
NEXT = "next"  # the gate's next free turn (microseconds since the epoch)
MICROSECONDS = 1_000_000
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class RateGate:
    """Holds a limited handler's starts to its rate in every window, not on average.

    Cloud Tasks paces dispatches with a token bucket, which lets a burst of up to about a
    second's tokens through at once (the emulator refills its bucket once a second, so a second's
    dispatches all arrive together): a window can hold nearly twice the rate. The gate hands each
    start a turn of its own, `per / count` after the one before, and the start waits for it: so
    no window of the period holds more than `count` starts, across instances.

    A turn is booked by the server, never read: one commit to the gate's document sets its `next`
    turn to at least now (Firestore's `maximum` transform: an idle gate does not hand out turns
    in the past) and then adds one turn (`increment`), and returns the value it made. So a start
    costs no read and two writes to one document, whatever the backlog: concurrent starts queue
    on the server, none loses a race and tries again. A commit whose answer is lost and is tried
    again books a second turn, which then goes unused: a gap, never an excess. The price is one
    document written twice a start: docs/scaling.md gives its ceiling.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clock = clock
        self.sleep = sleep

    def admit(self, client: firestore.Client, name: str, rate: Rate) -> datetime.datetime:
        """Wait until `name` may start once more at `rate`; the time it may, which the start
        records as its `startedAt`."""
        gate = client.collection(RATE_COLLECTION).document(name)
        turn = math.ceil(rate.per * MICROSECONDS / rate.count)
        at = self.book(client, gate, turn)
        self.sleep(max(0.0, at / MICROSECONDS - self.clock()))
        return EPOCH + datetime.timedelta(microseconds=at)

    def book(self, client: firestore.Client, gate: firestore.DocumentReference, turn: int) -> int:
        """Book the gate's next turn (`turn` microseconds after the one before): when it starts,
        in whole microseconds since the epoch, as Firestore keeps times: so turns stay exactly
        `turn` apart in the tasks' `startedAt`, never a rounding less."""
        def commit() -> int:
            batch = client.batch()
            batch.set(gate, {NEXT: firestore.Maximum(math.ceil(self.clock() * MICROSECONDS))},
                      merge=True)
            batch.set(gate, {NEXT: firestore.Increment(turn)}, merge=True)
            results = batch.commit()
            booked = _helpers.decode_value(results[-1].transform_results[0], client)
            return cast(int, booked) - turn
        return with_backoff(commit)
