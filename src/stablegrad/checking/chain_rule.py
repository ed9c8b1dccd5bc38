"""Checks for exercise 1, the chain rule: ``stack_backward``, ``numerical_gradient``,
``chain_gradient_norms``.

Each graded function has

* a case builder with the knobs the hidden tests turn (batch size, widths,
  activation, weight scale, dtype, a zero upstream gradient...),
* the visible cases (``<function>_cases()``, seeded),
* a list of common mistakes: complete, plausible wrong implementations written
  the way a learner would write them (NumPy and the cache fields only), so that
  a failing answer can be named ("matches forgetting the activation
  derivative") and the grading tests can submit each one as a notebook
  (``tests/mutants/ex01_chain_rule.py``),
* ``check_<function>(func, cases=None)``, which compares ``func`` with the
  reference through :func:`stablegrad.checking.check_against_reference`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from stablegrad import diagnostics, gradcheck, layers
from stablegrad.checking import Mistake as LegacyMistake, check_against_reference
from stablegrad.checking.compare import Out
from stablegrad.checking.engine import Case, Graded, Mistake
from stablegrad.checking.guard import functions_named

__all__ = [
    "stack_case", "stack_backward_cases", "check_stack_backward", "STACK_BACKWARD_MISTAKES",
    "STACK_BACKWARD_SPEC",
    "numerical_gradient_case", "numerical_gradient_cases", "check_numerical_gradient",
    "NUMERICAL_GRADIENT_MISTAKES", "TEST_FUNCTIONS",
    "chain_case", "chain_norm_cases", "check_chain_gradient_norms", "CHAIN_NORM_MISTAKES",
]


# --------------------------------------------------------------------------- stack_backward

#: Output names of ``stack_backward``: ``(dx, [(dW1, db1), (dW2, db2), ...])``.
STACK_BACKWARD_SPEC = (Out("dx", like="x"), [(Out("dW{n}", like="W{n}"), Out("db{n}", like="b{n}"))])


def stack_case(rng: np.random.Generator, activation: str, widths: Sequence[int], n: int, *,
               scale: float = 1.0, dtype=np.float64, zero_dout: bool = False) -> Case:
    """A ``(dout, caches)`` input for ``stack_backward``, built with ``layers.stack_forward``.

    Parameters
    ----------
    rng : numpy.random.Generator
    activation : str
    widths : sequence of int
        ``(D_0, D_1, ..., D_L)``: the input width, then each layer's width.
    n : int
        Batch size N.
    scale : float
        Weights are drawn as ``scale * N(0, 1 / D_in)``: ``scale < 1`` makes the
        gradient vanish through depth, ``scale > 1`` explode (or saturate).
    dtype : float64 or float32
    zero_dout : bool
        Use an all-zero upstream gradient.
    """
    dtype = np.dtype(dtype)
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    params = [((scale / np.sqrt(d_in)) * rng.standard_normal((d_in, d_out))).astype(dtype)
              for d_in, d_out in zip(widths[:-1], widths[1:])]
    params = [(W, (0.1 * rng.standard_normal(W.shape[1])).astype(dtype)) for W in params]
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.zeros_like(out) if zero_dout else rng.standard_normal(out.shape).astype(dtype)
    label = (f"{activation}, {len(params)} layer{'s' if len(params) > 1 else ''} of widths "
             f"{tuple(widths)}, N={n}, weight scale {scale:g}"
             + (", float32" if dtype == np.float32 else "") + (", dout = 0" if zero_dout else ""))
    return Case(label, (dout, caches), {}, ("dout", "caches"))


def stack_backward_cases(seed: int = 0) -> list[Case]:
    """The visible cases: five activations, one to five layers, square and not."""
    rng = np.random.default_rng(seed)
    return [
        stack_case(rng, "tanh", (5, 4, 3), n=4),
        stack_case(rng, "sigmoid", (3, 6, 6, 2), n=7),
        stack_case(rng, "relu", (4, 8, 8, 8, 3), n=5, scale=1.4),
        stack_case(rng, "identity", (2, 3), n=3),
        stack_case(rng, "tanh", (6, 6, 6, 6, 6, 6), n=3, scale=0.5),
        stack_case(rng, "leaky_relu", (3, 5, 4), n=6, scale=3.0),
    ]


#: A correct answer, written as a learner would; every common mistake below is a small edit of it.
STACK_BACKWARD_SOURCE = """
def stack_backward(dout, caches):
    grads = []
    d = dout
    for cache in reversed(caches):
        x, W = cache.dense
        dz = d * cache.act.activation.grad(cache.act.z)
        dW = x.T @ dz
        db = dz.sum(axis=0)
        d = dz @ W.T
        grads.append((dW, db))
    grads.reverse()
    return d, grads
