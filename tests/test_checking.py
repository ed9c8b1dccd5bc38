"""stablegrad.checking and checking.chain_rule: messages, mistake detection, the delegation guard.

Test the tester: every known mistake must fail its check with a message that
names it, correct implementations written differently from the reference must
pass (including the hidden-test edge cases), and every route to the reference
implementation must be caught while other package functions stay allowed.
"""

import functools
import importlib
import sys
import threading

import numpy as np
import pytest

from stablegrad import checking, diagnostics, gradcheck, layers
from stablegrad.checking import Case, Out
from stablegrad.checking import chain_rule


# --------------------------------------------------------------------------- learner-style answers

def good_stack_backward(dout, caches):
    """Correct, but written differently from the reference (einsum, index loop, ones @ dz)."""
    grads = [None] * len(caches)
    d = dout
    for l in range(len(caches) - 1, -1, -1):
        c = caches[l]
        dz = d * c.act.activation.grad(c.act.z)
        grads[l] = (np.einsum("nd,nm->dm", c.dense.x, dz), np.ones(dz.shape[0], dz.dtype) @ dz)
        d = np.dot(dz, c.dense.W.T)
    return d, grads


def good_numerical_gradient(f, x, eps=1e-6):
    """Correct, vectorised over a basis array instead of perturbing in place."""
    x = np.asarray(x, dtype=np.float64)
    g = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(x.shape)
        g[i] = (f(x + e) - f(x - e)) / 2 / eps
    return g.reshape(x.shape)


def good_chain_gradient_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones(out.shape) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.sqrt(np.sum(dW * dW)) for dW, _ in grads])


def hidden_like_cases():
    """The kinds of inputs the hidden tests use: batch of one, float32, extreme scales, zeros."""
    rng = np.random.default_rng(7)
    return {
        "stack": [
            chain_rule.stack_case(rng, "tanh", (4, 3, 2), n=1),
            chain_rule.stack_case(rng, "relu", (5, 6, 4), n=8, dtype=np.float32),
            chain_rule.stack_case(rng, "tanh", (3, 4, 4, 2), n=5, scale=30.0),
            chain_rule.stack_case(rng, "tanh", (8,) * 13, n=4, scale=1e-3),
            chain_rule.stack_case(rng, "leaky_relu", (3, 9, 2), n=3, scale=1e3),
            chain_rule.stack_case(rng, "sigmoid", (4, 5, 3), n=6, zero_dout=True),
        ],
        "numgrad": [
            chain_rule.numerical_gradient_case(rng, "cubic", (1,)),
            chain_rule.numerical_gradient_case(rng, "tanh_quadratic", (2, 2, 3), eps=1e-5),
            chain_rule.numerical_gradient_case(rng, "log_sin", (3, 3), integer=True),
            chain_rule.numerical_gradient_case(rng, "sin", (4,), scale=1e-4, eps=1e-9),
            chain_rule.numerical_gradient_case(rng, "cubic", (2, 2), scale=1e3, eps=1e-2),
        ],
        "chain": [
            chain_rule.chain_case(rng, "tanh", (3, 4, 2), n=1),
            chain_rule.chain_case(rng, "relu", (6, 6, 6), n=4, dout="zeros"),
            chain_rule.chain_case(rng, "tanh", (5,) * 16, n=7, scale=1e-2),
            chain_rule.chain_case(rng, "leaky_relu", (5, 5, 2), n=6, dtype=np.float32, dout="normal"),
        ],
    }


CHECKS = {
    "stack": (chain_rule.check_stack_backward, good_stack_backward, chain_rule.STACK_BACKWARD_MISTAKES),
    "numgrad": (chain_rule.check_numerical_gradient, good_numerical_gradient,
                chain_rule.NUMERICAL_GRADIENT_MISTAKES),
    "chain": (chain_rule.check_chain_gradient_norms, good_chain_gradient_norms,
              chain_rule.CHAIN_NORM_MISTAKES),
}
MISTAKES = [pytest.param(kind, m, id=f"{kind}:{m.description}")
            for kind, (_, _, mistakes) in CHECKS.items() for m in mistakes]


