"""Comparing runs: what differs between configs, a summary per run, and the figure.

The library on small synthetic runs recorded by the real runner; ``purenet compare`` in
test_compare_cli.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.colors import to_rgba
from test_train import synthetic

from purenet.compare import (
    EARLY_STOPPED,
    UNREADABLE,
    caveats,
    differing_settings,
    expand,
    label,
    labels,
    setting_values,
    shown_value,
    summarise,
)
from purenet.config import SETTING_NAMES, Config
from purenet.data import Split
from purenet.runlock import writing
from purenet.runner import record_training
from purenet.runs import RUNNING, Run, RunError, list_runs

# -- differing_settings, by property ---------------------------------------------------------

FIELDS = {
    "hidden": st.sampled_from([(10,), (32,), (128,), (256, 128)]),
    "activation": st.sampled_from(["relu", "sigmoid", "tanh"]),
    "epochs": st.integers(1, 3000),
    "lr": st.floats(1e-5, 10.0, allow_nan=False),
    "seed": st.integers(0, 3),
    "split": st.sampled_from(["reference", "standard"]),
    "batch_size": st.sampled_from(["full", 1, 128]),
    "optimizer": st.sampled_from(["sgd", "momentum", "adam"]),
    "nesterov": st.booleans(),
    "dropout": st.sampled_from([0.0, 0.2, 0.5]),
}


@st.composite
def configs(draw, n_max: int = 5) -> list[Config]:
    """1..n_max configs, each setting drawn from a few values so that runs often share it."""
    base = draw(st.fixed_dictionaries({}, optional=FIELDS))
    n = draw(st.integers(1, n_max))
    out = []
    for _ in range(n):
        changed = draw(st.fixed_dictionaries({}, optional=FIELDS))
        out.append(Config.from_json({**base, **changed}))
    return out


@given(configs())
def test_every_setting_is_either_common_or_in_every_label(cs):
    common, per_run = differing_settings(cs)
    assert len(per_run) == len(cs)
    for config, settings in zip(cs, per_run, strict=True):
        assert set(settings) | set(common) == set(SETTING_NAMES)
        assert not set(settings) & set(common)
        assert {**common, **settings} == setting_values(config)
        assert settings.keys() == per_run[0].keys()


@given(configs())
def test_common_settings_are_the_same_in_all_and_differing_ones_are_not(cs):
    common, per_run = differing_settings(cs)
    for name, value in common.items():
        assert all(getattr(c, name) == value for c in cs)
    for name in per_run[0]:
        assert len({repr(getattr(c, name)) for c in cs}) > 1


@given(configs(n_max=1), st.integers(1, 4))
def test_identical_configs_get_empty_labels_and_share_every_setting(cs, n):
    common, per_run = differing_settings(cs * n)
    assert per_run == [{}] * n
    assert set(common) == set(SETTING_NAMES)
    assert labels(cs * n) == [""] * n


@given(configs())
def test_labels_tell_apart_runs_whose_configs_differ(cs):
    named = labels(cs)
    for i, a in enumerate(cs):
        for j, b in enumerate(cs):
            assert (named[i] == named[j]) == (a == b)


@given(st.floats(1e-12, 1e12, allow_nan=False))
def test_a_float_is_shown_so_that_it_reads_back_exactly(value):
    assert float(shown_value(value)) == value


def test_a_label_names_settings_as_the_command_line_does():
    cs = [Config(lr=0.5, hidden=(32,)), Config(lr=0.05, hidden=(10,)), Config(lr=0.1)]
    assert labels(cs) == ["hidden=32, lr=0.5", "hidden=10, lr=0.05", "hidden=10, lr=0.1"]
    assert label({"batch_size": 128, "nesterov": True, "split": Split.STANDARD}) == (
        "batch-size=128, nesterov=on, split=standard"
    )
    assert differing_settings([]) == ({}, [])


# -- summaries of real (small) runs ----------------------------------------------------------


def recorded(folder: Path, config: Config, stop_at: int | None = None) -> Run:
    """Train ``config`` on a small synthetic problem into ``folder``; with ``stop_at``,
    interrupt it (as Ctrl-C does) when that epoch's snapshot arrives."""
    data = synthetic(m=64 if not config.validation else 96)

    def stop(snapshot):
        if snapshot.epoch == stop_at:
            raise KeyboardInterrupt

    run = Run.create(folder, config, data.sha256, keyframe_every=4)
    record_training(run, data, on_snapshot=stop if stop_at is not None else None)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    parent = tmp_path_factory.mktemp("runs")
    made = {
        "slow": recorded(parent / "slow", Config(hidden=(8,), epochs=12, lr=0.05)),
        "fast": recorded(parent / "fast", Config(hidden=(8,), epochs=20, lr=0.5)),
        "cut": recorded(parent / "cut", Config(hidden=(8,), epochs=12, lr=0.1), stop_at=5),
        "wild": recorded(parent / "wild", Config(hidden=(8,), epochs=12, lr=1e6)),
        "early": recorded(
            parent / "early",
            Config(hidden=(8,), epochs=60, lr=0.5, validation=32, patience=2),
        ),
    }
    assert made["early"].status().get("stopped_early")
    return made


