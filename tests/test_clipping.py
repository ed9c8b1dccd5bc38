"""stablegrad.clipping: properties every clipping method must keep."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stablegrad import clipping as cl

EXAMPLES = settings(max_examples=50, deadline=None)


def finite_arrays(dtype=None):
    """Arrays of 1..3 dims with finite entries in [-1e4, 1e4] (including zeros), float32 or float64."""
    dtypes = st.sampled_from([np.float32, np.float64]) if dtype is None else st.just(dtype)
    return dtypes.flatmap(lambda dt: hnp.arrays(
        dt, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False, width=np.finfo(dt).bits)))


grad_lists = st.lists(finite_arrays(), min_size=1, max_size=4)
max_norms = st.floats(1e-3, 1e5)
limits = st.floats(1e-3, 1e5)


def _scaled(a):
    """a / max|a| in float64 (so that squares neither underflow nor overflow), and max|a|."""
    a = np.asarray(a, np.float64).ravel()
    m = float(np.max(np.abs(a)))
    return (a / m if m > 0 else a), m


def norm(a):
    v, m = _scaled(a)
    return m * float(np.sqrt(np.sum(v ** 2)))


def cosine(a, b):
    (a, _), (b, _) = _scaled(a), _scaled(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rounding(arrays):
    """Relative slack for comparisons made after rounding to the arrays' own dtype."""
    return 8 * max(float(np.finfo(a.dtype).eps) for a in arrays)


# --------------------------------------------------------------------------- properties

@EXAMPLES
@given(g=finite_arrays(), max_norm=max_norms)
def test_clip_by_norm_properties(g, max_norm):
    before = g.copy()
    c = cl.clip_by_norm(g, max_norm)
    np.testing.assert_array_equal(g, before)                     # input never modified
    assert c.shape == g.shape and c.dtype == g.dtype and c is not g
    assert norm(c) <= norm(g)                                    # never increases the norm
    assert norm(c) <= max_norm * (1 + rounding([g]))             # at most max_norm (to rounding)
    if norm(g) <= max_norm:
        np.testing.assert_array_equal(c, g)                      # no-op below the threshold: exact
    if norm(g) > 0:
        assert cosine(c, g) == pytest.approx(1.0, abs=1e-6 if g.dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(cl.clip_by_norm(c, max_norm), c)  # idempotent


@EXAMPLES
@given(grads=grad_lists, max_norm=max_norms)
def test_clip_by_global_norm_properties(grads, max_norm):
    before = [g.copy() for g in grads]
    clipped, norm_before = cl.clip_by_global_norm(grads, max_norm)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)                      # inputs never modified
    assert isinstance(clipped, list) and len(clipped) == len(grads)
    assert all(c.shape == g.shape and c.dtype == g.dtype for c, g in zip(clipped, grads))
    total = np.sqrt(sum(norm(g) ** 2 for g in grads))
    assert norm_before == pytest.approx(total, rel=1e-12)
    after = cl.global_norm(clipped)
    assert after <= norm_before * (1 + 1e-15)                    # never increases the norm
    assert after <= max_norm * (1 + rounding(grads))
    if norm_before <= max_norm:
        for c, g in zip(clipped, grads):
            np.testing.assert_array_equal(c, g)                  # no-op below the threshold: exact
    if norm_before > 0:                                          # one factor for all: the joint direction is kept
        tol = 1e-6 if any(g.dtype == np.float32 for g in grads) else 1e-12
        flat = lambda gs: np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in gs])  # noqa: E731
        assert cosine(flat(clipped), flat(grads)) == pytest.approx(1.0, abs=tol)
    again, _ = cl.clip_by_global_norm(clipped, max_norm)
    for a, c in zip(again, clipped):
        np.testing.assert_array_equal(a, c)                      # idempotent


@EXAMPLES
@given(grads=grad_lists, limit=limits)
def test_clip_by_value_properties(grads, limit):
    before = [g.copy() for g in grads]
    clipped = cl.clip_by_value(grads, limit)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)
    for c, g in zip(clipped, grads):
        assert c.shape == g.shape and c.dtype == g.dtype
        assert np.all(np.abs(c) <= np.abs(g))                   # entrywise, so the norm never increases
        assert np.all(np.abs(c) <= np.float64(limit) * (1 + rounding([g])))
        inside = np.abs(g) <= limit
        np.testing.assert_array_equal(c[inside], g[inside])      # untouched below the limit
    assert cl.global_norm(clipped) <= cl.global_norm(grads)
    for a, c in zip(cl.clip_by_value(clipped, limit), clipped):
        np.testing.assert_array_equal(a, c)                      # idempotent


