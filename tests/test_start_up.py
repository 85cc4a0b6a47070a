"""Starting ``purenet`` in a hostile environment: junk in the variables it reads, a
matplotlib backend that does not exist, Ctrl-C or SIGTERM while it is still loading.

Each case is the real command in a subprocess; each must end in one line on stderr
naming what is wrong, a non-zero exit and no traceback (or, where nothing is wrong for
the command, work).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, environment, run, trained_run

from purenet._engine.threads import BLAS_THREADS_VARIABLE, THREADS_VARIABLE
from purenet.mirrors import MIRRORS_ENV

TRAIN_ONE_EPOCH = ["train", "--epochs", "1", "--quiet", "--out", "run"]


# -- the variables purenet reads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (THREADS_VARIABLE, "²"),  # str.isdigit() says yes, int() says no
        (THREADS_VARIABLE, "0"),
        (THREADS_VARIABLE, "-1"),
        (THREADS_VARIABLE, "1.5"),
        (THREADS_VARIABLE, "9" * 5000),  # int() refuses more than 4,300 digits
        (THREADS_VARIABLE, "100000"),
        (BLAS_THREADS_VARIABLE, "²"),
        (BLAS_THREADS_VARIABLE, "two"),
    ],
    ids=["superscript", "zero", "negative", "fraction", "5000-digits", "huge", "blas-2", "blas-x"],
)
def test_a_thread_count_that_is_not_one_is_one_line_naming_the_variable(
    tmp_path, mnist_dir, variable, value
):
    result = run(TRAIN_ONE_EPOCH, tmp_path, data=mnist_dir, env={variable: value})
    line = assert_one_error_line(result)
    assert f"{variable} must be a whole number from 1 to 1024" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "mirrors", ["https://[::1", "https://example.org:99999/", "http://127.0.0.1:port/"]
)
def test_a_mirror_that_is_not_a_url_is_one_line_naming_the_variable(tmp_path, mirrors):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), MIRRORS_ENV: mirrors}
    for command in (["data", "download"], TRAIN_ONE_EPOCH):
        line = assert_one_error_line(run(command, tmp_path, env=env))
        assert f"mirror {mirrors!r} is not a valid URL" in line and MIRRORS_ENV in line
    assert not (tmp_path / "xdg" / "purenet").exists()


# -- a matplotlib backend that does not exist ------------------------------------------------


@pytest.mark.slow
def test_a_bogus_mplbackend_breaks_nothing_that_does_not_open_a_window(tmp_path, mnist_dir):
    env = {"MPLBACKEND": "bogus"}
    version = run(["--version"], tmp_path, env=env)
    assert version.returncode == 0 and version.stdout.startswith("purenet "), version.stderr
    helped = run(["--help"], tmp_path, env=env)
    assert helped.returncode == 0 and "train" in helped.stdout, helped.stderr
    trained = run(TRAIN_ONE_EPOCH, tmp_path, data=mnist_dir, env=env)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "figure.png").is_file()  # figures need no backend
    live = run(["train", "--epochs", "1", "--live", "--out", "live"], tmp_path, mnist_dir, env)
    line = assert_one_error_line(live)
    assert "MPLBACKEND='bogus' is not a matplotlib backend" in line
    assert not (tmp_path / "live").exists()


def test_a_good_mplbackend_is_still_honoured(tmp_path):
    code = (
        "import sys, matplotlib; from purenet_cli.startup import restore_backend, "
        "set_aside_backend; restore_backend(set_aside_backend()); "
        "print(matplotlib.get_backend())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment(None) | {"MPLBACKEND": "svg"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"


# -- a signal while the command is still loading ---------------------------------------------


def signal_on_import(folder: Path) -> Path:
    """A folder with a ``sitecustomize`` that sends this process ``$SIGNAL_ON`` as soon as
    it starts importing the module ``$SIGNAL_AT``: a Ctrl-C at a known instant of start-up,
    without racing a timer."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import os, signal, sys

            class SignalOnImport:
                def find_spec(self, name, path=None, target=None):
                    if name == os.environ.get("SIGNAL_AT"):
                        sys.meta_path.remove(self)
                        os.kill(os.getpid(), int(os.environ["SIGNAL_ON"]))
                    return None

            sys.meta_path.insert(0, SignalOnImport())
            """
        )
    )
    return folder


def ctrl_c_as_matplotlib_loads(tmp_path: Path) -> dict[str, str]:
    """The environment for a command that gets Ctrl-C as it starts to load matplotlib,
    which it does only when it draws."""
    hook = signal_on_import(tmp_path / "hook")
    return {
        "PYTHONPATH": str(hook),
        "SIGNAL_AT": "matplotlib",
        "SIGNAL_ON": str(int(signal.SIGINT)),
    }


@pytest.mark.parametrize("module", ["typer", "numpy", "rich", "purenet_cli.app"])
@pytest.mark.parametrize(
    ("how", "code", "said"),
    [
        (signal.SIGINT, 130, "purenet: interrupted"),
        (signal.SIGTERM, 143, "purenet: terminated (SIGTERM)"),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_a_signal_while_loading_is_one_line_and_the_conventional_exit(
    tmp_path, module, how, code, said
):
    hook = signal_on_import(tmp_path / "hook")
    env = {"PYTHONPATH": str(hook), "SIGNAL_AT": module, "SIGNAL_ON": str(int(how))}
    result = run(["runs"], tmp_path, env=env)
    assert result.returncode == code, result.stderr
    assert result.stderr == said + "\n"
    assert result.stdout == ""


def test_ctrl_c_in_a_command_that_has_loaded_is_one_line_and_exit_130(tmp_path, mnist_dir):
    """typer turns Ctrl-C inside a command into a silent exit 130: purenet says it."""
    trained_run(tmp_path / "run", mnist_dir, "--epochs", "1")
    env = ctrl_c_as_matplotlib_loads(tmp_path)
    result = run(["compare", "run", "--out", "runs.png"], tmp_path, data=mnist_dir, env=env)
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1:] == ["purenet: interrupted"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs.png").exists()


def test_ctrl_c_as_the_figure_is_drawn_leaves_an_interrupted_run_that_resume_completes(
    tmp_path, mnist_dir
):
    """matplotlib loads only when a command draws: for ``train``, after its last epoch.
    Ctrl-C then keeps every epoch; resuming folds nothing and draws the figure."""
    env = ctrl_c_as_matplotlib_loads(tmp_path)
    result = run(TRAIN_ONE_EPOCH, tmp_path, data=mnist_dir, env=env)
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == [
        "purenet: interrupted after epoch 1; resume with: purenet train --resume run"
    ]
    run_folder = tmp_path / "run"
    assert json.loads((run_folder / "status.json").read_text())["status"] == "interrupted"
    assert not (run_folder / "figure.png").exists()
    metrics = (run_folder / "metrics.csv").read_text()
    assert len(metrics.splitlines()) == 3  # the header, epochs 0 and 1

    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path, data=mnist_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_folder / "status.json").read_text())["status"] == "finished"
    assert (run_folder / "figure.png").is_file()
    assert (run_folder / "metrics.csv").read_text() == metrics  # nothing folded again


def test_ctrl_c_as_a_diverged_run_is_drawn_keeps_it_diverged(tmp_path, mnist_dir):
    """A run that ended on its own keeps its ending: only the figure is left out."""
    env = ctrl_c_as_matplotlib_loads(tmp_path)
    command = ["train", "--epochs", "5", "--lr", "1000", "--quiet", "--out", "run"]
    line = assert_one_error_line(run(command, tmp_path, data=mnist_dir, env=env))
    assert "training diverged" in line
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "diverged"
    assert not (tmp_path / "run" / "figure.png").exists()


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_mplbackend_is_ignored_as_matplotlib_ignores_it(monkeypatch, value):
    from purenet_cli import startup

    monkeypatch.setenv("MPLBACKEND", value)
    monkeypatch.setattr(startup, "_refused_backend", [])
    startup.restore_backend(startup.set_aside_backend())
    assert startup.refused_backend() is None
    assert os.environ["MPLBACKEND"] == value


def test_a_file_backend_in_mplbackend_does_not_load_matplotlib_at_start_up(tmp_path):
    """MPLBACKEND=agg (common on servers and in CI) is taken back unchecked: matplotlib
    then reads it when a command first draws."""
    code = (
        "import os, sys; from purenet_cli.startup import restore_backend, set_aside_backend; "
        "restore_backend(set_aside_backend()); "
        "print('matplotlib' in sys.modules, os.environ['MPLBACKEND']); "
        "import matplotlib; print(matplotlib.get_backend())"
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["False", "Agg"]
    assert result.stdout.split()[2].lower() == "agg"
