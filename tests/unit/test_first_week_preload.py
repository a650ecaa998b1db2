"""The emulators' preload ships with the library (issue 23, item 11): emulator_fixes.cjs is package
data of firetasks, one copy, which tools/emulators.py and a team's own emulator runs preload alike
(`firetasks emulators-preload` prints its path, `--node-options` the NODE_OPTIONS to use)."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

import firetasks
from firetasks import emulator_fixes
from tools import emulators

ROOT = Path(__file__).parents[2]


def test_the_preload_is_package_data_of_firetasks_in_one_copy():
    path = emulator_fixes.preload_path()
    assert path == Path(firetasks.__file__).resolve().parent / "emulator_fixes.cjs"
    assert path.is_file()
    assert "portfinder" in path.read_text()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["firetasks"]
    assert "emulator_fixes.cjs" in package_data
    assert emulators.EMULATOR_FIXES.resolve() == path
    assert not (ROOT / "tools" / "emulator_fixes.cjs").exists()


def test_node_options_add_the_preload_once_before_what_is_there(monkeypatch):
    require = f'--require "{emulator_fixes.preload_path()}"'
    assert emulator_fixes.node_options("") == require
    assert emulator_fixes.node_options("--max-old-space-size=4096") == (
        f"{require} --max-old-space-size=4096")
    assert emulator_fixes.node_options(require) == require
    monkeypatch.setenv("NODE_OPTIONS", "--trace-warnings")
    assert emulator_fixes.node_options() == f"{require} --trace-warnings"


def _command(argv: list[str]) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="firetasks")
    emulator_fixes.add_command(root.add_subparsers(required=True))
    return root.parse_args(argv)


@pytest.mark.parametrize(("argv", "printed"), [
    (["emulators-preload"], lambda: str(emulator_fixes.preload_path())),
    (["emulators-preload", "--node-options"], lambda: emulator_fixes.node_options("")),
])
def test_the_command_prints_the_path_or_node_options(argv, printed, capsys, monkeypatch):
    monkeypatch.delenv("NODE_OPTIONS", raising=False)
    args = _command(argv)
    assert args.offline is True  # the `firetasks` command runs it without Firestore
    assert args.run(None, args) == 0
    assert capsys.readouterr().out == printed() + "\n"
