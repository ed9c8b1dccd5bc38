"""stablegrad.checking.initialization: the checks of exercise 3 accept every correct answer, however it
draws its numbers, reject every mistake of the catalogue and name it, and reject wrong answers written
without looking at the catalogue, each for the right reason."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from stablegrad import init
from stablegrad.checking import (
    DelegationError, NotImplementedYetError, StatisticalTestError, WrongShapeError, WrongTypeError,
    WrongValueError,
)
from stablegrad.checking import initialization as checks
from stablegrad.checking.encoding import decode, encode

DECLS = {d.name: d for d in checks.DECLARATIONS}
MISTAKES = [(d, m) for d in checks.DECLARATIONS for m in d.mistakes]


def compile_answer(source: str, name: str):
    """A learner's notebook in miniature: ``source`` run in one namespace, ``name`` taken from it."""
    scope = {"np": np, "activations": __import__("stablegrad.activations").activations}
    exec(source, scope)  # noqa: S102 - the test's own sources
    return scope[name]


def check(name, func, cases=None):
    getattr(checks, f"check_{name}")(func, cases, quiet=True)


def test_declarations_are_in_notebook_order():
    assert list(DECLS) == ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "forward_variance",
                           "forward_variance_through_depth", "activation_variances", "backward_stable_variance"]


@pytest.mark.parametrize("decl", checks.DECLARATIONS, ids=lambda d: d.name)
def test_the_learner_style_source_passes(decl, capsys):
    decl.check(decl.compile(decl.source))
    assert f"{decl.name}: all" in capsys.readouterr().out


@pytest.mark.parametrize("decl, mistake", MISTAKES, ids=[f"{d.name}:{m.cause[:40]}" for d, m in MISTAKES])
def test_every_mistake_fails_and_is_named(decl, mistake):
    with pytest.raises(AssertionError) as info:
        decl.check(decl.compile(decl.mistake_source(mistake)), quiet=True)
    assert "This matches a common mistake: " in str(info.value) and mistake.cause in str(info.value)


# --------------------------------------------------------------------------- initializers

# Correct implementations that draw differently from stablegrad.init: the checks must not care how.
CORRECT = {
    "xavier_normal": [
        lambda fi, fo, rng: rng.normal(0.0, math.sqrt(2 / (fi + fo)), size=(fi, fo)),
        lambda fi, fo, rng: rng.standard_normal((fo, fi)).T * math.sqrt(2 / (fi + fo)),   # drawn transposed
    ],
    "xavier_uniform": [
        lambda fi, fo, rng: (2 * rng.random((fi, fo)) - 1) * math.sqrt(6 / (fi + fo)),
        lambda fi, fo, rng: rng.uniform(-1, 1, (fi, fo)) * math.sqrt(6 / (fi + fo)),
    ],
    "he_normal": [
        lambda fi, fo, rng: rng.normal(scale=math.sqrt(2 / fi), size=fi * fo).reshape(fi, fo),
        lambda fi, fo, rng: np.sqrt(2 / fi) * np.stack([rng.standard_normal(fo) for _ in range(fi)]),
    ],
    "he_uniform": [
        lambda fi, fo, rng: rng.uniform(-math.sqrt(6 / fi), math.sqrt(6 / fi), (fi, fo)),
    ],
}
HIDDEN = [checks.initializer_case(i, o, s) for s, (i, o) in enumerate([(1, 1), (2, 3), (1000, 120), (120, 1000)])]


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_initializers_pass_however_they_draw(name):
    for fn in CORRECT[name]:
        check(name, fn)
        check(name, fn, HIDDEN)


@pytest.mark.parametrize("name", sorted(checks.INITIALIZER_SPECS))
def test_the_statistical_tests_accept_the_reference_over_many_seeds(name):
    # each test has a false-alarm probability <= 1e-10 (module docstring): 40 samples x 3 tests
    # fail with probability < 1e-8 even if the bounds were tight
    spec = checks.INITIALIZER_SPECS[name]
    for seed in range(8):
        for fan_in, fan_out in [(400, 250), (250, 400), (1000, 120), (120, 1000), (2000, 60)]:
            w = getattr(init, name)(fan_in, fan_out, np.random.default_rng(seed))
            assert checks._distribution_problem(spec, w, fan_in, fan_out) is None, (seed, fan_in, fan_out)


