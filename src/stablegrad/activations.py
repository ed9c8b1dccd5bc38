"""Activation functions, their derivatives, and how many units they saturate.

Every activation sits next to its derivative. Both are elementwise, accept an
array of any shape and return a new array of the same shape and float dtype
(float32 in, float32 out).

The derivative is what backpropagation multiplies by at every layer, so its
largest value decides how fast a gradient can shrink with depth:

=============  ===========================  ==============
activation     derivative                   largest value
=============  ===========================  ==============
sigmoid        s(z) (1 - s(z))              1/4 at z = 0
tanh           1 - tanh(z)^2                1 at z = 0
relu           1 if z > 0 else 0            1
leaky_relu     1 if z > 0 else slope        1
identity       1                            1
=============  ===========================  ==============
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_choice, check_positive

__all__ = [
    "sigmoid", "sigmoid_grad", "tanh", "tanh_grad", "relu", "relu_grad",
    "leaky_relu", "leaky_relu_grad", "identity", "identity_grad",
    "LEAKY_SLOPE", "Activation", "ACTIVATIONS", "get_activation",
    "saturated_fraction", "predicted_saturated_fraction",
]


LEAKY_SLOPE = 0.01  # leaky_relu's default slope, and the one the registry's "leaky_relu" uses


def _check_slope(slope, func: str) -> float:
    return check_positive(slope, "slope", func, allow_zero=True)


# --------------------------------------------------------------------------- sigmoid

def sigmoid(z):
    """Logistic sigmoid, computed without overflow.

    .. math:: \\sigma(z) = \\frac{1}{1 + e^{-z}}

    Written naively, ``exp(-z)`` overflows for ``z < -710`` in float64 (``-89``
    in float32). We only ever exponentiate ``-|z| <= 0``:
    with ``e = exp(-|z|)``, ``sigma(z) = 1 / (1 + e)`` for ``z >= 0`` and
    ``e / (1 + e)`` for ``z < 0``.

    Parameters
    ----------
    z : array_like of any shape
        Pre-activations.

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in [0, 1].
    """
    return _sigmoid(as_float_array(z, "z", "sigmoid"))


def _sigmoid(z):
    e = np.exp(-np.abs(z))  # in (0, 1]: cannot overflow, may harmlessly underflow to 0
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_grad(z):
    """Derivative of the sigmoid, :math:`\\sigma'(z) = \\sigma(z)(1 - \\sigma(z))`.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in [0, 1/4].
    """
    s = sigmoid(z)
    return s * (1.0 - s)  # never above 1/4: L sigmoid layers shrink a gradient by up to 4^-L


# --------------------------------------------------------------------------- tanh

def tanh(z):
    """Hyperbolic tangent, :math:`\\tanh(z) = (e^z - e^{-z}) / (e^z + e^{-z})`.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in [-1, 1].
    """
    z = as_float_array(z, "z", "tanh")
    return np.tanh(z)


def tanh_grad(z):
    """Derivative of tanh, :math:`\\tanh'(z) = 1 - \\tanh(z)^2`.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in [0, 1].
    """
    t = tanh(z)
    return 1.0 - t * t  # 1 at z = 0, but below 0.06 once |tanh z| > 0.97: a saturated unit passes almost nothing


# --------------------------------------------------------------------------- relu

def relu(z):
    """Rectified linear unit, :math:`\\mathrm{relu}(z) = \\max(z, 0)`.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``.
    """
    z = as_float_array(z, "z", "relu")
    return np.maximum(z, 0.0)


def relu_grad(z):
    """Derivative of relu: 1 where ``z > 0``, else 0.

    relu is not differentiable at ``z = 0``; we use the subgradient 0 there
    (as most libraries do), so a unit that is exactly 0 passes no gradient.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in {0, 1}.
    """
    z = as_float_array(z, "z", "relu_grad")
    return (z > 0).astype(z.dtype)  # 1 or 0, never in between: no slow decay, but a dead unit stays dead


# --------------------------------------------------------------------------- leaky relu

def leaky_relu(z, slope=LEAKY_SLOPE):
    """Leaky relu, :math:`z` for ``z > 0`` and :math:`\\text{slope} \\cdot z` otherwise.

    Parameters
    ----------
    z : array_like of any shape
    slope : float, default 0.01
        Slope for ``z <= 0``; must be finite and >= 0 (0 gives relu).

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``.
    """
    z = as_float_array(z, "z", "leaky_relu")
    slope = _check_slope(slope, "leaky_relu")
    return np.where(z > 0, z, z * z.dtype.type(slope))


def leaky_relu_grad(z, slope=LEAKY_SLOPE):
    """Derivative of leaky relu: 1 where ``z > 0``, else ``slope`` (also at exactly 0).

    Parameters
    ----------
    z : array_like of any shape
    slope : float, default 0.01

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``, values in {slope, 1}.
    """
    z = as_float_array(z, "z", "leaky_relu_grad")
    slope = _check_slope(slope, "leaky_relu_grad")
    one, small = z.dtype.type(1.0), z.dtype.type(slope)
    return np.where(z > 0, one, small)  # the small slope keeps a trickle of gradient: units cannot die


# --------------------------------------------------------------------------- identity

def identity(z):
    """Identity activation, :math:`f(z) = z` (returns a copy, never ``z`` itself).

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of the same shape and float dtype as ``z``.
    """
    z = as_float_array(z, "z", "identity")
    return z.copy()


def identity_grad(z):
    """Derivative of the identity: ones shaped like ``z``.

    Parameters
    ----------
    z : array_like of any shape

    Returns
    -------
    ndarray of ones, same shape and float dtype as ``z``.
    """
    z = as_float_array(z, "z", "identity_grad")
    return np.ones_like(z)  # a linear layer passes the gradient unchanged; only the weights scale it


# --------------------------------------------------------------------------- registry

class Activation(NamedTuple):
    """An activation by name: its function and derivative, and the properties the package derives from them.

    Attributes
    ----------
    name : str
    fn, grad : callable
        The public functions of ``z`` (they check their input).
    forward : callable, optional
        ``fn`` without the input check, for loops that validated their input once.
    grad_from_output : callable, optional
        ``f'(z)`` written with ``a = f(z)``, the value a backward pass has in its cache: the sigmoid's
        ``a (1 - a)`` needs no second ``exp``. It returns what ``da`` is multiplied by (a mask for relu).
    second_moment : float, optional
        :math:`c_f = E[f(z)^2] / \\operatorname{Var}(z) = E[f'(z)^2]` for a zero-mean Gaussian ``z``: the
        factor by which the activation passes on a variance, forward and backward (exact for the
        piecewise-linear activations, tanh's linear regime). None for the sigmoid, whose mean is 1/2.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    forward: Callable[[np.ndarray], np.ndarray] | None = None
    grad_from_output: Callable[[np.ndarray], np.ndarray] | None = None
    second_moment: float | None = None


def _leaky_forward(z):
    return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))


