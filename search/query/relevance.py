"""The relevance cut: which results of a query are strong matches and which are weak, from the scores alone.

A query scores every photo; most of them are unrelated, and their scores
form the *background*: a broad bump whose centre and width depend on the
query and the model (a text query's cosines sit far lower than an image's).
Photos that match stand out above it. So the cut is measured in the
background's own units, never in fixed cosines, which would need tuning per
model and per kind of query:

- ``m``: the median score of the matching photos (a seeded sample of them at
  scale), the centre of the background;
- ``s``: its robust spread, 1.4826 times the median absolute deviation (the
  standard deviation of a normal background, unmoved by the few matches);
- ``best``: the best score.

A result is weak below ``max(m + FRACTION * (best - m), m + SPREADS * s)``:
it is weak if it lies closer to the background's centre than to the best
match (a gap from the best, relative to how far the best stands out), or if
it is not clearly above the background at all (``SPREADS`` spreads: with a
normal background about 0.13% of unrelated photos pass). The best result is
never weak, so a query always shows something.

Both constants are chosen on seeded synthetic scores (tests/test_relevance.py:
a relevant cluster above a normal background), not on a real model's
scores: this project has no pretrained weights to tune them on.
"""

import numpy as np

FRACTION = 0.5  # a result in the lower half of the way from the background's centre to the best is weak
SPREADS = 3.0  # a result less than this many robust spreads above the background's centre is weak
MAD_TO_SIGMA = 1.4826  # median absolute deviation to standard deviation, for a normal distribution
SAMPLE = 1024  # background scores sampled at scale: the median's error is then about 4% of the spread


def weak_below(best, background):
    """The score below which a result is a weak match, within [-1, 1]; ``best`` when ``background`` is empty.

    ``best``: the best score among the matches; ``background``: the scores of
    the matches, or of a sample of them (the best ones included or not).
    """
    background = np.asarray(background, dtype=np.float64).reshape(-1)
    if background.size == 0:
        return float(np.clip(best, -1.0, 1.0))
    centre = float(np.median(background))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(background - centre)))
    cut = max(centre + FRACTION * (best - centre), centre + SPREADS * spread)
    return float(np.clip(min(best, cut), -1.0, 1.0))


def sample_positions(count, size=SAMPLE):
    """Evenly spaced positions in ``range(count)``, at most ``size`` of them: a deterministic sample, so a
    query gets the same cut every time."""
    if count <= size:
        return np.arange(count, dtype=np.int64)
    return np.linspace(0, count - 1, size).astype(np.int64)
