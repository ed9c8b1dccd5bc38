"""Wrong submissions for ex04_batchnorm; each must lose exactly the points of its cell.

The common mistakes come from ``stablegrad.checking.batchnorm`` (the same lists the
visible tests use to name a learner's mistake), so the diagnosis and the grading
tests cannot drift apart. They include every mistake the issue lists: the N - 1
variance, eps outside the square root, running statistics updated in inference
mode, the caller's running arrays mutated in place (forward); a missing dmean
term, a missing dvar term, dbeta summed over the features (staged backward);
reductions over the wrong axis and gamma forgotten in dx (compact backward and
layer norm). Below: delegation to the reference by several routes, and a
delegation that only the hidden inputs reach.
"""

from grading import Mutant, from_mistakes

from stablegrad.checking import batchnorm as checks

FW, ST, CP, LN = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_compact", "layernorm_backward"

STAGED = '''
    x, xhat, mean, var, std, gamma, eps, train = cache
    n = x.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * gamma
    if not train:
        return dxhat / std, dgamma, dbeta
    xmu = x - mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / std ** 3
    dmean = -dxhat.sum(axis=0) / std
    return dxhat / std + dvar * 2.0 * xmu / n + dmean / n, dgamma, dbeta
'''

MUTANTS = [
    # ------------------------------------------------------------------ batchnorm_forward (3 points)
    *from_mistakes(FW, checks.BATCHNORM_FORWARD_MISTAKES),
    Mutant(FW, "delegates: calls normalization.batchnorm_forward", '''
def batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    return normalization.batchnorm_forward(x, gamma, beta, running, train=train, momentum=momentum, eps=eps)
'''),
    Mutant(FW, "delegates: through importlib.import_module", '''
import importlib

def batchnorm_forward(x, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    module = importlib.import_module("stablegrad.normalization")
    return module.batchnorm_forward(x, gamma, beta, running, train=train, momentum=momentum, eps=eps)
'''),
    # ------------------------------------------------------------------ batchnorm_backward (3 points)
    *from_mistakes(ST, checks.BATCHNORM_BACKWARD_MISTAKES),
    Mutant(ST, "delegates: the reference imported under the exercise's name", '''
from stablegrad.normalization import batchnorm_backward
'''),
    Mutant(ST, "delegates: to the compact reference", '''
def batchnorm_backward(dout, cache):
    return normalization.batchnorm_backward_compact(dout, cache)
'''),
    Mutant(ST, "delegates only for a batch of two (hidden inputs)", '''
def batchnorm_backward(dout, cache):
    if dout.shape[0] == 2:
        return normalization.batchnorm_backward(dout, cache)
''' + STAGED, caught_by="hidden"),
    # ------------------------------------------------------------------ batchnorm_backward_compact (2 points)
    *from_mistakes(CP, checks.BATCHNORM_COMPACT_MISTAKES),
    Mutant(CP, "delegates: through sys.modules", '''
import sys

def batchnorm_backward_compact(dout, cache):
    return sys.modules["stablegrad.normalization"].batchnorm_backward_compact(dout, cache)
'''),
    Mutant(CP, "delegates: to the staged reference", '''
def batchnorm_backward_compact(dout, cache):
    return normalization.batchnorm_backward(dout, cache)
'''),
    # ------------------------------------------------------------------ layernorm_backward (2 points)
    *from_mistakes(LN, checks.LAYERNORM_BACKWARD_MISTAKES),
    Mutant(LN, "delegates: calls normalization.layernorm_backward", '''
def layernorm_backward(dout, cache):
    return normalization.layernorm_backward(dout, cache)
'''),
    Mutant(LN, "delegates: through a default argument", '''
def layernorm_backward(dout, cache, _reference=normalization.layernorm_backward):
    return _reference(dout, cache)
'''),
]
