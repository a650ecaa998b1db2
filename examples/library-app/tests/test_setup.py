"""The library app is set up as the repository's getting-started guide tells a team to: its rules
follow its handlers, its indexes are its queue's and its own, and every snippet of the guide's 'Add
firetasks to your project' section is in one of its files, as it stands."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from support import APP

README = APP.parent.parent / "docs" / "getting-started.md"  # the guide of firetasks' repository
SECTION = "## Add firetasks to your project"
FIRETASKS_COMMAND = "cd functions && venv/bin/firetasks "  # how the README runs the command


def firetasks(*args: str) -> subprocess.CompletedProcess:
    """The `firetasks` command that the wheel installs, run in the functions folder."""
    command = Path(sys.executable).parent / "firetasks"
    return subprocess.run([command, *args], cwd=APP / "functions", capture_output=True,
                          text=True, check=False)


def test_the_rules_say_what_the_handlers_allow_clients():
    done = firetasks("rules", "--handlers", "library.handlers", "--check", "../firestore.rules")
    assert done.returncode == 0, done.stderr


def test_the_indexes_hold_the_queue_s_beside_the_app_s_own():
    done = firetasks("--queue", "main:queue", "indexes", "--check", "../firestore.indexes.json")
    assert done.returncode == 0, done.stderr
    groups = {entry["collectionGroup"]
              for entry in json.loads((APP / "firestore.indexes.json").read_text())["indexes"]}
    assert groups == {"loans", "jobs"}


def readme_section() -> str:
    readme = Path(os.environ.get("FIRETASKS_README", README)).read_text()
    assert SECTION in readme, f"the README has no '{SECTION}' section"
    section = readme.split(SECTION, 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]


def app_files() -> dict[str, str]:
    """The app's own source files (not its venv, vendored wheel or caches)."""
    kinds = {".py", ".json", ".rules", ".txt", ".ini", ".toml", ".firebaserc"}
    return {str(path.relative_to(APP)): path.read_text()
            for path in APP.rglob("*")
            if path.is_file() and (path.suffix or path.name) in kinds
            and not {"venv", "vendor", "tests"} & set(path.relative_to(APP).parts)
            and not any(part.startswith(".") for part in path.relative_to(APP).parts[:-1])}


def test_every_snippet_of_the_readme_section_is_in_this_app():
    blocks = re.findall(r"^```(\w*)\n(.*?)^```$", readme_section(), re.MULTILINE | re.DOTALL)
    files = app_files()
    snippets = commands = 0
    for language, block in blocks:
        if language != "sh":
            found = [name for name, text in files.items() if block in text]
            assert found, f"this README snippet is in none of the app's files:\n{block}"
            snippets += 1
            continue
        # `firetasks ... --write FILE` commands: run with --check, the file must be as written.
        for line in block.splitlines():
            if line.startswith(FIRETASKS_COMMAND):
                args = shlex.split(line.removeprefix(FIRETASKS_COMMAND))
                done = firetasks(*["--check" if arg == "--write" else arg for arg in args])
                assert done.returncode == 0, f"{line}: {done.stderr}"
                commands += 1
    assert snippets >= 4, f"only {snippets} snippets found in the README section"
    assert commands >= 2, f"only {commands} firetasks commands found in the README section"
