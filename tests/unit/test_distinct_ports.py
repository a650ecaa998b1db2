"""tools/distinct_ports.cjs, which firebase-tools preloads: concurrent port requests from one base,
as the Functions emulator makes when it starts several Python workers at once, get distinct ports
(portfinder alone gave 16 distinct ports for 20 such requests here). Runs portfinder under Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
REQUESTS = """
const portfinder = require(require.resolve("portfinder", {paths: [process.argv[1]]}));
Promise.all(Array.from({length: 20}, () => portfinder.getPortPromise({port: 8709})))
  .then((ports) => console.log(JSON.stringify(ports)));
"""


def test_workers_started_at_once_get_distinct_ports():
    node = shutil.which("node")
    tools = ROOT / "node_modules" / "firebase-tools"
    if node is None or not tools.is_dir():
        pytest.fail("node and firebase-tools are missing: run `make install`")
    done = subprocess.run(
        [node, "--require", str(ROOT / "tools" / "distinct_ports.cjs"), "-e", REQUESTS,
         str(tools)], capture_output=True, text=True, check=True, timeout=60)
    ports = json.loads(done.stdout)
    assert len(ports) == 20
    assert len(set(ports)) == 20
