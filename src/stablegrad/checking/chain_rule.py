"""Checks for exercise 1, the chain rule (``stack_backward``, ``numerical_gradient``, ``chain_gradient_norms``),
declared on :mod:`stablegrad.checking.engine`: per graded function a case builder with the knobs hidden tests
turn (batch size, widths, activation, weight scale, dtype, a zero upstream gradient...), visible cases, a
learner-style source, its common mistakes as edits of it, and a one-line ``check_<function>``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stablegrad import diagnostics, gradcheck, layers
from stablegrad.checking.comparison import Out, Tolerance
from stablegrad.checking.engine import Case, Graded, Mistake
from stablegrad.checking.guard import functions_named
from stablegrad.checking.records import TEST_FUNCTIONS, TestFunction

__all__ = [
    "stack_case", "stack_backward_cases", "check_stack_backward", "STACK_BACKWARD", "TestFunction", "TEST_FUNCTIONS",
    "numerical_gradient_case", "numerical_gradient_cases", "check_numerical_gradient", "NUMERICAL_GRADIENT",
    "chain_case", "chain_norm_cases", "check_chain_gradient_norms", "CHAIN_GRADIENT_NORMS", "DECLARATIONS",
]

NAMESPACE = {"np": np, "layers": layers}   # what the notebook's import cell provides


def _weights(rng, widths, scale, dtype):
    """``[(W, b), ...]`` with ``W ~ scale * N(0, 1 / D_in)`` and small biases."""
    params = []
    for d_in, d_out in zip(widths[:-1], widths[1:]):
        W = ((scale / np.sqrt(d_in)) * rng.standard_normal((d_in, d_out))).astype(dtype)
        params.append((W, (0.1 * rng.standard_normal(d_out)).astype(dtype)))
    return params


def _describe(activation, widths, n, scale, dtype, extra=""):
    layers_ = len(widths) - 1
    return (f"{activation}, {layers_} layer{'s' if layers_ > 1 else ''} of widths {tuple(widths)}, N={n}, "
            f"weight scale {scale:g}" + (", float32" if dtype == np.float32 else "") + extra)


# --------------------------------------------------------------------------- stack_backward

def stack_case(rng: np.random.Generator, activation: str, widths: Sequence[int], n: int, *,
               scale: float = 1.0, dtype=np.float64, zero_dout: bool = False) -> Case:
    """A ``(dout, caches)`` input for ``stack_backward``, built with ``layers.stack_forward``.

    ``widths`` is ``(D_0, D_1, ..., D_L)``; weights are ``scale * N(0, 1 / D_in)``
    (``scale < 1`` makes the gradient vanish through depth, ``> 1`` explode or saturate);
    ``zero_dout`` uses an all-zero upstream gradient.
    """
    dtype = np.dtype(dtype)
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    out, caches = layers.stack_forward(x, _weights(rng, widths, scale, dtype), activation)
    dout = np.zeros_like(out) if zero_dout else rng.standard_normal(out.shape).astype(dtype)
    label = _describe(activation, widths, n, scale, dtype, ", dout = 0" if zero_dout else "")
    return Case(label, (dout, caches), {}, ("dout", "caches"))


def stack_backward_cases(seed: int = 0) -> list[Case]:
    """The visible cases: five activations, one to five layers, square and not, float32."""
    rng = np.random.default_rng(seed)
    return [
        stack_case(rng, "tanh", (5, 4, 3), n=4),
        stack_case(rng, "sigmoid", (3, 6, 6, 2), n=7),
        stack_case(rng, "relu", (4, 8, 8, 8, 3), n=5, scale=1.4),
        stack_case(rng, "identity", (2, 3), n=3),
        stack_case(rng, "tanh", (6, 6, 6, 6, 6, 6), n=3, scale=0.5),
        stack_case(rng, "leaky_relu", (3, 5, 4), n=6, scale=3.0),
        stack_case(rng, "tanh", (4, 5, 2), n=3, dtype=np.float32),   # the text: float32 in, float32 out
    ]


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

STACK_BACKWARD = Graded(
    name="stack_backward", reference=layers.stack_backward, source=STACK_BACKWARD_SOURCE,
    visible=stack_backward_cases, namespace=NAMESPACE, check_dtype=True,
    outputs=(Out("dx", like="dout @ W1^T"), [(Out("dW{n}", like="W{n}"), Out("db{n}", like="b{n}"))]),
    forbid=functions_named(layers, "stack_backward", "dense_backward", "_dense_backward"),
    mistakes=[
        Mistake("the activation derivative is left out (dL/da used as dL/dz)",
                edit=("dz = d * cache.act.activation.grad(cache.act.z)", "dz = d")),
        Mistake("the activation derivative is evaluated at the layer's output a, not at its input z",
                edit=("grad(cache.act.z)", "grad(cache.act.a)")),
        Mistake("dW has its two factors in the wrong order", edit=("x.T @ dz", "dz.T @ x")),
        Mistake("db keeps one row per example (no sum over the batch)", edit=("dz.sum(axis=0)", "dz")),
        Mistake("db is averaged over the batch", edit=("dz.sum(axis=0)", "dz.mean(axis=0)")),
        Mistake("dL/da, not dL/dz, is passed down to the layer below", edit=("d = dz @ W.T", "d = d @ W.T")),
        Mistake("W, not its transpose, carries the gradient to the layer below", edit=("dz @ W.T", "dz @ W")),
        Mistake("dW uses the layer's output a instead of its input x", edit=("x.T @ dz", "cache.act.a.T @ dz")),
        Mistake("the gradients come back in the order of the loop (last layer first)",
                edit=("    grads.reverse()\n", "")),
        Mistake("the upstream gradient is multiplied in place, which changes the caller's array",
                edit=("dz = d * cache.act.activation.grad(cache.act.z)",
                      "d *= cache.act.activation.grad(cache.act.z)\n        dz = d")),
        Mistake("dW and db are accumulated in float64 arrays (float32 in, float64 out)",
                edit=(("dW = x.T @ dz", "dW = np.zeros(W.shape)\n        dW += x.T @ dz"),
                      ("db = dz.sum(axis=0)", "db = np.zeros(W.shape[1])\n        db += dz.sum(axis=0)"))),
    ])


check_stack_backward = STACK_BACKWARD.checker(
    "Check a learner's ``stack_backward(dout, caches) -> (dx, [(dW, db), ...])`` (float32 in, float32 out).")


# --------------------------------------------------------------------------- numerical_gradient

def numerical_gradient_case(rng: np.random.Generator, function: str, shape: tuple, *,
                            eps: float | None = None, scale: float = 1.0, integer: bool = False) -> Case:
    """An ``(f, x)`` input (and ``eps`` if given) for ``numerical_gradient``.

    ``function`` is a key of :data:`TEST_FUNCTIONS`; ``x`` is ``scale`` times
    standard normal, or small integers if ``integer``.
    """
    x = rng.integers(-3, 4, size=shape) if integer else scale * rng.standard_normal(shape)
    f = TestFunction(function, TEST_FUNCTIONS[function][2](rng, int(np.prod(shape))))
    kwargs = {} if eps is None else {"eps": eps}
    label = (f"f(x) = {f.formula}, x of shape {tuple(shape)}"
             + (" holding integers" if integer else (f" and scale {scale:g}" if scale != 1 else ""))
             + (f", eps={eps:g}" if eps is not None else ", default eps"))
    return Case(label, (f, x), kwargs, ("f", "x"))


def numerical_gradient_cases(seed: int = 0) -> list[Case]:
    """The visible cases: 1-D and 2-D x, coupled functions, default and explicit eps, an integer x."""
    rng = np.random.default_rng(seed)
    return [
        numerical_gradient_case(rng, "sin", (5,)),
        numerical_gradient_case(rng, "tanh_quadratic", (3, 4), eps=1e-4),
        numerical_gradient_case(rng, "log_sin", (2, 3), eps=1e-2),
        numerical_gradient_case(rng, "tanh_quadratic", (4, 1)),
        numerical_gradient_case(rng, "cubic", (3,), eps=1e-3),
        numerical_gradient_case(rng, "cubic", (2, 2), integer=True),   # the text: x may hold integers
    ]


NUMERICAL_GRADIENT_SOURCE = """
def numerical_gradient(f, x, eps=1e-6):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        f_plus = f(x)
        x[idx] = old - eps
        f_minus = f(x)
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad
"""

NUMERICAL_GRADIENT = Graded(
    name="numerical_gradient", reference=gradcheck.numerical_gradient, source=NUMERICAL_GRADIENT_SOURCE,
    visible=numerical_gradient_cases, namespace=NAMESPACE, outputs=Out("the gradient", like="x"),
    # both evaluate f at the same points, so only rounding separates them
    tolerance=Tolerance(rtol=1e-7),
    forbid=functions_named(gradcheck, "numerical_gradient", "numerical_gradient_array", "_centered_differences"),
    mistakes=[
        Mistake("one-sided (forward) differences", edit=(("x[idx] = old - eps\n", "x[idx] = old\n"),
                                                         ("/ (2 * eps)", "/ eps"))),
        Mistake("the difference is divided by eps, not by the distance 2 eps between the points",
                edit=("/ (2 * eps)", "/ eps")),
        Mistake("each perturbation is left in place when moving to the next entry",
                edit=("        x[idx] = old\n", "")),
        Mistake("the caller's x is perturbed (and left perturbed)",
                edit=(("    x = np.array(x, dtype=float)\n", ""), ("        x[idx] = old\n", ""),
                      ("grad = np.zeros_like(x)", "grad = np.zeros_like(x, dtype=float)"))),
        Mistake("the eps argument is ignored (a fixed step)",
                edit=("    x = np.array(x, dtype=float)\n", "    eps = 1e-5\n    x = np.array(x, dtype=float)\n")),
        Mistake("a whole row is perturbed at once (range(len(x)) on a 2-D x)",
                edit=("for idx in np.ndindex(x.shape):", "for idx in range(len(x)):")),
        Mistake("the gradient comes back flat instead of shaped like x", edit=("return grad", "return grad.ravel()")),
        Mistake("an integer x keeps its integer dtype, so x + eps is truncated back",
                edit=("x = np.array(x, dtype=float)", "x = np.array(x)")),
    ])


check_numerical_gradient = NUMERICAL_GRADIENT.checker(
    "Check a learner's ``numerical_gradient(f, x, eps=1e-6)`` (centered differences, x left unchanged).")


# --------------------------------------------------------------------------- chain_gradient_norms

def chain_case(rng: np.random.Generator, activation: str, widths: Sequence[int], n: int, *,
               scale: float = 1.0, dout: str | None = None, dtype=np.float64) -> Case:
    """An ``(x, params, activation)`` input (and ``dout``) for ``chain_gradient_norms``.

    ``dout`` is None (use the default, ones), ``"normal"`` or ``"zeros"``.
    Weights are ``scale * N(0, 1 / D_in)`` as in :func:`stack_case`.
    """
    dtype = np.dtype(dtype)
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    params = _weights(rng, widths, scale, dtype)
    kwargs = {}
    if dout == "normal":
        kwargs["dout"] = rng.standard_normal((n, widths[-1])).astype(dtype)
    elif dout == "zeros":
        kwargs["dout"] = np.zeros((n, widths[-1]), dtype=dtype)
    label = _describe(activation, widths, n, scale, dtype, f", dout {dout}" if dout else ", default dout")
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


CHAIN_GRADIENT_NORMS_SOURCE = """
def chain_gradient_norms(x, params, activation, dout=None):
    out, caches = layers.stack_forward(x, params, activation)
    if dout is None:
        dout = np.ones_like(out)
    _, grads = layers.stack_backward(dout, caches)
    return np.array([np.linalg.norm(dW) for dW, db in grads])