"""

STACK_BACKWARD_MISTAKES = [
    Mistake("the activation derivative is left out (dL/da used as dL/dz)",
            edit=("dz = d * cache.act.activation.grad(cache.act.z)", "dz = d")),
    Mistake("the activation derivative is evaluated at the layer's output a, not at its input z",
            edit=("grad(cache.act.z)", "grad(cache.act.a)")),
    Mistake("dW has its factors in the wrong order (the transposed product)", edit=("x.T @ dz", "dz.T @ x")),
    Mistake("db keeps one row per example (no sum over the batch)", edit=("dz.sum(axis=0)", "dz")),
    Mistake("db is averaged over the batch", edit=("dz.sum(axis=0)", "dz.mean(axis=0)")),
    Mistake("dL/da, not dL/dz, is passed down to the layer below", edit=("d = dz @ W.T", "d = d @ W.T")),
    Mistake("W, not its transpose, carries the gradient to the layer below", edit=("dz @ W.T", "dz @ W")),
    Mistake("dW uses the layer's output a instead of its input x", edit=("x.T @ dz", "cache.act.a.T @ dz")),
    Mistake("the gradients come back in the order of the loop (last layer first)",
            edit=("    grads.reverse()\n", "")),
    Mistake("the upstream gradient is multiplied in place, which changes the caller's array",
            edit=(("dz = d * cache.act.activation.grad(cache.act.z)",
                   "d *= cache.act.activation.grad(cache.act.z)\n        dz = d"),)),
]

STACK_BACKWARD = Graded(
    name="stack_backward", reference=layers.stack_backward, source=STACK_BACKWARD_SOURCE,
    visible=lambda: stack_backward_cases(), outputs=STACK_BACKWARD_SPEC, check_dtype=True,
    mistakes=STACK_BACKWARD_MISTAKES, namespace={"np": np, "layers": layers},
    forbid=functions_named(layers, "stack_backward", "dense_backward", "_dense_backward"))


def check_stack_backward(func: Callable, cases: Sequence[Case] | None = None, *,
                         quiet: bool = False) -> None:
    """Check a learner's ``stack_backward(dout, caches) -> (dx, [(dW, db), ...])`` (float32 in, float32 out)."""
    STACK_BACKWARD.check(func, cases, quiet=quiet)


# --------------------------------------------------------------------------- numerical_gradient

def _f_sin(rng, size):
    return lambda x: float(np.sum(np.sin(3.0 * x) * x ** 2))


def _f_tanh_quadratic(rng, size):
    A = rng.standard_normal((size, size)) / np.sqrt(size)
    return lambda x: float(np.ravel(x) @ np.tanh(A @ np.ravel(x)))


def _f_log_sin(rng, size):
    return lambda x: float(np.log1p(np.sum(x ** 2)) * np.sum(np.sin(x)))


def _f_cubic(rng, size):
    c = rng.standard_normal(size)
    return lambda x: float(np.sum(c * np.ravel(x) ** 3) / 3.0 + np.sum(x) ** 2)


#: Scalar test functions for numerical gradients: name -> (formula, factory(rng, size)).
#: All but ``sin`` couple the entries of x, which a per-entry perturbation must respect.
TEST_FUNCTIONS = {
    "sin": ("sum(sin(3x) x^2)", _f_sin),
    "tanh_quadratic": ("v . tanh(A v), v = x flattened", _f_tanh_quadratic),
    "log_sin": ("log(1 + |x|^2) sum(sin x)", _f_log_sin),
    "cubic": ("sum(c x^3)/3 + (sum x)^2", _f_cubic),
}


def numerical_gradient_case(rng: np.random.Generator, function: str, shape: tuple, *,
                            eps: float | None = None, scale: float = 1.0,
                            integer: bool = False) -> Case:
    """An ``(f, x)`` input (and ``eps`` if given) for ``numerical_gradient``.

    ``function`` is a key of :data:`TEST_FUNCTIONS`; ``x`` is ``scale`` times
    standard normal, or small integers if ``integer``.
    """
    formula, factory = TEST_FUNCTIONS[function]
    if integer:
        x = rng.integers(-3, 4, size=shape)
    else:
        x = scale * rng.standard_normal(shape)
    f = factory(rng, int(np.prod(shape)))
    kwargs = {} if eps is None else {"eps": eps}
    label = (f"f(x) = {formula}, x of shape {tuple(shape)}"
             + (" holding integers" if integer else (f" and scale {scale:g}" if scale != 1 else ""))
             + (f", eps={eps:g}" if eps is not None else ", default eps"))
    return Case(label, (f, x), kwargs, ("f", "x"))