# --------------------------------------------------------------------------- correct answers pass

@pytest.mark.parametrize("kind", CHECKS)
def test_correct_answers_written_differently_pass_visible_and_hidden_cases(kind, capsys):
    check, good, _ = CHECKS[kind]
    assert check(good) is None  # a number would be read by nbgrader as partial credit
    check(good, hidden_like_cases()[kind], quiet=True)
    out = capsys.readouterr().out
    assert "checks passed" in out and "  ok  " in out


@pytest.mark.parametrize("kind", CHECKS)
def test_not_implemented_says_so(kind):
    check, _, _ = CHECKS[kind]

    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(checking.NotImplementedYetError, match="is not implemented yet"):
        check(stub)


# --------------------------------------------------------------------------- every mistake is named

@pytest.mark.parametrize("kind, mistake", MISTAKES)
def test_each_mistake_fails_with_a_message_that_names_it(kind, mistake):
    check, _, _ = CHECKS[kind]
    with pytest.raises(checking.CheckFailure) as info:
        check(mistake.fn, quiet=True)
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    if isinstance(info.value, checking.InputModifiedError):  # right values, but the caller's array changed
        assert "modified its input" in message and "in place" in message
    else:
        assert "This matches a common mistake:" in message, message
        assert mistake.description in message.split("This matches a common mistake:")[1], message
    assert "case:" in message


def test_shape_error_names_output_expected_shape_and_why():
    rng = np.random.default_rng(0)
    case = chain_rule.stack_case(rng, "tanh", (5, 4, 3), n=4)

    def wrong_dx(dout, caches):
        dx, grads = good_stack_backward(dout, caches)
        return dx[:, :3], grads

    with pytest.raises(checking.WrongShapeError) as info:
        chain_rule.check_stack_backward(wrong_dx, [case])
    expected = "stack_backward: dx (output[0]) has shape (4, 3); expected (4, 5), the shape of x"
    assert expected in str(info.value)


def test_value_error_reports_output_index_size_and_case():
    rng = np.random.default_rng(0)
    case = chain_rule.stack_case(rng, "sigmoid", (3, 4, 2), n=5)

    def off_in_one_entry(dout, caches):
        dx, grads = good_stack_backward(dout, caches)
        dW2 = grads[1][0].copy()
        dW2[2, 1] += 0.5
        grads[1] = (dW2, grads[1][1])
        return dx, grads

    with pytest.raises(checking.WrongValueError) as info:
        chain_rule.check_stack_backward(off_in_one_entry, [case])
    message = str(info.value)
    assert "dW2 (output[1][1][0]) is off" in message
    assert "at index (2, 1)" in message and "error 0.5" in message
    assert "sigmoid, 2 layers of widths (3, 4, 2), N=5" in message
    assert "common mistake" not in message  # nothing known matches a random error


def test_dtype_is_checked_for_float32_inputs():
    rng = np.random.default_rng(0)
    case = chain_rule.stack_case(rng, "relu", (3, 4, 2), n=5, dtype=np.float32)

    def float64_out(dout, caches):
        dx, grads = good_stack_backward(dout, caches)
        return dx.astype(np.float64), grads

    with pytest.raises(checking.WrongTypeError, match="has dtype float64; expected float32"):
        chain_rule.check_stack_backward(float64_out, [case])


def test_input_modification_names_the_argument():
    rng = np.random.default_rng(0)
    case = chain_rule.numerical_gradient_case(rng, "sin", (3,))
    with pytest.raises(checking.InputModifiedError, match="modified its input x in place"):
        chain_rule.check_numerical_gradient(chain_rule._ng_x_in_place, [case])


def test_learner_exception_is_reported_with_the_case():
    def crashes(f, x, eps=1e-6):
        return {}["oops"]

    with pytest.raises(checking.LearnerError, match="raised KeyError: 'oops'") as info:
        chain_rule.check_numerical_gradient(crashes)
    assert "case: f(x) = sum(sin(3x) x^2)" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


