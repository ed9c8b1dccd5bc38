"""Numbers that tell a healthy network from a sick one.

- per-layer gradient norms: vanishing gradients show as norms that fall by
  orders of magnitude from the last layer to the first, exploding ones as
  norms that grow;
- activation statistics and saturation: a tanh or sigmoid layer whose units
  sit in the flat tails passes almost no gradient;
- the update-to-data ratio ``||update|| / ||param||``: how much one step moves
  a parameter relative to its size (around 1e-3 is a common rule of thumb).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from stablegrad._validate import as_float_array, check_same_shape
from stablegrad.activations import saturated_fraction
from stablegrad.layers import LayerCache, stack_backward, stack_forward

__all__ = [
    "layer_gradient_norms", "chain_gradient_norms", "activation_stats",
    "saturation_by_layer", "update_to_data_ratio",
]


def _weight_gradient(g, index: int, func: str) -> np.ndarray:
    """The dW of one layer's entry in a gradient list."""
    if isinstance(g, Mapping):
        for key in ("dW", "W"):
            if key in g:
                g = g[key]
                break
        else:
            raise ValueError(f"{func}: grads[{index}] must have a 'dW' or 'W' key; got keys {sorted(g)}")
    elif isinstance(g, (tuple, list)):
        if len(g) == 0:
            raise ValueError(f"{func}: grads[{index}] must be a (dW, db) tuple; got an empty {type(g).__name__}")
        g = g[0]
    return as_float_array(g, f"grads[{index}]", func)


def layer_gradient_norms(grads) -> np.ndarray:
    """Frobenius norm of each layer's weight gradient.

    Parameters
    ----------
    grads : list
        One entry per layer, as returned by :func:`stablegrad.layers.stack_backward`:
        ``(dW, db)`` tuples (only ``dW`` is used). A bare array or a dict with
        a ``"dW"`` (or ``"W"``) key is also accepted for an entry.

    Returns
    -------
    ndarray of shape (L,)
        :math:`\\|dW_l\\|_F = \\sqrt{\\sum_{ij} (dW_l)_{ij}^2}`, layer 1 first.
    """
    func = "layer_gradient_norms"
    if isinstance(grads, (np.ndarray, str, bytes, Mapping)) or not hasattr(grads, "__len__"):
        raise TypeError(f"{func}: grads must be a list with one (dW, db) entry per layer; "
                        f"got {type(grads).__name__}")
    if len(grads) == 0:
        raise ValueError(f"{func}: grads must contain at least one layer; got an empty list")
    return np.array([np.linalg.norm(_weight_gradient(g, i, func)) for i, g in enumerate(grads)],
                    dtype=np.float64)


def chain_gradient_norms(x, params, activation, dout=None) -> np.ndarray:
    """Forward and backward through a stack; return each layer's weight-gradient norm.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    params : list of (W, b) tuples
        As in :func:`stablegrad.layers.stack_forward`.
    activation : str
        Activation applied after every layer.
    dout : ndarray of shape (N, D_L), optional
        Upstream gradient at the output; defaults to ones (the gradient of
        ``sum(out)``).

    Returns
    -------
    ndarray of shape (L,)
        ``||dW_l||_F`` for layer 1 first. A ratio ``norms[0] / norms[-1]``
        far below 1 means vanishing gradients, far above 1 exploding ones.
    """
    out, caches = stack_forward(x, params, activation)
    if dout is None:
        dout = np.ones_like(out)
    else:
        dout = as_float_array(dout, "dout", "chain_gradient_norms")
        check_same_shape(dout, out, "dout", "the stack's output", "chain_gradient_norms")
    _, grads = stack_backward(dout, caches)
    return layer_gradient_norms(grads)


def activation_stats(a, kind=None, threshold=0.97) -> dict:
    """Summary statistics of one layer's activations.

    Parameters
    ----------
    a : ndarray of any shape, typically (N, M)
    kind : {"tanh", "sigmoid", "relu", "leaky_relu"}, optional
        If given, also report the saturated fraction
        (see :func:`stablegrad.activations.saturated_fraction`).
    threshold : float, default 0.97

    Returns
    -------
    dict
        ``mean``, ``std``, ``min``, ``max``, ``fraction_zero`` (entries exactly 0)
        and ``saturated`` (``nan`` when ``kind`` is None), all floats.
    """
    a = as_float_array(a, "a", "activation_stats")
    saturated = float("nan") if kind is None else saturated_fraction(a, kind, threshold)
    return {
        "mean": float(np.mean(a)),
        "std": float(np.std(a)),
        "min": float(np.min(a)),
        "max": float(np.max(a)),
        "fraction_zero": float(np.mean(a == 0)),
        "saturated": saturated,
    }


def saturation_by_layer(activations, kind, threshold=0.97) -> np.ndarray:
    """Saturated fraction of each layer's activations.

    Parameters
    ----------
    activations : list of ndarray, or list of LayerCache
        One array per layer, or the caches returned by
        :func:`stablegrad.layers.stack_forward` (their ``act.a`` is used).
    kind : {"tanh", "sigmoid", "relu", "leaky_relu"}
    threshold : float, default 0.97

    Returns
    -------
    ndarray of shape (L,)
        Fractions in [0, 1], layer 1 first.
    """
    func = "saturation_by_layer"
    if isinstance(activations, (np.ndarray, str, bytes)) or not hasattr(activations, "__len__"):
        raise TypeError(f"{func}: activations must be a list with one array per layer; "
                        f"got {type(activations).__name__}")
    if len(activations) == 0:
        raise ValueError(f"{func}: activations must contain at least one layer; got an empty list")
    arrays = [c.act.a if isinstance(c, LayerCache) else c for c in activations]
    return np.array([saturated_fraction(a, kind, threshold) for a in arrays], dtype=np.float64)


def update_to_data_ratio(param, update) -> float:
    """Size of a parameter update relative to the parameter.

    Parameters
    ----------
    param : ndarray of any shape
        Parameter before the update.
    update : ndarray of the same shape
        The change applied, e.g. ``-lr * grad``.

    Returns
    -------
    float
        :math:`\\|\\Delta\\theta\\|_F / \\|\\theta\\|_F`; 0 if both are zero and
        ``inf`` if only the parameter is zero.
    """
    func = "update_to_data_ratio"
    param = as_float_array(param, "param", func)
    update = as_float_array(update, "update", func)
    check_same_shape(update, param, "update", "param", func)
    p = float(np.linalg.norm(param))
    u = float(np.linalg.norm(update))
    if p == 0.0:
        return 0.0 if u == 0.0 else float("inf")
    return u / p
