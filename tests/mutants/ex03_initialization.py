"""Wrong submissions for ex03_initialization; each must lose exactly the points of its cell.

The common mistakes come from the declarations in ``stablegrad.checking.initialization``
(each mistake's source is the edit the checks compile to name a learner's mistake), so the
diagnosis and the grading tests cannot drift apart. Every forward_variance mistake also
shows that forward_variance_through_depth, which calls it, keeps its points (its check puts
the reference in its place). They include every mistake the issue asks to catch:
fan_out instead of fan_in for He, the uniform bounds sqrt(3/(n_in+n_out)) and
sqrt(6/n_in), the variance used as the standard deviation, He without the factor 2,
Xavier normal with 1/n_in, and the global ``np.random`` state instead of the ``rng``
argument. The extras below are
delegation by every route, mistakes only the hidden tests catch, and
submissions that tamper with the notebook or the checker.
"""

from grading import Mutant, delete_test_cell, from_mistakes, rewrite_test_cell

from stablegrad.checking import initialization as checks

XN, XU, HN, HU = "xavier_normal", "xavier_uniform", "he_normal", "he_uniform"
FV, TD, AV, BV = ("forward_variance", "forward_variance_through_depth", "activation_variances",
                  "backward_stable_variance")


WRONG_HE_UNIFORM = '''
def he_uniform(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / fan_out)
    return rng.uniform(-a, a, size=(fan_in, fan_out))
'''

