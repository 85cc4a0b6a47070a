"""Running the installed ``purenet`` command in a subprocess, as a user would."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from purenet.data import DATA_ENV

PURENET = Path(sys.executable).parent / "purenet"
TIMEOUT = 120


# Commands under test never see a developer's real cache or the internet: the cache is a
# fresh folder, removed when the test process exits, and the only mirror is a closed port
# on this machine.
ISOLATED_CACHE = Path(tempfile.mkdtemp(prefix="purenet-test-cache-"))
atexit.register(shutil.rmtree, ISOLATED_CACHE, ignore_errors=True)
NO_MIRROR = "http://127.0.0.1:9/"


def environment(data: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != DATA_ENV}
    env["XDG_CACHE_HOME"] = str(ISOLATED_CACHE)
    env["PURENET_MIRRORS"] = NO_MIRROR
    if data is not None:
        env[DATA_ENV] = str(data)
    env["PYTHONWARNINGS"] = "default"  # a warning on stderr should show, not hide
    return env


def start(args, cwd: Path, data: Path | None, **popen) -> subprocess.Popen:
    """The installed ``purenet`` with ``args``, started in ``cwd`` on ``data`` and not
    waited for; its output is piped as text."""
    return subprocess.Popen(
        [str(PURENET), *map(str, args)],
        cwd=cwd,
        env=environment(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run(
    args, cwd: Path, data: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The installed ``purenet`` with ``args``, in :func:`environment` plus ``env``."""
    return subprocess.run(
        [str(PURENET), *map(str, args)],
        cwd=cwd,
        env=environment(data) | (env or {}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    """Exit 1 with exactly one line ``purenet: error: ...`` on stderr; returns that line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("purenet: error: ")
    return lines[0]


def trained_run(folder: Path, data: Path, *options) -> Path:
    """Train a run into ``folder`` with the installed command; it must succeed."""
    result = run(["train", *options, "--quiet", "--out", folder], folder.parent, data=data)
    assert result.returncode == 0, result.stderr
    return folder