def test_a_summary_holds_the_recorded_numbers(runs):
    (s,) = summarise([runs["fast"]])
    rows = runs["fast"].rows()
    best = max(rows, key=lambda r: r.test_acc)
    assert (s.name, s.status, s.split, s.label) == ("fast", "finished", "reference", "")
    assert (s.epochs_done, s.epochs_planned, s.final_epoch) == (20, 20, 20)
    assert s.final_test_acc == rows[-1].test_acc and s.final_test_loss == rows[-1].test_loss
    assert s.best_test_acc == best.test_acc and s.best_epoch == best.epoch
    assert all(r.test_acc < s.best_test_acc for r in rows[: s.best_epoch])  # the earliest
    assert s.seconds == rows[-1].seconds


def test_every_run_is_summarised_and_marked_whatever_its_state(runs):
    order = ["slow", "fast", "cut", "wild", "early"]
    summaries = summarise([runs[n] for n in order])
    by_name = {s.name: s for s in summaries}
    assert [s.name for s in summaries] == order
    assert by_name["slow"].label == "epochs=12, lr=0.05, validation=0, patience=none"
    assert by_name["early"].label == "epochs=60, lr=0.5, validation=32, patience=2"

    cut = by_name["cut"]
    assert cut.status == "interrupted" and (cut.epochs_done, cut.epochs_planned) == (4, 12)
    assert cut.final_test_acc == runs["cut"].rows()[4].test_acc
    assert any("resume" in note for note in cut.notes)

    wild, rows = by_name["wild"], runs["wild"].rows()
    assert wild.status == "diverged" and rows[-1].epoch == wild.epochs_done + 1
    assert wild.final_epoch == wild.epochs_done
    assert wild.final_test_acc == rows[wild.epochs_done].test_acc
    assert wild.best_epoch <= wild.epochs_done  # the diverged row is never the best
    assert any(f"diverged at epoch {rows[-1].epoch}" in note for note in wild.notes)

    early, rows = by_name["early"], runs["early"].rows()
    result = runs["early"].result_epoch()
    assert early.status == EARLY_STOPPED and result is not None and result < rows[-1].epoch
    assert early.final_epoch == result and early.final_test_acc == rows[result].test_acc
    assert early.epochs_done == rows[-1].epoch and early.epochs_planned == 60


def test_a_run_being_written_is_shown_as_running_with_what_it_has(runs, tmp_path):
    run = recorded(tmp_path / "live", Config(hidden=(8,), epochs=12), stop_at=3)
    run.mark(RUNNING, 2)
    with writing(run.folder):
        (s,) = summarise([run])
    assert s.status == RUNNING and s.epochs_done == 2
    assert s.final_test_acc == run.rows()[2].test_acc
    (after,) = summarise([run])  # nobody writes it: it was killed
    assert after.status == "interrupted" and any("killed" in n for n in after.notes)


