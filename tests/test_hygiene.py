"""What the test suite leaves behind, and what an installed purenet picks up from the
current folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import purenet

TESTS = Path(__file__).resolve().parent


def test_the_isolated_cache_of_the_cli_tests_is_removed_when_the_process_exits(tmp_path):
    # cli_helpers makes the folder when imported, as a test session does; TMPDIR puts it
    # under tmp_path, where nothing else writes.
    code = "import cli_helpers; print(cli_helpers.ISOLATED_CACHE)"
    env = os.environ | {"TMPDIR": str(tmp_path), "PYTHONPATH": str(TESTS)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    cache = Path(result.stdout.strip())
    assert cache.parent == tmp_path and cache.name.startswith("purenet-test-cache-")
    assert not cache.exists()
    assert list(tmp_path.iterdir()) == []


def test_slow_is_a_registered_marker(pytestconfig):
    # pytest warns at every use of an unregistered marker, and `-m "not slow"` needs it
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))


def test_a_folder_named_purenet_in_the_current_directory_does_not_shadow_the_package(tmp_path):
    # The folder that holds a clone named purenet, with a runs/ folder inside it, as after
    # `purenet train` in the clone: Python looks in the current directory first and finds
    # a namespace package there, ahead of setuptools' default editable finder. The README's
    # install command (editable_mode=strict) puts a folder with the real package on the path.
    if any(name.startswith("__editable___purenet") for name in sys.modules):
        pytest.skip("installed in setuptools' default editable mode; use the README's command")
    (tmp_path / "purenet" / "runs").mkdir(parents=True)
    code = (
        "import purenet, purenet_cli.main\n"
        "from purenet import Config\n"
        "from purenet.runs import DIVERGED\n"
        "print(purenet.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == Path(purenet.__file__).resolve()
