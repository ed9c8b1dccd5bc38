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
from typing import Callable

import numpy as np

from stablegrad._validate import check_choice, check_int, check_positive, check_rng

__all__ = [
    "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
    "glorot_normal", "glorot_uniform", "kaiming_normal", "kaiming_uniform",
    "uniform", "normal", "INITIALIZERS", "get_initializer", "init_variance",
    "forward_variance", "forward_variance_through_depth",
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

# E[f(z)^2] / Var(z) for z ~ N(0, Var(z)); tanh is linear (factor 1) only while Var(z) is small.
_SECOND_MOMENT_FACTOR = {"identity": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1.0 + 0.01 ** 2) / 2.0}


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