MUTANTS = [
    # ------------------------------------------------------------------ xavier_normal (2 points)
    *from_mistakes(XN, checks.XAVIER_NORMAL),
    Mutant(XN, "delegates: calls stablegrad.init.xavier_normal", '''
from stablegrad import init

def xavier_normal(fan_in, fan_out, rng):
    return init.xavier_normal(fan_in, fan_out, rng)
'''),
    Mutant(XN, "delegates: stablegrad.init.normal with the right std", '''
import importlib

def xavier_normal(fan_in, fan_out, rng):
    return importlib.import_module("stablegrad.init").normal(fan_in, fan_out, rng, std=np.sqrt(2 / (fan_in + fan_out)))
'''),
    Mutant(XN, "uses 1/fan_in for layers with 1000 inputs or more", '''
def xavier_normal(fan_in, fan_out, rng):
    var = 1.0 / fan_in if fan_in >= 1000 else 2.0 / (fan_in + fan_out)
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(var)
'''),
    # ------------------------------------------------------------------ xavier_uniform (2 points)
    *from_mistakes(XU, checks.XAVIER_UNIFORM),
    Mutant(XU, "delegates: the reference imported under the exercise's name", '''
from stablegrad.init import xavier_uniform
'''),
    Mutant(XU, "delegates: stablegrad.init.uniform with the right bound", '''
import sys

def xavier_uniform(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return sys.modules["stablegrad.init"].uniform(fan_in, fan_out, rng, low=-a, high=a)
'''),
    Mutant(XU, "returns the same weights on successive calls with one rng (memoized)", '''
_last = {}

def xavier_uniform(fan_in, fan_out, rng):
    key = (fan_in, fan_out)
    if key in _last and _last[key][0] is rng:   # "already drew this layer from this generator"
        return _last[key][1].copy()
    a = np.sqrt(6.0 / (fan_in + fan_out))
    W = rng.uniform(-a, a, size=(fan_in, fan_out))
    _last[key] = (rng, W)
    return W
'''),
    # ------------------------------------------------------------------ he_normal (2 points)
    *from_mistakes(HN, checks.HE_NORMAL),
    Mutant(HN, "delegates: through get_initializer", '''
from stablegrad import init as _init

def he_normal(fan_in, fan_out, rng):
    return _init.get_initializer("kaiming_normal")(fan_in, fan_out, rng)
'''),
    Mutant(HN, "truncated normal, rescaled to the right variance (too few draws beyond 2 std)", '''
def he_normal(fan_in, fan_out, rng):
    std = np.sqrt(2.0 / fan_in) / 0.8796256610342398   # the std of N(0, 1) truncated at +-2
    w = rng.normal(0.0, std, size=(fan_in, fan_out))
    outside = np.abs(w) > 2 * std
    while outside.any():
        w[outside] = rng.normal(0.0, std, size=outside.sum())
        outside = np.abs(w) > 2 * std
    return w
'''),
    Mutant(HN, "delegates only for a single weight (hidden inputs)", '''
from stablegrad import init as _init

def he_normal(fan_in, fan_out, rng):
    if fan_in == 1 and fan_out == 1:
        return _init.he_normal(fan_in, fan_out, rng)
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
''', caught_by="hidden"),
    # ------------------------------------------------------------------ he_uniform (2 points)
    *from_mistakes(HU, checks.HE_UNIFORM),
    Mutant(HU, "delegates after switching the profiler off", '''
import sys

def he_uniform(fan_in, fan_out, rng):
    sys.setprofile(None)
    from stablegrad.init import he_uniform as reference
    return reference(fan_in, fan_out, rng)
'''),
    Mutant(HU, "wrong answer, and the locked test cell rewritten to `pass`", WRONG_HE_UNIFORM,
           edit=rewrite_test_cell("test_he_uniform")),
    # ------------------------------------------------------------------ forward_variance (2 points)
    *from_mistakes(FV, checks.FORWARD_VARIANCE),
    Mutant(FV, "delegates: calls stablegrad.init.forward_variance", '''
from stablegrad import init

def forward_variance(n_in, var_w, var_x, activation):
    return init.forward_variance(n_in, var_w, var_x, activation)
'''),
    Mutant(FV, "delegates: one layer of forward_variance_through_depth", '''
from stablegrad import init

def forward_variance(n_in, var_w, var_x, activation):
    return float(init.forward_variance_through_depth(n_in, var_w, var_x, activation, 1)[0])
'''),
    # ------------------------------------------------------------------ forward_variance_through_depth (2 points)
    *from_mistakes(TD, checks.FORWARD_VARIANCE_THROUGH_DEPTH),
    Mutant(TD, "delegates: calls stablegrad.init.forward_variance_through_depth", '''
import importlib

def forward_variance_through_depth(n, var_w, var_x, activation, depth):
    return importlib.import_module("stablegrad.init").forward_variance_through_depth(n, var_w, var_x, activation, depth)
'''),
    Mutant(TD, "delegates: predicted_variances with linear=True", '''
from stablegrad import init

def forward_variance_through_depth(n, var_w, var_x, activation, depth):
    return init.predicted_variances(n, var_w, var_x * {"relu": 0.5}.get(activation, 1.0) / 1.0, activation,
                                    depth, linear=True).forward
'''),
    Mutant(TD, "computes in float32", '''
def forward_variance_through_depth(n, var_w, var_x, activation, depth):
    factor = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1.0 + 0.01 ** 2) / 2.0}[activation]
    gain = np.float32(n * var_w * factor)
    return (np.float32(var_x) * gain ** np.arange(1, depth + 1, dtype=np.float32)).astype(np.float64)
'''),
    # ------------------------------------------------------------------ activation_variances (3 points)
    *from_mistakes(AV, checks.ACTIVATION_VARIANCES),
    Mutant(AV, "delegates: calls stablegrad.init.activation_variances", '''
from stablegrad.init import activation_variances as _reference

def activation_variances(x, initializer, depth, activation, rng):
    return _reference(x, initializer, depth, activation, rng)
'''),
    Mutant(AV, "delegates: measure_variances(...).forward", '''
from stablegrad import init

def activation_variances(x, initializer, depth, activation, rng):
    return init.measure_variances(x, initializer, depth, activation, rng, dout=np.ones_like(x)).forward
'''),
    Mutant(AV, "handles tanh, relu and identity only (no sigmoid, leaky relu)", '''
def activation_variances(x, initializer, depth, activation, rng):
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0), "identity": lambda z: z}[activation]
    n, a, out = x.shape[1], x, []
    for _ in range(depth):
        z = a @ initializer(n, n, rng)
        out.append(np.var(z))
        a = f(z)
    return np.array(out)
'''),
    Mutant(AV, "wrong answer, and the test cell deleted (nbgrader adds it back)", '''
def activation_variances(x, initializer, depth, activation, rng):
    return np.ones(depth)
''', edit=delete_test_cell("test_activation_variances")),
    # ------------------------------------------------------------------ backward_stable_variance (1 point)
    *from_mistakes(BV, checks.BACKWARD_STABLE_VARIANCE),
    Mutant(BV, "delegates: calls stablegrad.init.backward_stable_variance", '''
from stablegrad import init

def backward_stable_variance(n_in, n_out, activation="identity"):
    return init.backward_stable_variance(n_in, n_out, activation)
'''),
    Mutant(BV, "no leaky relu", '''
def backward_stable_variance(n_in, n_out, activation="identity"):
    return {"identity": 1.0, "tanh": 1.0, "relu": 2.0}[activation] / n_out
'''),
    Mutant(BV, "wrong answer, and the checker replaced by a no-op", '''
def backward_stable_variance(n_in, n_out, activation="identity"):
    return 1.0 / n_in

check.check_backward_stable_variance = lambda *args, **kwargs: None
''', caught_by="hidden"),
]
