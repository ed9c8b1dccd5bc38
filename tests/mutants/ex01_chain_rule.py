"""Wrong submissions for ex01_chain_rule; each must lose exactly the points of its cell.

The common mistakes come from ``stablegrad.checking.chain_rule`` (the same lists the
visible tests use to name a learner's mistake), so the diagnosis and the
grading tests cannot drift apart. The extras below are the ones only the
hidden tests catch, delegation to the reference by every route, and
submissions that tamper with the notebook or the checker (which the hidden
tests' ``fresh()`` puts back).
"""

from grading import Mutant, delete_test_cell, from_mistakes, rewrite_test_cell

from stablegrad.checking import chain_rule as checks

SB, NG, CN = "stack_backward", "numerical_gradient", "chain_gradient_norms"


WRONG_NORMS = '''
def chain_gradient_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    return np.array([np.linalg.norm(c.act.a) for c in caches])
'''

MUTANTS = [
    # ------------------------------------------------------------------ stack_backward (4 points)
    *from_mistakes(SB, checks.STACK_BACKWARD),
    Mutant(SB, "delegates: calls layers.stack_backward directly", '''
def stack_backward(dout, caches):
    return layers.stack_backward(dout, caches)
'''),
    Mutant(SB, "delegates: the reference imported under the exercise's name", '''
from stablegrad.layers import stack_backward
'''),
    Mutant(SB, "delegates: uses layers.dense_backward for every layer", '''
def stack_backward(dout, caches):
    grads, d = [], dout
    for cache in reversed(caches):
        dz = layers.activation_backward(d, cache.act)
        d, dW, db = layers.dense_backward(dz, cache.dense)
        grads.append((dW, db))
    return d, grads[::-1]
'''),
    Mutant(SB, "delegates only for a batch of one (hidden inputs)", '''
def stack_backward(dout, caches):
    if dout.shape[0] == 1:
        return layers.stack_backward(dout, caches)
    grads, d = [], dout
    for cache in reversed(caches):
        x, W = cache.dense
        dz = d * cache.act.activation.grad(cache.act.z)
        grads.append((x.T @ dz, dz.sum(axis=0)))
        d = dz @ W.T
    return d, grads[::-1]
''', caught_by="hidden"),
    # ------------------------------------------------------------------ numerical_gradient (3 points)
    *from_mistakes(NG, checks.NUMERICAL_GRADIENT),
    Mutant(NG, "delegates: through importlib.import_module", '''
import importlib

def numerical_gradient(f, x, eps=1e-6):
    return importlib.import_module("stablegrad.gradcheck").numerical_gradient(f, x, eps)
'''),
    Mutant(NG, "delegates: through numerical_gradient_array with dout = 1", '''
from stablegrad import gradcheck as _gc

def numerical_gradient(f, x, eps=1e-6):
    return _gc.numerical_gradient_array(f, x, 1.0, eps)
'''),
    Mutant(NG, "delegates after switching the profiler off", '''
import sys

def numerical_gradient(f, x, eps=1e-6):
    sys.setprofile(None)
    from stablegrad.gradcheck import numerical_gradient as reference
    return reference(f, x, eps)
'''),
    # ------------------------------------------------------------------ chain_gradient_norms (3 points)
    *from_mistakes(CN, checks.CHAIN_GRADIENT_NORMS),
    Mutant(CN, "delegates: through sys.modules", '''
import sys

def chain_gradient_norms(x, params, activation, dout=None):
    return sys.modules["stablegrad.diagnostics"].chain_gradient_norms(x, params, activation, dout)
'''),
    Mutant(CN, "delegates: layers.stack_backward then diagnostics.layer_gradient_norms", '''
from stablegrad import diagnostics

def chain_gradient_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    _, grads = layers.stack_backward(np.ones_like(out) if dout is None else dout, caches)
    return diagnostics.layer_gradient_norms(grads)
'''),
    Mutant(CN, "wrong answer, and the test cell deleted (nbgrader adds it back)", WRONG_NORMS,
           edit=delete_test_cell("test_chain_gradient_norms")),
    Mutant(CN, "wrong answer, and the locked test cell rewritten to `pass`", WRONG_NORMS,
           edit=rewrite_test_cell("test_chain_gradient_norms")),
    Mutant(CN, "wrong answer, and the checker replaced by a no-op", WRONG_NORMS + '''
checks.check_chain_gradient_norms = lambda *args, **kwargs: None
''', caught_by="hidden"),
    Mutant(CN, "wrong answer, and the engine's comparison patched to always agree", WRONG_NORMS + '''
import stablegrad.checking.engine
stablegrad.checking.engine.compare = lambda *args, **kwargs: None
''', caught_by="hidden"),
    Mutant(SB, "wrong answer, and the comparison's body swapped through __code__", '''
def stack_backward(dout, caches):
    return dout, []

import stablegrad.checking.comparison
stablegrad.checking.comparison.compare.__code__ = (lambda *args, **kwargs: None).__code__
''', caught_by="hidden"),
]
