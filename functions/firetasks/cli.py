"""`firetasks`: the support agent's command line, on the emulator or a real project.

It talks to the emulator when FIRESTORE_EMULATOR_HOST is set, else to the project's Firestore with
Application Default Credentials (`gcloud auth application-default login`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore

from firetasks import (
    cli_format,
    cli_pauses,
    cli_project,
    client_rules,
    db,
    emulator_fixes,
    operations,
    queries,
)
from firetasks.audit import Actor
from firetasks.cli_waits import add_commands as add_wait_commands
from firetasks.clock import utc_now
from firetasks.errors import BadRequest, IllegalTransition, TaskNotFound, Unreachable
from firetasks.filters import DATA_PREFIX, FILTERS, TaskFilter
from firetasks.indexes import index_config, merged
from firetasks.task import State


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        # `run`: the command's run_* function (its parser's default), which returns the status
        if getattr(args, "offline", False):
            return cast(int, args.run(None, args))
        args.queue = cli_project.find_queue(args.queue)
        db.check_emulator()
        client = firestore.Client(project=db.find_project(args.project),
                                  database=args.queue.database)
        return cast(int, args.run(client, args))
    except (BadRequest, IllegalTransition, TaskNotFound) as exc:
        print(f"firetasks: {exc}", file=sys.stderr)
        return 2
    except (auth_exceptions.DefaultCredentialsError, api_exceptions.GoogleAPIError,
            Unreachable) as exc:
        print(f"firetasks: cannot reach Firestore: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="firetasks", description=__doc__.splitlines()[0])
    root.add_argument("--project", help="Firebase project (default: GCLOUD_PROJECT or "
                                        "GOOGLE_CLOUD_PROJECT, else the default project of "
                                        "the nearest .firebaserc)")
    root.add_argument("--json", action="store_true", help="print JSON for scripts")
    root.add_argument("--queue", default=os.environ.get("FIRETASKS_QUEUE"),
                      metavar="MODULE:NAME", help="the TaskQueue to operate, e.g. main:queue "
                      "(default: FIRETASKS_QUEUE, else `tasks` collections, no parent alias)")
    commands = root.add_subparsers(required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="tasks across all parents, newest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=25)
    listing.add_argument("--cursor", help="the `next` cursor a previous page printed")
    listing.set_defaults(run=run_list)

    show = commands.add_parser("show", help="one task with its data, error and history")
    show.add_argument("path", help="e.g. orders/o-123/tasks/t-1")
    show.set_defaults(run=run_show)

    retry = commands.add_parser("retry", help="retry tasks: given paths, or the failed ones "
                                              "matching filters")
    retry.add_argument("paths", nargs="*")
    _filters(retry, states=False)
    retry.add_argument("--max-attempts", type=int, help="attempt budget for the retry")
    retry.add_argument("--dry-run", action="store_true", help="only count what would be retried")
    retry.add_argument("--confirm", type=int, metavar="N",
                       help="retry the failed tasks that match if there are still N (as counted)")
    retry.set_defaults(run=run_retry)

    cancel = commands.add_parser("cancel", help="cancel waiting tasks; running ones stop "
                                                "retrying")
    cancel.add_argument("paths", nargs="+")
    cancel.set_defaults(run=run_cancel)

    cli_pauses.add_commands(commands, _actor)

    stats = commands.add_parser("stats", help="unfinished tasks by state, finished ones in the "
                                              "last hour and day, failures by handler")
    stats.set_defaults(run=run_stats)

    rules = commands.add_parser("rules", help="the security-rules function that says which "
                                              "tasks clients may create")
    rules.add_argument("--handlers", default=os.environ.get("FIRETASKS_HANDLERS"),
                       help="module whose `registry` names the handlers, e.g. shop.handlers")
    target = rules.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="RULES_FILE", help="replace the function in this file")
    target.add_argument("--check", metavar="RULES_FILE",
                        help="exit 1 if this file's function differs from the registry's")
    rules.set_defaults(run=run_rules, offline=True)

    indexes = commands.add_parser("indexes", help="the Firestore indexes of the queue's "
                                                  "collections (firestore.indexes.json)")
    target = indexes.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="INDEXES_FILE",
                        help="replace the queue's collections' entries in this file")
    target.add_argument("--check", metavar="INDEXES_FILE",
                        help="exit 1 if this file's entries differ from the queue's")
    indexes.set_defaults(run=run_indexes, offline=True)

    prune = commands.add_parser("prune", help="delete finished tasks whose expireAt has passed "
                                              "(as Firestore's TTL policy does, where it does not "
                                              "run: the emulator)")
    prune.add_argument("--older-than", type=_duration, metavar="AGE",
                       help="instead, finished tasks whose finishedAt is older: 30d, 12h, 90m")
    prune.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    prune.set_defaults(run=run_prune)
    emulator_fixes.add_command(commands)
    add_wait_commands(commands, _actor)
    return root


def _filters(command: argparse.ArgumentParser, states: bool = True) -> None:
    if states:
        command.add_argument("--state", choices=[state.value for state in State])
    command.add_argument("--type")
    command.add_argument("--action")
    command.add_argument("--parent", help="a document path, or an id of the queue's "
                                          "parent_alias collection")
    command.add_argument("--collection", help="which of the queue's tasks collections "
                                              "(default: its first)")
    command.add_argument("--since", help="ISO 8601 time, by createdAt")
    command.add_argument("--until", help="ISO 8601 time, by createdAt")
    command.add_argument("--data", action="append", metavar="FIELD=VALUE",
                         help="tasks whose data.FIELD is VALUE, for a field that handlers "
                              "declare searchable (e.g. orderId=o-123)")


def _filter_of(args: argparse.Namespace, **fixed: str) -> TaskFilter:
    given = {name: getattr(args, name) for name in FILTERS if getattr(args, name, None)}
    for pair in getattr(args, "data", None) or []:
        field, equals, value = pair.partition("=")
        if not equals:
            raise BadRequest(f"--data takes FIELD=VALUE, like orderId=o-123, not {pair!r}")
        if DATA_PREFIX + field.strip() in given:
            raise BadRequest(f"--data {field.strip()} is given twice: search by one value")
        given[DATA_PREFIX + field.strip()] = value
    return TaskFilter.parse(given | fixed, args.queue)


def run_list(client: firestore.Client, args: argparse.Namespace) -> int:
    page, after = queries.list_tasks(client, args.queue, _filter_of(args), limit=args.limit,
                                     cursor=args.cursor)
    rows = [queries.summary(snapshot) for snapshot in page]
    if args.json:
        cli_format.print_json({"tasks": rows, "next": after})
        return 0
    cli_format.table(rows)
    if after:
        print(f"\nmore: firetasks list ... --cursor {after}")
    return 0


def run_show(client: firestore.Client, args: argparse.Namespace) -> int:
    snapshot = queries.task_ref(client, args.queue, args.path).get()
    if not snapshot.exists:
        raise TaskNotFound(f"no task at {args.path}")
    task = queries.detail(snapshot)
    if args.json:
        cli_format.print_json(task)
        return 0
    cli_format.print_task(task)
    return 0


def run_retry(client: firestore.Client, args: argparse.Namespace) -> int:
    if args.paths:
        refs = [queries.task_ref(client, args.queue, path) for path in args.paths]
        return _act(refs, lambda ref: operations.retry(
            ref, max_attempts=args.max_attempts, actor=_actor()), args.json)
    where = _filter_of(args, state=State.FAILED.value)
    if where == TaskFilter(state=State.FAILED.value):
        raise BadRequest("give task paths, or filters (e.g. --action) to retry failed tasks")
    confirm = None if args.dry_run else args.confirm
    done = operations.bulk_retry(client, args.queue, where, confirm=confirm, actor=_actor(),
                                 max_attempts=args.max_attempts)
    if args.json:
        cli_format.print_json(done)
    elif confirm is None:
        for path in done["paths"]:
            print(f"{path}: would retry")
        print(f"{done['count']} failed task(s) match"
              f"{'' if done['count'] <= len(done['paths']) else ' (the first shown)'}")
    else:
        for path in done["paths"]:
            print(f"{path}: failed -> scheduled")
        print(f"{done['retried']} of {done['count']} task(s) retried")
    if confirm is None and not args.dry_run:
        print(f"firetasks: to retry them, run again with --confirm {done['count']}",
              file=sys.stderr)
        return 2
    return 0


def run_cancel(client: firestore.Client, args: argparse.Namespace) -> int:
    refs = [queries.task_ref(client, args.queue, path) for path in args.paths]
    return _act(refs, lambda ref: operations.cancel(ref, actor=_actor(), queue=args.queue),
                args.json)


def run_prune(client: firestore.Client, args: argparse.Namespace) -> int:
    done = operations.prune(client, args.queue, actor=_actor(), older_than=args.older_than,
                            dry_run=args.dry_run,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        cli_format.print_json(dataclasses.asdict(done))
    elif args.dry_run:
        print(f"{done.matched} finished task(s) would be deleted")
    else:
        print(f"{done.deleted} of {done.matched} finished task(s) deleted"
              + (f", {done.changed} changed meanwhile and kept" if done.changed else ""))
    return 0


def _duration(text: str) -> datetime.timedelta:
    """An age such as `30d`, `12h`, `90m` or `45s`."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or not int(text[:-1]):
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h, 90m or 45s")
    return datetime.timedelta(**{units[text[-1]]: int(text[:-1])})


