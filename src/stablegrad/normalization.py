"""Batch normalization (staged and compact backward), layer norm and RMS norm.

All three rescale activations to a fixed size, so that the scale of the weights
before them stops compounding with depth. They differ in what they average over:

=============  =====================================  ===================
layer          statistics over                        learned parameters
=============  =====================================  ===================
batch norm     the batch, per feature (axis 0)        gamma, beta (D,)
layer norm     the features, per sample (axis 1)      gamma, beta (D,)
RMS norm       the features, per sample, no mean      gamma (D,)
=============  =====================================  ===================

Notation: N batch size, D features. Variances are the biased ones (divide by
N, or D), as in the original batch-norm paper.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_positive

__all__ = [
    "RunningStats", "BatchNormCache", "LayerNormCache", "RMSNormCache",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_compact",
    "layernorm_forward", "layernorm_backward", "rmsnorm_forward", "rmsnorm_backward",
]


class RunningStats(NamedTuple):
    """Exponential moving averages of the batch mean and (biased) variance, each of shape (D,)."""

    mean: np.ndarray
    var: np.ndarray


class BatchNormCache(NamedTuple):
    """Everything :func:`batchnorm_backward` needs.

    In training mode ``mean``/``var`` are the batch statistics; in evaluation
    mode they are the running statistics (constants for the backward pass).
    """

    x: np.ndarray        # (N, D) input
    xhat: np.ndarray     # (N, D) normalized input, (x - mean) / std
    mean: np.ndarray     # (D,)
    var: np.ndarray      # (D,)
    std: np.ndarray      # (D,) sqrt(var + eps)
    gamma: np.ndarray    # (D,)
    eps: float
    train: bool


class LayerNormCache(NamedTuple):
    """What :func:`layernorm_backward` needs."""

    xhat: np.ndarray     # (N, D)
    std: np.ndarray      # (N, 1) per-sample sqrt(var + eps)
    gamma: np.ndarray    # (D,)


class RMSNormCache(NamedTuple):
    """What :func:`rmsnorm_backward` needs."""

    xhat: np.ndarray     # (N, D) x / rms
    rms: np.ndarray      # (N, 1) sqrt(mean(x^2) + eps)
    gamma: np.ndarray    # (D,)


# --------------------------------------------------------------------------- validation

def _check_x_and_params(x, params: dict, func: str, min_rows: int = 1, mode: str = ""):
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    if x.shape[0] < min_rows:
        raise ValueError(f"{func}: x must have shape (N, D) with N >= {min_rows}{mode}; got {x.shape}")
    out = [x]
    for name, value in params.items():
        arr = as_float_array(value, name, func, ndim=1, shape="(D,)")
        if arr.shape != (x.shape[1],):
            raise ValueError(f"{func}: {name} must have shape (D,) with D = x.shape[1] = {x.shape[1]}; "
                             f"got shape {arr.shape}")
        out.append(arr)
    return out


def _check_dout(dout, shape, func: str):
    dout = as_float_array(dout, "dout", func, ndim=2, shape="(N, D)")
    if dout.shape != tuple(shape):
        raise ValueError(f"{func}: dout must have shape (N, D) = {tuple(shape)} like the forward output; "
                         f"got shape {dout.shape}")
    return dout


def _check_cache(cache, kind, func: str):
    if not isinstance(cache, kind):
        raise TypeError(f"{func}: cache must be the {kind.__name__} returned by the forward pass; "
                        f"got {type(cache).__name__}")
    return cache


def _check_running(running, d: int, dtype, func: str) -> RunningStats:
    if running is None:
        return RunningStats(np.zeros(d, dtype=dtype), np.ones(d, dtype=dtype))
    if not isinstance(running, tuple) or len(running) != 2:
        raise TypeError(f"{func}: running must be a RunningStats(mean, var) or None; got {type(running).__name__}")
    mean = as_float_array(running[0], "running.mean", func, ndim=1, shape="(D,)")
    var = as_float_array(running[1], "running.var", func, ndim=1, shape="(D,)")
    for name, arr in (("running.mean", mean), ("running.var", var)):
        if arr.shape != (d,):
            raise ValueError(f"{func}: {name} must have shape (D,) with D = x.shape[1] = {d}; got shape {arr.shape}")
    if np.any(var < 0):
        raise ValueError(f"{func}: running.var must be >= 0; got a minimum of {var.min()!r}")
    return RunningStats(mean, var)


# --------------------------------------------------------------------------- batch norm

def batchnorm_forward(x, gamma, beta, running=None, train=True, momentum=0.9, eps=1e-5):
    """Batch normalization over the batch axis, per feature.

    Training mode uses the batch statistics

    .. math:: \\mu = \\frac1N \\sum_i x_i, \\quad
              \\sigma^2 = \\frac1N \\sum_i (x_i - \\mu)^2, \\quad
              \\hat x_i = \\frac{x_i - \\mu}{\\sqrt{\\sigma^2 + \\varepsilon}}, \\quad
              y_i = \\gamma \\hat x_i + \\beta

    and returns updated running statistics,
    ``new = momentum * old + (1 - momentum) * batch``, where the batch variance
    is the same biased (1/N) one used for normalizing. Evaluation mode
    normalizes with the running statistics instead and returns them unchanged.

    Parameters
    ----------
    x : ndarray of shape (N, D)
        N >= 2 in training mode (one sample has no variance).
    gamma, beta : ndarray of shape (D,)
        Learned scale and shift.
    running : RunningStats, optional
        Running mean and variance, each (D,). None means zeros and ones.
        Never modified: new arrays are returned.
    train : bool, default True
    momentum : float in [0, 1], default 0.9
        Weight of the old running value.
    eps : float > 0, default 1e-5

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : BatchNormCache
    running : RunningStats
        Updated (training) or the input statistics unchanged (evaluation).
    """
    func = "batchnorm_forward"
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{func}: train must be True or False; got {type(train).__name__}")
    mode = " in training mode" if train else ""
    x, gamma, beta = _check_x_and_params(x, {"gamma": gamma, "beta": beta}, func,
                                         min_rows=2 if train else 1, mode=mode)
    momentum = check_positive(momentum, "momentum", func, allow_zero=True)
    if momentum > 1:
        raise ValueError(f"{func}: momentum must lie in [0, 1]; got {momentum!r}")
    eps = check_positive(eps, "eps", func)
    checked = _check_running(running, x.shape[1], x.dtype, func)
    out, cache, new_running = _batchnorm_forward(x, gamma, beta, checked, bool(train), momentum, eps)
    if not train and isinstance(running, RunningStats):
        new_running = running  # evaluation never changes them: the caller's own object comes back
    return out, cache, new_running


def _spare(buffer, *operands):
    """``buffer`` if a ufunc of ``operands`` may write its result there, else None (a new array).

    ``buffer`` is a temporary of ours that is no longer needed; it fits when the result has its
    dtype and shape. Reusing it saves one (N, D) allocation and one pass over memory.
    """
    fits = buffer.dtype == np.result_type(*operands) and buffer.shape == np.broadcast_shapes(
        *(np.shape(o) for o in operands))
    return buffer if fits else None


def _batchnorm_forward(x, gamma, beta, running: RunningStats, train: bool, momentum: float, eps: float):
    """:func:`batchnorm_forward` on checked inputs: two (N, D) arrays, xhat and out."""
    if train:
        mean = x.mean(axis=0)
        xmu = x - mean                     # computed once: the variance and xhat both start from it
        out = np.square(xmu)               # scratch for the squares; it becomes the output below
        var = out.mean(axis=0)             # biased (1/N): the variance of this batch, not an estimate
        running = RunningStats(momentum * running.mean + (1.0 - momentum) * mean,
                               momentum * running.var + (1.0 - momentum) * var)
    else:
        mean, var = running.mean, running.var
        xmu = x - mean
        out = xmu                          # the scratch, once xhat is computed (unless xhat took it)
    std = np.sqrt(var + eps)
    xhat = np.divide(xmu, std, out=_spare(xmu, xmu, std))
    out = np.multiply(gamma, xhat, out=_spare(out, gamma, xhat) if out is not xhat else None)
    out = np.add(out, beta, out=_spare(out, out, beta))
    return out, BatchNormCache(x, xhat, mean, var, std, gamma, eps, train), running


def batchnorm_backward(dout, cache):
    """Backward pass of :func:`batchnorm_forward`, through the staged graph.

    Each intermediate of the forward pass gets its own gradient, in reverse order:

    .. math::
        \\frac{\\partial L}{\\partial \\hat x_i} &= \\gamma\\, \\text{dout}_i \\\\
        \\frac{\\partial L}{\\partial \\sigma^2} &= -\\frac12 (\\sigma^2+\\varepsilon)^{-3/2}
            \\sum_i \\frac{\\partial L}{\\partial \\hat x_i} (x_i - \\mu) \\\\
        \\frac{\\partial L}{\\partial \\mu} &= -\\frac{1}{\\sqrt{\\sigma^2+\\varepsilon}}
            \\sum_i \\frac{\\partial L}{\\partial \\hat x_i}
            - \\frac{2}{N} \\frac{\\partial L}{\\partial \\sigma^2} \\sum_i (x_i - \\mu) \\\\
        \\frac{\\partial L}{\\partial x_i} &= \\frac{\\partial L}{\\partial \\hat x_i}
            \\frac{1}{\\sqrt{\\sigma^2+\\varepsilon}}
            + \\frac{\\partial L}{\\partial \\sigma^2} \\frac{2 (x_i - \\mu)}{N}
            + \\frac{\\partial L}{\\partial \\mu} \\frac1N

    (the second term of dL/dmu is zero, since the deviations sum to zero, but
    it is what the graph says). In evaluation mode mean and variance are
    constants, and ``dx = gamma * dout / sqrt(var + eps)``.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma : ndarray of shape (D,)
        :math:`\\sum_i \\text{dout}_i \\hat x_i`
    dbeta : ndarray of shape (D,)
        :math:`\\sum_i \\text{dout}_i`
    """
    func = "batchnorm_backward"
    c = _check_cache(cache, BatchNormCache, func)
    dout = _check_dout(dout, c.x.shape, func)
    dbeta = dout.sum(axis=0)
    dgamma = (dout * c.xhat).sum(axis=0)
    dxhat = dout * c.gamma
    if not c.train:
        return dxhat / c.std, dgamma, dbeta
    n = c.x.shape[0]
    xmu = c.x - c.mean
    dvar = -0.5 * (dxhat * xmu).sum(axis=0) / (c.std ** 3)
    dmean = -dxhat.sum(axis=0) / c.std - 2.0 * dvar * xmu.sum(axis=0) / n
    dx = dxhat / c.std + dvar * 2.0 * xmu / n + dmean / n  # three paths: direct, through var, through mean
    return dx, dgamma, dbeta


def batchnorm_backward_compact(dout, cache):
    """Backward pass of :func:`batchnorm_forward`, in one simplified expression.

    Substituting the staged gradients into each other and using
    :math:`\\sum_i (x_i - \\mu) = 0` gives, per feature,

    .. math:: \\frac{\\partial L}{\\partial x_i} = \\frac{\\gamma}{N \\sqrt{\\sigma^2 + \\varepsilon}}
              \\Big(N\\, \\text{dout}_i - \\sum_j \\text{dout}_j - \\hat x_i \\sum_j \\text{dout}_j \\hat x_j\\Big)

    which is the incoming gradient with its mean and its component along
    ``xhat`` removed: hence ``sum_i dx_i = 0``, and ``sum_i dx_i xhat_i = 0``
    up to a term of order ``eps / var``.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma, dbeta : ndarray of shape (D,)
        As in :func:`batchnorm_backward`.
    """
    func = "batchnorm_backward_compact"
    c = _check_cache(cache, BatchNormCache, func)
    return _batchnorm_backward_compact(_check_dout(dout, c.x.shape, func), c)


def _batchnorm_backward_compact(dout, c: BatchNormCache):
    """:func:`batchnorm_backward_compact` on a checked ``dout``: two (N, D) arrays, dx and a scratch."""
    dbeta = dout.sum(axis=0)
    scratch = dout * c.xhat
    dgamma = scratch.sum(axis=0)
    if not c.train:
        return dout * c.gamma / c.std, dgamma, dbeta
    n = c.x.shape[0]
    # dx = (gamma / (N std)) * (N dout - dbeta - xhat * dgamma): dbeta, dgamma are exactly the two sums,
    # and the bracket is built term by term in one array
    dx = n * dout
    dx = np.subtract(dx, dbeta, out=_spare(dx, dx, dbeta))
    along_xhat = np.multiply(c.xhat, dgamma, out=_spare(scratch, c.xhat, dgamma))
    dx = np.subtract(dx, along_xhat, out=_spare(dx, dx, along_xhat))
    scale = c.gamma / (n * c.std)
    return np.multiply(scale, dx, out=_spare(dx, scale, dx)), dgamma, dbeta


# --------------------------------------------------------------------------- layer norm

def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization: each sample normalized over its D features.

    .. math:: \\mu_n = \\frac1D \\sum_d x_{nd}, \\quad
              \\sigma_n^2 = \\frac1D \\sum_d (x_{nd} - \\mu_n)^2, \\quad
              y_{nd} = \\gamma_d \\frac{x_{nd} - \\mu_n}{\\sqrt{\\sigma_n^2 + \\varepsilon}} + \\beta_d

    The same in training and evaluation, and independent of the batch size.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma, beta : ndarray of shape (D,)
    eps : float > 0, default 1e-5

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : LayerNormCache
    """
    func = "layernorm_forward"
    x, gamma, beta = _check_x_and_params(x, {"gamma": gamma, "beta": beta}, func)
    eps = check_positive(eps, "eps", func)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = (x - mean) / std
    return gamma * xhat + beta, LayerNormCache(xhat, std, gamma)