# --------------------------------------------------------------------------- compare (generic outputs)

@pytest.mark.parametrize("got, expected, kind, text", [
    ([1.0, 2.0], np.array([1.0, 2.0]), checking.WrongTypeError,
     "is a list; expected a NumPy array of shape (2,)"),
    ((np.zeros(2),), (np.zeros(2), np.zeros(3)), checking.WrongTypeError, "has 1 items; expected 2"),
    ({"a": 1.0}, {"a": 1.0, "b": 2.0}, checking.WrongTypeError, "has keys ['a']; expected ['a', 'b']"),
    ("1.0", 1.0, checking.WrongTypeError, "is a str; expected a real number"),
    (1.5, 1.0, checking.WrongValueError, "is off: error 0.5"),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0]), checking.WrongValueError, "contains nan at index (1,)"),
    ([(np.ones(2), 3.0)], [(np.ones(2), 3.5)], checking.WrongValueError, "output[0][1] is off"),
])
def test_compare_generic_outputs(got, expected, kind, text):
    bad = checking.compare(got, expected)
    assert bad is not None and bad.kind is kind
    assert text in f"{bad.label} {bad.text}"


def test_compare_accepts_equal_nested_outputs():
    value = {"w": [(np.arange(3.0), 2.0)], "n": np.float64(1.0)}
    assert checking.compare(value, {"w": [(np.arange(3.0), 2.0)], "n": 1.0}) is None
    assert checking.compare(np.float32(1.0), 1.0) is None


def test_elementwise_mode_sees_errors_in_tiny_entries():
    expected = np.array([1e-20, 1.0])
    got = np.array([2e-20, 1.0])  # layer 1's norm wrong by 100%, invisible next to layer 2's
    assert checking.compare(got, expected, rtol=1e-6) is None
    bad = checking.compare(got, expected, rtol=1e-6, elementwise=True, spec=Out("norms"))
    assert bad is not None and "at index (0,)" in bad.text


def test_generic_check_with_dict_outputs_and_custom_mistakes():
    def reference(x):
        return {"mean": float(np.mean(x)), "var": np.var(x, axis=0)}

    def n_minus_1(x):
        return {"mean": float(np.mean(x)), "var": np.var(x, axis=0, ddof=1)}

    rng = np.random.default_rng(1)
    cases = [Case("x of shape (6, 3)", (rng.standard_normal((6, 3)),), {}, ("x",))]
    mistakes = [checking.Mistake("dividing the variance by N-1", n_minus_1)]
    with pytest.raises(checking.WrongValueError) as info:
        checking.check_against_reference(n_minus_1, reference, cases, spec={"var": "var"},
                                         mistakes=mistakes, forbid=[])
    assert "var (output['var']) is off" in str(info.value)
    assert "matches a common mistake: dividing the variance by N-1" in str(info.value)


@pytest.mark.parametrize("got, expected, kind, text", [
    (1, True, checking.WrongTypeError, "is a int; expected a bool"),
    (np.bool_(False), True, checking.WrongValueError, "is False; expected True"),
    (True, 1.0, checking.WrongTypeError, "is a bool; expected a real number"),
    (np.array([1.0, 0.0]), np.array([True, False]), checking.WrongTypeError,
     "has dtype float64; expected bool"),
    (np.array([True, True]), np.array([True, False]), checking.WrongValueError,
     "is off at index (1,) (yours True, expected False"),
    (np.array([np.nan, 1.0]), np.array([1.0, np.nan]), checking.WrongValueError,
     "is nan at index (0,); expected 1.0"),
    (np.array([1.0, 2.0]), np.array([1.0, np.nan]), checking.WrongValueError,
     "is 2.0 at index (1,); expected nan"),
    (np.array([np.inf, 1.0]), np.array([-np.inf, 1.0]), checking.WrongValueError,
     "is inf at index (0,); expected -inf"),
    (np.array([np.nan, 1.5]), np.array([np.nan, 1.0]), checking.WrongValueError,
     "is off: error 0.5 at index (1,)"),
])
def test_compare_booleans_exactly_and_non_finite_entries_by_position(got, expected, kind, text):
    bad = checking.compare(got, expected)
    assert bad is not None and bad.kind is kind
    assert text in bad.text