def numerical_gradient_cases(seed: int = 0) -> list[Case]:
    """The visible cases: 1-D and 2-D x, coupled functions, default and explicit eps."""
    rng = np.random.default_rng(seed)
    return [
        numerical_gradient_case(rng, "sin", (5,)),
        numerical_gradient_case(rng, "tanh_quadratic", (3, 4), eps=1e-4),
        numerical_gradient_case(rng, "log_sin", (2, 3), eps=1e-2),
        numerical_gradient_case(rng, "tanh_quadratic", (4, 1)),
        numerical_gradient_case(rng, "cubic", (3,), eps=1e-3),
    ]


def _ng_forward_difference(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    fx = f(x)
    for idx in np.ndindex(x.shape):
        xp = x.copy()
        xp[idx] += eps
        grad[idx] = (f(xp) - fx) / eps                    # one-sided: error O(eps)
    return grad


def _ng_divide_by_eps(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        grad[idx] = (f(xp) - f(xm)) / eps                 # the step is 2 eps
    return grad


def _ng_not_undone(f, x, eps=1e-6):
    xc = np.array(x, dtype=float)                         # one copy for all entries
    grad = np.zeros_like(xc)
    for idx in np.ndindex(xc.shape):
        xc[idx] += eps
        f_plus = f(xc)
        xc[idx] -= 2 * eps
        f_minus = f(xc)                                   # xc[idx] is left at x - eps
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def _ng_x_in_place(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=float)
    for idx in np.ndindex(x.shape):
        x[idx] += eps
        f_plus = f(x)
        x[idx] -= 2 * eps
        f_minus = f(x)                                    # never restored
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def _ng_fixed_step(f, x, eps=1e-6):
    h = 1e-5                                              # ignores eps
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        grad[idx] = (f(xp) - f(xm)) / (2 * h)
    return grad


def _ng_whole_rows(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for i in range(len(x)):                               # x[i] is a whole row when x is 2-D
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (f(xp) - f(xm)) / (2 * eps)
    return grad


def _ng_flat(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    flat = x.ravel()
    grad = np.zeros(flat.size)
    for i in range(flat.size):
        xp, xm = flat.copy(), flat.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (f(xp.reshape(x.shape)) - f(xm.reshape(x.shape))) / (2 * eps)
    return grad                                           # shape (x.size,)


NUMERICAL_GRADIENT_MISTAKES = [
    Mistake("one-sided (forward) differences (f(x + eps) - f(x)) / eps", _ng_forward_difference),
    Mistake("dividing by eps instead of 2 eps", _ng_divide_by_eps),
    Mistake("not undoing each perturbation before moving to the next entry", _ng_not_undone),
    Mistake("perturbing x itself without restoring it", _ng_x_in_place),
    Mistake("ignoring the eps argument (a fixed step)", _ng_fixed_step),
    Mistake("perturbing a whole row at once (range(len(x)) on a 2-D x)", _ng_whole_rows),
    Mistake("returning a flat array instead of one shaped like x", _ng_flat),
]


def check_numerical_gradient(func: Callable, cases: Sequence[Case] | None = None, *,
                             quiet: bool = False) -> None:
    """Check a learner's ``numerical_gradient(f, x, eps=1e-6)`` (centered differences).

    Compares with :func:`stablegrad.gradcheck.numerical_gradient` at relative
    tolerance 1e-7 (both evaluate f at the same points, so only rounding
    separates them), and checks that ``x`` is left unchanged.
    """
    check_against_reference(
        func, gradcheck.numerical_gradient, numerical_gradient_cases() if cases is None else cases,
        name="numerical_gradient", spec=Out("the gradient", like="x"),
        mistakes=NUMERICAL_GRADIENT_MISTAKES,
        forbid=functions_named(gradcheck, "numerical_gradient", "numerical_gradient_array",
                         "_centered_differences"),
        rtol=1e-7, quiet=quiet)


# --------------------------------------------------------------------------- chain_gradient_norms

def chain_case(rng: np.random.Generator, activation: str, widths: Sequence[int], n: int, *,
               scale: float = 1.0, dout: str | None = None, dtype=np.float64) -> Case:
    """An ``(x, params, activation)`` input (and ``dout``) for ``chain_gradient_norms``.

    ``dout`` is None (use the default, ones), ``"normal"`` or ``"zeros"``.
    Weights are ``scale * N(0, 1 / D_in)`` as in :func:`stack_case`.
    """
    dtype = np.dtype(dtype)
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    params = []
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        W = ((scale / np.sqrt(d_in)) * rng.standard_normal((d_in, d_out))).astype(dtype)
        params.append((W, (0.1 * rng.standard_normal(d_out)).astype(dtype)))
    kwargs = {}
    if dout == "normal":
        kwargs["dout"] = rng.standard_normal((n, widths[-1])).astype(dtype)
    elif dout == "zeros":
        kwargs["dout"] = np.zeros((n, widths[-1]), dtype=dtype)
    label = (f"{activation}, {len(params)} layers of widths {tuple(widths)}, N={n}, "
             f"weight scale {scale:g}" + (", float32" if dtype == np.float32 else "")
             + (f", dout {dout}" if dout else ", default dout"))
    return Case(label, (x, params, activation), kwargs, ("x", "params", "activation"))


def chain_norm_cases(seed: int = 0) -> list[Case]:
    """The visible cases: vanishing, stable and exploding chains, with and without dout."""
    rng = np.random.default_rng(seed)
    return [
        chain_case(rng, "tanh", (4, 6, 6, 6, 6, 2), n=8),
        chain_case(rng, "sigmoid", (3, 5, 5, 5, 1), n=10),
        chain_case(rng, "relu", (5, 7, 7, 7, 3), n=6, scale=1.5, dout="normal"),
        chain_case(rng, "tanh", (4,) * 10, n=5, scale=0.5),
    ]


def _cn_activation_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    return np.array([np.linalg.norm(c.act.a) for c in caches])   # activations, not gradients


def _cn_reversed(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.linalg.norm(dW) for dW, db in reversed(grads)])


def _cn_db_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.linalg.norm(db) for dW, db in grads])


def _cn_squared(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.sum(dW ** 2) for dW, db in grads])       # no square root


