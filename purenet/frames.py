"""Which epochs an animation of a run shows, and how fast: arithmetic only, so that the
command line can offer its defaults without loading matplotlib (:mod:`purenet.animate`
draws the frames)."""

from __future__ import annotations

import math

MAX_FRAMES = 100  # the default stride keeps a clip to about this many frames
DEFAULT_FPS = 10


def default_stride(epochs: int, keyframe_every: int, max_frames: int = MAX_FRAMES) -> int:
    """The smallest multiple of ``keyframe_every`` that shows ``epochs`` epochs in at most
    ``max_frames`` + 1 frames: every frame then falls on a keyframe and needs no
    recomputation (2500 epochs, keyframes every 25 -> stride 25, 101 frames)."""
    return keyframe_every * max(1, math.ceil(epochs / (max_frames * keyframe_every)))


def frame_epochs(last: int, stride: int) -> list[int]:
    """Epochs 0, stride, 2 stride, ... up to ``last``, and ``last`` itself."""
    epochs = list(range(0, last + 1, stride))
    if epochs[-1] != last:
        epochs.append(last)
    return epochs