def test_compare_accepts_equal_booleans_and_matching_non_finite_entries():
    assert checking.compare(True, True) is None
    assert checking.compare(np.bool_(True), True) is None
    assert checking.compare(np.array([True, False]), np.array([True, False])) is None
    assert checking.compare(np.array([np.nan, -np.inf, 1.0]), np.array([np.nan, -np.inf, 1.0 + 1e-9]),
                            rtol=1e-8) is None
    assert checking.compare(float("nan"), float("nan")) is None


def _scaled_clip(x, limit, train, rng, scale):
    return (np.clip(x, -limit, limit) if train else x.copy()) * scale()


def test_input_check_accepts_unchanged_bools_generators_and_partials():
    # a bool argument, a generator (which advances by design when it is used) and a
    # functools.partial (equal only to itself, never to its copy) are not "modified"
    def uses_the_generator(x, limit, train, rng, scale):
        rng.standard_normal(3)
        return _scaled_clip(x, limit, train, rng, scale)

    names = ("x", "limit", "train", "rng", "scale")
    cases = [Case(f"train={train}", (np.linspace(-2, 2, 5), 1.0, train, np.random.default_rng(1),
                                     functools.partial(float, "2.0")), {}, names)
             for train in (True, False)]
    checking.check_against_reference(uses_the_generator, _scaled_clip, cases, forbid=[], quiet=True)

    def clips_in_place(x, limit, train, rng, scale):
        np.clip(x, -limit, limit, out=x)
        return x * scale()

    with pytest.raises(checking.InputModifiedError, match="modified its input x in place"):
        checking.check_against_reference(clips_in_place, _scaled_clip, cases, forbid=[], quiet=True)


def test_input_check_accepts_a_cache_with_a_bool_field():
    from stablegrad import normalization

    x = np.random.default_rng(0).standard_normal((4, 3))
    running = normalization.RunningStats(np.zeros(3), np.ones(3))
    _, cache, _ = normalization.batchnorm_forward(x, np.ones(3), np.zeros(3), running, train=True)
    assert type(cache.train) is bool
    case = Case("a batch-norm cache", (np.ones((4, 3)), cache), {}, ("dout", "cache"))
    checking.check_against_reference(lambda dout, cache: normalization.batchnorm_backward(dout, cache),
                                     normalization.batchnorm_backward, [case], forbid=[], quiet=True)


def _nan_at_zero(x):
    return np.where(x == 0, np.nan, 1.0 / np.where(x == 0, 1.0, x))   # 1/x, nan where undefined


def _reciprocal(x):
    return 1.0 / np.where(x == 0, np.inf, x)                          # 1/x, 0 where x = 0


def _positive_mask(x):
    return x > 0


@pytest.mark.parametrize("reference, mistake, kind", [
    (_reciprocal, _nan_at_zero, checking.WrongValueError),                        # nan in the output
    (lambda x: (x > 0).astype(x.dtype), _positive_mask, checking.WrongTypeError),  # a boolean array
])
def test_mistakes_with_nan_or_boolean_outputs_are_named(reference, mistake, kind):
    def mine(x):  # the same mistake written differently
        out = mistake(x.copy())
        return out.copy()

    cases = [Case("x with a zero", (np.array([-2.0, 0.0, 0.5, 4.0]),), {}, ("x",))]
    mistakes = [checking.Mistake("a decoy that is wrong everywhere", lambda x: x + 1.0),
                checking.Mistake("the mistake", mistake)]
    with pytest.raises(kind) as info:
        checking.check_against_reference(mine, reference, cases, mistakes=mistakes, forbid=[], quiet=True)
    assert "matches a common mistake: the mistake." in str(info.value)


