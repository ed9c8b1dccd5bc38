"""A vanilla recurrent network and backpropagation through time (BPTT).

One matrix is applied at every time step:

.. math:: h_t = f(z_t), \\qquad z_t = h_{t-1} W + x_t U + b, \\qquad t = 1, \\dots, T,

with ``f`` = tanh (or the identity, for the linear recurrence that the spectral analysis
describes exactly). The backward pass walks the steps in reverse. With
:math:`g_t = \\partial L / \\partial h_t` (the *total* gradient: through every later step)
and :math:`\\delta_t = g_t \\odot f'(z_t)`,

.. math:: g_{t-1} = \\frac{\\partial L}{\\partial h_{t-1}}\\Big|_{\\text{direct}} + \\delta_t W^\\top ,
          \\qquad
          \\frac{\\partial L}{\\partial W} = \\sum_{t=1}^{T} h_{t-1}^\\top \\delta_t ,

so the state gradient is multiplied by one Jacobian :math:`\\operatorname{diag}(f'(z_t)) W^\\top`
per step back, and the parameter gradient is a *sum* with one term per step (see
:func:`rnn_grad_terms`). What training clips is that sum.

Notation: N batch, T time steps, D input width, H state width. Sequences are batch-first,
``x[n, t]`` is example ``n`` at step ``t + 1``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stablegrad._validate import as_float_array
from stablegrad.activations import Activation, get_activation

__all__ = ["RNNCache", "RNNGrads", "RNNGradTerms", "rnn_forward", "rnn_backward", "rnn_grad_terms"]


class RNNCache(NamedTuple):
    """What :func:`rnn_backward` needs from :func:`rnn_forward`.

    Attributes
    ----------
    x : ndarray of shape (N, T, D)
        The inputs.
    states : ndarray of shape (N, T + 1, H)
        ``states[:, 0]`` is the initial state :math:`h_0`, ``states[:, t]`` is :math:`h_t`.
    z : ndarray of shape (N, T, H)
        Pre-activations, ``z[:, t - 1]`` is :math:`z_t`.
    W : ndarray of shape (H, H)
    U : ndarray of shape (D, H)
    activation : Activation
    """

    x: np.ndarray
    states: np.ndarray
    z: np.ndarray
    W: np.ndarray
    U: np.ndarray
    activation: Activation


class RNNGrads(NamedTuple):
    """What :func:`rnn_backward` returns.

    Attributes
    ----------
    dx : ndarray of shape (N, T, D)
        :math:`\\partial L / \\partial x_t = \\delta_t U^\\top`.
    dh0 : ndarray of shape (N, H)
        :math:`\\partial L / \\partial h_0` (equal to ``dstates[:, 0]``).
    dW : ndarray of shape (H, H)
        :math:`\\sum_t h_{t-1}^\\top \\delta_t`, summed over time (and the batch).
    dU : ndarray of shape (D, H)
        :math:`\\sum_t x_t^\\top \\delta_t`.
    db : ndarray of shape (H,)
        :math:`\\sum_t \\sum_n \\delta_{t,n}`.
    dstates : ndarray of shape (N, T + 1, H)
        The per-step state gradients :math:`g_t = \\partial L / \\partial h_t`, ``t = 0..T``,
        each including everything that flows back from later steps.
    dz : ndarray of shape (N, T, H)
        :math:`\\delta_t = g_t \\odot f'(z_t)`, ``dz[:, t - 1]`` for step ``t``.
    """

    dx: np.ndarray
    dh0: np.ndarray
    dW: np.ndarray
    dU: np.ndarray
    db: np.ndarray
    dstates: np.ndarray
    dz: np.ndarray


class RNNGradTerms(NamedTuple):
    """One term per time step of each parameter gradient: ``dW.sum(axis=0)`` is ``RNNGrads.dW``.

    Attributes
    ----------
    dW : ndarray of shape (T, H, H)
        ``dW[t - 1]`` is :math:`h_{t-1}^\\top \\delta_t`.
    dU : ndarray of shape (T, D, H)
        ``dU[t - 1]`` is :math:`x_t^\\top \\delta_t`.
    db : ndarray of shape (T, H)
        ``db[t - 1]`` is :math:`\\sum_n \\delta_{t,n}`.
    """

    dW: np.ndarray
    dU: np.ndarray
    db: np.ndarray


def _check_rnn_params(x, h0, W, U, b, func: str):
    x = as_float_array(x, "x", func, ndim=3, shape="(N, T, D)")
    n, _, d = x.shape
    W = as_float_array(W, "W", func, ndim=2, shape="(H, H)")
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"{func}: W must be square, of shape (H, H); got shape {W.shape}")
    hidden = W.shape[0]
    U = as_float_array(U, "U", func, ndim=2, shape="(D, H)")
    if U.shape != (d, hidden):
        raise ValueError(f"{func}: U must have shape (D, H) = ({d}, {hidden}) with D = x.shape[2] and "
                         f"H = W.shape[0]; got shape {U.shape}")
    b = as_float_array(b, "b", func, ndim=1, shape="(H,)")
    if b.shape != (hidden,):
        raise ValueError(f"{func}: b must have shape (H,) = ({hidden},); got shape {b.shape}")
    h0 = as_float_array(h0, "h0", func, ndim=2, shape="(N, H)")
    if h0.shape != (n, hidden):
        raise ValueError(f"{func}: h0 must have shape (N, H) = ({n}, {hidden}) with N = x.shape[0] and "
                         f"H = W.shape[0]; got shape {h0.shape}")
    return x, h0, W, U, b


def rnn_forward(x, h0, W, U, b, activation="tanh"):
    """Run the recurrence :math:`h_t = f(h_{t-1} W + x_t U + b)` over all T steps.

    Parameters
    ----------
    x : ndarray of shape (N, T, D)
        Input sequences, batch first.
    h0 : ndarray of shape (N, H)
        Initial state (often zeros).
    W : ndarray of shape (H, H)
        Recurrent weights, the same at every step.
    U : ndarray of shape (D, H)
        Input weights.
    b : ndarray of shape (H,)
    activation : str or Activation, default "tanh"
        ``"identity"`` gives the linear recurrence :math:`h_t = h_{t-1} W + x_t U + b`.

    Returns
    -------
    h : ndarray of shape (N, T, H)
        The states :math:`h_1, \\dots, h_T` (``h[:, t - 1]`` is :math:`h_t`).
    cache : RNNCache

    Raises
    ------
    ValueError
        If the shapes do not fit, e.g.
        ``rnn_forward: U must have shape (D, H) = (3, 4) with D = x.shape[2] and H = W.shape[0]; got shape (4, 4)``.
    TypeError
        If an argument is not a real numeric array, or the activation is not a name.
    """
    func = "rnn_forward"
    x, h0, W, U, b = _check_rnn_params(x, h0, W, U, b, func)
    try:
        act = get_activation(activation)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("get_activation: name", f"{func}: activation")) from None
    n, steps, _ = x.shape
    dtype = np.result_type(x, h0, W, U, b)
    states = np.empty((n, steps + 1, W.shape[0]), dtype=dtype)
    z = np.empty((n, steps, W.shape[0]), dtype=dtype)
    states[:, 0] = h0
    for t in range(1, steps + 1):
        z[:, t - 1] = states[:, t - 1] @ W + x[:, t - 1] @ U + b   # the same W at every step
        states[:, t] = act.fn(z[:, t - 1])
    return states[:, 1:].copy(), RNNCache(x, states, z, W, U, act)


def rnn_backward(dh, cache):
    """Backpropagation through time for :func:`rnn_forward`.

    Parameters
    ----------
    dh : ndarray of shape (N, T, H)
        Upstream gradient :math:`\\partial L / \\partial h_t` from the losses that read each state
        directly (zeros except ``dh[:, -1]`` when only the last state is read).
    cache : RNNCache
        From :func:`rnn_forward`.

    Returns
    -------
    RNNGrads
        ``dx, dh0, dW, dU, db`` and the per-step gradients ``dstates`` (:math:`g_t`, t = 0..T)
        and ``dz`` (:math:`\\delta_t`). Going back one step,

        .. math:: \\delta_t = g_t \\odot f'(z_t), \\qquad g_{t-1} = dh_{t-1} + \\delta_t W^\\top,

        and the parameter gradients add one term per step:
        :math:`dW = \\sum_t h_{t-1}^\\top \\delta_t`, :math:`dU = \\sum_t x_t^\\top \\delta_t`,
        :math:`db = \\sum_t \\sum_n \\delta_{t,n}`.
    """
    func = "rnn_backward"
    if not isinstance(cache, RNNCache):
        raise TypeError(f"{func}: cache must be the RNNCache returned by rnn_forward; "
                        f"got {type(cache).__name__}")
    x, states, z, W, U, act = cache
    n, steps, hidden = z.shape
    dh = as_float_array(dh, "dh", func)
    if dh.shape != (n, steps, hidden):
        raise ValueError(f"{func}: dh must have shape (N, T, H) = {(n, steps, hidden)} like the forward "
                         f"output; got shape {dh.shape}")
    dtype = np.result_type(dh, z)
    dstates = np.zeros((n, steps + 1, hidden), dtype=dtype)
    dz = np.empty((n, steps, hidden), dtype=dtype)
    dx = np.empty(x.shape, dtype=dtype)
    dW, dU, db = np.zeros(W.shape, dtype), np.zeros(U.shape, dtype), np.zeros(hidden, dtype)
    g = dh[:, -1].astype(dtype)                        # g_T: only the loss reads h_T directly
    for t in range(steps, 0, -1):
        dstates[:, t] = g
        d = g * act.grad(z[:, t - 1])                  # delta_t: the activation's Jacobian is diagonal
        dz[:, t - 1] = d
        dW += states[:, t - 1].T @ d                   # one term per step, summed over time
        dU += x[:, t - 1].T @ d
        db += d.sum(axis=0)
        dx[:, t - 1] = d @ U.T
        g = d @ W.T                                    # back one step: through W^T
        if t > 1:
            g = g + dh[:, t - 2]                       # plus what the loss reads from h_(t-1) directly
    dstates[:, 0] = g
    return RNNGrads(dx, g.copy(), dW, dU, db, dstates, dz)


def rnn_grad_terms(grads, cache):
    """Split the summed parameter gradients of :func:`rnn_backward` into one term per time step.

    Parameters
    ----------
    grads : RNNGrads
        From :func:`rnn_backward`.
    cache : RNNCache
        The cache that produced ``grads``.

    Returns
    -------
    RNNGradTerms
        ``dW[t - 1] = h_{t-1}^T delta_t`` (T, H, H), ``dU[t - 1] = x_t^T delta_t`` (T, D, H),
        ``db[t - 1] = sum_n delta_t`` (T, H). Summed over the first axis they give
        ``grads.dW``, ``grads.dU`` and ``grads.db``.
    """
    func = "rnn_grad_terms"
    if not isinstance(grads, RNNGrads):
        raise TypeError(f"{func}: grads must be the RNNGrads returned by rnn_backward; got {type(grads).__name__}")
    if not isinstance(cache, RNNCache):
        raise TypeError(f"{func}: cache must be the RNNCache returned by rnn_forward; got {type(cache).__name__}")
    if grads.dz.shape != cache.z.shape:
        raise ValueError(f"{func}: grads.dz must have shape (N, T, H) = {cache.z.shape} like cache.z; "
                         f"got shape {grads.dz.shape} (grads from another forward pass?)")
    d = grads.dz
    return RNNGradTerms(np.einsum("nti,ntj->tij", cache.states[:, :-1], d),
                        np.einsum("nti,ntj->tij", cache.x, d),
                        d.sum(axis=0))
