"""stablegrad.seeds: statistics over seeds for anything that passes through training."""

import numpy as np
import pytest

from stablegrad.seeds import describe, over_seeds, spread


def test_over_seeds_gives_each_seed_its_own_generator():
    draws = over_seeds(lambda rng: rng.standard_normal(3), seeds=[4, 1, 4])
    assert draws.shape == (3, 3)
    assert np.array_equal(draws[0], draws[2])                      # same seed, same draw
    assert np.array_equal(draws[1], np.random.default_rng(1).standard_normal(3))   # order does not matter


def test_spread_and_describe():
    s = spread([0.3, 0.1, 0.2])
    assert s == (0.2, 0.1, 0.3, 3)
    assert describe([0.131, 0.127, 0.152], ".2f") == "0.13 (0.13 to 0.15, 3 seeds)"
    rows = spread(np.array([[1.0, 10.0], [3.0, 30.0]]))
    assert np.array_equal(rows.median, [2.0, 20.0]) and rows.n == 2


@pytest.mark.parametrize("bad, err, match", [
    ([], ValueError, "S >= 1"),
    ([0.1, np.nan], ValueError, "diverged"),
])
def test_spread_rejects_empty_and_nan(bad, err, match):
    with pytest.raises(err, match=match):
        spread(bad)


def test_over_seeds_rejects_bad_seeds():
    with pytest.raises(ValueError, match="at least one seed"):
        over_seeds(lambda rng: 0.0, seeds=[])
    with pytest.raises(TypeError, match="integers"):
        over_seeds(lambda rng: 0.0, seeds=[0.5])
    with pytest.raises(ValueError, match="shape \\(S,\\)"):
        describe(np.ones((2, 2)))
