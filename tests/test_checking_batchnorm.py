"""The ex04 checkers: a correct answer passes, every named mistake fails with a message that names it,
the invariants name the missing branch of a wrong dx, and delegation is caught."""

import numpy as np
import pytest

from stablegrad import normalization as nz
from stablegrad.checking import CheckFailure, DelegationError, InputModifiedError, WrongValueError
from stablegrad.checking import batchnorm as bc
from stablegrad.normalization import BatchNormCache, RunningStats


def my_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if train:
        mean = x.mean(axis=0)
        var = x.var(axis=0)
        running = RunningStats(momentum * running.mean + (1 - momentum) * mean,
                               momentum * running.var + (1 - momentum) * var)
    else:
        mean, var = running.mean, running.var
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def my_backward(dout, cache):   # written independently of the reference: through the Jacobian's projection
    g = dout * cache.gamma / cache.std
    if not cache.train:
        return g, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)
    dx = g - g.mean(axis=0) - cache.xhat * (g * cache.xhat).mean(axis=0)
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


def my_layernorm_backward(dout, cache):
    h = dout * cache.gamma
    dx = (h - h.mean(axis=1, keepdims=True) - cache.xhat * (h * cache.xhat).mean(axis=1, keepdims=True)) / cache.std
    return dx, (dout * cache.xhat).sum(axis=0), dout.sum(axis=0)


CHECKS = [
    (bc.check_batchnorm_forward, my_forward, bc.BATCHNORM_FORWARD_MISTAKES, nz.batchnorm_forward),
    (bc.check_batchnorm_backward, my_backward, bc.BATCHNORM_BACKWARD_MISTAKES, nz.batchnorm_backward),
    (bc.check_batchnorm_backward_compact, my_backward, bc.BATCHNORM_COMPACT_MISTAKES, nz.batchnorm_backward_compact),
    (bc.check_layernorm_backward, my_layernorm_backward, bc.LAYERNORM_BACKWARD_MISTAKES, nz.layernorm_backward),
]


@pytest.mark.parametrize("check, correct, mistakes, reference", CHECKS, ids=lambda v: getattr(v, "__name__", ""))
def test_correct_answers_pass_and_every_mistake_is_named(check, correct, mistakes, reference, capsys):
    check(correct)
    assert "checks passed" in capsys.readouterr().out
    for mistake in mistakes:
        with pytest.raises(CheckFailure) as info:
            check(mistake.fn, quiet=True)
        message = str(info.value)
        assert mistake.description in message or isinstance(info.value, InputModifiedError), (
            mistake.description, message)
    with pytest.raises(DelegationError):
        check(lambda *args, **kwargs: reference(*args, **kwargs), quiet=True)


@pytest.mark.parametrize("mistake, branch", [
    (bc._bnb_no_dmean, "the mean branch"), (bc._bnb_no_dvar, "the variance branch"),
    (bc._bnc_no_mean_term, "the mean branch"), (bc._bnc_no_xhat_term, "the variance branch"),
])
def test_invariants_name_the_missing_branch(mistake, branch):
    check = bc.check_batchnorm_backward if mistake.__name__.startswith("_bnb") else bc.check_batchnorm_backward_compact
    with pytest.raises(WrongValueError) as info:
        check(mistake, quiet=True)
    message = str(info.value)
    assert "Diagnosis:" in message and branch in message
    other = "the variance branch" if branch == "the mean branch" else "the mean branch"
    assert other not in message                      # only the branch that is missing


def test_gamma_forgotten_keeps_both_invariants():
    with pytest.raises(WrongValueError) as info:
        bc.check_batchnorm_backward_compact(bc._bnc_no_gamma, quiet=True)
    assert "both invariants of a correct dx hold" in str(info.value)


def test_invariants_of_the_reference_are_met():
    for case in bc.batchnorm_backward_cases(3):
        dout, cache = case.args
        if not cache.train:
            continue
        dx = nz.batchnorm_backward_compact(dout, cache)[0]
        gaps = bc.dx_invariants(dx, dout, cache.xhat, cache.gamma, cache.std, cache.var, cache.eps, 0)
        assert max(gaps) < (1e-12 if dx.dtype == np.float64 else 1e-5)


def test_caller_running_arrays_must_not_change():
    with pytest.raises(InputModifiedError, match="running"):
        bc.check_batchnorm_forward(bc._bnf_running_in_place, quiet=True)