def _cn_mean_abs(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.mean(np.abs(dW)) for dW, db in grads])


def _cn_ignore_dout(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    _, grads = layers.stack_backward(np.ones_like(out), caches)  # always ones
    return np.array([np.linalg.norm(dW) for dW, db in grads])


def _cn_with_db(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.sqrt(np.sum(dW ** 2) + np.sum(db ** 2)) for dW, db in grads])


def _cn_spectral(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    dout = np.ones_like(out) if dout is None else dout
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.linalg.norm(dW, 2) for dW, db in grads])  # largest singular value


CHAIN_NORM_MISTAKES = [
    Mistake("taking norms of the activations instead of the weight gradients", _cn_activation_norms),
    Mistake("listing the layers last first", _cn_reversed),
    Mistake("taking norms of db instead of dW", _cn_db_norms),
    Mistake("returning squared norms (no square root)", _cn_squared),
    Mistake("using the mean |dW| instead of the Frobenius norm", _cn_mean_abs),
    Mistake("ignoring the dout argument (always ones)", _cn_ignore_dout),
    Mistake("including db in each layer's norm", _cn_with_db),
    Mistake("using the spectral norm (largest singular value) instead of the Frobenius norm",
            _cn_spectral),
]


def check_chain_gradient_norms(func: Callable, cases: Sequence[Case] | None = None, *,
                               quiet: bool = False) -> None:
    """Check a learner's ``chain_gradient_norms(x, params, activation, dout=None)``.

    Compares with :func:`stablegrad.diagnostics.chain_gradient_norms` entry by
    entry (the norms of a vanishing chain span many orders of magnitude, and
    each must be right). Calling ``layers.stack_forward`` and
    ``layers.stack_backward`` is expected; calling the diagnostics functions
    that compute the norms is not.
    """
    check_against_reference(
        func, diagnostics.chain_gradient_norms, chain_norm_cases() if cases is None else cases,
        name="chain_gradient_norms", spec=Out("norms", like="params (one norm per layer)"),
        mistakes=CHAIN_NORM_MISTAKES,
        forbid=functions_named(diagnostics, "chain_gradient_norms", "layer_gradient_norms"),
        elementwise=True, quiet=quiet)
