"""Handlers type-check under `mypy --strict` as the guides write them (issue 23, item 9): the
registry's decorators return the decorated function with its own type, a handler may return
`dict[str, Any]`, and `task.parent_ref` is a DocumentReference (`task.parent` may be None)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from firetasks import Task
from firetasks.memory import FakeClock, MemoryStore

ROOT = Path(__file__).parents[2]
HANDLERS = '''
from typing import Any

from firetasks import HandlerRegistry, Task

registry = HandlerRegistry()


@registry.handler("order", "initiateProcessing", atomic=True)
def initiate_processing(task: Task) -> dict[str, Any]:
    order = task.parent_ref.get().to_dict() or {}
    task.writes.update(task.parent_ref, {"status": "processing"})
    return {"items": len(order.get("items", []))}


@registry.periodic("reports", "daily", schedule="every day 06:00")
def daily(task: Task) -> None:
    pass


reveal_type(initiate_processing)
reveal_type(daily)
'''


def test_the_guides_handlers_type_check_strictly_and_keep_their_types(tmp_path, request,
                                                                      monkeypatch):
    api = pytest.importorskip("mypy.api")
    module = tmp_path / "first_week_handlers.py"
    module.write_text(f"# {uuid.uuid4()}: new, so checked again (a cached module reveals nothing)"
                      + HANDLERS)
    cache = request.config.cache.mkdir("first-week-mypy")  # firetasks' types, kept between runs
    monkeypatch.setenv("MYPYPATH", str(ROOT / "functions"))
    out, err, _ = api.run(["--strict", "--config-file", str(ROOT / "mypy.ini"),
                                "--cache-dir", str(cache), str(module)])
    mine = [line for line in out.splitlines() if line.startswith(str(module))]
    assert [line for line in mine if ": error:" in line] == [], out + err
    revealed = [line.split("Revealed type is ", 1)[1] for line in mine if "Revealed" in line]
    assert revealed == ['"def (task: firetasks.handler.Task) -> builtins.dict[builtins.str, Any]"',
                        '"def (task: firetasks.handler.Task)"'] or revealed == [
        '"def (task: firetasks.handler.Task) -> dict[str, Any]"',
        '"def (task: firetasks.handler.Task)"']


def _task(path: str) -> Task:
    ref = MemoryStore(FakeClock()).client.document(path)
    return Task(ref=ref, type="order", action="ship", data={}, attempt=1)


def test_parent_ref_is_the_parent_document_and_refuses_a_task_at_the_root():
    assert _task("orders/o-1/tasks/t").parent_ref.path == "orders/o-1"
    root = _task("tasks/t")
    assert root.parent is None
    with pytest.raises(ValueError, match=r"tasks/t .*order\.ship.* at the root"):
        root.parent_ref  # noqa: B018
