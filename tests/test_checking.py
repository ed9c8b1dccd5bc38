"""The checking engine: declarations, comparisons, the learner's side, encoding, fresh checkers.

Exercise-specific behaviour (each topic's cases, properties and holes) is in
``tests/test_checking_<topic>.py``; every exercise's mistakes are also executed
against the real test cells in ``tests/test_exercises.py``. Here: what every
declaration must satisfy, and the generic machinery, on chapter 1's functions.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
import traceback

import numpy as np
import pytest

from stablegrad import clipping, diagnostics, gradcheck, layers, normalization
from stablegrad.checking import (
    CheckFailure, DelegationError, Graded, LearnerError, WrongShapeError, WrongTypeError, WrongValueError,
    chain_rule, fresh, run_learner,
)
from stablegrad.checking.comparison import Out, Tolerance, compare
from stablegrad.checking.encoding import EncodingError, decode, encode
from stablegrad.checking.engine import Case, Mistake, Problem, Property, render, run

TOPICS = ("chain_rule", "saturation", "initialization", "batchnorm", "clipping")
DECLARATIONS = [pytest.param(d, id=f"{topic}.{d.name}") for topic in TOPICS
                for d in getattr(importlib.import_module(f"stablegrad.checking.{topic}"), "DECLARATIONS", [])]
MISTAKES = [pytest.param(p.values[0], m, id=f"{p.id}:{m.cause}") for p in DECLARATIONS
            for m in p.values[0].mistakes]


# =========================================================================== every declaration

@pytest.mark.parametrize("decl", DECLARATIONS)
def test_the_learner_style_source_passes_its_own_check(decl, capsys):
    assert decl.check(decl.compile(decl.source)) is None  # a number would read as partial credit
    assert f"{decl.name}: all" in capsys.readouterr().out


@pytest.mark.parametrize("decl, mistake", MISTAKES)
def test_every_mistake_is_an_edit_that_fails_and_is_named(decl, mistake):
    if mistake.source is None:
        assert mistake.edit, "a mistake is an edit of the source, or a source of its own"
        assert decl.mistake_source(mistake) != decl.source
    report = run(decl, decl.compile(decl.mistake_source(mistake)))
    assert report.finding is not None, f"{mistake.cause!r} passes"
    assert mistake.cause in report.finding.mistakes, render(report.finding)


@pytest.mark.parametrize("decl", DECLARATIONS)
def test_the_reference_itself_and_a_stub_are_refused(decl):
    assert run(decl, decl.reference).finding.kind == "delegation"

    def stub(*args, **kwargs):
        raise NotImplementedError()

    finding = run(decl, stub).finding
    assert finding.kind == "not_implemented" and "is not implemented yet" in render(finding)


@pytest.mark.parametrize("decl", DECLARATIONS)
def test_visible_cases_and_reference_outputs_round_trip_as_plain_data(decl):
    for case in decl.visible():
        data = json.loads(json.dumps(encode((case.args, case.kwargs)), allow_nan=False))
        args, kwargs = decode(data)
        assert encode((args, kwargs)) == encode((case.args, case.kwargs)), case.label
        try:
            out = decl.reference(*case.args, **case.kwargs)
        except Exception:  # noqa: BLE001 - the contract on this case is to raise
            continue
        assert encode(decode(json.loads(json.dumps(encode(out), allow_nan=False)))) == encode(out)


def test_a_mistake_whose_edit_is_not_found_exactly_once_is_refused():
    decl = chain_rule.STACK_BACKWARD
    with pytest.raises(ValueError, match="occurs 0 times"):
        decl.mistake_source(Mistake("nothing", edit=("no such text", "x")))
    with pytest.raises(ValueError, match="occurs 2 times"):
        decl.mistake_source(Mistake("twice", edit=("cache.act", "x")))


# =========================================================================== messages

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


def test_shape_error_names_output_expected_shape_and_why():
    case = chain_rule.stack_case(np.random.default_rng(0), "tanh", (5, 4, 3), n=4)

    def wrong_dW(dout, caches):
        dx, grads = good_stack_backward(dout, caches)
        return dx, [(dW.T, db) for dW, db in grads]

    with pytest.raises(WrongShapeError) as info:
        chain_rule.check_stack_backward(wrong_dW, [case])
    assert "stack_backward: dW1 (output[1][0][0]) has shape (4, 5); expected (5, 4), the shape of W1" \
        in str(info.value)


def test_value_error_reports_output_index_size_case_and_no_mistake_for_a_random_error():
    case = chain_rule.stack_case(np.random.default_rng(0), "sigmoid", (3, 4, 2), n=5)

    def off_in_one_entry(dout, caches):
        dx, grads = good_stack_backward(dout, caches)
        dW2 = grads[1][0].copy()
        dW2[2, 1] += 0.5
        grads[1] = (dW2, grads[1][1])
        return dx, grads

    with pytest.raises(WrongValueError) as info:
        chain_rule.check_stack_backward(off_in_one_entry, [case])
    message = str(info.value)
    assert "dW2 (output[1][1][0]) is off" in message and "at index (2, 1)" in message and "error 0.5" in message
    assert "case: sigmoid, 2 layers of widths (3, 4, 2), N=5" in message
    assert "common mistake" not in message


def test_learner_exception_names_the_learners_line_and_the_traceback_stays_short():
    def crashes(f, x, eps=1e-6):
        table = {}
        return table["oops"]

    with pytest.raises(LearnerError) as info:
        chain_rule.check_numerical_gradient(crashes)
    message = str(info.value)
    assert "numerical_gradient raised KeyError: 'oops'" in message
    assert "case: f(x) = sum(sin(3x) x^2)" in message
    assert "in your code, line" in message and 'return table["oops"]' in message
    frames = traceback.extract_tb(info.value.__traceback__)
    inside = [f for f in frames if "stablegrad/checking" in f.filename]
    assert len(inside) <= 2, [f"{f.filename}:{f.name}" for f in inside]  # check_<name> and Graded.check
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_failure_is_raised_as_the_class_of_its_kind_and_is_an_assertion_error():
    with pytest.raises(WrongTypeError, match="has dtype float64; expected float32"):
        chain_rule.check_stack_backward(
            lambda dout, caches: (lambda dx, g: (dx.astype(np.float64), g))(*good_stack_backward(dout, caches)),
            [chain_rule.stack_case(np.random.default_rng(0), "relu", (3, 4, 2), n=5, dtype=np.float32)])
    assert issubclass(WrongTypeError, AssertionError)


# =========================================================================== comparing outputs

@pytest.mark.parametrize("got, expected, kind, text", [
    ([1.0, 2.0], np.array([1.0, 2.0]), "type", "is a list; expected a NumPy array of shape (2,)"),
    ((np.zeros(2),), (np.zeros(2), np.zeros(3)), "type", "has 1 items; expected 2"),
    ({"a": 1.0}, {"a": 1.0, "b": 2.0}, "type", "has keys ['a']; expected ['a', 'b']"),
    ("1.0", 1.0, "type", "is a str; expected a real number"),
    (1.5, 1.0, "value", "is off: error 0.5"),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0]), "value", "contains nan at index (1,)"),
    ([(np.ones(2), 3.0)], [(np.ones(2), 3.5)], "value", "output[0][1] is off"),
    (np.array([True, False]), np.array([True, True]), "value", "at index (1,)"),
    (np.array([1, 0]), np.array([True, False]), "type", "expected bool"),
    (np.array([1.0, 2.0]), np.array([1.0, np.inf]), "value", "is 2.0 at index (1,); expected inf"),
    (True, 1.0, "type", "expected a real number"),
])
def test_compare_describes_the_first_difference(got, expected, kind, text):
    bad = compare(got, expected)
    assert bad is not None and bad.kind == kind
    assert text in f"{bad.what} {bad.text}"


def test_compare_accepts_equal_nested_outputs_and_matching_non_finite_entries():
    value = {"w": [(np.arange(3.0), 2.0)], "n": np.float64(1.0)}
    assert compare(value, {"w": [(np.arange(3.0), 2.0)], "n": 1.0}) is None
    assert compare(np.float32(1.0), 1.0) is None
    assert compare(np.array([np.nan, -np.inf, 1.0]), np.array([np.nan, -np.inf, 1.0])) is None


def test_per_entry_tolerance_sees_wrong_tiny_entries_and_the_floor_admits_rounding_noise():
    expected = np.array([1.0, 4.2e-18])          # sigmoid(0)*2 and sigmoid(-40)
    clipped = np.array([1.0, 9.4e-14])           # sigmoid computed on z clipped to +-30
    assert compare(clipped, expected, tol=Tolerance(rtol=1e-6, per_entry=False)) is None  # the old hole
    assert compare(clipped, expected, tol=Tolerance(rtol=1e-6)) is not None          # default floor 64 eps
    bad = compare(clipped, expected, tol=Tolerance(rtol=1e-6, floor=0.0), spec=Out("s"))
    assert bad is not None and "at index (1,)" in bad.text
    # a gradient that is 0 in theory and a few ulps in floating point stays acceptable by default
    assert compare(np.array([3.0, 2e-16]), np.array([3.0, 0.0]), tol=Tolerance(rtol=1e-6)) is None
    assert compare(np.array([3.0, 2e-16]), np.array([3.0, 0.0]), tol=Tolerance(rtol=1e-6, floor=0.0)) is not None


def test_the_floor_is_measured_in_the_dtype_of_the_expected_output():
    exp32 = np.array([1.0, 0.0], dtype=np.float32)
    noisy = np.array([1.0, 5e-6], dtype=np.float32)   # 42 float32 eps of the largest entry
    assert compare(noisy, exp32, tol=Tolerance(rtol=1e-4)) is None
    assert compare(noisy.astype(np.float64), exp32.astype(np.float64), tol=Tolerance(rtol=1e-4)) is not None


# =========================================================================== the learner's side

def test_outcome_records_inputs_changed_memory_shared_warnings_and_random_state():
    x = np.arange(4.0)
    outcome = run_learner(lambda a: a.__imul__(2), (x,), names=("x",))
    assert outcome.modified == ("x",) and np.array_equal(x, np.arange(4.0))  # the caller's copy is safe
    assert run_learner(lambda a: a[1:], (x,), names=("x",)).shared == ("output and x",)
    assert run_learner(lambda a: a.copy(), (x,), names=("x",)).shared == ()
    assert run_learner(lambda a: np.exp(a * 1e3), (x,)).warnings == ("overflow encountered in exp",)
    assert run_learner(lambda a: a + np.random.rand(), (x,)).global_rng
    assert not run_learner(lambda a: a + np.random.default_rng(0).random(), (x,)).global_rng
    rng = np.random.default_rng(5)
    used = run_learner(lambda g: g.random(3), (rng,))
    assert used.generators and used.generators[0] != rng.bit_generator.state   # the caller's rng untouched
    raised = run_learner(lambda a: 1 / 0, (x,)).raised
    assert raised.type == "ZeroDivisionError" and raised.is_a("builtins.ArithmeticError")


def test_substitute_rebinds_a_learner_global_only_during_the_call():
    namespace = {"helper": lambda: "learner's"}
    exec("def uses():\n    return helper()\n", namespace)
    assert run_learner(namespace["uses"], (), substitute={"helper": lambda: "reference"}).value == "reference"
    assert namespace["helper"]() == "learner's"


def test_when_the_reference_raises_the_learner_must_raise_the_same_class():
    decl = Graded(name="clip_by_norm", reference=clipping.clip_by_norm, source="", visible=lambda: [],
                  forbid=[])
    case = Case("a nan entry", (np.array([1.0, np.nan]), 1.0), {}, ("g", "max_norm"))

    def raises_value_error(g, max_norm):
        raise ValueError("bad")

    def returns(g, max_norm):
        return g.copy()

    def raises_right(g, max_norm):
        raise clipping.NonFiniteGradientError("g contains NaN", "g")

    assert run(decl, raises_right, [case]).finding is None
    assert "raised ValueError: bad" in render(run(decl, raises_value_error, [case]).finding)
    assert "should raise NonFiniteGradientError" in render(run(decl, returns, [case]).finding)


def test_a_property_can_fail_and_name_a_mistake_by_its_evidence():
    def doubles(call):
        got = call(np.array([1.0, 2.0]))
        if not np.array_equal(got, [2.0, 4.0]):
            return Problem("value", "", f"gave {got.tolist()} for [1, 2]", evidence=got.tolist())
        return None

    decl = Graded(name="double", reference=lambda x: 2 * x, source="def double(x):\n    return x + x\n",
                  visible=lambda: [], properties=[Property("doubles [1, 2]", doubles)],
                  mistakes=[Mistake("adds 1", edit=("x + x", "x + 1")),
                            Mistake("adds 2", edit=("x + x", "x + 2"))])
    finding = run(decl, lambda x: x + 1).finding
    assert finding.case == "doubles [1, 2]" and finding.mistakes == ("adds 1",)
    assert run(decl, lambda x: 2 * x).passed == ("doubles [1, 2]",)


# =========================================================================== the delegation guard

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
    "direct": _direct, "alias": _alias, "importlib": _via_importlib, "sys.modules": _via_sys_modules,
    "getattr": _via_getattr, "thread": _via_thread, "functools.partial": functools.partial(layers.stack_backward),
    "the reference itself": layers.stack_backward, "dense_backward": _via_dense_backward,
    "profiler switched off": _switch_profiler_off, "delegate then crash": _delegate_then_crash,
}


@pytest.mark.parametrize("route", DELEGATIONS)
def test_guard_catches_every_route_to_the_reference(route):
    with pytest.raises(DelegationError) as info:
        chain_rule.check_stack_backward(DELEGATIONS[route], quiet=True)
    assert "reference implementation" in str(info.value) or "profiler" in str(info.value)


def test_guard_catches_delegation_in_the_other_checks():
    with pytest.raises(DelegationError, match="gradcheck.numerical_gradient"):
        chain_rule.check_numerical_gradient(lambda f, x, eps=1e-6: gradcheck.numerical_gradient(f, x, eps))
    with pytest.raises(DelegationError, match="diagnostics.layer_gradient_norms"):
        chain_rule.check_chain_gradient_norms(
            lambda x, p, a, dout=None: diagnostics.layer_gradient_norms(
                layers.stack_backward(np.ones((x.shape[0], p[-1][0].shape[1])) if dout is None else dout,
                                      layers.stack_forward(x, p, a)[1])[1]))


def test_guard_allows_other_package_functions_and_restores_the_profiler():
    def uses_forward(dout, caches):
        layers.stack_forward(caches[0].dense.x, [(c.dense.W, np.zeros(c.dense.W.shape[1])) for c in caches])
        return good_stack_backward(dout, caches)

    def previous(frame, event, arg):
        return None

    sys.setprofile(previous)
    try:
        chain_rule.check_stack_backward(uses_forward, quiet=True)
        assert sys.getprofile() is previous
    finally:
        sys.setprofile(None)


# =========================================================================== encoding

def test_encoding_round_trips_exactly_and_only_builds_known_types():
    cache = normalization.batchnorm_forward(np.arange(6.0).reshape(3, 2), np.ones(2), np.zeros(2),
                                            normalization.RunningStats(np.zeros(2), np.ones(2)), True)
    value = (np.float32([1.0, np.nan, -0.0]), {3: [np.int64(4), float("inf")], "s": "x"}, np.float32(2.5),
             np.random.default_rng(3), cache, None, True)
    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    assert encode(back) == encode(value)
    assert back[0].dtype == np.float32 and np.signbit(back[0][2]) and type(back[2]) is np.float32
    assert back[3].random() == np.random.default_rng(3).random()
    assert type(back[4][1]).__name__ == "BatchNormCache"
    with pytest.raises(EncodingError, match="value\\[0\\]: a builtins.function has no plain-data form"):
        encode((lambda: 0,))
    with pytest.raises(EncodingError, match="dtype object"):
        encode(np.array([object()]))
    with pytest.raises(EncodingError, match="not a registered record"):
        decode({"record": ["os.system", {}]})
    with pytest.raises(EncodingError, match="cannot fill"):
        decode({"array": {"dtype": "<f8", "shape": [3], "data": "AAAA"}})
    with pytest.raises(EncodingError, match="not accepted"):
        decode({"array": {"dtype": "|O", "shape": [1], "data": "AAAAAAAAAAA="}})


# =========================================================================== fresh checkers

def test_fresh_puts_back_what_a_submission_patched_and_keeps_class_identity():
    error_class = clipping.NonFiniteGradientError
    original_compare = sys.modules["stablegrad.checking.engine"].compare
    original_code = layers.stack_forward.__code__
    original_abs = np.abs
    try:
        layers.stack_backward = lambda *args: None
        layers.stack_forward.__code__ = (lambda *args: None).__code__
        sys.modules["stablegrad.checking.engine"].compare = lambda *args, **kwargs: None
        np.abs = lambda x: x
        layers.smuggled = True
        checks = fresh("chain_rule")
        assert checks is chain_rule
        assert layers.stack_backward.__module__ == "stablegrad.layers"
        assert layers.stack_forward.__code__ is original_code
        assert sys.modules["stablegrad.checking.engine"].compare is original_compare
        assert np.abs is original_abs and not hasattr(layers, "smuggled")
        assert clipping.NonFiniteGradientError is error_class   # a learner's `except` still works
    finally:
        fresh("chain_rule")


def test_a_patched_engine_is_restored_before_the_hidden_check():
    engine = sys.modules["stablegrad.checking.engine"]
    try:
        engine.compare = lambda *args, **kwargs: None
        with pytest.raises(CheckFailure):
            fresh("chain_rule").check_stack_backward(lambda dout, caches: (dout, []), quiet=True)
    finally:
        fresh("chain_rule")


def test_hidden_rng_is_the_plain_seed_without_a_salt_and_unpredictable_with_one(monkeypatch):
    from stablegrad.checking import hidden_rng
    from stablegrad.checking.salt import SALT_VARIABLE

    monkeypatch.delenv(SALT_VARIABLE, raising=False)
    plain = hidden_rng(7).standard_normal(4)
    np.testing.assert_array_equal(plain, np.random.default_rng(7).standard_normal(4))
    monkeypatch.setenv(SALT_VARIABLE, "123456789")
    salted = hidden_rng(7).standard_normal(4)
    assert not np.array_equal(salted, plain)
    np.testing.assert_array_equal(salted, hidden_rng(7).standard_normal(4))    # the same run repeats
    monkeypatch.setenv(SALT_VARIABLE, "987654321")
    assert not np.array_equal(hidden_rng(7).standard_normal(4), salted)
