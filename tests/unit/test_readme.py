"""The README's examples run as written."""

from __future__ import annotations

import re

from tests.support import ROOT


def python_block(after: str) -> str:
    """The first Python code block of the README after the heading `after`."""
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    return re.search(r"```python\n(.*?)```", text[start:], re.DOTALL).group(1)


def test_the_testing_your_handlers_example_passes():
    namespace: dict = {}
    exec(python_block("### Testing your handlers"), namespace)
    namespace["test_send_retries_then_completes"]()
