"""The module map of docs/architecture.md is true: it lists every module of firetasks/, in
layers, each importing only modules listed above it (imports for type checking only aside)."""

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
    """The firetasks modules `module` imports at run time."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in tree.body:  # top level only: `if TYPE_CHECKING:` blocks are skipped
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
