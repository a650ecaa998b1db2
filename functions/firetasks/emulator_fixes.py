"""The emulators' preload, shipped with the library: emulator_fixes.cjs mends two races between
firebase-tools' Functions emulator and its Python workers (a port given to two workers started at
once; a kept-alive connection reused as the worker closes it). Each lost a request, and so a
trigger event, now and then: in any project that runs its Python functions in the emulators.

Node preloads it through NODE_OPTIONS:

    NODE_OPTIONS="$(firetasks emulators-preload --node-options)" firebase emulators:exec "..."

`firetasks emulators-preload` prints the file's path; `--node-options` prints NODE_OPTIONS with
the preload added to what it holds already.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PRELOAD = "emulator_fixes.cjs"


def preload_path() -> Path:
    """Where the preload is: beside this module (in the wheel, and in the repository alike)."""
    return Path(__file__).resolve().parent / PRELOAD


def node_options(existing: str | None = None) -> str:
    """NODE_OPTIONS that preload the fixes: `--require "<path>"`, then `existing` (by default the
    environment's NODE_OPTIONS); unchanged if it preloads them already."""
    existing = os.environ.get("NODE_OPTIONS", "") if existing is None else existing
    require = f'--require "{preload_path()}"'
    if require in existing:
        return existing
    return f"{require} {existing}".strip()


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `emulators-preload` command, in the `firetasks` command's subcommands."""
    command = commands.add_parser(
        "emulators-preload", help="the path of the emulators' preload (fixes two races of the "
                                  "Functions emulator with Python workers)")
    command.add_argument("--node-options", action="store_true",
                         help="print NODE_OPTIONS with the preload added instead")
    command.set_defaults(run=run, offline=True)


def run(client: object, args: argparse.Namespace) -> int:
    """Print the preload's path (or, with --node-options, NODE_OPTIONS preloading it)."""
    print(node_options() if args.node_options else preload_path())
    return 0