# --------------------------------------------------------------------------- the delegation guard

def _direct(dout, caches):
    return layers.stack_backward(dout, caches)


from stablegrad.layers import stack_backward as _aliased_reference  # noqa: E402


def _alias(dout, caches):
    return _aliased_reference(dout, caches)


def _via_importlib(dout, caches):
    return importlib.import_module("stablegrad.layers").stack_backward(dout, caches)


def _via_sys_modules(dout, caches):
    return sys.modules["stablegrad.layers"].stack_backward(dout, caches)


def _via_getattr(dout, caches):
    return getattr(layers, "stack_" + "backward")(dout, caches)


def _via_thread(dout, caches):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", layers.stack_backward(dout, caches)))
    t.start()
    t.join()
    return result["r"]


def _via_dense_backward(dout, caches):
    grads, d = [], dout
    for cache in reversed(caches):
        dz = layers.activation_backward(d, cache.act)
        d, dW, db = layers.dense_backward(dz, cache.dense)
        grads.append((dW, db))
    return d, grads[::-1]


def _switch_profiler_off(dout, caches):
    sys.setprofile(None)
    return layers.stack_backward(dout, caches)


def _delegate_then_crash(dout, caches):
    layers.stack_backward(dout, caches)
    raise ValueError("hidden behind an error")


DELEGATIONS = {
    "direct": _direct,
    "alias": _alias,
    "importlib": _via_importlib,
    "sys.modules": _via_sys_modules,
    "getattr": _via_getattr,
    "thread": _via_thread,
    "functools.partial": functools.partial(layers.stack_backward),
    "the reference itself": layers.stack_backward,
    "dense_backward": _via_dense_backward,
    "profiler switched off": _switch_profiler_off,
    "delegate then crash": _delegate_then_crash,
}


@pytest.mark.parametrize("route", DELEGATIONS)
def test_guard_catches_every_route_to_the_reference(route):
    with pytest.raises(checking.DelegationError) as info:
        chain_rule.check_stack_backward(DELEGATIONS[route], quiet=True)
    message = str(info.value)
    assert "stack_backward" in message and ("reference implementation" in message or "profiler" in message)


def test_guard_catches_delegation_in_the_other_checks():
    with pytest.raises(checking.DelegationError, match="gradcheck.numerical_gradient"):
        chain_rule.check_numerical_gradient(lambda f, x, eps=1e-6: gradcheck.numerical_gradient(f, x, eps))
    with pytest.raises(checking.DelegationError, match="diagnostics.layer_gradient_norms"):
        chain_rule.check_chain_gradient_norms(
            lambda x, p, a, dout=None: diagnostics.layer_gradient_norms(
                layers.stack_backward(np.ones((x.shape[0], p[-1][0].shape[1])) if dout is None else dout,
                                      layers.stack_forward(x, p, a)[1])[1]))


def test_guard_allows_other_package_functions_and_restores_the_profiler():
    def uses_forward_and_activation_backward(dout, caches):
        layers.stack_forward(caches[0].dense.x, [(c.dense.W, np.zeros(c.dense.W.shape[1])) for c in caches])
        grads, d = [], dout
        for cache in reversed(caches):
            dz = layers.activation_backward(d, cache.act)
            grads.append((cache.dense.x.T @ dz, dz.sum(axis=0)))
            d = dz @ cache.dense.W.T
        return d, grads[::-1]

    def previous(frame, event, arg):
        return None

    sys.setprofile(previous)
    try:
        chain_rule.check_stack_backward(uses_forward_and_activation_backward, quiet=True)
        assert sys.getprofile() is previous
    finally:
        sys.setprofile(None)


def test_call_guarded_returns_the_value_and_propagates_ordinary_errors():
    assert checking.call_guarded(lambda a, b=0: a + b, [layers.stack_backward], 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        checking.call_guarded(lambda: 1 / 0, [layers.stack_backward])
