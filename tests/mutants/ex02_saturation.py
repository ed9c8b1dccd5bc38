"""Wrong submissions for ex02_saturation; each must lose exactly the points of its cell.

The common mistakes come from the declarations in ``stablegrad.checking.saturation``
(each a small edit of one learner-style source, the very text the diagnosis compiles), so
the diagnosis and the grading tests cannot drift apart. They include every mistake the
issues name: sigmoid_grad returning s, tanh_grad = 1 - tanh, relu_grad returning x, the
naive sigmoid that overflows for large negative z, a sigmoid with z clipped to +-30, the
saturated fraction computed on z instead of the activation or with np.isclose(a, 0) for
relu, the closed form with s^2 where s belongs, and the leaky slope on the positive side.
The extras below are the ones only the hidden tests catch, delegation to the reference by
every route, and submissions that tamper with the notebook or the checker (which the
hidden tests' ``fresh()`` puts back).
"""

from grading import Mutant, delete_test_cell, from_mistakes, rewrite_test_cell

from stablegrad.checking import saturation as checks

SG, SGG, TG, RG = "sigmoid", "sigmoid_grad", "tanh_grad", "relu_grad"
LR, LRG, SF, PF = "leaky_relu", "leaky_relu_grad", "saturated_fraction", "predicted_saturated_fraction"


WRONG_PREDICTED = '''
def predicted_saturated_fraction(scale, kind, threshold=0.97):
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1 - threshold))
    return math.erfc(c / scale ** 2 / math.sqrt(2))
'''

WRONG_FRACTION = '''
def saturated_fraction(a, kind, threshold=0.97):
    if kind == "relu":
        return float(np.mean(a == 0))
    return float(np.mean(np.abs(a) > threshold))
'''

