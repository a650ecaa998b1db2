"""Where a task's CPU goes: each system's processor driven in this process against the Firestore
emulator, its create event and the echoes of its own writes timed on the thread's CPU clock.

`make profile` (`PROFILE_ARGS="--tasks 600 --top 25"`). The events are built from real snapshots
of real task documents, and every read and write goes through the real client to the emulator;
only the delivery (the Functions emulator's call of the worker) is left out, the same for every
system. The systems take turns in rounds of 50 tasks, so a change in the host's speed falls on
all of them. `make bench` measures the whole path; this says which function a difference is in.
With `--top N`, each system's N most expensive functions (cumulative CPU time, cProfile, in a
separate pass of as many tasks: the profiler's overhead is left out of the timed figures).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from firebase_functions.core import Change  # noqa: E402
from google.cloud import firestore  # noqa: E402
from google.cloud.firestore_v1.document import DocumentSnapshot  # noqa: E402

from firetasks import NewTask, TaskProcessor, TaskQueue, add_tasks, db  # noqa: E402
from testing import workloads  # noqa: E402
from testing.naive import NaiveProcessor  # noqa: E402

COLLECTION = "profileTasks"  # no trigger listens here: only this process sees its events
ROUND = 50
TYPES = {"naive": "bench", "claim": "bench", "atomic": "benchAtomic"}


def event(ref: Any, before: Any, after: Any) -> Any:
    return SimpleNamespace(database="(default)", document=ref.path,
                           data=Change(before=before, after=after))


def running(final: DocumentSnapshot) -> DocumentSnapshot:
    """The version claim mode's claim wrote, as its echo delivers it."""
    return DocumentSnapshot(final.reference, (final.to_dict() or {}) | {"state": "running"},
                            True, final.read_time, final.create_time, final.update_time)


class Profiled:
    """One system's processor, its CPU time per kind of event, and its profile."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.processor: Any = (NaiveProcessor(workloads.registry) if name == "naive" else
                               TaskProcessor(TaskQueue(workloads.registry,
                                                       collections=(COLLECTION,))))
        self.cpu: dict[str, float] = {"create": 0.0, "echo": 0.0}
        self.tasks = 0
        self.profile = cProfile.Profile(time.thread_time)

    def deliver(self, kind: str, delivered: Any, how: str) -> None:
        """Deliver one event: untimed ("warm"), on the CPU clock ("timed"), or profiled."""
        began = time.thread_time()
        if how == "profiled":
            self.profile.runcall(self.processor.on_write, delivered)
            return
        self.processor.on_write(delivered)
        if how == "timed":
            self.cpu[kind] += time.thread_time() - began

    def run(self, client: firestore.Client, tasks: int, how: str = "timed") -> None:
        parent = client.document(f"profile-{uuid.uuid4().hex[:8]}/{self.name}")
        refs = add_tasks(parent, [NewTask(TYPES[self.name], "noop") for _ in range(tasks)],
                         collection=COLLECTION)
        for ref in refs:
            created = ref.get()
            self.deliver("create", event(ref, None, created), how)
            final = ref.get()
            if self.name == "claim":  # its claim's echo, then its final write's
                claimed = running(final)
                self.deliver("echo", event(ref, created, claimed), how)
                self.deliver("echo", event(ref, claimed, final), how)
            else:
                self.deliver("echo", event(ref, created, final), how)
        self.tasks += tasks if how == "timed" else 0

    def report(self, top: int) -> str:
        per = {kind: seconds * 1000 / self.tasks for kind, seconds in self.cpu.items()}
        text = (f"{self.name:7} CPU ms per task: create event {per['create']:.3f}, echoes "
                f"{per['echo']:.3f}, in all {sum(per.values()):.3f}")
        if top:
            out = io.StringIO()
            pstats.Stats(self.profile, stream=out).sort_stats("cumulative").print_stats(top)
            text += "\n" + out.getvalue()
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=600, help="timed tasks a system")
    parser.add_argument("--top", type=int, default=0, help="functions to list a system")
    args = parser.parse_args()
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise SystemExit("profile: run it with `make profile` (it needs the Firestore emulator)")
    client = db.client()
    systems = [Profiled(name) for name in TYPES]
    for system in systems:  # untimed: imports, channels, caches
        system.run(client, ROUND, how="warm")
    rounds = range(max(1, args.tasks // ROUND))
    for how in ("timed", "profiled") if args.top else ("timed",):  # the profiler's cost apart
        for _ in rounds:
            for system in systems:
                system.run(client, ROUND, how)
    print("\n".join(system.report(args.top) for system in systems))


if __name__ == "__main__":
    main()
