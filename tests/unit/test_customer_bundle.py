"""The customer view's checked-in bundle is what `make web` builds from web/ and the pinned
`firebase` package: a deploy uploads the bundle as it is, so an edit of web/customer.js (or a bump
of firebase or esbuild) without `make web` would ship the old page. Offline, about a second."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "functions/firetasks/customer_static/customer.js"


def test_the_checked_in_bundle_is_built_from_the_current_source(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "web/node_modules/esbuild").is_dir():
        pytest.skip("node and web/'s packages (make install) are needed to rebuild the bundle")
    rebuilt = tmp_path / "customer.js"
    subprocess.run([node, str(ROOT / "web/build.mjs"), str(rebuilt)], cwd=ROOT, check=True,
                   timeout=60)
    assert rebuilt.read_bytes() == BUNDLE.read_bytes(), (
        f"{BUNDLE.relative_to(ROOT)} is out of date: run `make web` and commit it")

