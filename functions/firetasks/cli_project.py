"""What the `firetasks` command finds of the user's project, run in their functions folder: the
TaskQueue (`--queue main:queue`) and the HandlerRegistry (`--handlers main`)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from firetasks.config import TaskQueue
from firetasks.errors import BadRequest
from firetasks.registry import HandlerRegistry


def find_queue(spec: str | None) -> TaskQueue:
    if not spec:
        return TaskQueue()
    module, _, name = spec.partition(":")
    try:
        queue = getattr(_import(module), name or "queue")
    except (ImportError, AttributeError) as exc:
        raise BadRequest(f"--queue {spec}: not an importable MODULE:NAME ({exc})") from exc
    if not isinstance(queue, TaskQueue):
        raise BadRequest(f"--queue {spec}: {type(queue).__name__} is not a TaskQueue")
    return queue


def _import(module: str) -> Any:
    """A module of the user's functions source, found from the current directory as with
    `python -m` (run the command in the folder holding main.py)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(module)


def find_registry(module: str) -> HandlerRegistry:
    try:
        registry: HandlerRegistry = _import(module).registry
    except (ImportError, AttributeError) as exc:
        raise BadRequest(f"--handlers {module}: not an importable module with a `registry` "
                         f"({exc})") from exc
    return registry
