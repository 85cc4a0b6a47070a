"""The bits of a run do not depend on the environment's thread settings.

OpenBLAS adds a product's terms in an order that depends on its thread count, so purenet
keeps BLAS to one thread and runs its own blocks on threads, adding the blocks' sums in a
fixed order (see :mod:`purenet._engine.threads`). Each case trains in a fresh process, because
OpenBLAS reads ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` when it is loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Trains the reference network (full batch, packed, several blocks) and the fast preset
# (784-512-10, batches of 128, products cut by columns, blank columns dropped) on synthetic
# digits with blank margins, and prints a digest of the params and every metric.
TRAIN_BOTH = r"""
import hashlib, json
import numpy as np
from purenet.data import Dataset
from purenet.presets import preset_config
from purenet.train import train

rng = np.random.default_rng(7)

def digits(m):
    x = np.zeros((m, 28, 28), np.float32)
    ink = rng.random((m, 18, 16), dtype=np.float32)
    x[:, 5:23, 6:22] = np.where(ink > 0.6, ink, 0)
    return x.reshape(m, 784), rng.integers(0, 10, m)

x_train, y_train = digits(3000)
x_test, y_test = digits(700)
data = Dataset(x_train, y_train, x_test, y_test)
digest = {}
for name, overrides in [("reference", {"epochs": 3}),
                        ("fast", {"epochs": 1, "split": "reference"}),
                        ("best", {"epochs": 1, "split": "reference", "hidden": (256, 128)}),
                        ("record", {"epochs": 1, "split": "reference", "hidden": (64, 32)})]:
    h = hashlib.sha256()
    for snapshot in train(preset_config(name, overrides), data):
        for layer in snapshot.params.layers:
            h.update(layer.w.tobytes()); h.update(layer.b.tobytes())
        h.update(repr((snapshot.train, snapshot.test)).encode())
    digest[name] = h.hexdigest()
print(json.dumps(digest))
"""

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "PURENET_THREADS")

CASES = [
    {},
    {"OPENBLAS_NUM_THREADS": "1"},
    {"OPENBLAS_NUM_THREADS": "2"},
    {"OMP_NUM_THREADS": "1"},
    {"OMP_NUM_THREADS": "2"},
    {"PURENET_THREADS": "1"},
    {"PURENET_THREADS": "2"},
    {"OPENBLAS_NUM_THREADS": "1", "PURENET_THREADS": "2"},
]


def _digests(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(settings)
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_BOTH], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def unset() -> dict[str, str]:
    return _digests({})


@pytest.mark.parametrize(
    "settings", CASES[1:], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())
)
def test_thread_settings_do_not_change_a_bit(unset, settings):
    assert _digests(settings) == unset