def run_stats(client: firestore.Client, args: argparse.Namespace) -> int:
    figures = queries.stats(client, args.queue, utc_now())
    if args.json:
        cli_format.print_json(figures)
        return 0
    cap = figures["countCap"]

    def shown(count: int) -> str:
        return f"{count}+" if count >= cap else str(count)

    print("now: " + "  ".join(f"{state}: {shown(count)}"
                              for state, count in figures["byState"].items()))
    for label, window in (("last hour", "lastHour"), ("last day", "lastDay")):
        print(f"{label}: " + "  ".join(f"{state}: {shown(count)}"
                                       for state, count in figures["recent"][window].items()))
    oldest = figures["oldestWaiting"]
    print(f"oldest waiting: {oldest['path']} since {oldest['createdAt']}" if oldest
          else "oldest waiting: none")
    print("failed in the last day, by handler:")
    for name, counts in figures["byHandler"].items():
        print(f"  {name:44} {shown(counts['failedLastDay']):>6}")
    return 0


def run_rules(client: firestore.Client | None, args: argparse.Namespace) -> int:
    if not args.handlers:
        raise BadRequest("rules: give --handlers MODULE (the module whose `registry` to follow)")
    registry = cli_project.find_registry(args.handlers)
    if not (args.write or args.check):
        print(client_rules.rules_function(registry, indent=""))
        return 0
    return _generated(args, f"the {client_rules.FUNCTION} function of {args.handlers}",
                      lambda text: client_rules.with_function(text, registry))


