"""purenet: a from-scratch NumPy network for MNIST with a pure functional core.

The entry points the README documents, importable from here::

    from purenet import Config, load_dataset, replay, Run, train

    data = load_dataset("path/to/mnist", split="reference", seed=0)
    for snapshot in train(Config(epochs=100), data):
        print(snapshot.epoch, snapshot.train.loss, snapshot.test.accuracy)
    again = replay(Run.open("runs/NAME"), 100, data)  # bit-identical to the record

Each module documents the rest (see the README's module table). Importing purenet loads
NumPy and the core, never matplotlib: figures live in :mod:`purenet.plot` and
:mod:`purenet.animate`, imported only where they are drawn.
"""

# The modules imported below read __version__, so it comes first.

__version__ = "0.6.2"

from purenet.config import Config
from purenet.data import Dataset, Split, load_dataset
from purenet.network import evaluate, forward, grads, loss, value_and_grads
from purenet.params import Layer, Params
from purenet.replay import replay
from purenet.runs import Run
from purenet.train import Snapshot, TrainState, step, train

__all__ = [
    "Config",
    "Dataset",
    "Layer",
    "Params",
    "Run",
    "Snapshot",
    "Split",
    "TrainState",
    "__version__",
    "evaluate",
    "forward",
    "grads",
    "load_dataset",
    "loss",
    "replay",
    "step",
    "train",
    "value_and_grads",
]
