"""The ex04 checks on the engine: the learner-style sources pass, every catalogued mistake fails with its
cause in the message, wrong answers written independently of the catalogue fail too, the properties (the
invariants of dx, finite differences) speak on their own, and the visible cases cover what the notebook warns
about."""

import os

import numpy as np
import pytest

from stablegrad import normalization as nz
from stablegrad.checking import (
    CheckFailure, DelegationError, InputModifiedError, WrongTypeError, WrongValueError,
)
from stablegrad.checking import batchnorm as bc
from stablegrad.checking.encoding import decode, encode
from stablegrad.normalization import BatchNormCache, RunningStats

DECLS = {d.name: d for d in bc.DECLARATIONS}
CHECKS = {"batchnorm_forward": bc.check_batchnorm_forward, "batchnorm_backward": bc.check_batchnorm_backward,
          "batchnorm_backward_compact": bc.check_batchnorm_backward_compact,
          "layernorm_backward": bc.check_layernorm_backward}


def fails(name, func, cases=None, error=CheckFailure) -> str:
    """The message of the check of ``name`` on ``func``, which must fail with ``error``."""
    with pytest.raises(error) as info:
        CHECKS[name](func, cases, quiet=True)
    return str(info.value)


# --------------------------------------------------------------------------- correct answers

def test_declarations_in_notebook_order():
    assert list(DECLS) == list(CHECKS)


@pytest.mark.parametrize("name", list(CHECKS))
def test_learner_style_source_passes(name, capsys):
    decl = DECLS[name]
    CHECKS[name](decl.compile(decl.source))
    out = capsys.readouterr().out
    assert f"{name}: all" in out and "checks passed" in out
    if name != "batchnorm_forward":
        assert "finite differences" in out and "orthogonal to xhat" in out


def other_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean, var = x.mean(axis=0), x.var(axis=0)
        running = RunningStats(running.mean + (1 - momentum) * (mean - running.mean),
                               running.var + (1 - momentum) * (var - running.var))
    else:
        mean, var = running.mean, running.var
        running = RunningStats(running.mean.copy(), running.var.copy())   # copies are fine too
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return xhat * gamma + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def projection_backward(dout, cache):   # through the Jacobian's projection, not the stages
    g = dout * cache.gamma / cache.std
    if not cache.train:
        return g, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    dx = g - g.mean(axis=0) - cache.xhat * (g * cache.xhat).mean(axis=0)
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def projection_layernorm(dout, cache):
    h = dout * cache.gamma
    dx = (h - h.mean(axis=1, keepdims=True) - cache.xhat * (h * cache.xhat).mean(axis=1, keepdims=True)) / cache.std
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


@pytest.mark.parametrize("name, func", [
    ("batchnorm_forward", other_forward), ("batchnorm_backward", projection_backward),
    ("batchnorm_backward_compact", projection_backward), ("layernorm_backward", projection_layernorm)])
def test_answers_written_differently_pass(name, func):
    CHECKS[name](func, quiet=True)


# --------------------------------------------------------------------------- the catalogue

MISTAKES = [(d.name, m) for d in bc.DECLARATIONS for m in d.mistakes]


@pytest.mark.parametrize("name, mistake", MISTAKES, ids=[f"{n}: {m.cause[:40]}" for n, m in MISTAKES])
def test_every_mistake_fails_and_is_named(name, mistake):
    decl = DECLS[name]
    message = fails(name, decl.compile(decl.mistake_source(mistake)))
    assert f"This matches a common mistake: {mistake.cause}" in message or f"; or {mistake.cause}" in message


@pytest.mark.parametrize("name", list(CHECKS))
def test_delegation_is_caught(name):
    reference = DECLS[name].reference
    fails(name, lambda *args, **kwargs: reference(*args, **kwargs), error=DelegationError)


def test_causes_name_the_cause_not_the_fix():
    for _, mistake in MISTAKES:
        assert not mistake.cause.lower().startswith(("use ", "sum ", "divide ", "add ", "replace ", "call "))


# --------------------------------------------------------------------------- wrong answers of our own

def _forward_body(x, gamma, beta, running, train, momentum, eps, *, stat_dtype=None, cache_std=None,
                  running_var=None, train_field=None, with_beta=True):
    if train:
        mean = x.mean(axis=0, dtype=stat_dtype)
        var = ((x - mean) ** 2).mean(axis=0)
        new = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                           momentum * running.var + (1 - momentum) * (running_var or (lambda v: v))(var))
    else:
        mean, var, new = running.mean, running.var, running
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    out = gamma * xhat + (beta if with_beta else 0)
    cache = BatchNormCache(x, xhat, mean, var, (cache_std or (lambda v, e, s: s))(var, eps, std), gamma, eps,
                           train if train_field is None else train_field)
    return out, cache, new


def _forward(**wrong):
    def batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
        return _forward_body(x, gamma, beta, running, train, momentum, eps, **wrong)
    return batchnorm_forward


