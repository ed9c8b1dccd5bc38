"""Weight initializers and the variances they predict.

For a pre-activation :math:`z_j = \\sum_{i=1}^{n_{in}} w_{ij} x_i` with
independent, zero-mean weights and inputs,

.. math:: \\operatorname{Var}(z) = n_{in} \\operatorname{Var}(w) \\, E[x^2].

Keeping the forward signal steady needs :math:`n_{in} \\operatorname{Var}(w) = 1`;
keeping the backward gradient steady needs :math:`n_{out} \\operatorname{Var}(w) = 1`.
Xavier/Glorot compromises with :math:`\\operatorname{Var}(w) = 2 / (n_{in} + n_{out})`.
A relu zeroes half of a symmetric input, so :math:`E[\\mathrm{relu}(z)^2] = \\operatorname{Var}(z)/2`,
and He/Kaiming doubles the weights' variance to :math:`2 / n_{in}`.

Every initializer returns a new float64 array of shape ``(fan_in, fan_out)``
(so that ``x @ W`` maps width ``fan_in`` to ``fan_out``) and draws only from the
generator it is given. A uniform distribution on ``[-a, a]`` has variance
``a^2 / 3``, which is how the uniform bounds below follow from the variances.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_choice, check_int, check_positive, check_rng
from stablegrad.activations import ACTIVATIONS, get_activation

__all__ = [
    "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
    "glorot_normal", "glorot_uniform", "kaiming_normal", "kaiming_uniform",
    "uniform", "normal", "INITIALIZERS", "get_initializer", "init_variance",
    "forward_variance", "forward_variance_through_depth", "backward_stable_variance",
    "gaussian_moments", "LayerVariances", "predicted_variances", "activation_variances",
    "measure_variances",
]


def _check_fans(fan_in, fan_out, rng, func: str):
    return check_int(fan_in, "fan_in", func), check_int(fan_out, "fan_out", func), check_rng(rng, func)


def xavier_normal(fan_in, fan_out, rng, gain=1.0):
    """Xavier/Glorot normal: :math:`w \\sim N(0, \\text{gain}^2 \\cdot 2 / (n_{in} + n_{out}))`.

    Parameters
    ----------
    fan_in, fan_out : int
        Input width D and output width M of the layer.
    rng : numpy.random.Generator
    gain : float, default 1.0
        Multiplies the standard deviation (e.g. 5/3 is often used for tanh).

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    func = "xavier_normal"
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, func)
    gain = check_positive(gain, "gain", func)
    # 2 / (n_in + n_out): the harmonic mean of the forward (1/n_in) and backward (1/n_out) conditions
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return rng.standard_normal((fan_in, fan_out)) * std


def xavier_uniform(fan_in, fan_out, rng, gain=1.0):
    """Xavier/Glorot uniform: :math:`w \\sim U(-a, a)`, :math:`a = \\text{gain} \\sqrt{6 / (n_{in} + n_{out})}`.

    Variance :math:`a^2/3 = \\text{gain}^2 \\cdot 2 / (n_{in} + n_{out})`, as for :func:`xavier_normal`.

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    gain : float, default 1.0

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    func = "xavier_uniform"
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, func)
    gain = check_positive(gain, "gain", func)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


def he_normal(fan_in, fan_out, rng):
    """He/Kaiming normal: :math:`w \\sim N(0, 2 / n_{in})`, for relu layers.

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, "he_normal")
    return rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)  # the 2 undoes relu halving E[x^2]


def he_uniform(fan_in, fan_out, rng):
    """He/Kaiming uniform: :math:`w \\sim U(-a, a)`, :math:`a = \\sqrt{6 / n_{in}}` (variance :math:`2/n_{in}`).

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, "he_uniform")
    bound = math.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


glorot_normal = xavier_normal
glorot_uniform = xavier_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


def uniform(fan_in, fan_out, rng, low=-1.0, high=1.0):
    """Plain uniform weights, :math:`w \\sim U(\\text{low}, \\text{high})`, whatever the widths.

    With the default ``U(-1, 1)`` (variance 1/3) a layer of width ``n`` multiplies
    the signal's variance by about ``n/3``: the classic badly scaled start.

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    low, high : float
        Finite, with ``low < high``.

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    func = "uniform"
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, func)
    low, high = _check_bounds(low, high, func)
    return rng.uniform(low, high, size=(fan_in, fan_out))