def layernorm_backward(dout, cache):
    """Backward pass of :func:`layernorm_forward`.

    The batch-norm formula with the roles of the axes swapped: with
    :math:`g = \\gamma \\odot \\text{dout}` (the gradient with respect to xhat),

    .. math:: \\frac{\\partial L}{\\partial x_{nd}} = \\frac{1}{D \\sqrt{\\sigma_n^2 + \\varepsilon}}
              \\Big(D g_{nd} - \\sum_k g_{nk} - \\hat x_{nd} \\sum_k g_{nk} \\hat x_{nk}\\Big)

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : LayerNormCache

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma : ndarray of shape (D,)
        :math:`\\sum_n \\text{dout}_{n} \\hat x_{n}`
    dbeta : ndarray of shape (D,)
        :math:`\\sum_n \\text{dout}_{n}`
    """
    func = "layernorm_backward"
    c = _check_cache(cache, LayerNormCache, func)
    dout = _check_dout(dout, c.xhat.shape, func)
    d = c.xhat.shape[1]
    g = dout * c.gamma
    dx = (d * g - g.sum(axis=1, keepdims=True)
          - c.xhat * (g * c.xhat).sum(axis=1, keepdims=True)) / (d * c.std)  # sums over features, not the batch
    return dx, (dout * c.xhat).sum(axis=0), dout.sum(axis=0)