def test_unreadable_runs_are_listed_with_their_error_not_dropped(runs, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    cut = recorded(tmp_path / "cut-metrics", Config(hidden=(8,), epochs=3))
    (cut.folder / "metrics.csv").write_text("garbage\n")
    found = list_runs(tmp_path)
    summaries = summarise([runs["slow"], *found])
    by_name = {s.name: s for s in summaries}
    assert by_name["broken"].status == UNREADABLE and "config.json" in by_name["broken"].notes[0]
    assert by_name["cut-metrics"].status == UNREADABLE
    assert "metrics.csv" in by_name["cut-metrics"].notes[0]
    assert by_name["cut-metrics"].label == "epochs=3, lr=0.1"  # its config was read
    assert any("cannot read 2 run(s)" in w for w in caveats(summaries))


def test_runs_on_different_splits_are_marked_not_comparable(tmp_path):
    a = recorded(tmp_path / "a", Config(hidden=(4,), epochs=2))
    b = recorded(tmp_path / "b", Config(hidden=(4,), epochs=2, split=Split.STANDARD))
    summaries = summarise([a, b])
    assert [s.split for s in summaries] == ["reference", "standard"]
    assert [s.label for s in summaries] == ["split=reference", "split=standard"]
    (line,) = caveats(summaries, [a, b])
    assert "different splits" in line and "reference: a" in line and "standard: b" in line
    assert caveats(summarise([a, a])) == []


def test_runs_trained_on_different_data_are_marked_not_comparable(tmp_path):
    a = recorded(tmp_path / "a", Config(hidden=(4,), epochs=2))
    b = recorded(tmp_path / "b", Config(hidden=(4,), epochs=2, lr=0.2))

    def on_data(run: Run, digit: str) -> Run:
        return Run(run.folder, {**run.meta, "data": {"sha256": {"x": digit * 64}}})

    a0, a1, b0 = on_data(a, "0"), on_data(a, "1"), on_data(b, "0")
    assert any("different data" in w for w in caveats(summarise([a0, a1]), [a0, a1]))
    assert caveats(summarise([a0, b0]), [a0, b0]) == []


# -- expanding the paths given ---------------------------------------------------------------


def test_expand_takes_runs_and_folders_of_runs_each_run_once(runs):
    parent = runs["slow"].folder.parent
    found = expand([runs["fast"].folder, parent, runs["fast"].folder])
    names = [e.name for e in found]
    assert names[0] == "fast" and sorted(names) == sorted(runs) and len(names) == len(runs)


def test_expand_refuses_missing_folders_and_folders_without_runs(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        expand([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="holds no runs"):
        expand([tmp_path / "empty"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="not a folder"):
        expand([tmp_path / "file"])


# -- the figure, by content ------------------------------------------------------------------


def _lines(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}


def test_the_figure_overlays_each_runs_curves_in_its_own_colour(runs):
    from purenet.plot_compare import compare_figure

    chosen = [runs["slow"], runs["fast"], runs["cut"]]
    fig = compare_figure(chosen)
    lines = _lines(fig)
    assert len(lines) == 4 * len(chosen)
    colours = []
    for run in chosen:
        rows = run.rows()
        group = [lines[f"{run.name}:{w}:{k}"] for w in ("test", "train") for k in ("error", "loss")]
        assert len({to_rgba(line.get_color()) for line in group}) == 1  # one colour per run
        colours.append(to_rgba(group[0].get_color()))
        for which in ("test", "train"):
            style = "-" if which == "test" else "--"  # train dashed
            error, loss = lines[f"{run.name}:{which}:error"], lines[f"{run.name}:{which}:loss"]
            assert error.get_linestyle() == loss.get_linestyle() == style
            assert list(error.get_xdata()) == [r.epoch for r in rows]
            acc = np.array([getattr(r, f"{which}_acc") for r in rows])
            np.testing.assert_array_equal(error.get_ydata(), 1 - acc)
            np.testing.assert_array_equal(
                loss.get_ydata(), [getattr(r, f"{which}_loss") for r in rows]
            )
    assert len(set(colours)) == len(chosen)  # runs differ in colour
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    finals = [f"{run.rows()[-1 if run.name != 'cut' else 4].test_acc:.2%}" for run in chosen]
    assert texts[:3] == [
        f"epochs=12, lr=0.05: test {finals[0]}",
        f"epochs=20, lr=0.5: test {finals[1]}",
        f"epochs=12, lr=0.1 (interrupted at 4/12): test {finals[2]}",
    ]
    assert texts[3:] == ["test", "train"]
    for handle, colour in zip(legend.legend_handles[:3], colours, strict=True):
        assert to_rgba(handle.get_color()) == colour
    title = fig._suptitle.get_text()
    assert title.startswith("purenet compare: 3 runs, all 784-8-10 relu, SGD, full batch")
    assert "reference split, seed 0" in title and "lr" not in title and "warning" not in title


def test_the_figure_draws_a_diverged_run_up_to_its_last_sound_epoch(runs):
    from purenet.plot_compare import compare_figure

    wild = runs["wild"]
    lines = _lines(compare_figure([runs["slow"], wild]))
    sound = summarise([wild])[0].epochs_done
    assert list(lines["wild:test:loss"].get_xdata()) == list(range(sound + 1))
    assert max(lines["wild:train:loss"].get_ydata()) < 1e3


def test_the_figure_warns_in_its_title_when_splits_differ(tmp_path):
    from purenet.plot_compare import compare_figure

    a = recorded(tmp_path / "a", Config(hidden=(4,), epochs=2))
    b = recorded(tmp_path / "b", Config(hidden=(4,), epochs=2, split=Split.STANDARD))
    fig = compare_figure([a, b])
    title = fig._suptitle.get_text()
    assert "warning: runs on different splits are not comparable" in title
    assert "split" not in title.splitlines()[0]  # not a common setting
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(":")[0] for t in texts[:2]] == ["split=reference", "split=standard"]


def test_an_error_of_zero_is_drawn_on_the_log_axis_floor(tmp_path):
    from purenet.plot_compare import compare_figure

    run = recorded(tmp_path / "a", Config(hidden=(4,), epochs=2))
    rows = [attrs.evolve(r, train_acc=1.0) for r in run.rows()]
    run.rewrite_rows(rows)
    lines = _lines(compare_figure([run]))
    drawn = lines["a:train:error"].get_ydata()
    assert np.all(drawn > 0) and math.isclose(drawn[0], min(1 - r.test_acc for r in rows) / 2)


def test_a_run_without_a_row_yet_is_shown_with_nothing_to_report(tmp_path):
    from purenet.plot_compare import compare_figure

    data = synthetic()
    fresh = Run.create(tmp_path / "fresh", Config(hidden=(4,), epochs=5), data.sha256)
    done = recorded(tmp_path / "done", Config(hidden=(4,), epochs=2))
    with writing(fresh.folder):
        s, _ = summarise([fresh, done])
        fig = compare_figure([fresh, done])
    assert (s.status, s.epochs_done, s.epochs_planned) == (RUNNING, None, 5)
    assert s.final_test_acc is s.best_test_acc is s.seconds is None
    lines = _lines(fig)
    assert len(lines["fresh:test:error"].get_xdata()) == 0
    assert len(lines["done:test:error"].get_xdata()) == 3