"""

CHAIN_GRADIENT_NORMS = Graded(
    name="chain_gradient_norms", reference=diagnostics.chain_gradient_norms,
    source=CHAIN_GRADIENT_NORMS_SOURCE, visible=chain_norm_cases, namespace=NAMESPACE,
    outputs=Out("norms", like="params (one norm per layer)"),
    # the norms of a vanishing chain span many decades, and each must be right on its own
    tolerance=Tolerance(floor=0.0),
    forbid=functions_named(diagnostics, "chain_gradient_norms", "layer_gradient_norms"),
    mistakes=[
        Mistake("the norms are taken of the activations, not of the weight gradients",
                edit=("np.linalg.norm(dW) for dW, db in grads", "np.linalg.norm(c.act.a) for c in caches")),
        Mistake("the layers are listed last first", edit=("for dW, db in grads", "for dW, db in reversed(grads)")),
        Mistake("the norms are those of db, not of dW", edit=("np.linalg.norm(dW)", "np.linalg.norm(db)")),
        Mistake("the norms are squared (no square root)", edit=("np.linalg.norm(dW)", "np.sum(dW ** 2)")),
        Mistake("the mean |dW| is used instead of the Frobenius norm", edit=("np.linalg.norm(dW)",
                                                                            "np.mean(np.abs(dW))")),
        Mistake("the dout argument is ignored (always ones)",
                edit=("    if dout is None:\n        dout = np.ones_like(out)\n", "    dout = np.ones_like(out)\n")),
        Mistake("each layer's norm includes db",
                edit=("np.linalg.norm(dW)", "np.sqrt(np.sum(dW ** 2) + np.sum(db ** 2))")),
        Mistake("the spectral norm (largest singular value) is used instead of the Frobenius norm",
                edit=("np.linalg.norm(dW)", "np.linalg.norm(dW, 2)")),
    ])


check_chain_gradient_norms = CHAIN_GRADIENT_NORMS.checker(
    "Check a learner's ``chain_gradient_norms(x, params, activation, dout=None)``, entry by entry. Calling "
    "``layers.stack_forward`` and ``layers.stack_backward`` is expected; calling the diagnostics functions that "
    "compute the norms is not.")


DECLARATIONS = [STACK_BACKWARD, NUMERICAL_GRADIENT, CHAIN_GRADIENT_NORMS]
