"""What operators and the scheduled functions do, on the test kit's store at its fake clock: the
verbs of `MemoryQueue` (firetasks.testing) that mirror firetasks.operations, the periodic tick,
the sweeper and prune."""

from __future__ import annotations

import datetime
from typing import Any

from google.cloud.firestore import DocumentReference

from firetasks import operations, periodic, recovery
from firetasks.audit import Actor
from firetasks.config import TaskQueue
from firetasks.memory import FakeClock, MemoryStore
from firetasks.memory_kit import kit_logging
from firetasks.processor import TaskProcessor
from firetasks.recovery import SweepReport
from firetasks.wakeup import Waker

KIT = Actor(uid="memory-queue", email="kit@firetasks.test", via="kit")  # who acts in the kit


class OperatorVerbs:
    """The operators' and scheduled functions' verbs of a MemoryQueue (its base class)."""

    store: MemoryStore
    queue: TaskQueue
    processor: TaskProcessor
    clock: FakeClock
    waker: Waker

    @kit_logging
    def retry(self, ref: DocumentReference | str, **options: Any) -> dict[str, Any]:
        """What an operator's Retry does (firetasks.operations.retry); a ref or a path."""
        return operations.retry(self._ref(ref), store=self.store, **options)

    @kit_logging
    def cancel(self, ref: DocumentReference | str, **options: Any) -> dict[str, Any]:
        """What an operator's Cancel does (firetasks.operations.cancel); a ref or a path."""
        return operations.cancel(self._ref(ref), store=self.store, queue=self.queue,
                                 now=self.clock(), **options)

    @kit_logging
    def end_wait(self, ref: DocumentReference | str, **options: Any) -> dict[str, Any]:
        """What an operator's End wait does (firetasks.operations.end_wait): the task's wait_for
        returns None at the next `run()`; a ref or a path."""
        return operations.end_wait(self._ref(ref), store=self.store, **options)

    def _ref(self, ref: DocumentReference | str) -> DocumentReference:
        return self.store.client.document(ref if isinstance(ref, str) else ref.path)

    @kit_logging
    def pause(self, handler: str, *, key: str | None = None,
              actor: Actor = KIT) -> dict[str, Any]:
        """What an operator's Pause does (firetasks.operations.pause); in the kit it applies at
        once (a deployment's instances see it within pauses.CACHE_SECONDS)."""
        done = operations.pause(self.store.client, self.queue, handler, key=key, actor=actor)
        self.processor.flow.pauses.forget()
        return done

    @kit_logging
    def resume(self, handler: str, *, key: str | None = None,
               actor: Actor = KIT) -> dict[str, Any]:
        """What an operator's Resume does (firetasks.operations.resume): the held tasks start at
        the next `run()`, oldest first."""
        return operations.resume(self.store.client, self.queue, handler, key=key, actor=actor,
                                 store=self.store,
                                 wake=lambda ref: self.waker.wake_at(ref, self.clock()))

    @kit_logging
    def tick(self, type: str, action: str) -> DocumentReference | None:
        """What a periodic handler's scheduled function does at the clock's time
        (firetasks.periodic.tick): the task of its latest firing, None if that exists already."""
        return periodic.tick(self.store.client, self.queue, type, action, self.clock(),
                             store=self.store)

    @kit_logging
    def sweep(self) -> SweepReport:
        """What the scheduled sweeper does at the clock's time (firetasks.recovery.sweep):
        expired leases ended, lost events and wake-ups made up for. The kit holds no key slots
        (its dispatcher runs one task at a time), so none are reclaimed."""
        return recovery.sweep(self.processor, self.store.client, now=self.clock(),
                              reclaim=False)

    @kit_logging
    def prune(self, *, older_than: datetime.timedelta | None = None,
              dry_run: bool = False) -> operations.PruneReport:
        """What `firetasks prune` does at the clock's time (firetasks.operations.prune): delete
        the finished tasks that expired (or finished longer ago than `older_than`)."""
        return operations.prune(self.store.client, self.queue, actor=KIT, older_than=older_than,
                                dry_run=dry_run, now=self.clock(), store=self.store)

    def expire_leases(self) -> int:
        """What the sweeper does to `running` tasks whose lease expired; how many it ended."""
        return self.sweep().expired