# --------------------------------------------------------------------------- RMS norm

def rmsnorm_forward(x, gamma, eps=1e-8):
    """RMS normalization: each sample divided by its root mean square, no centering.

    .. math:: r_n = \\sqrt{\\frac1D \\sum_d x_{nd}^2 + \\varepsilon}, \\qquad
              y_{nd} = \\gamma_d \\, x_{nd} / r_n

    Parameters
    ----------
    x : ndarray of shape (N, D)
    gamma : ndarray of shape (D,)
    eps : float > 0, default 1e-8

    Returns
    -------
    out : ndarray of shape (N, D)
    cache : RMSNormCache
    """
    func = "rmsnorm_forward"
    x, gamma = _check_x_and_params(x, {"gamma": gamma}, func)
    eps = check_positive(eps, "eps", func)
    rms = np.sqrt((x * x).mean(axis=1, keepdims=True) + eps)
    xhat = x / rms
    return gamma * xhat, RMSNormCache(xhat, rms, gamma)


def rmsnorm_backward(dout, cache):
    """Backward pass of :func:`rmsnorm_forward`.

    Since :math:`\\partial r_n / \\partial x_{nk} = x_{nk} / (D r_n)`, with
    :math:`g = \\gamma \\odot \\text{dout}`,

    .. math:: \\frac{\\partial L}{\\partial x_{nd}} = \\frac{1}{r_n}
              \\Big(g_{nd} - \\hat x_{nd} \\frac1D \\sum_k g_{nk} \\hat x_{nk}\\Big)

    (layer norm's formula without the mean-removal term).

    Parameters
    ----------
    dout : ndarray of shape (N, D)
    cache : RMSNormCache

    Returns
    -------
    dx : ndarray of shape (N, D)
    dgamma : ndarray of shape (D,)
        :math:`\\sum_n \\text{dout}_n \\hat x_n`
    """
    func = "rmsnorm_backward"
    c = _check_cache(cache, RMSNormCache, func)
    dout = _check_dout(dout, c.xhat.shape, func)
    g = dout * c.gamma
    dx = (g - c.xhat * (g * c.xhat).mean(axis=1, keepdims=True)) / c.rms
    return dx, (dout * c.xhat).sum(axis=0)
