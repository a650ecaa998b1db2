"""The module map of docs/architecture.md is true: it lists every module of firetasks/, in
layers, each importing only modules listed above it (imports for type checking included: no
import cycle), and each module and class stays short enough to read in one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "functions" / "firetasks"


def listed_modules() -> list[str]:
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    block = architecture.split("  firetasks/ ", 1)[1].split("\n  testing/ ", 1)[0]
    return re.findall(r"^    (\w+)\.py ", block, re.MULTILINE)


def imported(module: str) -> set[str]:
    """The firetasks modules `module` imports, anywhere in it (`if TYPE_CHECKING:` included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.module == "firetasks":
            found |= {alias.name for alias in node.names}
        elif str(node.module).startswith("firetasks."):
            found.add(str(node.module).split(".")[1])
    return found & {path.stem for path in PACKAGE.glob("*.py")}


def test_the_module_map_lists_every_module_once():
    listed = listed_modules()
    assert sorted(listed) == sorted(path.stem for path in PACKAGE.glob("*.py")
                                    if path.stem != "__init__")


def test_each_module_imports_only_modules_listed_above_it():
    listed = listed_modules()
    wrong = {module: sorted(name for name in imported(module)
                            if name in listed and listed.index(name) > listed.index(module))
             for module in listed}
    assert {module: names for module, names in wrong.items() if names} == {}


MAX_MODULE_LINES = 350
MAX_CLASS_LINES = 200


def test_no_module_is_longer_than_a_sitting():
    lengths = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_no_class_is_longer_than_a_sitting():
    long = {}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    long[f"{path.name}:{node.name}"] = length
    assert long == {}


def test_a_type_checking_import_that_runs_back_up_is_seen(tmp_path, monkeypatch):
    """The check reads `if TYPE_CHECKING:` blocks too (they used to hide an import cycle)."""
    (tmp_path / "low.py").write_text("from typing import TYPE_CHECKING\n"
                                     "if TYPE_CHECKING:\n    from firetasks.high import X\n")
    (tmp_path / "high.py").write_text("")
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path)
    assert imported("low") == {"high"}
