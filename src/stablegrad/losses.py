"""Loss functions, each returning the loss and its gradient.

Every loss has the same shape as a layer's backward pass seen from the top:

    loss, dpred = mse_loss(pred, y)

``loss`` is a Python float, the *mean* over the batch (and over outputs), and
``dpred`` is dL/dpred with the shape and float dtype of ``pred``; it already
contains the 1/N of the mean, so it can be handed straight to the last layer's
backward pass.

=========================  ===============================================  ==========================
loss                       L                                                dL/d(input)
=========================  ===============================================  ==========================
``mse_loss``               mean (pred - y)^2                                2 (pred - y) / size
``bce_loss``               -mean [y log p + (1 - y) log(1 - p)]             (p - y) / (p (1 - p) size)
``bce_with_logits``        the same with p = sigmoid(z), computed stably    (sigmoid(z) - y) / size
``softmax_cross_entropy``  -mean_i log softmax(z_i)[y_i]                    (softmax(z) - onehot(y)) / N
=========================  ===============================================  ==========================

The sigmoid-then-BCE and softmax-then-cross-entropy pairs are fused on logits:
their gradient ``prediction - target`` never divides by a saturated
``p (1 - p)``, which is why :func:`stablegrad.network.train` uses them.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_choice, check_positive
from stablegrad.activations import sigmoid

__all__ = [
    "mse_loss", "bce_loss", "bce_with_logits", "softmax", "softmax_cross_entropy",
    "Loss", "LOSSES", "ALIASES", "get_loss",
]


# --------------------------------------------------------------------------- validation

def _targets(y, pred: np.ndarray, func: str, name: str = "y") -> np.ndarray:
    """Return targets shaped and typed like ``pred``.

    A 1-D ``y`` of shape (N,) is accepted for a prediction of shape (N, 1), the
    usual layout of labels next to a one-output network.
    """
    if isinstance(y, np.ndarray) and y.dtype == bool:
        y = y.astype(pred.dtype)
    y = as_float_array(y, name, func)
    if y.shape != pred.shape:
        if y.ndim == 1 and pred.shape == (y.shape[0], 1):
            y = y.reshape(-1, 1)
        else:
            raise ValueError(f"{func}: {name} must have the same shape as the prediction "
                             f"{pred.shape} (or ({pred.shape[0]},) for one output); got shape {y.shape}")
    return y.astype(pred.dtype, copy=False)


def _check_binary_targets(y: np.ndarray, func: str) -> None:
    if not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1:
        raise ValueError(f"{func}: y must hold targets in [0, 1] (labels 0 and 1, or probabilities); "
                         f"got values in [{y.min():.3g}, {y.max():.3g}]")


# --------------------------------------------------------------------------- MSE

def _mse(pred: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    diff = pred - y
    loss = float(np.vdot(diff, diff)) / diff.size
    return loss, diff * pred.dtype.type(2.0 / diff.size)


def mse_loss(pred, y) -> tuple[float, np.ndarray]:
    """Mean squared error.

    .. math:: L = \\frac{1}{S} \\sum_j (\\hat y_j - y_j)^2, \\qquad
              \\frac{\\partial L}{\\partial \\hat y_j} = \\frac{2}{S} (\\hat y_j - y_j)

    with ``S = pred.size`` (N for one output).

    Parameters
    ----------
    pred : ndarray of shape (N, M)
        Predictions (any shape is accepted).
    y : ndarray of shape (N, M), or (N,) when M = 1
        Targets.

    Returns
    -------
    loss : float
    dpred : ndarray of shape (N, M), dtype of ``pred``
    """
    func = "mse_loss"
    pred = as_float_array(pred, "pred", func)
    y = _targets(y, pred, func)
    return _mse(pred, y)


# --------------------------------------------------------------------------- binary cross-entropy

def _bce(p: np.ndarray, y: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
    pc = np.clip(p, eps, 1.0 - eps)
    one = p.dtype.type(1.0)
    loss = -float(np.sum(y * np.log(pc) + (one - y) * np.log1p(-pc))) / p.size
    dp = (pc - y) / (pc * (one - pc) * p.dtype.type(p.size))
    return loss, dp


def bce_loss(p, y, eps: float = 1e-7) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on probabilities.

    .. math:: L = -\\frac{1}{S} \\sum_j \\big[y_j \\log p_j + (1 - y_j) \\log(1 - p_j)\\big],
              \\qquad \\frac{\\partial L}{\\partial p_j} = \\frac{p_j - y_j}{S\\, p_j (1 - p_j)}

    ``p`` is first clipped to ``[eps, 1 - eps]`` so that ``log 0`` never
    happens; the gradient is the formula above evaluated at the clipped ``p``
    (finite, and pointing the right way, even for a saturated ``p``). Prefer
    :func:`bce_with_logits` when you have the logits: near p = 0 or 1 the
    division by ``p (1 - p)`` loses all precision.

    Parameters
    ----------
    p : ndarray of shape (N, M)
        Predicted probabilities in [0, 1].
    y : ndarray of shape (N, M), or (N,) when M = 1
        Targets in [0, 1] (labels 0/1 or soft labels).
    eps : float, default 1e-7
        Clipping margin, in (0, 0.5).

    Returns
    -------
    loss : float
    dp : ndarray of shape (N, M), dtype of ``p``
    """
    func = "bce_loss"
    p = as_float_array(p, "p", func)
    y = _targets(y, p, func)
    eps = check_positive(eps, "eps", func)
    if eps >= 0.5:
        raise ValueError(f"{func}: eps must be in (0, 0.5); got {eps!r}")
    if np.any(~np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError(f"{func}: p must hold probabilities in [0, 1]; got values in "
                         f"[{np.nanmin(p):.3g}, {np.nanmax(p):.3g}] (pass logits to bce_with_logits)")
    _check_binary_targets(y, func)
    return _bce(p, y, eps)


def _bce_logits(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    # log(1 + e^z) - y z, written so that exp only ever sees -|z| <= 0
    loss = float(np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))) / z.size
    return loss, (sigmoid(z) - y) * z.dtype.type(1.0 / z.size)