def _backward_unstaged(dout, cache, *, n_of=lambda x: x.shape[0], dmean_n=None, swap=False, dvar_with_xhat=False,
                       inference_std=None):
    x, xhat, mean, var, std, gamma, eps, train = cache
    dbeta, dgamma = dout.sum(axis=0), (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if not train:
        return dxhat / (inference_std(var) if inference_std else std), dgamma, dbeta
    n = n_of(x)
    xmu = x - mean
    dvar = -0.5 * (dxhat * (xhat if dvar_with_xhat else xmu)).sum(axis=0) / std ** 3
    dmean = -dxhat.sum(axis=0) / std
    dx = dxhat / std + dvar * 2.0 * xmu / n + dmean / (dmean_n or n)
    return (dx, dbeta, dgamma) if swap else (dx, dgamma, dbeta)


def _backward(**wrong):
    def backward(dout, cache):
        return _backward_unstaged(dout, cache, **wrong)
    return backward


def modifies_dout(dout, cache):
    dout *= cache.gamma                                  # the caller's dout changes
    return projection_backward(dout / cache.gamma, cache)


def layernorm_d_from_batch(dout, cache):
    xhat, std, gamma = cache
    d = xhat.shape[0]                                    # N where D belongs, in one place only
    h = dout * gamma
    dx = (xhat.shape[1] * h - h.sum(axis=1, keepdims=True)
          - xhat * (h * xhat).sum(axis=1, keepdims=True)) / (d * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_flat_std(dout, cache):
    xhat, std, gamma = cache
    h = dout * gamma
    return ((h - h.mean(axis=1, keepdims=True) - xhat * (h * xhat).mean(axis=1, keepdims=True)) / std.ravel(),
            (dout * xhat).sum(axis=0), dout.sum(axis=0))


def layernorm_float64(dout, cache):
    dx, dgamma, dbeta = projection_layernorm(dout.astype(np.float64), cache)
    return dx, dgamma, dbeta


OWN_WRONG = [
    ("batchnorm_forward", _forward(with_beta=False), WrongValueError, "out"),
    ("batchnorm_forward", _forward(cache_std=lambda var, eps, std: np.sqrt(var)), WrongValueError, "cache.std"),
    ("batchnorm_forward", _forward(running_var=np.sqrt), WrongValueError, "running.var"),
    ("batchnorm_forward", _forward(stat_dtype=np.float64), WrongTypeError, "float32"),
    ("batchnorm_forward", _forward(train_field=True), WrongValueError, "cache.train"),
    ("batchnorm_backward", _backward(dmean_n=1), WrongValueError, "dx"),
    ("batchnorm_backward", _backward(swap=True), WrongValueError, "dgamma"),
    ("batchnorm_backward", _backward(dvar_with_xhat=True), WrongValueError, "dx"),
    ("batchnorm_backward", _backward(inference_std=lambda var: np.sqrt(var + 1e-5)), WrongValueError, "dx"),
    ("batchnorm_backward", _backward(n_of=lambda x: x.shape[1]), WrongValueError, "dx"),
    ("batchnorm_backward", modifies_dout, InputModifiedError, "dout"),
    ("batchnorm_backward_compact", _backward(n_of=lambda x: x.shape[0] - 1, dmean_n=None), WrongValueError, "dx"),
    ("layernorm_backward", layernorm_d_from_batch, CheckFailure, "dx"),
    ("layernorm_backward", layernorm_flat_std, CheckFailure, "layernorm_backward"),
    ("layernorm_backward", layernorm_float64, WrongTypeError, "float32"),
]


@pytest.mark.parametrize("name, func, error, word", OWN_WRONG, ids=[f"{n}-{i}" for i, (n, *_) in enumerate(OWN_WRONG)])
def test_wrong_answers_outside_the_catalogue_fail(name, func, error, word):
    assert word in fails(name, func, error=error)


# --------------------------------------------------------------------------- the properties on their own

@pytest.mark.parametrize("name, cause, named, not_named", [
    ("batchnorm_backward", "the path through the mean", "the mean branch", "the variance branch"),
    ("batchnorm_backward", "the path through the variance", "the variance branch", "the mean branch"),
    ("batchnorm_backward_compact", "the sum(dout) term", "the mean branch", "the variance branch"),
    ("batchnorm_backward_compact", "the xhat * sum(dout * xhat) term", "the variance branch", "the mean branch"),
    ("layernorm_backward", "the - sum_k h_nk term", "the mean branch", "the variance branch"),
    ("layernorm_backward", "the variance term is not multiplied", "the mean branch (", None),   # breaks both
])
def test_invariants_name_the_missing_branch(name, cause, named, not_named):
    decl = DECLS[name]
    mistake = next(m for m in decl.mistakes if m.cause.startswith(cause))
    message = fails(name, decl.compile(decl.mistake_source(mistake)), cases=[], error=WrongValueError)
    assert "breaks the invariants" in message and named in message
    assert not_named is None or not_named not in message
    assert message.endswith(f"This matches a common mistake: {mistake.cause}.")   # itself, and only itself


def test_a_wrong_scale_keeps_the_invariants_and_fails_finite_differences():
    decl = DECLS["batchnorm_backward_compact"]
    no_gamma = next(m for m in decl.mistakes if m.cause.startswith("gamma is left out"))
    message = fails(decl.name, decl.compile(decl.mistake_source(no_gamma)), cases=[], error=WrongValueError)
    assert "centered finite differences" in message and "branch" not in message


def test_invariants_property_catches_what_the_cases_miss():
    def wrong_for_large_batches(dout, cache):   # the mean branch dropped from N = 12 on (no visible case)
        dx, dgamma, dbeta = projection_backward(dout, cache)
        if cache.train and dout.shape[0] >= 12:
            dx = dx + (dout * cache.gamma / cache.std).mean(axis=0)
        return dx, dgamma, dbeta
    assert max(c.args[0].shape[0] for c in bc.batchnorm_backward_cases()) < 12
    message = fails("batchnorm_backward", wrong_for_large_batches, error=WrongValueError)
    assert "breaks the invariants" in message and "the mean branch" in message and "variance branch" not in message


def test_invariants_of_the_reference_are_met():
    for case in bc.batchnorm_backward_cases(3):
        dout, cache = case.args
        if cache.train:
            dx = nz.batchnorm_backward_compact(dout, cache)[0]
            gaps = bc.dx_invariants(dx, dout, cache.xhat, cache.gamma, cache.std, cache.var, cache.eps, 0)
            assert max(gaps) < (1e-12 if dx.dtype == np.float64 else 1e-5)


def test_finite_differences_catch_a_gradient_off_by_a_tenth_of_a_percent():
    def off(dout, cache):
        dx, dgamma, dbeta = projection_backward(dout, cache)
        return dx * 1.001, dgamma, dbeta
    assert "centered finite differences" in fails("batchnorm_backward", off, cases=[], error=WrongValueError)


# --------------------------------------------------------------------------- what the learner sees

def test_the_cache_is_compared_field_by_field():
    message = fails("batchnorm_forward", _forward(cache_std=lambda var, eps, std: std * 2), error=WrongValueError)
    assert message.startswith("batchnorm_forward: cache.std")


def test_a_malformed_return_says_what_is_expected():
    def two_items(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
        return _forward()(x, gamma, beta, running, train, momentum, eps)[:2]
    assert "(out, cache, running)" in fails("batchnorm_forward", two_items, error=WrongTypeError)

    def plain_cache(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
        out, cache, new = _forward()(x, gamma, beta, running, train, momentum, eps)
        return out, tuple(cache), new
    assert "BatchNormCache" in fails("batchnorm_forward", plain_cache, error=WrongTypeError)


def test_the_traceback_stays_out_of_the_checker():
    with pytest.raises(CheckFailure) as info:
        bc.check_batchnorm_backward(_backward(swap=True), quiet=True)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    inside = [e for e in info.traceback if os.sep + os.path.join("stablegrad", "checking") in str(e.path)]
    assert len(inside) <= 2, [str(e) for e in inside]


def test_visible_cases_cover_what_the_notebook_warns_about():
    forward = bc.batchnorm_forward_cases()
    assert any(c.args[0].shape[0] == 2 and c.args[4] for c in forward)                 # a batch of two
    assert any(c.args[0].shape[0] == 1 and not c.args[4] for c in forward)             # one example, inference
    assert any(c.args[0].shape[1] == 1 for c in forward)                               # one feature
    assert any(c.args[0].dtype == np.float32 and c.args[4] for c in forward)
    assert any(c.args[0].dtype == np.float32 and not c.args[4] for c in forward)
    assert any(c.kwargs.get("momentum") not in (None, 0.5) for c in forward)          # swapped weights differ
    assert any("eps" in c.kwargs for c in forward)
    assert any(np.min(c.args[0].var(axis=0)) < 1e-4 and c.args[4] for c in forward)   # var ~ eps
    for cases in (bc.batchnorm_backward_cases(), bc.batchnorm_backward_cases(1)):
        caches = [c.args[1] for c in cases]
        assert any(k.x.shape[0] == 2 and k.train for k in caches)
        assert any(k.x.shape[0] == 1 and not k.train for k in caches)
        assert any(k.x.shape[1] == 1 for k in caches)
        assert any(k.x.dtype == np.float32 for k in caches)
        assert any(k.eps != 1e-5 and not k.train for k in caches)
        assert any(np.min(k.var) < 1e-4 and k.train for k in caches)
    ln = [c.args[1].xhat.shape for c in bc.layernorm_backward_cases()]
    assert (1 in [s[0] for s in ln]) and (2 in [s[1] for s in ln])
    assert any(c.args[0].dtype == np.float32 for c in bc.layernorm_backward_cases())


def test_cases_and_reference_outputs_encode_as_plain_data():
    for decl in bc.DECLARATIONS:
        for case in decl.visible():
            args, kwargs = decode(encode((case.args, case.kwargs)))
            assert type(args[-1]) is type(case.args[-1])
            decode(encode(decl.reference(*case.args, **case.kwargs)))
