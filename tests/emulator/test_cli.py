"""The `firetasks` command against the Firestore emulator (FIRESTORE_EMULATOR_HOST is set)."""

from __future__ import annotations

import json
import os

import pytest

from firetasks import cli
from firetasks.audit import AUDIT_COLLECTION
from firetasks.db import find_project
from shop.handlers import DECLINED_CARD
from shop.orders import create_order
from tests.support import ROOT, task_fields, wait_for_state


@pytest.fixture(autouse=True)
def queue(monkeypatch):
    """The CLI operates the queue of main.py (bare ids name orders)."""
    monkeypatch.setenv("FIRETASKS_QUEUE", "main:queue")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_and_prints_a_table_or_json(capsys, failed_task, uid):
    code, out, _ = run(capsys, "list", "--parent", uid, "--state", "failed")
    assert code == 0
    assert failed_task.path in out
    assert "probe.permanent" in out
    code, out, _ = run(capsys, "--json", "list", "--parent", f"orders/{uid}")
    assert code == 0
    page = json.loads(out)
    assert [task["path"] for task in page["tasks"]] == [failed_task.path]
    assert page["next"] is None


def test_show_prints_the_error_and_history(capsys, failed_task):
    code, out, _ = run(capsys, "show", failed_task.path)
    assert code == 0
    assert "PermanentError: card declined" in out
    assert "Traceback (most recent call last):" in out  # where it failed, indented under it
    assert "            firetasks.errors.PermanentError: card declined" in out
    assert "attempt 1: failed" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["show", "orders/x"], "is not a task path"),
     (["show", "orders/x/tasks/none"], "no task at orders/x/tasks/none"),
     (["list", "--since", "soon"], "since must be an ISO 8601 time"),
     (["list", "--parent", "a/b/c"], "is not a document path"),
     (["list", "--data", "colour=red"], "data.colour is not searchable: search by data.orderId"),
     (["list", "--data", "orderId=o-1", "--action", "charge"], "no index serves that search"),
     (["list", "--data", "orderId"], "--data takes FIELD=VALUE"),
     (["retry"], "give task paths, or filters"),
     (["--queue", "no.such:queue", "stats"], "not an importable MODULE:NAME"),
     (["rules", "--handlers", "no.such.module"], "not an importable module with a `registry`")],
)
def test_bad_input_exits_2_with_a_clear_message(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_an_unknown_state_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["list", "--state", "bogus"])
    assert exited.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_retry_a_task_by_path_and_the_audit_names_the_cli(capsys, db, failed_task, monkeypatch):
    monkeypatch.setenv("FIRETASKS_OPERATOR", "agent-smith")
    code, out, _ = run(capsys, "retry", failed_task.path)
    assert code == 0
    assert f"{failed_task.path}: failed -> scheduled" in out
    assert wait_for_state(failed_task, ("failed",))["attempts"] == 2
    entries = [e.to_dict() for e in db.collection(AUDIT_COLLECTION).stream()
               if e.get("task") == failed_task.path]
    assert [(e["actor"]["email"], e["actor"]["via"]) for e in entries] == [("agent-smith", "cli")]


def test_bulk_retry_by_filter_with_a_dry_run_first(capsys, failed_task, uid):
    code, out, _ = run(capsys, "retry", "--parent", uid, "--dry-run")
    assert (code, out.splitlines()) == (
        0, [f"{failed_task.path}: would retry", "1 failed task(s) match"])
    code, _, err = run(capsys, "retry", "--parent", uid, "--action", "permanent")
    assert code == 2
    assert "run again with --confirm 1" in err
    assert failed_task.get().get("state") == "failed"
    code, _, err = run(capsys, "retry", "--parent", uid, "--confirm", "2")
    assert code == 2
    assert "1 tasks match now, not 2" in err
    assert failed_task.get().get("state") == "failed"
    code, out, _ = run(capsys, "--json", "retry", "--parent", uid, "--confirm", "1")
    assert code == 0
    assert json.loads(out) == {"count": 1, "retried": 1, "paths": [failed_task.path]}


