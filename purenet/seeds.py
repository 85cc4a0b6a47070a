"""The seed streams: one per use of a run's seed.

Every random choice is drawn from ``np.random.default_rng([seed, stream, ...])``, with
its own stream, so that changing one use of the seed (say, the initialisation) never
changes another (the split). The numbers are part of every recorded run: never change
them, only add new ones.
"""

from __future__ import annotations

import enum


class Stream(enum.IntEnum):
    """What a random draw is for."""

    SPLIT = 1  # which images go to the reference split's training set
    INIT = 2  # the initial weights
    ORDER = 3  # the order of the training samples in each epoch
    DROPOUT = 4  # the dropout masks of each batch
    AUGMENT = 5  # the distortions of each batch's images
    VALID = 6  # which training samples are held out for validation
    ELASTIC = 7  # the elastic displacement fields of each batch's images