def bce_with_logits(z, y) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on logits, i.e. sigmoid then BCE, fused and stable.

    .. math:: L = \\frac{1}{S} \\sum_j \\big[\\max(z_j, 0) - z_j y_j + \\log(1 + e^{-|z_j|})\\big],
              \\qquad \\frac{\\partial L}{\\partial z_j} = \\frac{\\sigma(z_j) - y_j}{S}

    The first expression equals ``-[y log s + (1 - y) log(1 - s)]`` with
    ``s = sigmoid(z)`` but never overflows; the gradient is bounded by 1/S.

    Parameters
    ----------
    z : ndarray of shape (N, M)
        Logits (any real values).
    y : ndarray of shape (N, M), or (N,) when M = 1
        Targets in [0, 1].

    Returns
    -------
    loss : float
    dz : ndarray of shape (N, M), dtype of ``z``
    """
    func = "bce_with_logits"
    z = as_float_array(z, "z", func)
    y = _targets(y, z, func)
    _check_binary_targets(y, func)
    return _bce_logits(z, y)


# --------------------------------------------------------------------------- softmax cross-entropy

def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))  # shift: the largest exponent is 0, no overflow
    return e / e.sum(axis=1, keepdims=True)


def softmax(logits) -> np.ndarray:
    """Row-wise softmax, :math:`\\mathrm{softmax}(z)_k = e^{z_k} / \\sum_j e^{z_j}`.

    Computed as ``exp(z - max z)`` so that no exponent is positive.

    Parameters
    ----------
    logits : ndarray of shape (N, K)

    Returns
    -------
    ndarray of shape (N, K), rows summing to 1, dtype of ``logits``
    """
    z = as_float_array(logits, "logits", "softmax", ndim=2, shape="(N, K)")
    return _softmax(z)


def _labels_to_targets(y, z: np.ndarray, func: str) -> np.ndarray:
    """Integer labels (N,) -> one-hot (N, K); probabilities (N, K) are checked and kept."""
    n, k = z.shape
    y_arr = np.asarray(y)
    if y_arr.ndim == 1:
        if y_arr.dtype.kind not in "iuf" or y_arr.shape[0] != n:
            raise ValueError(f"{func}: y must be integer labels of shape ({n},) or probabilities of "
                             f"shape ({n}, {k}); got shape {y_arr.shape} and dtype {y_arr.dtype}")
        if y_arr.dtype.kind == "f" and not np.all(np.isfinite(y_arr) & (y_arr == np.round(y_arr))):
            raise ValueError(f"{func}: 1-D y must hold integer class labels; got non-integer values")
        labels = y_arr.astype(np.int64)
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"{func}: labels in y must be in [0, {k - 1}] for K = {k} classes; "
                             f"got values in [{labels.min()}, {labels.max()}]")
        onehot = np.zeros_like(z)
        onehot[np.arange(n), labels] = 1.0
        return onehot
    Y = as_float_array(y_arr, "y", func, ndim=2, shape=f"({n}, {k})")
    if Y.shape != z.shape:
        raise ValueError(f"{func}: y must be integer labels of shape ({n},) or probabilities of "
                         f"shape ({n}, {k}); got shape {Y.shape}")
    if not np.all(np.isfinite(Y)) or Y.min() < 0 or not np.allclose(Y.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"{func}: 2-D y must hold one probability distribution per row "
                         f"(non-negative, summing to 1)")
    return Y.astype(z.dtype, copy=False)


def _softmax_ce(z: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    n = z.shape[0]
    # -sum_k Y_k log softmax_k = log sum_j e^{z_j} - sum_k Y_k z_k   (rows of Y sum to 1)
    loss = float(np.sum(np.log(s)) - np.vdot(Y, shifted)) / n
    return loss, (e / s - Y) * z.dtype.type(1.0 / n)


def softmax_cross_entropy(logits, y) -> tuple[float, np.ndarray]:
    """Softmax followed by cross-entropy, fused on logits.

    .. math:: L = \\frac{1}{N} \\sum_i \\Big[\\log \\sum_k e^{z_{ik}} - \\sum_k Y_{ik} z_{ik}\\Big],
              \\qquad \\frac{\\partial L}{\\partial z_{ik}} = \\frac{\\mathrm{softmax}(z_i)_k - Y_{ik}}{N}

    where ``Y`` is the one-hot encoding of the labels (or the given target
    distribution).

    Parameters
    ----------
    logits : ndarray of shape (N, K)
    y : ndarray of shape (N,) with integer labels in [0, K), or of shape (N, K)
        with one probability distribution per row.

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (N, K), dtype of ``logits``
    """
    func = "softmax_cross_entropy"
    z = as_float_array(logits, "logits", func, ndim=2, shape="(N, K)")
    Y = _labels_to_targets(y, z, func)
    return _softmax_ce(z, Y)


# --------------------------------------------------------------------------- registry

class Loss(NamedTuple):
    """A loss by name: the function computing it, and what a training loop needs to know about it.

    Attributes
    ----------
    name : str
    fn : callable
        The public function, e.g. :func:`mse_loss`: ``fn(pred, y) -> (loss, dpred)``, inputs checked.
    on_logits : bool
        True when the loss expects pre-activations (it contains the output non-linearity itself).
    kind : {"regression", "binary", "multiclass"}
        What the targets are: real values, values in [0, 1], or one class per row.
    core : callable, optional
        ``fn`` without the input checks, on targets already prepared by :meth:`targets`: what a
        training loop calls at every step, after validating its data once.
    """

    name: str
    fn: Callable[..., tuple[float, np.ndarray]]
    on_logits: bool
    kind: str = "regression"
    core: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]] | None = None

    def targets(self, y, n: int, m: int, dtype, func: str) -> np.ndarray:
        """``y`` checked once and returned as the float array (N, M) that :attr:`core` expects.

        Integer labels (N,) become one-hot rows for ``"multiclass"``; (N,) targets become (N, 1)
        for one output; ``"binary"`` targets must lie in [0, 1]. Messages name ``func``.
        """
        if self.kind == "multiclass":
            y_arr = np.asarray(y)
            if y_arr.ndim == 0 or y_arr.shape[0] != n:
                raise ValueError(f"{func}: y must have one label per row of x ({n}); got shape {y_arr.shape}")
            return _labels_to_targets(y_arr, np.zeros((n, m), dtype), func)
        if isinstance(y, np.ndarray) and y.dtype == bool:
            y = y.astype(dtype)
        y = as_float_array(y, "y", func)
        if y.ndim == 1 and m == 1:
            y = y.reshape(-1, 1)
        if y.shape != (n, m):
            raise ValueError(f"{func}: y must have shape (N, D_L) = ({n}, {m})"
                             + (f" or ({n},)" if m == 1 else "") + f"; got shape {y.shape}")
        if self.kind == "binary":
            _check_binary_targets(y, func)
        return y.astype(dtype, copy=False)


LOSSES: dict[str, Loss] = {
    "mse": Loss("mse", mse_loss, False, "regression", _mse),
    "bce": Loss("bce", bce_loss, False, "binary", lambda p, y: _bce(p, y, 1e-7)),
    "bce_with_logits": Loss("bce_with_logits", bce_with_logits, True, "binary", _bce_logits),
    "softmax_cross_entropy": Loss("softmax_cross_entropy", softmax_cross_entropy, True, "multiclass", _softmax_ce),
}
ALIASES = {"cross_entropy": "softmax_cross_entropy"}  # other names :func:`get_loss` accepts


def get_loss(name) -> Loss:
    """Look up a loss by name (``"mse"``, ``"bce"``, ``"bce_with_logits"``,
    ``"softmax_cross_entropy"`` or its alias ``"cross_entropy"``); a :class:`Loss` is returned unchanged."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str):
        raise TypeError(f"get_loss: name must be a string such as 'mse'; got {type(name).__name__}")
    check_choice(name, "name", "get_loss", LOSSES.keys() | ALIASES.keys())
    return LOSSES[ALIASES.get(name, name)]
