"""The `firetasks pause`, `resume` and `pauses` commands (firetasks.pauses)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from google.cloud import firestore

from firetasks import cli_format, operations, pauses
from firetasks.audit import Actor


def add_commands(commands: Any, actor: Callable[[], Actor]) -> None:
    """Add the commands to the `firetasks` parser's subparsers; `actor`: who runs them."""
    for verb, text in (("pause", "hold a handler's (or one key's) tasks: none starts until "
                                 "resumed; running attempts finish"),
                       ("resume", "lift a pause: the held tasks start, oldest first")):
        command = commands.add_parser(verb, help=text)
        command.add_argument("handler", help="type.action, e.g. mail.send")
        command.add_argument("--key", help="only this key (a handler with limits per key)")
        command.set_defaults(run=run_pause, verb=verb, actor=actor)
    commands.add_parser("pauses", help="the handlers and keys paused, by whom, since when"
                        ).set_defaults(run=run_pauses)


def run_pause(client: firestore.Client, args: argparse.Namespace) -> int:
    verb = operations.pause if args.verb == "pause" else operations.resume
    done = verb(client, args.queue, args.handler, key=args.key, actor=args.actor())
    if args.json:
        cli_format.print_json(done)
    elif args.verb == "pause":
        print(f"{done['target']}: {done['reason']}")
    else:
        print(f"{done['target']}: resumed, {done['resumed']} held task(s) started")
    return 0


def run_pauses(client: firestore.Client, args: argparse.Namespace) -> int:
    found = [pause.as_json() for pause in pauses.listed(client)]
    if args.json:
        cli_format.print_json(found)
        return 0
    for pause in found:
        print(f"{pause['target']}: {pause['reason']}")
    if not found:
        print("nothing is paused")
    return 0