def test_only_norm_clipping_keeps_the_direction():
    g = np.array([100.0, 4.0])
    by_value = cl.clip_by_value(g, 5.0)
    by_norm = cl.clip_by_norm(g, 5.0)
    assert cosine(by_value, g) < 0.9          # (5, 4) points about 36 degrees away from (100, 4)
    assert cosine(by_norm, g) == pytest.approx(1.0, abs=1e-15)
    # per-tensor norm clipping changes the joint direction; global-norm clipping does not
    grads = [np.array([30.0, 40.0]), np.array([0.3, 0.4])]
    per_tensor = [cl.clip_by_norm(g, 1.0) for g in grads]
    joint, norm_before = cl.clip_by_global_norm(grads, 1.0)
    flat = np.concatenate
    assert cosine(flat(per_tensor), flat(grads)) < 0.999
    assert cosine(flat(joint), flat(grads)) == pytest.approx(1.0, abs=1e-15)
    assert norm_before == pytest.approx(np.sqrt(50.0 ** 2 + 0.5 ** 2))


# --------------------------------------------------------------------------- containers and edge cases

def test_containers_are_preserved():
    W, b = np.full((2, 2), 3.0), np.array([4.0, -4.0])
    as_dict = cl.clip_by_value({"W": W, "b": b}, 1.0)
    assert list(as_dict) == ["W", "b"] and np.all(as_dict["b"] == [1.0, -1.0])
    as_tuple = cl.clip_by_value((W, b), 1.0)
    assert isinstance(as_tuple, tuple)
    single = cl.clip_by_value(W, 1.0)
    assert isinstance(single, np.ndarray) and np.all(single == 1.0)
    nested, n = cl.clip_by_global_norm([(W, b), (W, b)], 1.0)  # as returned by stack_backward
    assert isinstance(nested, list) and all(isinstance(layer, tuple) for layer in nested)
    assert cl.global_norm(nested) == pytest.approx(1.0) and n == pytest.approx(np.sqrt(2 * (36 + 32)))
    clipped, _ = cl.clip_by_global_norm({"W": W, "b": b}, 1.0)
    assert set(clipped) == {"W", "b"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_gradients_give_zeros(dtype):
    z = [np.zeros((3, 2), dtype), np.zeros(2, dtype)]
    for out in (cl.clip_by_global_norm(z, 1.0)[0], cl.clip_by_value(z, 1.0), [cl.clip_by_norm(z[0], 1.0)]):
        for a in out:
            assert a.dtype == dtype and np.all(a == 0) and not np.any(np.isnan(a))
    assert cl.global_norm(z) == 0.0 and cl.clip_by_global_norm(z, 1.0)[1] == 0.0


def test_huge_gradients_do_not_overflow():
    g = np.full(10, 1e300)  # the sum of squares would overflow to inf
    c = cl.clip_by_norm(g, 2.0)
    np.testing.assert_allclose(c, np.full(10, 2.0 / np.sqrt(10)), rtol=1e-14)
    assert cl.global_norm([g]) == pytest.approx(1e300 * np.sqrt(10))
    g32 = np.full(4, 3e38, np.float32)
    c32 = cl.clip_by_norm(g32, 1.0)
    assert c32.dtype == np.float32 and np.allclose(c32, 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradients_raise_naming_the_tensor(bad, dtype):
    good = np.ones(3, dtype)
    broken = np.array([1.0, bad], dtype)
    cases = [
        (lambda: cl.clip_by_global_norm([good, broken], 1.0), "grads[1]"),
        (lambda: cl.clip_by_global_norm({"W1": good, "b1": broken}, 1.0), "grads['b1']"),
        (lambda: cl.clip_by_global_norm([(good, good), (good, broken)], 1.0), "grads[1][1]"),
        (lambda: cl.clip_by_value([broken], 1.0), "grads[0]"),
        (lambda: cl.clip_by_norm(broken, 1.0), "clip_by_norm: g"),
        (lambda: cl.global_norm({"W": broken}), "grads['W']"),
    ]
    for call, name in cases:
        with pytest.raises(cl.NonFiniteGradientError) as info:
            call()
        assert name in str(info.value)
        assert isinstance(info.value, ValueError)  # callers may catch it as a ValueError


BAD_CALLS = [
    (lambda: cl.clip_by_value([np.ones(2)], 0.0), ValueError, "clip_by_value: limit"),
    (lambda: cl.clip_by_value([np.ones(2)], "1"), TypeError, "clip_by_value: limit"),
    (lambda: cl.clip_by_norm(np.ones(2), -1.0), ValueError, "clip_by_norm: max_norm"),
    (lambda: cl.clip_by_global_norm([np.ones(2)], np.inf), ValueError, "clip_by_global_norm: max_norm"),
    (lambda: cl.clip_by_global_norm([], 1.0), ValueError, "clip_by_global_norm: grads"),
    (lambda: cl.clip_by_global_norm({}, 1.0), ValueError, "clip_by_global_norm: grads"),
    (lambda: cl.clip_by_global_norm([np.array(["a"])], 1.0), TypeError, "clip_by_global_norm: grads[0]"),
    (lambda: cl.global_norm([np.ones(2), np.array([])]), ValueError, "global_norm: grads[1]"),
]


@pytest.mark.parametrize("call, exc, message", BAD_CALLS)
def test_bad_calls_raise_clear_errors(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert message in str(info.value)


# --------------------------------------------------------------------------- the norm, exactly, in little memory

def _norm_as_defined(arrays):
    """||arrays|| as the package defines it with float64 entries: m * sqrt(sum((a / m)^2)) with full float64 copies."""
    m = max(float(np.max(np.abs(a))) for a in arrays)
    return m * float(np.sqrt(sum(float(np.sum(np.square(np.asarray(a, dtype=np.float64) / m))) for a in arrays)))


def _exact_norm(arrays):
    """sqrt of the exactly rounded sum of the squares in float64 (each square exact for float16/float32 entries)."""
    squares = (np.square(np.asarray(a, dtype=np.float64)).ravel().tolist() for a in arrays)
    return math.sqrt(math.fsum(itertools.chain.from_iterable(squares)))


def _ulps(x, exact):
    return abs(x - exact) / math.ulp(exact)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_global_norm_is_the_defined_norm_to_the_last_bit(rng, dtype, layout):
    # 300k entries: several blocks (for float64 the blockwise sum must reproduce np.sum's pairwise order exactly)
    a = (rng.standard_normal((600, 500)) * 10.0 ** rng.uniform(-2, 2, (600, 500))).astype(dtype)
    a = {"C": a, "F": np.asfortranarray(a), "strided": a[:, ::3]}[layout]
    arrays = [a, rng.standard_normal(7).astype(dtype)]
    clipped, before = cl.clip_by_global_norm(arrays, 1.0)
    if dtype == np.float64:
        assert cl.global_norm(arrays) == _norm_as_defined(arrays)  # equality: no tolerance
        assert before == _norm_as_defined(arrays)
    else:  # exact squares, no scaling: within two units in the last place of the exact norm (see below)
        assert _ulps(cl.global_norm(arrays), _exact_norm(arrays)) <= 2
        assert before == cl.global_norm(arrays)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_float32_norm_is_within_two_ulps_of_the_exact_norm_and_mostly_exact(dtype):
    # Summing exact float64 squares rounds only the additions: over these draws the norm is exactly rounded
    # in 80-95% of them and never more than 2 units in the last place off, depending on the BLAS kernel that
    # sums the rows (seen with OPENBLAS_CORETYPE Haswell, SkylakeX, Zen, Sandybridge, Nehalem, Prescott). The
    # scaled formula, m * sqrt(sum((a / m)^2)), which rounds each quotient and square too: 48-75%, also 2 units.
    errors = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        shape = [(600, 500), (70000,), (1000, 131), (3, 5)][seed % 4]  # whole blocks, partial rows, one row
        a = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2, shape)).astype(dtype)
        arrays = [a, rng.standard_normal(7).astype(dtype)]
        errors.append(_ulps(cl.global_norm(arrays), _exact_norm(arrays)))
    assert max(errors) <= 2 and np.mean(np.array(errors) == 0) >= 0.75


def test_containers_with_float64_keep_the_scaled_norm_to_the_last_bit(rng):
    mixed = [rng.standard_normal((300, 400)).astype(np.float32), rng.standard_normal(1000)]  # float32 and float64
    assert cl.global_norm(mixed) == _norm_as_defined(mixed)
    assert cl.clip_by_global_norm(mixed, 1.0)[1] == _norm_as_defined(mixed)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_extreme_float32_entries_need_no_scaling(dtype):
    info = np.finfo(dtype)
    for x in (float(info.max), float(info.smallest_subnormal)):
        g = np.full(4, x, dtype)  # the norm is exactly 2x: every square is exact, 4 and sqrt(4) too
        assert cl.global_norm([g]) == 2 * x and cl.clip_by_global_norm([g], 1e-50)[1] == 2 * x


def test_global_norm_makes_no_full_size_float64_copy(rng):
    import tracemalloc
    g = [rng.standard_normal(1_000_000, dtype=np.float32), rng.standard_normal(10, dtype=np.float32)]
    tracemalloc.start()
    try:
        cl.global_norm(g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the float64 copy alone would be 8 MB; one scratch block is 512 KiB


def test_nested_containers_walk_and_rebuild_in_order():
    from collections import namedtuple

    from stablegrad.containers import leaves, rebuild
    Pair = namedtuple("Pair", "dW db")
    grads = {"a": [Pair(np.ones(2), np.zeros(1))], "b": (np.full(3, 2.0),), "empty": []}
    assert [p for p, _ in leaves(grads, "g")] == ["g['a'][0][0]", "g['a'][0][1]", "g['b'][0]", "g['empty']"]
    back = rebuild(grads, iter(range(4)))
    assert back == {"a": [Pair(0, 1)], "b": (2,), "empty": 3}
    assert isinstance(back["a"][0], Pair) and isinstance(back["b"], tuple)