def test_list_and_retry_search_by_a_searchable_data_field(capsys, db, uid):
    """`--data orderId=...`: the order's tasks, and any other task whose data names the order."""
    order = create_order(db, uid, email="search@example.com", items=["tea"], card=DECLINED_CARD)
    elsewhere = db.document(f"invoices/{uid}/tasks/t")
    elsewhere.set(task_fields("probe", "permanent", {"orderId": uid}))
    tasks = [order.collection("tasks").document(name) for name in
             ("charge", "sendConfirmationEmail", "initiateProcessing", "ship")]
    states = {ref.path: wait_for_state(ref)["state"] for ref in [*tasks, elsewhere]}
    failed = sorted(path for path, state in states.items() if state == "failed")
    assert tasks[0].path in failed
    assert elsewhere.path in failed

    code, out, _ = run(capsys, "--json", "list", "--data", f"orderId={uid}")
    assert code == 0
    assert {task["path"]: task["state"] for task in json.loads(out)["tasks"]} == states
    code, out, _ = run(capsys, "--json", "list", "--data", f"orderId={uid}", "--parent", uid,
                       "--state", "failed")
    assert code == 0
    assert sorted(task["path"] for task in json.loads(out)["tasks"]) == [
        path for path in failed if path.startswith(f"{order.path}/")]
    code, out, _ = run(capsys, "list", "--data", f"orderId={uid}-none")
    assert (code, out.splitlines()[1:]) == (0, ["0 task(s)"])

    code, out, _ = run(capsys, "retry", "--data", f"orderId={uid}", "--dry-run")
    *counted, total = out.splitlines()
    assert code == 0
    assert sorted(counted) == [f"{path}: would retry" for path in failed]
    assert total == f"{len(failed)} failed task(s) match"


def test_cancel_says_when_the_state_machine_forbids_it(capsys, failed_task):
    code, out, _ = run(capsys, "cancel", failed_task.path)
    assert code == 2
    assert "a failed task cannot become cancelled" in out


def test_stats_count_recent_failures_by_handler(capsys, failed_task):
    code, out, _ = run(capsys, "--json", "stats")
    assert code == 0
    figures = json.loads(out)
    assert figures["recent"]["lastHour"]["failed"] >= 1
    assert figures["byHandler"]["probe.permanent"]["failedLastDay"] >= 1
    assert set(figures["byState"]) == {"waiting", "scheduled", "running", "retrying"}
    code, out, _ = run(capsys, "stats")
    assert code == 0
    assert out.startswith("now: waiting: ")
    [line] = [line for line in out.splitlines() if "probe.permanent" in line]
    assert int(line.split()[-1]) >= 1


def test_list_shows_the_error_of_failed_tasks(capsys, failed_task, uid):
    code, out, _ = run(capsys, "list", "--parent", uid)
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[-1] == "ERROR"
    assert row.startswith(failed_task.path)
    assert row.split()[2:4] == ["failed", "1"]
    assert row.endswith(" PermanentError: card declined")


@pytest.fixture
def no_project_set(monkeypatch):
    """Only FIRESTORE_EMULATOR_HOST, as the README's CLI section starts."""
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)


def test_without_a_project_set_the_cli_takes_the_firebaserc_default(
        capsys, monkeypatch, no_project_set, failed_task, uid):
    monkeypatch.chdir(ROOT / "functions")  # the README's `cd functions`: ../.firebaserc
    code, out, _ = run(capsys, "list", "--parent", uid)
    assert code == 0
    assert failed_task.path in out
    assert "1 task(s)" in out


def test_without_any_project_the_cli_fails_instead_of_answering_empty(
        capsys, monkeypatch, no_project_set, tmp_path, failed_task, uid):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "list", "--parent", uid)
    assert (code, out) == (2, "")
    assert "no project: give --project, set GCLOUD_PROJECT" in err
    (tmp_path / ".firebaserc").write_text(json.dumps({"projects": {"staging": "x"}}))
    code, out, err = run(capsys, "stats")
    assert (code, out) == (2, "")
    assert f"{tmp_path / '.firebaserc'} names no default project" in err
    project = find_project(None, environ=os.environ, start=ROOT / "functions")
    code, out, _ = run(capsys, "--project", project, "list", "--parent", uid)
    assert code == 0
    assert failed_task.path in out
