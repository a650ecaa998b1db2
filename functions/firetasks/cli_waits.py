"""The `firetasks` commands that act on durable handlers' waits (firetasks.events): send an event
under a parent, end a task's wait. Audited as the dashboard's Send event and End wait."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from google.cloud import firestore

from firetasks import cli_format, operations, queries
from firetasks.audit import Actor
from firetasks.errors import BadRequest


def add_commands(commands: Any, actor: Callable[[], Actor]) -> None:
    """Add `send-event` and `end-wait` to the subparsers `commands`; `actor`: who runs them."""
    send = commands.add_parser("send-event", help="send an event to the waits of a parent's "
                                                  "tasks (task.wait_for)")
    send.add_argument("parent", metavar="PARENT", help="the parent document, e.g. orders/o-1")
    send.add_argument("name", metavar="NAME", help="the event's name, e.g. warehouse.picked")
    send.add_argument("--data", default="{}", metavar="JSON",
                      help="the event's data, a JSON object (default: {})")
    send.set_defaults(run=lambda client, args: run_send_event(client, args, actor()))
    end = commands.add_parser("end-wait", help="end a task's wait for an event now, as its "
                                               "timeout would (wait_for returns None)")
    end.add_argument("path", metavar="TASK", help="the waiting task's path")
    end.set_defaults(run=lambda client, args: run_end_wait(client, args, actor()))


def run_send_event(client: firestore.Client, args: argparse.Namespace, actor: Actor) -> int:
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        raise BadRequest(f"--data must be a JSON object: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest(f"--data must be a JSON object, not {args.data[:80]}")
    parent = operations.parent_ref(client, args.parent)
    sent = operations.send_event(parent, args.name, data, actor=actor)
    if args.json:
        cli_format.print_json(sent)
    else:
        print(f"sent {sent['name']} as {sent['event']}")
    return 0


def run_end_wait(client: firestore.Client, args: argparse.Namespace, actor: Actor) -> int:
    ref = queries.task_ref(client, args.queue, args.path)
    done = {"path": ref.path, **operations.end_wait(ref, actor=actor)}
    if args.json:
        cli_format.print_json(done)
    else:
        print(f"{ref.path}: wait ended, due now (its wait_for returns None)")
    return 0