MUTANTS = [
    # ------------------------------------------------------------------ sigmoid (2 points)
    *from_mistakes(SG, checks.SIGMOID),
    Mutant(SG, "silences the overflow with np.seterr and keeps the naive formula", '''
np.seterr(over="ignore")

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))
'''),
    Mutant(SG, "delegates: the reference imported under the exercise's name", '''
from stablegrad.activations import sigmoid
'''),
    Mutant(SG, "delegates: through the activation registry (get_activation)", '''
def sigmoid(z):
    return activations.get_activation("sigmoid").fn(z)
'''),
    Mutant(SG, "delegates only for a single entry (hidden inputs)", '''
def sigmoid(z):
    if z.size == 1:
        return activations.sigmoid(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
''', caught_by="hidden"),
    # ------------------------------------------------------------------ sigmoid_grad (1 point)
    *from_mistakes(SGG, checks.SIGMOID_GRAD),
    Mutant(SGG, "delegates: calls activations.sigmoid_grad directly", '''
def sigmoid_grad(z):
    return activations.sigmoid_grad(z)
'''),
    Mutant(SGG, "delegates: through layers.activation_backward", '''
from stablegrad import layers

def sigmoid_grad(z):
    _, cache = layers.activation_forward(z, "sigmoid")
    return layers.activation_backward(np.ones_like(z), cache)
'''),
    Mutant(SGG, "delegates only for 3-D z (hidden inputs)", '''
def sigmoid_grad(z):
    if z.ndim == 3:
        return activations.sigmoid_grad(z)
    s = activations.sigmoid(z)
    return s * (1.0 - s)
''', caught_by="hidden"),
    # ------------------------------------------------------------------ tanh_grad (1 point)
    *from_mistakes(TG, checks.TANH_GRAD),
    Mutant(TG, "delegates: through the activation registry", '''
def tanh_grad(z):
    return activations.ACTIVATIONS["tanh"].grad(z)
'''),
    Mutant(TG, "delegates: through importlib.import_module", '''
import importlib

def tanh_grad(z):
    return importlib.import_module("stablegrad.activations").tanh_grad(z)
'''),
    # ------------------------------------------------------------------ relu_grad (1 point)
    *from_mistakes(RG, checks.RELU_GRAD),
    Mutant(RG, "delegates: through sys.modules", '''
import sys

def relu_grad(z):
    return sys.modules["stablegrad.activations"].relu_grad(z)
'''),
    Mutant(RG, "delegates only for 3-D z (hidden inputs)", '''
def relu_grad(z):
    if z.ndim == 3:
        return activations.relu_grad(z)
    return (z > 0).astype(z.dtype)
''', caught_by="hidden"),
    # ------------------------------------------------------------------ leaky_relu (1 point)
    *from_mistakes(LR, checks.LEAKY_RELU),
    Mutant(LR, "multiplies by np.float64(slope), which turns float32 z into float64", '''
def leaky_relu(z, slope=0.01):
    return np.where(z > 0, z, np.float64(slope) * z)
'''),
    Mutant(LR, "delegates: calls activations.leaky_relu", '''
def leaky_relu(z, slope=0.01):
    return activations.leaky_relu(z, slope)
'''),
    Mutant(LR, "delegates only for slope 0 (hidden inputs)", '''
def leaky_relu(z, slope=0.01):
    if slope == 0:
        return activations.leaky_relu(z, slope)
    return np.where(z > 0, z, slope * z)
''', caught_by="hidden"),
    # ------------------------------------------------------------------ leaky_relu_grad (1 point)
    *from_mistakes(LRG, checks.LEAKY_RELU_GRAD),
    Mutant(LRG, "delegates after switching the profiler off", '''
import sys

def leaky_relu_grad(z, slope=0.01):
    sys.setprofile(None)
    from stablegrad.activations import leaky_relu_grad as reference
    return reference(z, slope)
'''),
    # ------------------------------------------------------------------ saturated_fraction (1 point)
    *from_mistakes(SF, checks.SATURATED_FRACTION),
    Mutant(SF, "delegates: through diagnostics.activation_stats", '''
from stablegrad import diagnostics

def saturated_fraction(a, kind, threshold=0.97):
    return diagnostics.activation_stats(a, kind, threshold)["saturated"]
'''),
    Mutant(SF, "wrong answer, and the checker replaced by a no-op", WRONG_FRACTION + '''
checks.check_saturated_fraction = lambda *args, **kwargs: None
''', caught_by="hidden"),
    Mutant(SF, "wrong answer, and the engine's comparison patched to always agree", WRONG_FRACTION + '''
import stablegrad.checking.engine
stablegrad.checking.engine.compare = lambda *args, **kwargs: None
''', caught_by="hidden"),
    # ------------------------------------------------------------------ predicted_saturated_fraction (2 points)
    *from_mistakes(PF, checks.PREDICTED_SATURATED_FRACTION),
    Mutant(PF, "delegates: calls activations.predicted_saturated_fraction", '''
def predicted_saturated_fraction(scale, kind, threshold=0.97):
    return float(activations.predicted_saturated_fraction(scale, kind, threshold))
'''),
    Mutant(PF, "delegates only for thresholds above 0.98 (hidden inputs)", '''
def predicted_saturated_fraction(scale, kind, threshold=0.97):
    if threshold > 0.98:
        return activations.predicted_saturated_fraction(scale, kind, threshold)
    if kind == "relu":
        return 0.5
    c = math.atanh(threshold) if kind == "tanh" else math.log(threshold / (1 - threshold))
    return math.erfc(c / scale / math.sqrt(2))
''', caught_by="hidden"),
    Mutant(PF, "wrong answer (s^2), and the test cell deleted (nbgrader adds it back)", WRONG_PREDICTED,
           edit=delete_test_cell("test_predicted_saturated_fraction")),
    Mutant(PF, "wrong answer (s^2), and the locked test cell rewritten to `pass`", WRONG_PREDICTED,
           edit=rewrite_test_cell("test_predicted_saturated_fraction")),
]