def run_indexes(client: firestore.Client | None, args: argparse.Namespace) -> int:
    queue = cli_project.find_queue(args.queue)
    if not (args.write or args.check):
        cli_format.print_json(index_config(queue))
        return 0
    return _generated(args, f"the indexes of {', '.join(queue.collections)}",
                      lambda text: json.dumps(merged(json.loads(text), queue), indent=2) + "\n")


def _generated(args: argparse.Namespace, what: str, update: Callable[[str], str]) -> int:
    """`--write FILE` or `--check FILE` of a generated part: `update` turns the file's text into
    the text it should have."""
    path = Path(args.write or args.check)
    try:
        text = path.read_text()
        updated = update(text)
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{path}: {exc}") from exc
    if args.check:
        if updated != text:
            print(f"{path} lacks or differs from {what}: run the same command with --write "
                  f"{path}", file=sys.stderr)
            return 1
        print(f"{path} has {what}")
        return 0
    path.write_text(updated)
    print(f"wrote {what} to {path}")
    return 0


def _act(refs: list[Any], action: Any, as_json: bool) -> int:
    """Apply `action` to each task; report each outcome; exit 2 if any could not be done."""
    outcomes, failed = [], False
    for ref in refs:
        try:
            outcomes.append({"path": ref.path, **action(ref)})
        except (IllegalTransition, TaskNotFound) as exc:
            outcomes.append({"path": ref.path, "error": str(exc)})
            failed = True
    cli_format.report(outcomes, as_json)
    return 2 if failed else 0


def _actor() -> Actor:
    return Actor(uid=None, email=os.environ.get("FIRETASKS_OPERATOR") or getpass.getuser(),
                 via="cli")


if __name__ == "__main__":
    sys.exit(main())