def _leaky_grad_from_output(a):
    return np.where(a > 0, a.dtype.type(1.0), a.dtype.type(LEAKY_SLOPE))  # a > 0 exactly where z > 0


# One row per activation: everything the package knows about it (init.py reads c_f from here).
ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, sigmoid_grad, _sigmoid, lambda a: a * (1.0 - a), None),
    "tanh": Activation("tanh", tanh, tanh_grad, np.tanh, lambda a: 1.0 - a * a, 1.0),
    "relu": Activation("relu", relu, relu_grad, lambda z: np.maximum(z, 0.0), lambda a: a > 0, 0.5),
    "leaky_relu": Activation("leaky_relu", leaky_relu, leaky_relu_grad, _leaky_forward,
                             _leaky_grad_from_output, (1.0 + LEAKY_SLOPE ** 2) / 2.0),
    "identity": Activation("identity", identity, identity_grad, np.copy, lambda a: 1.0, 1.0),
}


def get_activation(name) -> Activation:
    """Look up an activation by name.

    Parameters
    ----------
    name : str or Activation
        One of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``,
        ``"identity"``. An :class:`Activation` is returned unchanged.

    Returns
    -------
    Activation

    Raises
    ------
    TypeError
        If ``name`` is neither a string nor an :class:`Activation`.
    ValueError
        If ``name`` is not a registered activation (the message lists them).
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"get_activation: name must be a string such as 'tanh'; got {type(name).__name__}")
    check_choice(name, "name", "get_activation", ACTIVATIONS)
    return ACTIVATIONS[name]


# --------------------------------------------------------------------------- saturation

_SATURATING_KINDS = ("tanh", "sigmoid", "relu", "leaky_relu")


def _check_threshold(threshold, kind: str, func: str) -> float:
    threshold = check_positive(threshold, "threshold", func)
    low = 0.5 if kind == "sigmoid" else 0.0
    if not low < threshold < 1.0:
        raise ValueError(f"{func}: threshold must lie strictly between {low:g} and 1 for kind={kind!r}; "
                         f"got {threshold!r}")
    return threshold


def saturated_fraction(a, kind, threshold=0.97) -> float:
    """Fraction of activations (outputs, not pre-activations) in the saturated zone.

    ============  ==========================================  ===================
    kind          counted as saturated                        derivative there
    ============  ==========================================  ===================
    tanh          ``|a| > threshold``                         ``< 1 - t^2``
    sigmoid       ``a > threshold`` or ``a < 1 - threshold``  ``< t (1 - t)``
    relu          ``a == 0`` (inactive unit)                  0
    leaky_relu    ``a <= 0`` (unit on the small slope)        ``slope``
    ============  ==========================================  ===================

    Parameters
    ----------
    a : array_like of any shape
        Activations, e.g. the output of :func:`tanh`.
    kind : {"tanh", "sigmoid", "relu", "leaky_relu"}
    threshold : float, default 0.97
        ``t`` above; in (0, 1) for tanh, in (1/2, 1) for sigmoid, ignored
        for relu and leaky_relu.

    Returns
    -------
    float
        Fraction in [0, 1].
    """
    func = "saturated_fraction"
    a = as_float_array(a, "a", func)
    check_choice(kind, "kind", func, _SATURATING_KINDS)
    if kind == "relu":
        return float(np.mean(a == 0))
    if kind == "leaky_relu":
        return float(np.mean(a <= 0))
    t = _check_threshold(threshold, kind, func)
    if kind == "tanh":
        return float(np.mean(np.abs(a) > t))
    return float(np.mean((a > t) | (a < 1.0 - t)))


def _gaussian_tail2(c: float) -> float:
    """P(|Z| > c) for Z ~ N(0, 1), i.e. 2 (1 - Phi(c)) = erfc(c / sqrt 2)."""
    return math.erfc(c / math.sqrt(2.0))  # erfc keeps its digits far in the tail, unlike 1 - erf


def predicted_saturated_fraction(scale, kind, threshold=0.97):
    """Expected saturated fraction when pre-activations are ``z ~ N(0, scale^2)``.

    tanh saturates (``|tanh z| > t``) exactly when ``|z| > artanh(t)``, so

    .. math:: P = P(|z| > \\operatorname{artanh} t)
              = 2\\left(1 - \\Phi\\left(\\frac{\\operatorname{artanh} t}{s}\\right)\\right)

    and likewise for the sigmoid with ``logit(t) = log(t / (1 - t))`` in place of
    ``artanh(t)``. A relu (or leaky relu) unit is inactive when ``z <= 0``, which
    happens with probability 1/2 whatever the scale.

    For ``t = 0.97``: tanh gives about 0.036 at ``s = 1`` and 0.295 at ``s = 2``.

    Parameters
    ----------
    scale : float or array_like of floats
        Standard deviation ``s > 0`` of the pre-activations.
    kind : {"tanh", "sigmoid", "relu", "leaky_relu"}
    threshold : float, default 0.97
        As in :func:`saturated_fraction`.

    Returns
    -------
    float, or ndarray of floats shaped like ``scale`` if ``scale`` is an array.
    """
    func = "predicted_saturated_fraction"
    check_choice(kind, "kind", func, _SATURATING_KINDS)
    if np.ndim(scale) > 0:
        scales = as_float_array(scale, "scale", func)
        if not np.all(np.isfinite(scales) & (scales > 0)):
            raise ValueError(f"{func}: scale must contain only finite values > 0; got {scales!r}")
        return np.array([predicted_saturated_fraction(float(s), kind, threshold) for s in scales.ravel()]
                        ).reshape(scales.shape)
    s = check_positive(scale, "scale", func)
    if kind in ("relu", "leaky_relu"):
        return 0.5
    t = _check_threshold(threshold, kind, func)
    cutoff = math.atanh(t) if kind == "tanh" else math.log(t / (1.0 - t))
    return _gaussian_tail2(cutoff / s)
