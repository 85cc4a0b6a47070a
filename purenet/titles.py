"""A run's settings in words, for figure titles and the tables of ``purenet runs``.

Kept apart from :mod:`purenet.plot` so that commands which only print (``runs``,
``compare --no-figure``) never load matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from purenet.config import Config


def rule_words(config: Config) -> str:
    """The update rule in a few words: ``SGD``, ``momentum 0.9``, ``Nesterov momentum
    0.9`` or ``Adam``, with the schedule when it is not constant (``SGD, cosine``)."""
    name = config.optimizer.value
    if name == "momentum":
        words = f"{'Nesterov ' if config.nesterov else ''}momentum {config.momentum:g}"
    else:
        words = "Adam" if name == "adam" else "SGD"
    if config.schedule.value != "constant":
        words += f", {config.schedule.value}"
    return words


def optimizer_words(config: Config) -> str:
    """The update rule and its learning rate (``Nesterov momentum 0.9, lr 0.1 (cosine)``),
    with any weight decay."""
    words = rule_words(config).split(", ")[0] + f", lr {config.lr:g}"
    if config.schedule.value != "constant":
        words += f" ({config.schedule.value})"
    if config.weight_decay:
        words += f", weight decay {config.weight_decay:g}"
    return words


def figure_title(config: Config) -> str:
    """The title that names a run's figures: its layers and activation, the optimizer
    and learning rate, the batch size, split and seed (``purenet 784-10-10 relu, SGD, lr
    0.1, full batch, reference split, seed 0``)."""
    batch = "full batch" if config.full_batch else f"batch {config.batch_size}"
    dropout = f", dropout {config.dropout:g}" if config.dropout else ""
    return (
        f"purenet {'-'.join(map(str, config.sizes))} {config.activation.value}, "
        f"{optimizer_words(config)}, {batch}{dropout}, {config.split.value} split, "
        f"seed {config.seed}"
    )
