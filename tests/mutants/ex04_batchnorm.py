"""Wrong submissions for ex04_batchnorm; each must lose exactly the points of its cell.

The common mistakes come from the declarations in ``stablegrad.checking.batchnorm``
(each an edit of the learner-style source the diagnosis compiles), so the
diagnosis and the grading tests cannot drift apart. Below them: delegation to
the reference by several routes, a delegation that only the hidden inputs
reach, and a submission that patches the checker (which the hidden tests'
``fresh()`` puts back).
"""

from grading import Mutant, from_mistakes

from stablegrad.checking import batchnorm as checks

FW, ST, CP, LN = "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_compact", "layernorm_backward"

WRONG_LAYERNORM = '''
def layernorm_backward(dout, cache):
    xhat, std, gamma = cache
    return dout * gamma / std, (dout * xhat).sum(axis=0), dout.sum(axis=0)
'''

MUTANTS = [
    # ------------------------------------------------------------------ batchnorm_forward (3 points)
    *from_mistakes(FW, checks.BATCHNORM_FORWARD),
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
    *from_mistakes(ST, checks.BATCHNORM_BACKWARD),
    Mutant(ST, "delegates: the reference imported under the exercise's name", '''
from stablegrad.normalization import batchnorm_backward
'''),
    Mutant(ST, "delegates: to the compact reference", '''
def batchnorm_backward(dout, cache):
    return normalization.batchnorm_backward_compact(dout, cache)
'''),
    Mutant(ST, "delegates only for a float32 batch of two with one feature (hidden inputs)",
           checks.BATCHNORM_BACKWARD_SOURCE.replace("    x, xhat,", '''    if dout.shape == (2, 1) and dout.dtype == np.float32:
        return normalization.batchnorm_backward(dout, cache)
    x, xhat,'''), caught_by="hidden"),
    # ------------------------------------------------------------------ batchnorm_backward_compact (2 points)
    *from_mistakes(CP, checks.BATCHNORM_BACKWARD_COMPACT),
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
    *from_mistakes(LN, checks.LAYERNORM_BACKWARD),
    Mutant(LN, "delegates: calls normalization.layernorm_backward", '''
def layernorm_backward(dout, cache):
    return normalization.layernorm_backward(dout, cache)
'''),
    Mutant(LN, "delegates: through a default argument", '''
def layernorm_backward(dout, cache, _reference=normalization.layernorm_backward):
    return _reference(dout, cache)
'''),
    Mutant(LN, "wrong answer, and the checker replaced by a no-op", WRONG_LAYERNORM + '''
checks.check_layernorm_backward = lambda *args, **kwargs: None
''', caught_by="hidden"),
]
