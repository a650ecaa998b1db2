"""The emulator wrapper's clean-up, outside the emulator suite (`make test` runs it on its own).

`kill -- -PGID` on `make dev` (SIGTERM), or a closed terminal (SIGHUP), reaches make and
tools/emulators.py but not firebase-tools, which runs in a process group of its own. The wrapper
must stop the suite as Ctrl-C does: no firebase-tools, Java emulator or Python worker left behind,
and the ports free for the next run.

Each test starts the suite with `emulators.py --dir` in a firebase project built in tmp_path: its
own ports and project id, so it never meets a suite started by `make dev` or `make test`, and
`functions` links to the repository's functions/ (main.py and the venv). Every process of the run
inherits a marker in its environment; that is how the test finds them all, even the Java emulator,
which firebase-tools starts in a session of its own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "demo-firetasks-lifecycle"
# Away from the repository's ports (firebase.json) and firebase-tools' defaults, and out of
# 8081-9081, where firebase-tools picks its Python workers' ports.
PORTS = {"functions": 5101, "firestore": 8070, "auth": 9199, "hub": 4501, "logging": 4601,
         "eventarc": 9389, "tasks": 9599}
WEBSOCKET_PORT = 9250  # the Firestore emulator's, for the UI (which is off), but always opened
LISTENING = ["functions", "firestore", "auth", "hub", "eventarc", "tasks"]  # logging: UI only
MARKER = "FIRETASKS_LIFECYCLE_RUN"
KINDS = {  # the processes of a running suite, by their command lines
    "firebase-tools": lambda cmd: program(cmd) == "node" and "firebase" in cmd,
    "Java emulator": lambda cmd: program(cmd) == "java",
    "Python worker": lambda cmd: program(cmd).startswith("python") and "functions-framework" in cmd,
}
START_TIMEOUT = 120  # a cold start takes 20-60 s on a 2-core machine
STOP_TIMEOUT = 60  # the wrapper gives firebase-tools 30 s to shut down before SIGKILL
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def program(cmdline: str) -> str:
    return Path(cmdline.split(" ", 1)[0]).name


def firebase_project(folder: Path) -> Path:
    repo_config = json.loads((ROOT / "firebase.json").read_text())
    emulators = {name: {"port": port} for name, port in PORTS.items()}
    emulators["firestore"]["websocketPort"] = WEBSOCKET_PORT
    config = {
        "functions": repo_config["functions"],
        "emulators": {**emulators, "ui": {"enabled": False}, "singleProjectMode": True},
    }
    (folder / "firebase.json").write_text(json.dumps(config, indent=2))
    (folder / ".firebaserc").write_text(json.dumps({"projects": {"default": PROJECT}}))
    (folder / "functions").symlink_to(ROOT / "functions", target_is_directory=True)
    (folder / "tmp").mkdir()  # TMPDIR: firebase-tools' hub locator file and the like
    return folder


def port_free(port: int) -> bool:
    """True when a server could listen on the port, on 127.0.0.1 and (where there is IPv6) ::1."""
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
    return True


def busy_ports() -> list[int]:
    return [port for port in [*PORTS.values(), WEBSOCKET_PORT] if not port_free(port)]


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("localhost", port), timeout=1):
        return True
    return False


def processes_of_run(marker: str, group: int | None, folder: Path) -> dict[int, str]:
    """pid -> command line of the live processes with the marker in their environment, in the
    wrapper's process group (unless None), or whose command line names the project folder."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        state, _ppid, pgid = stat[stat.rindex(")") + 2:].split()[:3]
        if state == "Z":  # exited, not yet reaped: holds no port, memory or file
            continue
        if f"{MARKER}={marker}".encode() in environ or int(pgid) == group or str(folder) in cmdline:
            found[int(proc.name)] = cmdline.strip()
    return found


def answers(url: str) -> bool:
    """True once the URL answers 200; the dashboard's page is served by a Python worker."""
    try:
        with NO_PROXY.open(url, timeout=10) as response:
            return response.status == 200
    except OSError:  # not up yet (URLError, HTTPError and timeouts are OSErrors)
        return False


def log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def ports_to_ourselves() -> Iterator[None]:
    """The ports are fixed: a test run elsewhere on this machine (another `make test`) waits."""
    with (Path(tempfile.gettempdir()) / "firetasks-lifecycle.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.mark.usefixtures("ports_to_ourselves")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_wrapper_stops_the_whole_suite(tmp_path: Path, signum: int) -> None:
    folder = firebase_project(tmp_path)
    if busy := busy_ports():
        pytest.fail(f"ports {busy} are in use before the start: left over by an earlier run?")
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER: marker, "TMPDIR": str(folder / "tmp")}
    env.pop("FIRETASKS_TESTING", None)
    log = folder / "emulators.log"
    with log.open("wb") as output:
        wrapper = subprocess.Popen(
            [sys.executable, str(ROOT / "tools/emulators.py"), "--dir", str(folder), "start"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        def ready() -> bool:
            if wrapper.poll() is not None:
                pytest.fail(f"emulators.py exited with {wrapper.returncode} before the signal")
            return all(port_open(PORTS[name]) for name in LISTENING) and answers(
                f"http://127.0.0.1:{PORTS['functions']}/{PROJECT}/us-central1/dashboard/")

        wait_until(ready, timeout=START_TIMEOUT, what="the emulators and a Python worker")
        running = list(processes_of_run(marker, wrapper.pid, folder).values())
        for kind, is_kind in KINDS.items():
            assert any(is_kind(cmdline) for cmdline in running), f"no {kind} in {running}"

        os.killpg(wrapper.pid, signum)  # what `kill -- -PGID` does to `make dev`

        def leftovers() -> list[str]:
            left = [f"port {port} in use" for port in busy_ports()] + [
                f"pid {pid}: {cmdline}"
                for pid, cmdline in processes_of_run(marker, wrapper.pid, folder).items()]
            # Until it exits the wrapper is a process of the run; polled after the scan, which
            # skips it once it is a zombie, so that an empty list always comes with its exit code.
            wrapper.poll()
            return left

        deadline = time.monotonic() + STOP_TIMEOUT
        while (left := leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "left behind after the signal:\n" + "\n".join(left)
        assert wrapper.returncode == 128 + signum, "emulators.py's exit code"
    except BaseException:
        print(f"emulators.py's output:\n{log_tail(log)}")
        raise
    finally:  # whatever happened, end every process of this run (all carry the marker)
        if wrapper.poll() is None:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.wait()
        deadline = time.monotonic() + 10
        while (left := processes_of_run(marker, None, folder)) and time.monotonic() < deadline:
            for pid in left:  # again until none is left: firebase-tools may start one meanwhile
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
