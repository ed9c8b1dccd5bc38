"""Dense and activation layers, and stacks of them, as forward/backward pairs.

Every layer has the same shape: ``out, cache = <layer>_forward(...)`` and
``grads = <layer>_backward(dout, cache)``, where ``dout`` is dL/d(out) for some
scalar loss L. A stack is ``dense -> activation`` repeated, and its backward
pass is the chain rule applied layer by layer, last layer first:

.. math:: \\frac{\\partial L}{\\partial x} = \\frac{\\partial L}{\\partial a_L}
          \\, J_L \\, J_{L-1} \\cdots J_1

so the gradient that reaches layer 1 is a product of L local Jacobians.

Notation: N batch size, D input width, M output width.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_caches
from stablegrad.activations import Activation, get_activation

__all__ = [
    "DenseCache", "ActivationCache", "LayerCache",
    "dense_forward", "dense_backward", "activation_forward", "activation_backward",
    "stack_forward", "stack_backward",
]


class DenseCache(NamedTuple):
    """What :func:`dense_backward` needs: the input ``x`` (N, D) and weights ``W`` (D, M)."""

    x: np.ndarray
    W: np.ndarray


class ActivationCache(NamedTuple):
    """What :func:`activation_backward` needs: the activation, its input ``z`` and output ``a``."""

    activation: Activation
    z: np.ndarray
    a: np.ndarray


class LayerCache(NamedTuple):
    """One ``dense -> activation`` layer of a stack: both caches."""

    dense: DenseCache
    act: ActivationCache


# --------------------------------------------------------------------------- dense

def _check_dense_params(W, b, d_in: int, func: str, where: str = "", d_label: str = "x.shape[1]"):
    """Validate W (D, M) and b (M,) against an input width D."""
    W = as_float_array(W, f"{where}W", func, ndim=2, shape="(D, M)")
    if W.shape[0] != d_in:
        raise ValueError(f"{func}: {where}W must have shape (D, M) with D = {d_label} = {d_in}; "
                         f"got shape {W.shape}")
    b = as_float_array(b, f"{where}b", func, ndim=1, shape="(M,)")
    if b.shape != (W.shape[1],):
        raise ValueError(f"{func}: {where}b must have shape (M,) with M = W.shape[1] = {W.shape[1]}; "
                         f"got shape {b.shape}")
    return W, b


def dense_forward(x, W, b):
    """Affine layer, ``out = x @ W + b``.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    W : ndarray of shape (D, M)
    b : ndarray of shape (M,)

    Returns
    -------
    out : ndarray of shape (N, M)
        :math:`\\text{out}_{nm} = \\sum_d x_{nd} W_{dm} + b_m`
    cache : DenseCache
        References to ``x`` and ``W`` (not copies: do not modify them in place
        before calling :func:`dense_backward`).

    Raises
    ------
    ValueError
        If the shapes do not match, e.g.
        ``dense_forward: W must have shape (D, M) with D = x.shape[1] = 5; got shape (4, 3)``.
    TypeError
        If an argument is not a real numeric array.
    """
    func = "dense_forward"
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    W, b = _check_dense_params(W, b, x.shape[1], func)
    return _dense_forward(x, W, b)


def _dense_forward(x, W, b):
    out = x @ W
    # + b written into the product (ours) unless b is the wider dtype: one (N, M) array, not two
    return np.add(out, b, out=out if np.result_type(out, b) == out.dtype else None), DenseCache(x, W)


def dense_backward(dout, cache):
    """Backward pass of :func:`dense_forward`.

    Parameters
    ----------
    dout : ndarray of shape (N, M)
        Upstream gradient dL/d(out).
    cache : DenseCache
        From :func:`dense_forward`.

    Returns
    -------
    dx : ndarray of shape (N, D)
        :math:`\\partial L/\\partial x = \\text{dout}\\, W^T`
    dW : ndarray of shape (D, M)
        :math:`\\partial L/\\partial W = x^T \\text{dout}` (a sum over the batch)
    db : ndarray of shape (M,)
        :math:`\\partial L/\\partial b = \\sum_n \\text{dout}_n`
    """
    func = "dense_backward"
    x, W = _unpack(cache, DenseCache, func)
    dout = _check_dout(dout, (x.shape[0], W.shape[1]), func, "(N, M)")
    return _dense_backward(dout, x, W)


def _dense_backward(dout, x, W, need_dx=True):
    # each input feeds every output through W: the gradient flows back through W^T
    # (need_dx=False: the network's first layer, whose dL/dx nobody uses, skips that matmul)
    dx = dout @ W.T if need_dx else None
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db


# --------------------------------------------------------------------------- activation

def activation_forward(z, name):
    """Apply an activation elementwise.

    Parameters
    ----------
    z : ndarray of any shape, typically (N, M)
        Pre-activations.
    name : str or Activation
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` or ``"identity"``.

    Returns
    -------
    a : ndarray shaped like ``z``
        :math:`a = f(z)`
    cache : ActivationCache
    """
    func = "activation_forward"
    z = as_float_array(z, "z", func)
    return _activation_forward(z, get_activation(name))


def _activation_forward(z, act: Activation):
    a = (act.forward or act.fn)(z)
    return a, ActivationCache(act, z, a)


def activation_backward(da, cache):
    """Backward pass of :func:`activation_forward`.

    Parameters
    ----------
    da : ndarray shaped like ``z``
        Upstream gradient dL/da.
    cache : ActivationCache

    Returns
    -------
    dz : ndarray shaped like ``z``
        :math:`\\partial L/\\partial z = \\partial L/\\partial a \\odot f'(z)`
        (the Jacobian of an elementwise function is diagonal).
    """
    func = "activation_backward"
    _, z, _ = _unpack(cache, ActivationCache, func)
    return _activation_backward(_check_dout(da, z.shape, func, "like z", name="da"), cache)


def _activation_backward(da, cache: ActivationCache):
    act, z, a = cache
    if act.grad_from_output is not None:
        return da * act.grad_from_output(a)  # f'(z) from the cached a = f(z): no second exp or tanh
    return da * act.grad(z)


# --------------------------------------------------------------------------- stack

def stack_forward(x, params, activation="tanh"):
    """Forward pass through ``L`` layers of ``dense -> activation``.

    Every layer, including the last, applies the activation; use
    ``activation="identity"`` for a purely linear stack.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    params : list of (W, b) tuples
        Layer ``l`` has ``W`` of shape (D_l, D_{l+1}) and ``b`` of shape (D_{l+1},),
        with ``D_0 = D``.
    activation : str or Activation, default "tanh"

    Returns
    -------
    out : ndarray of shape (N, D_L)
        :math:`a_l = f(a_{l-1} W_l + b_l)`, ``a_0 = x``; ``out = a_L``.
    caches : list of LayerCache
        One per layer; ``caches[l].act.a`` is layer ``l``'s activation.

    Raises
    ------
    ValueError
        If ``params`` is empty or two consecutive layers do not fit
        (the message names ``params[l]``).
    """
    func = "stack_forward"
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    act = _get_activation(activation, func)
    if isinstance(params, (str, bytes, np.ndarray)) or not hasattr(params, "__len__"):
        raise TypeError(f"{func}: params must be a list of (W, b) tuples; got {type(params).__name__}")
    if len(params) == 0:
        raise ValueError(f"{func}: params must contain at least one (W, b) layer; got an empty list")
    a, caches = x, []
    for l, layer in enumerate(params):
        if not isinstance(layer, (tuple, list)) or len(layer) != 2:
            raise TypeError(f"{func}: params[{l}] must be a (W, b) tuple; got {type(layer).__name__}")
        label = "x.shape[1]" if l == 0 else f"the output width of params[{l - 1}]"
        W, b = _check_dense_params(layer[0], layer[1], a.shape[1], func, where=f"params[{l}] ", d_label=label)
        z = a @ W + b
        dense_cache = DenseCache(a, W)
        a = act.fn(z)
        caches.append(LayerCache(dense_cache, ActivationCache(act, z, a)))
    return a, caches


def stack_backward(dout, caches):
    """Backward pass of :func:`stack_forward`, last layer first.

    Parameters
    ----------
    dout : ndarray of shape (N, D_L)
        Upstream gradient dL/d(out).
    caches : list of LayerCache
        From :func:`stack_forward`.

    Returns
    -------
    dx : ndarray of shape (N, D)
        Gradient with respect to the stack's input.
    grads : list of (dW, db) tuples
        One per layer, in the same order as ``params`` (layer 1 first).
    """
    func = "stack_backward"
    check_caches(caches, LayerCache, "stack_forward", func)
    last = caches[-1].act
    d = _check_dout(dout, last.a.shape, func, "(N, D_L)")
    grads = []
    for cache in reversed(caches):
        dz = d * cache.act.activation.grad(cache.act.z)   # local Jacobian of the activation (diagonal)
        d, dW, db = _dense_backward(dz, cache.dense.x, cache.dense.W)  # then of the affine map (W^T)
        grads.append((dW, db))
    grads.reverse()
    return d, grads


# --------------------------------------------------------------------------- helpers

def _get_activation(activation, func: str) -> Activation:
    try:
        return get_activation(activation)
    except (TypeError, ValueError) as exc:
        msg = str(exc).replace("get_activation: name", f"{func}: activation")
        raise type(exc)(msg) from None


def _unpack(cache, kind, func: str):
    n = len(kind._fields)
    if not isinstance(cache, tuple) or len(cache) != n:
        raise TypeError(f"{func}: cache must be the {kind.__name__} returned by the forward pass; "
                        f"got {type(cache).__name__}")
    return cache


def _check_dout(dout, shape, func: str, expected: str, name: str = "dout"):
    dout = as_float_array(dout, name, func)
    if dout.shape != tuple(shape):
        raise ValueError(f"{func}: {name} must have shape {expected} = {tuple(shape)} like the forward "
                         f"output; got shape {dout.shape}")
    return dout
