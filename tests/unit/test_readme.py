"""The documentation's examples run as written: the testing guide's example (which the README
links) is a test of its own."""

from __future__ import annotations

import re

from tests.support import ROOT

TESTING_GUIDE = ROOT / "docs" / "guides" / "testing.md"


def python_block(after: str, path=TESTING_GUIDE) -> str:
    """The first Python code block of the page at `path` after the heading `after`."""
    text = path.read_text()
    start = text.index(after)
    return re.search(r"```python\n(.*?)```", text[start:], re.DOTALL).group(1)


def test_the_testing_your_handlers_example_passes():
    namespace: dict = {}
    exec(python_block("## Testing your handlers"), namespace)
    namespace["test_send_retries_then_completes"]()


def test_the_faults_in_the_kit_example_passes():
    namespace: dict = {}
    exec(python_block("## Faults in the kit"), namespace)
    namespace["test_faults"]()


def test_the_flow_control_guide_s_pause_example_runs():
    exec(python_block("## Pause and resume", ROOT / "docs" / "guides" / "flow-control.md"), {})


def test_the_flow_control_guide_s_debounce_example_runs():
    exec(python_block("## Debounce", ROOT / "docs" / "guides" / "flow-control.md"), {})
