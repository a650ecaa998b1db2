"""Cloud Functions entry points: the Functions runtime loads the functions defined here."""

import os

from firebase_functions import options

from firetasks import (
    HandlerRegistry,
    TaskProcessor,
    TaskQueue,
    event_trigger,
    limited_triggers,
    periodic_triggers,
    sweep_trigger,
    task_trigger,
    wake_trigger,
)
from firetasks.dashboard import dashboard_trigger
from firetasks.trigger_options import RuntimeOptions
from shop import handlers

options.set_global_options(region="us-central1")

registries = [handlers.registry]
TESTING = os.environ.get("FIRETASKS_TESTING") == "1"  # `make test` and `make bench` only
if TESTING:
    from testing import chaos, durable_probes, probes, workloads

    registries += [probes.registry, durable_probes.registry, workloads.registry, chaos.registry]
registry = HandlerRegistry.combine(*registries)

# A handler may run up to TIMEOUT_SEC; a claim's lease lasts that long plus a margin, after which
# the sweeper ends the attempt as failed. One task per instance at a time (concurrency 1) keeps a
# slow handler from starving others; max_instances caps the fan-out of a burst (and the bill).
# Tasks live in `tasks` and `jobs` subcollections; operators name orders by their bare ids.
TIMEOUT_SEC = 300
queue = TaskQueue(registry, collections=("tasks", "jobs"), timeout_sec=TIMEOUT_SEC,
                  parent_alias="orders")
processor = TaskProcessor(queue)
PROCESSING: RuntimeOptions = {
    "timeout_sec": TIMEOUT_SEC,
    "memory": options.MemoryOption.MB_256,
    "max_instances": 100,
    "concurrency": 1,
}

# One trigger per tasks collection, under any parent: orders/{orderId}/tasks/{taskId}, carts/...,
# and invoices/{invoiceId}/jobs/{taskId}, ...
process_tasks = task_trigger(processor, name="process_tasks", **PROCESSING)
process_jobs = task_trigger(processor, name="process_jobs", collection="jobs", **PROCESSING)

# Delayed tasks and retries, woken by Cloud Tasks at their `runAt` (the name is the queue's id).
wakeTasks = wake_trigger(
    processor,
    **PROCESSING,
    retry_config=options.RetryConfig(max_attempts=5, min_backoff_seconds=10),
)

# Events for durable handlers' waits (task.wait_for): {collection}/{docId}/events/{eventId}.
deliver_events = event_trigger(processor, name="deliver_events", **PROCESSING)

# Recovery of tasks whose invocation died, or whose event or wake-up was lost.
sweep_tasks = sweep_trigger(processor, name="sweep_tasks", timeout_sec=TIMEOUT_SEC)

# Periodic tasks (registry.periodic): a scheduled function per handler, named periodic<Type>
# <Action> (periodicReportsDaily), that creates the task of each firing of its schedule.
globals().update(periodic_triggers(queue))

# Limited handlers (concurrency=, rate=): a task-queue function per handler, named limited<Type>
# <Action> (limitedMailSend for mail.send), whose Cloud Tasks queue holds the limits and runs
# their tasks.
globals().update(limited_triggers(processor, **PROCESSING))

# The operators' dashboard and its API, for users with the admin claim; and each customer's live
# view of their order's tasks at dashboard/orders/<orderId> (the queue's parent_alias).
dashboard = dashboard_trigger(queue, name="dashboard", customer_view=True,
                              memory=options.MemoryOption.MB_256)

if TESTING:  # the benchmark's baseline, on its own path: {collection}/{docId}/naiveTasks/{taskId}
    from testing import meter, naive

    naive_process_tasks = naive.naive_trigger(
        naive.NaiveProcessor(registry), name="naive_process_tasks")
    if os.environ.get("FIRETASKS_METER_FILE"):
        meter.install(os.environ["FIRETASKS_METER_FILE"])
    chaos.install()  # inert until a test writes its config (testing/chaos.py)
