"""What the terminal shows while training: the bar, the log lines and the live figure."""

from __future__ import annotations

import io
import re

import pytest
from cli_helpers import run
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from test_train import synthetic

from purenet.config import Config
from purenet.train import train
from purenet_cli.live import every_epochs
from purenet_cli.progress import TrainingProgress, clock, time_left

CLOCK = r"\d+:\d\d:\d\d"
LOG_LINE = re.compile(
    rf"epoch (\d+)/(\d+)  loss \S+  train +\S+%  test +\S+%  elapsed ({CLOCK}), "
    rf"left ({CLOCK}|\?)"
)


@pytest.fixture(scope="module")
def snapshots() -> list:
    return list(train(Config(hidden=(5,), epochs=10, lr=0.5), synthetic()))


@given(st.floats(0, 1e6), st.integers(1, 10_000), st.integers(0, 10_000))
def test_time_left_is_the_pace_so_far_times_the_epochs_to_go(elapsed, done, remaining):
    left = time_left(elapsed, done, remaining)
    assert re.fullmatch(CLOCK, left)
    hours, minutes, seconds = map(int, left.split(":"))
    assert abs(3600 * hours + 60 * minutes + seconds - elapsed / done * remaining) <= 0.5


def test_clock_and_an_unknown_time_left():
    assert clock(0) == "0:00:00" and clock(75.4) == "0:01:15" and clock(3725) == "1:02:05"
    assert time_left(3.0, 0, 10) == "?"  # no epoch done yet: no pace to go by


def test_the_bar_labels_the_elapsed_and_the_remaining_time(snapshots):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    with TrainingProgress(10, 0, "bar", console=console) as progress:
        for snapshot in snapshots[:4]:
            progress.update(snapshot)
    text = out.getvalue()
    assert re.search(rf"elapsed {CLOCK} left (-:--:--|{CLOCK})", text), text


def test_log_lines_carry_the_elapsed_time_and_the_time_left(snapshots, capsys):
    with TrainingProgress(10, 0, "lines") as progress:
        for snapshot in snapshots:
            progress.update(snapshot)
    lines = capsys.readouterr().err.splitlines()
    assert [LOG_LINE.fullmatch(line)[1] for line in lines] == [str(e) for e in range(11)]


def test_every_epochs_grammar():
    assert every_epochs(1) == "every epoch"
    assert every_epochs(5) == "every 5 epochs"


@pytest.mark.slow
def test_purenet_train_in_a_log_shows_elapsed_and_left_on_every_line(tmp_path, mnist_dir):
    result = run(["train", "--epochs", 3, "--out", "run"], tmp_path, data=mnist_dir)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [LOG_LINE.fullmatch(line)[1] for line in lines] == ["0", "1", "2", "3"], lines


@pytest.mark.slow
def test_live_every_implies_live_and_quiet_still_says_where_the_figure_is(tmp_path, mnist_dir):
    result = run(
        ["train", "--epochs", 2, "--live-every", 1, "--quiet", "--out", "run"],
        tmp_path,
        data=mnist_dir,
        env={"MPLBACKEND": "agg"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "live figure: run/live.png, rewritten every epoch\n"
    assert (tmp_path / "run" / "live.png").is_file()