def normal(fan_in, fan_out, rng, std=1.0):
    """Plain normal weights, :math:`w \\sim N(0, \\text{std}^2)`, whatever the widths.

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    std : float, default 1.0

    Returns
    -------
    ndarray of shape (fan_in, fan_out), float64
    """
    func = "normal"
    fan_in, fan_out, rng = _check_fans(fan_in, fan_out, rng, func)
    std = check_positive(std, "std", func)
    return rng.standard_normal((fan_in, fan_out)) * std


def _check_bounds(low, high, func: str):
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{func}: {name} must be a real number; got {type(value).__name__}")
        if not np.isfinite(value):
            raise ValueError(f"{func}: {name} must be finite; got {value!r}")
    if not low < high:
        raise ValueError(f"{func}: low must be < high; got low={low!r}, high={high!r}")
    return float(low), float(high)


# --------------------------------------------------------------------------- registry

INITIALIZERS: dict[str, Callable] = {
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "uniform": uniform,
    "normal": normal,
}

_ALIASES = {
    "glorot_normal": "xavier_normal", "glorot_uniform": "xavier_uniform",
    "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform",
}


def _canonical(name, func: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{func}: name must be a string such as 'he_normal'; got {type(name).__name__}")
    name = _ALIASES.get(name, name)
    check_choice(name, "name", func, INITIALIZERS)
    return name


def get_initializer(name_or_callable) -> Callable:
    """Look up an initializer by name, or pass a callable through.

    Parameters
    ----------
    name_or_callable : str or callable
        A key of :data:`INITIALIZERS` (``"xavier_normal"``, ``"xavier_uniform"``,
        ``"he_normal"``, ``"he_uniform"``, ``"uniform"``, ``"normal"``), an alias
        (``"glorot_*"``, ``"kaiming_*"``), or any callable ``(fan_in, fan_out, rng)``.

    Returns
    -------
    callable ``(fan_in, fan_out, rng) -> ndarray of shape (fan_in, fan_out)``

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    TypeError
        For anything that is neither a string nor callable.
    """
    if callable(name_or_callable):
        return name_or_callable
    if not isinstance(name_or_callable, str):
        raise TypeError(f"get_initializer: name_or_callable must be an initializer name or a callable "
                        f"(fan_in, fan_out, rng); got {type(name_or_callable).__name__}")
    return INITIALIZERS[_canonical(name_or_callable, "get_initializer")]


def init_variance(name, fan_in, fan_out) -> float:
    """Theoretical variance of the weights a named initializer draws (default arguments).

    ==================  ==========================
    name                Var(w)
    ==================  ==========================
    xavier_*            2 / (fan_in + fan_out)
    he_*                2 / fan_in
    uniform             1/3 (U(-1, 1))
    normal              1
    ==================  ==========================

    Parameters
    ----------
    name : str
        A key of :data:`INITIALIZERS` or an alias.
    fan_in, fan_out : int

    Returns
    -------
    float
    """
    func = "init_variance"
    name = _canonical(name, func)
    fan_in = check_int(fan_in, "fan_in", func)
    fan_out = check_int(fan_out, "fan_out", func)
    if name.startswith("xavier"):
        return 2.0 / (fan_in + fan_out)
    if name.startswith("he"):
        return 2.0 / fan_in
    return 1.0 / 3.0 if name == "uniform" else 1.0


# --------------------------------------------------------------------------- predicted variances

# c_f = E[f(z)^2] / Var(z) = E[f'(z)^2] for z ~ N(0, Var(z)), from the activations' table (tanh: its
# linear regime, accurate only while Var(z) is small); the sigmoid has none (its mean is 1/2).
_SECOND_MOMENT_FACTOR = {name: a.second_moment for name, a in ACTIVATIONS.items() if a.second_moment is not None}


def forward_variance(n_in, var_w, var_x, activation="identity") -> float:
    """Predicted variance of the next layer's pre-activation.

    With ``z`` of variance ``var_x`` fed through the activation ``f`` and then a
    layer of ``n_in`` inputs with independent zero-mean weights,

    .. math:: \\operatorname{Var}(z') = n_{in} \\operatorname{Var}(w) \\, E[f(z)^2]
              = n_{in} \\operatorname{Var}(w) \\, c_f \\operatorname{Var}(z)

    with :math:`c_f = 1` for identity and tanh (its linear regime, accurate while
    ``var_x`` is small), :math:`1/2` for relu and :math:`(1 + 0.01^2)/2` for leaky
    relu with slope 0.01. The sigmoid is not supported: its output has mean 1/2,
    so the zero-mean argument does not apply.

    Parameters
    ----------
    n_in : int
        Width feeding the layer.
    var_w : float
        Variance of the weights (> 0).
    var_x : float
        Variance of the pre-activation fed to the activation (>= 0).
    activation : {"identity", "tanh", "relu", "leaky_relu"}

    Returns
    -------
    float
    """
    func = "forward_variance"
    n_in = check_int(n_in, "n_in", func)
    var_w = check_positive(var_w, "var_w", func)
    var_x = check_positive(var_x, "var_x", func, allow_zero=True)
    check_choice(activation, "activation", func, _SECOND_MOMENT_FACTOR)
    return n_in * var_w * _SECOND_MOMENT_FACTOR[activation] * var_x


def forward_variance_through_depth(n, var_w, var_x, activation, depth) -> np.ndarray:
    """Predicted pre-activation variance after each of ``depth`` equal layers.

    Applying :func:`forward_variance` ``l`` times gives the geometric sequence

    .. math:: v_l = v_0 \\, (n \\operatorname{Var}(w) \\, c_f)^l, \\qquad l = 1, \\dots, \\text{depth},

    e.g. ``var_x * (n * var_w / 2) ** l`` for relu: it stays flat only when
    ``n var_w c_f = 1`` (He for relu, ``1/n`` for tanh) and otherwise vanishes or
    explodes exponentially.

    Parameters
    ----------
    n : int
        Width of every layer.
    var_w : float
        Variance of every weight.
    var_x : float
        Variance ``v_0`` of the input pre-activation.
    activation : {"identity", "tanh", "relu", "leaky_relu"}
    depth : int
        Number of layers (>= 1).

    Returns
    -------
    ndarray of shape (depth,)
        ``v_1, ..., v_depth``.
    """
    func = "forward_variance_through_depth"
    n = check_int(n, "n", func)
    var_w = check_positive(var_w, "var_w", func)
    var_x = check_positive(var_x, "var_x", func, allow_zero=True)
    check_choice(activation, "activation", func, _SECOND_MOMENT_FACTOR)
    depth = check_int(depth, "depth", func)
    gain = n * var_w * _SECOND_MOMENT_FACTOR[activation]
    with np.errstate(over="ignore", under="ignore"):  # huge or tiny values are the point of the figure
        return var_x * gain ** np.arange(1, depth + 1, dtype=np.float64)


# --------------------------------------------------------------------------- the backward condition

# E[f'(z)^2], the factor the backward pass picks up at the activation, is the same c_f: f(z) = z f'(z) for
# the piecewise-linear activations, and tanh'(z) ~ 1 in tanh's linear regime.
_GRAD_SECOND_MOMENT = _SECOND_MOMENT_FACTOR


def backward_stable_variance(n_in, n_out, activation="identity") -> float:
    """The weight variance that keeps the backward pass's gradient variance constant.

    The gradient reaching a layer's input is :math:`\\partial L/\\partial x_i =
    \\sum_{j=1}^{n_{out}} w_{ij} \\, \\delta_j` with :math:`\\delta_j = g_j f'(z_j)`, a sum of
    ``n_out`` terms, so

    .. math:: \\operatorname{Var}(\\partial L/\\partial x) = n_{out} \\operatorname{Var}(w)
              \\, E[f'(z)^2] \\operatorname{Var}(g),

    and the variance is kept when :math:`\\operatorname{Var}(w) = 1 / (n_{out} E[f'(z)^2])`:
    ``1 / n_out`` for identity and tanh (linear regime), ``2 / n_out`` for relu.
    ``n_in`` does not enter: the backward pass sums over the layer's outputs.

    Parameters
    ----------
    n_in, n_out : int
        Input width D and output width M of the layer.
    activation : {"identity", "tanh", "relu", "leaky_relu"}
        The activation applied to the layer's output.

    Returns
    -------
    float
    """
    func = "backward_stable_variance"
    check_int(n_in, "n_in", func)
    n_out = check_int(n_out, "n_out", func)
    check_choice(activation, "activation", func, _GRAD_SECOND_MOMENT)
    return 1.0 / (n_out * _GRAD_SECOND_MOMENT[activation])


# --------------------------------------------------------------------------- beyond the linear regime

def _gaussian_expectation(h, var: float, half_width: float) -> float:
    """E[h(z)] for z ~ N(0, var), by the trapezoid rule on |z| <= half_width.

    The grid spacing resolves both the Gaussian (width sqrt(var)) and features of
    h of width ~1 (tanh), so the rule is accurate to ~1e-10 for smooth h.
    """
    s = math.sqrt(var)
    h_step = min(s, 1.0) / 50.0
    m = 2 * int(math.ceil(half_width / h_step)) + 1
    z = np.linspace(-half_width, half_width, m)
    density = np.exp(-0.5 * (z / s) ** 2) / (s * math.sqrt(2.0 * math.pi))
    return float(np.trapezoid(h(z) * density, z))


def gaussian_moments(activation, var) -> tuple[float, float]:
    """Second moments of an activation and of its derivative at a Gaussian input.

    For :math:`z \\sim N(0, v)` returns :math:`(E[f(z)^2], E[f'(z)^2])`: the
    factors by which a layer passes on the forward variance
    (:math:`\\operatorname{Var}(z') = n \\operatorname{Var}(w) E[f(z)^2]`) and
    the backward one. Exact for identity (``(v, 1)``), relu (``(v/2, 1/2)``)
    and leaky relu with slope 0.01 (``((1 + 0.01^2) v / 2, (1 + 0.01^2) / 2)``);
    numerical integration for tanh, whose factors depend on ``v``: close to
    ``(v, 1)`` while ``v`` is small, tending to ``(1, 0)`` as it saturates.

    Parameters
    ----------
    activation : {"identity", "tanh", "relu", "leaky_relu"}
    var : float
        Variance v >= 0 of the pre-activation.

    Returns
    -------
    (float, float)
    """
    func = "gaussian_moments"
    check_choice(activation, "activation", func, _SECOND_MOMENT_FACTOR)
    var = check_positive(var, "var", func, allow_zero=True)
    if activation != "tanh" or var == 0.0:
        return _SECOND_MOMENT_FACTOR[activation] * var, _GRAD_SECOND_MOMENT[activation]
    s = math.sqrt(var)
    sech2 = lambda z: 1.0 / np.cosh(z) ** 2  # noqa: E731  (tanh' = sech^2, < 1e-34 for |z| > 40)
    grad2 = _gaussian_expectation(lambda z: sech2(z) ** 2, var, min(12.0 * s, 40.0))
    if 12.0 * s <= 40.0:   # integrate tanh^2 itself: no cancellation when v is tiny
        f2 = _gaussian_expectation(lambda z: np.tanh(z) ** 2, var, 12.0 * s)
    else:                  # saturated: tanh^2 = 1 - sech^2, and sech^2 is concentrated near 0
        f2 = 1.0 - _gaussian_expectation(sech2, var, 40.0)
    return f2, grad2


class LayerVariances(NamedTuple):
    """Per-layer variances of a deep stack, layer 1 (nearest the input) first.

    Attributes
    ----------
    forward : ndarray of shape (L,)
        :math:`\\operatorname{Var}(z_l)`, the pre-activations.
    backward : ndarray of shape (L,)
        :math:`\\operatorname{Var}(\\delta_l)`, :math:`\\delta_l = \\partial L/\\partial z_l`.
    """

    forward: np.ndarray
    backward: np.ndarray


def predicted_variances(n, var_w, var_input, activation, depth, var_dout=1.0, *,
                        linear=False) -> LayerVariances:
    """Predicted variances in ``depth`` layers ``z_l = f(z_{l-1}) W_l`` of width ``n``.

    The network is :math:`z_1 = x W_1`, :math:`z_l = f(z_{l-1}) W_l`, with
    every weight of variance ``var_w``, ``E[x^2] = var_input`` and an upstream
    gradient :math:`\\partial L/\\partial f(z_L)` of variance ``var_dout``.
    With :math:`(m_l, g_l) =` :func:`gaussian_moments` at :math:`v_l`:

    .. math::
        v_1 = n \\operatorname{Var}(w) \\operatorname{var\\_input}, \\qquad
        v_{l+1} = n \\operatorname{Var}(w)\\, m_l;

        u_L = \\operatorname{var\\_dout}\\, g_L, \\qquad
        u_{l} = n \\operatorname{Var}(w)\\, g_l\\, u_{l+1}.

    For identity and relu these are the geometric sequences
    :math:`v_l = v_1 (n \\operatorname{Var}(w) c)^{l-1}`,
    :math:`u_l = \\operatorname{var\\_dout}\\, c\\, (n \\operatorname{Var}(w) c)^{L-l}`
    (``c = 1/2`` for relu). For tanh, ``linear=True`` uses the linear-regime
    factors ``m = v``, ``g = 1`` instead of the exact Gaussian moments.

    Parameters
    ----------
    n : int
        Width of every layer (and of x).
    var_w : float
        Variance of every weight.
    var_input : float
        Second moment E[x^2] of the input entries.
    activation : {"identity", "tanh", "relu", "leaky_relu"}
    depth : int
        Number of layers L.
    var_dout : float, default 1.0
        Variance of the upstream gradient dL/d(out).
    linear : bool, default False
        Use the linear-regime factors of :func:`forward_variance`.

    Returns
    -------
    LayerVariances
        ``forward`` = (v_1, ..., v_L), ``backward`` = (u_1, ..., u_L).
    """
    func = "predicted_variances"
    n = check_int(n, "n", func)
    var_w = check_positive(var_w, "var_w", func)
    var_input = check_positive(var_input, "var_input", func, allow_zero=True)
    check_choice(activation, "activation", func, _SECOND_MOMENT_FACTOR)
    depth = check_int(depth, "depth", func)
    var_dout = check_positive(var_dout, "var_dout", func, allow_zero=True)
    if not isinstance(linear, bool):
        raise TypeError(f"{func}: linear must be True or False; got {type(linear).__name__}")
    forward = np.empty(depth)
    grad2 = np.empty(depth)
    v = n * var_w * var_input
    with np.errstate(over="ignore", under="ignore"):
        for l in range(depth):
            forward[l] = v
            if linear:
                m, grad2[l] = _SECOND_MOMENT_FACTOR[activation] * v, _GRAD_SECOND_MOMENT[activation]
            else:
                m, grad2[l] = gaussian_moments(activation, min(v, 1e300))
            v = n * var_w * m
        backward = np.empty(depth)
        u = var_dout * grad2[-1]
        for l in range(depth - 1, -1, -1):
            backward[l] = u
            u = n * var_w * grad2[l - 1] * u if l > 0 else u
    return LayerVariances(forward, backward)


# --------------------------------------------------------------------------- measuring a deep stack

def _check_stack_args(x, initializer, depth, activation, rng, func: str):
    x = as_float_array(x, "x", func, ndim=2, shape="(N, n)")
    init_fn = get_initializer(initializer)
    depth = check_int(depth, "depth", func)
    act = get_activation(activation)
    rng = check_rng(rng, func)
    return x, init_fn, depth, act, rng


def activation_variances(x, initializer, depth, activation, rng) -> np.ndarray:
    """Measured variance of every layer's pre-activation in a freshly initialized deep stack.

    Builds ``depth`` square layers of width ``n = x.shape[1]`` (no biases),
    drawing ``W_l = initializer(n, n, rng)`` once per layer, layer 1 first, and
    runs ``x`` through :math:`z_1 = x W_1`, :math:`z_l = f(z_{l-1}) W_l`.

    Parameters
    ----------
    x : ndarray of shape (N, n)
        A batch of inputs.
    initializer : str or callable
        A name from :data:`INITIALIZERS` or a callable ``(fan_in, fan_out, rng)``.
    depth : int
        Number of layers L.
    activation : str
        An activation name from :mod:`stablegrad.activations`.
    rng : numpy.random.Generator
        Passed to the initializer; nothing else is drawn.

    Returns
    -------
    ndarray of shape (L,)
        ``np.var(z_l)`` over all N x n entries, layer 1 first.
    """
    x, init_fn, depth, act, rng = _check_stack_args(x, initializer, depth, activation, rng,
                                                    "activation_variances")
    n = x.shape[1]
    out = np.empty(depth)
    a = x
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for l in range(depth):
            z = a @ init_fn(n, n, rng)
            out[l] = np.var(z)
            a = act.fn(z)
    return out


def measure_variances(x, initializer, depth, activation, rng, dout=None) -> LayerVariances:
    """Measured forward and backward variances of every layer of a fresh deep stack.

    The same stack as :func:`activation_variances` (the same weights for the
    same ``rng``); then the backward pass from ``dout`` = dL/d(out):
    :math:`\\delta_L = \\text{dout} \\odot f'(z_L)`,
    :math:`\\delta_{l} = (\\delta_{l+1} W_{l+1}^\\top) \\odot f'(z_{l})`.

    Parameters
    ----------
    x : ndarray of shape (N, n)
    initializer : str or callable
    depth : int
    activation : str
    rng : numpy.random.Generator
        Draws the weights (layer 1 first), then ``dout`` if it is None.
    dout : ndarray of shape (N, n), optional
        Upstream gradient; standard normal (drawn after the weights) if None.

    Returns
    -------
    LayerVariances
        ``forward[l-1] = np.var(z_l)`` and ``backward[l-1] = np.var(delta_l)``.
    """
    func = "measure_variances"
    x, init_fn, depth, act, rng = _check_stack_args(x, initializer, depth, activation, rng, func)
    n = x.shape[1]
    weights, zs = [], []
    forward, backward = np.empty(depth), np.empty(depth)
    a = x
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        for l in range(depth):
            W = init_fn(n, n, rng)
            z = a @ W
            weights.append(W)
            zs.append(z)
            forward[l] = np.var(z)
            a = act.fn(z)
        if dout is None:
            dout = rng.standard_normal(a.shape)
        else:
            dout = as_float_array(dout, "dout", func, ndim=2, shape=f"{a.shape}")
            if dout.shape != a.shape:
                raise ValueError(f"{func}: dout must have the shape of the output {a.shape}; "
                                 f"got shape {dout.shape}")
        d = dout
        for l in range(depth - 1, -1, -1):
            delta = d * act.grad(zs[l])
            backward[l] = np.var(delta)
            d = delta @ weights[l].T
    return LayerVariances(forward, backward)
