"""What installing purenet provides: its public names, and packages of its own only."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution, entry_points

import pytest

import purenet


def test_the_public_names_are_there_and_train_is_the_fold():
    for name in purenet.__all__:
        assert getattr(purenet, name) is not None, name
    from purenet.replay import replay
    from purenet.train import train

    assert purenet.train is train and purenet.replay is replay  # not the modules


@pytest.mark.parametrize(
    "module",
    # the library; the command line (every command loads it: matplotlib costs about
    # 0.4 s of a command's start, so only commands that draw load it); a run's recorder
    ["purenet", "purenet_cli.app", "purenet.runner", "purenet.sweep_worker"],
)
def test_importing_does_not_load_matplotlib(tmp_path, module):
    code = f"import sys, {module}; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"


def test_the_distribution_installs_purenet_and_purenet_cli_only():
    top_level = distribution("purenet").read_text("top_level.txt")
    assert top_level is not None and sorted(top_level.split()) == ["purenet", "purenet_cli"]
    (script,) = entry_points(group="console_scripts", name="purenet")
    assert script.value == "purenet_cli.main:main"