def test_tolerances_are_tight_enough_to_catch_a_19_percent_error():
    # the smallest gap between the right variance and a listed mistake on the sampled shapes is
    # 1/400 vs 2/650 (Xavier with 1/fan_in): 19%; the accepted band must be far narrower
    for spec in checks.INITIALIZER_SPECS.values():
        var = spec.variance(400, 250)
        tol = checks._tolerances(spec, var, 100_000)
        assert tol["second_high"] / var < 0.04 and tol["second_low"] / var < 0.04


def _mutant(name_start: str):
    """A wrong answer from tests/mutants/ex03_initialization.py, compiled."""
    path = Path(__file__).parent / "mutants" / "ex03_initialization.py"
    spec = importlib.util.spec_from_file_location("mutants_ex03_for_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mutant = next(m for m in module.MUTANTS if m.name.startswith(name_start))
    return compile_answer(mutant.source, mutant.cell)


def _truncated_resampled(fan_in, fan_out, rng):     # the example: redraw beyond 2 std, rescaled
    return _mutant("truncated normal, rescaled")(fan_in, fan_out, rng)


def _truncated_clipped(fan_in, fan_out, rng):
    std = math.sqrt(2.0 / fan_in)
    return np.clip(rng.normal(0.0, std, size=(fan_in, fan_out)), -2 * std, 2 * std)


@pytest.mark.parametrize("wrong", [_truncated_resampled, _truncated_clipped])
def test_a_truncated_normal_is_a_wrong_distribution_not_global_state(wrong):
    with pytest.raises(StatisticalTestError) as info:
        checks.check_he_normal(wrong, quiet=True)
    message = str(info.value)
    assert "global" not in message and ("variance" in message or "tails" in message), message
    assert "unseeded" not in message and "private generator" not in message


def test_the_truncated_mistake_names_itself_and_nothing_else():
    mistake = next(m for m in checks.HE_NORMAL.mistakes if "truncated" in m.cause)
    with pytest.raises(StatisticalTestError) as info:
        checks.check_he_normal(checks.HE_NORMAL.compile(checks.HE_NORMAL.mistake_source(mistake)), quiet=True)
    assert str(info.value).count("; or ") == 0 and mistake.cause in str(info.value)


# Wrong initializers written without looking at the catalogue, and what each must be reported as.
OWN_WRONG = [
    ("he_normal", lambda fi, fo, rng: (rng.standard_normal((fi, fo)) * np.sqrt(2 / fi)).tolist(),
     WrongTypeError, "is a list"),
    ("he_normal", lambda fi, fo, rng: rng.standard_normal(fi * fo) * np.sqrt(2 / fi), WrongShapeError, "shape"),
    ("xavier_uniform", lambda fi, fo, rng: np.round(rng.uniform(-5, 5, (fi, fo))).astype(int),
     WrongTypeError, "dtype int"),
    ("he_uniform", lambda fi, fo, rng: rng.uniform(-1, 1, (fi, fo)) / np.sqrt(1 - 1 / fi) * np.sqrt(6 / fi)
     if fi > 1 else np.full((fi, fo), np.nan), WrongValueError, "nan"),
    # rng for the weights, plus a little noise from a generator of its own: not reproducible
    ("xavier_normal", lambda fi, fo, rng: rng.standard_normal((fi, fo)) * np.sqrt(2 / (fi + fo))
     + 1e-9 * np.random.default_rng().standard_normal((fi, fo)), WrongValueError, "same state"),
    # draws once from the global state to "seed" rng-independent noise
    ("he_normal", lambda fi, fo, rng: rng.standard_normal((fi, fo)) * np.sqrt(2 / fi) * (1 + 0 * np.random.rand()),
     WrongValueError, "global random state"),
    # Xavier with the arithmetic mean's square root in the wrong place
    ("xavier_normal", lambda fi, fo, rng: rng.standard_normal((fi, fo)) * np.sqrt(2 / fi + 2 / fo) / 2,
     StatisticalTestError, "variance"),
    # a uniform on [-a, a) that never gets close to the bound
    ("he_uniform", lambda fi, fo, rng: rng.uniform(-1, 1, (fi, fo)) * np.sqrt(6 / fi) * 0.999,
     StatisticalTestError, "short of the bound"),
    # Laplace noise with the right variance: heavy tails
    ("he_normal", lambda fi, fo, rng: rng.laplace(0.0, np.sqrt(1 / fi), (fi, fo)), StatisticalTestError, "tails"),
    # the same weights for every call (a constant matrix)
    ("xavier_normal", lambda fi, fo, rng: np.random.default_rng(fi * 1000 + fo).standard_normal((fi, fo))
     * np.sqrt(2 / (fi + fo)) + 0 * rng.random(), WrongValueError, "same for generators in different states"),
]


@pytest.mark.parametrize("name, wrong, error, words", OWN_WRONG, ids=[f"{n}:{w}" for n, _, _, w in OWN_WRONG])
def test_wrong_initializers_of_our_own_fail_for_the_right_reason(name, wrong, error, words):
    with pytest.raises(error) as info:
        check(name, wrong)
    assert words in str(info.value), str(info.value)


def test_successive_calls_must_continue_the_stream():
    memo = {}

    def memoized(fan_in, fan_out, rng):
        if (fan_in, fan_out) in memo and memo[fan_in, fan_out][0] is rng:
            return memo[fan_in, fan_out][1].copy()
        a = np.sqrt(6.0 / (fan_in + fan_out))
        memo[fan_in, fan_out] = (rng, rng.uniform(-a, a, size=(fan_in, fan_out)))
        return memo[fan_in, fan_out][1]

    with pytest.raises(WrongValueError, match="successive calls"):
        checks.check_xavier_uniform(memoized, quiet=True)


def test_the_diagnosis_leaves_the_global_state_alone():
    # matching a wrong answer runs the catalogue's global-state mistakes: they must not move the
    # learner's global state (only the learner's own calls may, and this one does not draw from it)
    state = np.random.get_state()
    with pytest.raises(StatisticalTestError):
        checks.check_xavier_normal(lambda fi, fo, rng: rng.standard_normal((fi, fo)) * np.sqrt(1 / fi), quiet=True)
    after = np.random.get_state()
    assert np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_not_implemented_and_delegation():
    def stub(fan_in, fan_out, rng):
        raise NotImplementedError()

    with pytest.raises(NotImplementedYetError, match="is not implemented yet"):
        checks.check_he_normal(stub, quiet=True)

    def delegates(fan_in, fan_out, rng):
        return init.normal(fan_in, fan_out, rng, std=math.sqrt(2 / fan_in))

    with pytest.raises(DelegationError):
        checks.check_he_normal(delegates, quiet=True)

    def delegates_for_large_layers(fan_in, fan_out, rng):   # reached only by the statistics samples
        if fan_in * fan_out > 1000:
            return init.he_uniform(fan_in, fan_out, rng)
        a = math.sqrt(6 / fan_in)
        return rng.uniform(-a, a, (fan_in, fan_out))

    with pytest.raises(DelegationError):
        checks.check_he_uniform(delegates_for_large_layers, quiet=True)


# --------------------------------------------------------------------------- deterministic functions

def test_a_wrong_forward_variance_costs_its_own_points_only():
    notebook = (checks.FORWARD_VARIANCE.mistake_source(checks.FORWARD_VARIANCE.mistakes[0])
                + checks.FORWARD_VARIANCE_THROUGH_DEPTH_SOURCE)
    fv = compile_answer(notebook, "forward_variance")
    td = compile_answer(notebook, "forward_variance_through_depth")
    with pytest.raises(WrongValueError):
        checks.check_forward_variance(fv, quiet=True)
    td_same_scope = fv.__globals__["forward_variance_through_depth"]
    checks.check_forward_variance_through_depth(td_same_scope, quiet=True)
    checks.check_forward_variance_through_depth(td, quiet=True)
    assert fv.__globals__["forward_variance"] is fv      # the learner's name is bound back after the check


OWN_WRONG_DETERMINISTIC = [
    ("forward_variance", '''
def forward_variance(n_in, var_w, var_x, activation):
    factor = 0.5 if "relu" in activation else 1.0          # leaky relu taken for relu
    return n_in * var_w * factor * var_x
'''),
    ("forward_variance", '''
def forward_variance(n_in, var_w, var_x, activation):
    return float(np.float32(n_in * var_w * var_x) * {"relu": 0.5, "leaky_relu": 0.50005}.get(activation, 1.0))
'''),
    ("forward_variance_through_depth", '''
def forward_variance_through_depth(n, var_w, var_x, activation, depth):
    gain = n * var_w * (0.5 if activation == "relu" else 1.0)   # leaky relu's factor forgotten
    return var_x * gain ** np.arange(1, depth + 1)
'''),
    ("forward_variance_through_depth", '''
def forward_variance_through_depth(n, var_w, var_x, activation, depth):
    out = np.zeros(depth, dtype=np.float32)
    v = var_x
    for l in range(depth):
        v = forward_variance(n, var_w, v, activation)
        out[l] = v
    return out
'''),
    ("activation_variances", '''
def activation_variances(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    n = x.shape[1]
    Ws = [initializer(n, n, rng) for _ in range(depth)][::-1]   # drawn in the wrong order
    out, a = [], x
    for W in Ws:
        z = a @ W
        out.append(z.var())
        a = f(z)
    return np.array(out)
'''),
    ("activation_variances", '''
def activation_variances(x, initializer, depth, activation, rng):
    f = activations.get_activation(activation).fn
    out, a = [], x
    for _ in range(depth):
        z = a @ initializer(x.shape[1], x.shape[1], rng)
        out.append(z.var(ddof=1))                               # the unbiased variance
        a = f(z)
    return np.array(out)
'''),
    ("backward_stable_variance", '''
def backward_stable_variance(n_in, n_out, activation="identity"):
    return (2.0 if "relu" in activation else 1.0) / n_out       # leaky relu taken for relu
'''),
]


@pytest.mark.parametrize("name, source", OWN_WRONG_DETERMINISTIC,
                         ids=[f"{n}:{k}" for k, (n, _) in enumerate(OWN_WRONG_DETERMINISTIC)])
def test_wrong_deterministic_answers_of_our_own_fail(name, source):
    with pytest.raises(AssertionError):
        check(name, compile_answer(source, name))


def test_activation_variances_accepts_a_different_but_correct_writing():
    def mine(x, initializer, depth, activation, rng):
        f = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "identity": lambda z: z,
             "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[activation]
        out, a = [], x
        for _ in range(depth):
            z = np.dot(a, initializer(x.shape[1], x.shape[1], rng))
            out.append(((z - z.mean()) ** 2).mean())
            a = f(z)
        return np.asarray(out)

    checks.check_activation_variances(mine, quiet=True)


def test_every_case_encodes_and_round_trips():
    rng = np.random.default_rng(0)
    cases = [case for d in checks.DECLARATIONS for case in d.visible()] + HIDDEN + [
        checks.stack_variance_case(rng, 5, 8, 7, "leaky_relu", ("uniform", 0.5), 26, input_scale=1e3)]
    for case in cases:
        back = decode(encode((case.args, case.kwargs)))
        assert encode(back) == encode((case.args, case.kwargs)), case.label
    init_case = checks.stack_variance_case(rng, 4, 6, 3, "tanh", ("normal", 0.5), 1)
    (x, initializer, depth, activation, gen), _ = decode(encode((init_case.args, init_case.kwargs)))
    assert np.array_equal(init.activation_variances(x, initializer, depth, activation, gen),
                          init.activation_variances(*init_case.args))
