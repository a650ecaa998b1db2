"""firetasks/emulator_fixes.cjs (shipped in the wheel), which firebase-tools preloads, run under
Node: Python workers started at once get distinct ports (portfinder alone gave 16 distinct ports
for 20 such requests here), and the emulator's requests to its workers do not reuse connections
(Node's default agent does, and a worker's gunicorn closes idle ones: a request on a closing one
fails)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from firetasks.emulator_fixes import preload_path

ROOT = Path(__file__).parents[2]
PROBE = """
const http = require("http");
const portfinder = require(require.resolve("portfinder", {paths: [process.argv[1]]}));
Promise.all(Array.from({length: 20}, () => portfinder.getPortPromise({port: 8709})))
  .then((ports) => console.log(JSON.stringify({ports, keepAlive: http.globalAgent.keepAlive})));
"""


def preloaded(preload: bool) -> dict:
    node = shutil.which("node")
    tools = ROOT / "node_modules" / "firebase-tools"
    if node is None or not tools.is_dir():
        pytest.fail("node and firebase-tools are missing: run `make install`")
    flags = ["--require", str(preload_path())] if preload else []
    env = {name: value for name, value in os.environ.items()
           if name != "NODE_OPTIONS"}  # under `make test`, the emulators' own preload
    done = subprocess.run([node, *flags, "-e", PROBE, str(tools)], capture_output=True,
                          text=True, check=True, timeout=60, env=env)
    return json.loads(done.stdout)


def test_workers_started_at_once_get_distinct_ports_and_fresh_connections():
    found = preloaded(True)
    assert len(found["ports"]) == 20
    assert len(set(found["ports"])) == 20
    assert found["keepAlive"] is False
    assert preloaded(False)["keepAlive"] is True  # what Node does without the fix
