"""Residual blocks, stacks of them, and the variance and gradients they carry through depth.

A residual block adds a *branch* ``F`` to an identity path:

.. math:: y = x + \\alpha F(x), \\qquad F(u) = f(u W_1 + b_1) W_2 + b_2,

so its Jacobian is :math:`\\partial y / \\partial x = I + \\alpha\\, \\partial F / \\partial x`. Through L
blocks the gradient is multiplied by L such factors, and expanding the product shows a term, the identity,
that no weight matrix ever multiplies: the gradient always has a path back to the first block.

Layer norm (``norm``) can sit in two places, as in transformers without attention:

=========  ===============================  =================================================
norm       block                            what normalization does
=========  ===============================  =================================================
"none"     y = x + alpha F(x)               nothing: the stream's variance grows with depth
"pre"      y = x + alpha F(LN(x))           the branch sees a unit input; the stream grows linearly
"post"     y = LN(x + alpha F(x))           the stream is renormalized after every block
=========  ===============================  =================================================

At initialization (:func:`init_residual_block`) the branch alone preserves the mean square of its input
(gain g = 1 for relu, leaky relu and identity, in expectation over the weights), so each block multiplies the
stream's variance by ``1 + c`` with ``c = alpha**2 * g`` (:func:`residual_variance`): exponential growth for
``alpha = 1``, a bounded factor ``(1 + 1/L)^L < e`` for ``alpha = 1/sqrt(L)``, none at all with a
zero-initialized last layer (the block starts as the identity).

A stack is a list of blocks (:func:`residual_stack_forward`); a :class:`ResidualNet` puts an input layer
before it and an output layer (optionally after a final layer norm) after it, and :func:`train_residual` trains one with any optimizer of
:mod:`stablegrad.optim`, a loss of :data:`stablegrad.losses.LOSSES` and an optional learning-rate warmup.

Notation: N batch size, D width of the stream, H width of the branch's hidden layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from stablegrad._validate import as_float_array, check_caches, check_choice, check_int, check_positive, check_rng
from stablegrad.activations import ACTIVATIONS, get_activation
# the layer kernels without input checks: a block is checked once, at the boundary, never again per layer
from stablegrad.layers import (
    ActivationCache, DenseCache, _activation_backward, _activation_forward, _dense_backward, _dense_forward,
)
from stablegrad.losses import ALIASES, LOSSES
from stablegrad.normalization import LayerNormCache, layernorm_backward, layernorm_forward
from stablegrad.optim import get_optimizer

__all__ = [
    "NORMS", "ResidualBlock", "ResidualCache", "residual_forward", "residual_backward",
    "init_residual_block", "init_residual_stack", "residual_stack_forward", "residual_stack_backward",
    "block_gradient_norms", "residual_gradient_norms", "stream_variances", "residual_variance",
    "ResidualNet", "init_residual_net", "residual_loss_and_grads", "ResidualHistory", "train_residual",
]

#: Where a block's layer norm sits: nowhere, inside the branch, or after the sum.
NORMS = ("none", "pre", "post")
_ARRAYS = ("W1", "b1", "W2", "b2", "gamma", "beta")


# =========================================================================== one block

class ResidualBlock(NamedTuple):
    """One residual block: its parameters and its configuration.

    Attributes
    ----------
    W1 : ndarray of shape (D, H)
    b1 : ndarray of shape (H,)
    W2 : ndarray of shape (H, D)
    b2 : ndarray of shape (D,)
    gamma, beta : ndarray of shape (D,), or None when ``norm == "none"``
        The layer norm's scale and shift.
    activation : str
        The branch's non-linearity f.
    norm : {"none", "pre", "post"}
    alpha : float
        The branch scale: ``y = x + alpha F(...)``.
    eps : float
        The layer norm's variance epsilon.
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    activation: str = "relu"
    norm: str = "none"
    alpha: float = 1.0
    eps: float = 1e-5

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The trainable arrays by name: ``W1, b1, W2, b2`` and, with a norm, ``gamma, beta``."""
        return {k: getattr(self, k) for k in _ARRAYS if getattr(self, k) is not None}

    def with_params(self, params: Mapping) -> "ResidualBlock":
        """A copy of this block with other arrays (the keys of :attr:`params`)."""
        return self._replace(**params)


class ResidualCache(NamedTuple):
    """Everything :func:`residual_backward` needs (references, not copies)."""

    x: np.ndarray               # (N, D) the block's input
    block: ResidualBlock        # its parameters and configuration
    ln: LayerNormCache | None   # the norm of x ("pre") or of x + alpha F ("post")
    dense1: DenseCache          # the branch's input u (x, or LN(x) for "pre") and W1
    act: ActivationCache        # z = u W1 + b1 and h = f(z)
    dense2: DenseCache          # h and W2


def _check_block(block, d: int, func: str, where: str = "block", d_label: str = "x.shape[1]") -> ResidualBlock:
    """``block`` with checked arrays and configuration (alpha and eps as Python floats), or a clear error."""
    if not isinstance(block, ResidualBlock):
        raise TypeError(f"{func}: {where} must be a ResidualBlock (see init_residual_block); "
                        f"got {type(block).__name__}")
    if not isinstance(block.activation, str):
        raise TypeError(f"{func}: {where}.activation must be an activation name such as 'relu'; "
                        f"got {type(block.activation).__name__}")
    check_choice(block.activation, f"{where}.activation", func, ACTIVATIONS)
    check_choice(block.norm, f"{where}.norm", func, NORMS)
    if isinstance(block.alpha, bool) or not isinstance(block.alpha, (int, float, np.floating, np.integer)) \
            or not math.isfinite(block.alpha):
        raise ValueError(f"{func}: {where}.alpha must be a finite real number; got {block.alpha!r}")
    eps = check_positive(block.eps, f"{where}.eps", func)
    W1 = as_float_array(block.W1, f"{where}.W1", func, ndim=2, shape="(D, H)")
    if W1.shape[0] != d:
        raise ValueError(f"{func}: {where}.W1 must have shape (D, H) with D = {d_label} = {d}; got shape {W1.shape}")
    h = W1.shape[1]
    expected = {"b1": (h,), "W2": (h, d), "b2": (d,)}
    if block.norm != "none":
        expected.update(gamma=(d,), beta=(d,))
    arrays = {"W1": W1}
    for name, shape in expected.items():
        text = {"b1": "(H,)", "W2": "(H, D)"}.get(name, "(D,)")
        value = getattr(block, name)
        if value is None:
            raise ValueError(f"{func}: {where}.{name} must be an array of shape {text} = {shape} with "
                             f"norm={block.norm!r}; got None")
        arr = as_float_array(value, f"{where}.{name}", func, ndim=len(shape), shape=text)
        if arr.shape != shape:
            raise ValueError(f"{func}: {where}.{name} must have shape {text} = {shape} (D = {d}, "
                             f"H = W1.shape[1] = {h}); got shape {arr.shape}")
        arrays[name] = arr
    if block.norm == "none" and (block.gamma is not None or block.beta is not None):
        raise ValueError(f"{func}: {where}.gamma and {where}.beta must be None with norm='none' "
                         f"(a block without a norm has no norm parameters)")
    return block._replace(alpha=float(block.alpha), eps=eps, **arrays)


def residual_forward(x, block):
    """Forward pass of one residual block.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    block : ResidualBlock

    Returns
    -------
    y : ndarray of shape (N, D), the dtype of ``x`` and the block's arrays
        ``norm="none"``: :math:`y = x + \\alpha F(x)`;
        ``"pre"``: :math:`y = x + \\alpha F(\\mathrm{LN}(x))`;
        ``"post"``: :math:`y = \\mathrm{LN}(x + \\alpha F(x))`,
        with :math:`F(u) = f(u W_1 + b_1) W_2 + b_2`.
    cache : ResidualCache

    Raises
    ------
    ValueError, TypeError
        If a shape or the configuration does not fit, e.g.
        ``residual_forward: block.W1 must have shape (D, H) with D = x.shape[1] = 5; got shape (4, 8)``.
    """
    func = "residual_forward"
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    return _residual_forward(x, _check_block(block, x.shape[1], func))


def _residual_forward(x, block: ResidualBlock):
    u, ln = x, None
    if block.norm == "pre":
        u, ln = layernorm_forward(x, block.gamma, block.beta, block.eps)  # the branch sees a normalized x
    z, dense1 = _dense_forward(u, block.W1, block.b1)
    h, act = _activation_forward(z, get_activation(block.activation))
    f, dense2 = _dense_forward(h, block.W2, block.b2)
    y = x + block.alpha * f                    # the skip: x reaches y untouched by any weight
    if block.norm == "post":
        y, ln = layernorm_forward(y, block.gamma, block.beta, block.eps)  # the sum is renormalized
    return y, ResidualCache(x, block, ln, dense1, act, dense2)


def residual_backward(dout, cache):
    """Backward pass of :func:`residual_forward`.

    The two paths of the block add up: with :math:`g = \\partial L/\\partial (x + \\alpha F)`
    (``dout`` itself, or ``dout`` through the post-norm's backward pass),

    .. math:: \\frac{\\partial L}{\\partial x} = g + \\alpha\\, g\\, \\frac{\\partial F}{\\partial x},
              \\qquad \\frac{\\partial L}{\\partial W_2} = h^T (\\alpha g), \\qquad
              \\frac{\\partial L}{\\partial W_1} = u^T \\big((\\alpha g W_2^T) \\odot f'(z)\\big)

    where ``u`` is the branch's input (``LN(x)`` with ``norm="pre"``, whose backward pass then carries the
    branch's gradient back to ``x``), ``z = u W1 + b1`` and ``h = f(z)``.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
        Upstream gradient dL/dy.
    cache : ResidualCache
        From :func:`residual_forward`.

    Returns
    -------
    dx : ndarray of shape (N, D)
    grads : dict of str to ndarray
        The keys and shapes of ``block.params``: ``W1, b1, W2, b2`` (and ``gamma, beta`` with a norm).
    """
    func = "residual_backward"
    if not isinstance(cache, ResidualCache):
        raise TypeError(f"{func}: cache must be the ResidualCache returned by residual_forward; "
                        f"got {type(cache).__name__}")
    dout = as_float_array(dout, "dout", func, ndim=2, shape="(N, D)")
    if dout.shape != cache.x.shape:
        raise ValueError(f"{func}: dout must have shape (N, D) = {cache.x.shape} like the forward output; "
                         f"got shape {dout.shape}")
    return _residual_backward(dout, cache)


def _residual_backward(dout, cache: ResidualCache):
    block, grads = cache.block, {}
    g = dout
    if block.norm == "post":
        g, grads["gamma"], grads["beta"] = layernorm_backward(dout, cache.ln)  # first back through the norm
    df = block.alpha * g                                                  # the branch gets alpha times it
    dh, grads["W2"], grads["b2"] = _dense_backward(df, cache.dense2.x, cache.dense2.W)    # W2^T
    dz = _activation_backward(dh, cache.act)                                              # f'(z), diagonal
    du, grads["W1"], grads["b1"] = _dense_backward(dz, cache.dense1.x, cache.dense1.W)    # W1^T
    if block.norm == "pre":
        du, grads["gamma"], grads["beta"] = layernorm_backward(du, cache.ln)  # the branch's path through LN
    dx = g + du                                      # I + alpha dF/dx: the identity path adds g unchanged
    return dx, {k: grads[k] for k in _ARRAYS if k in grads}


# =========================================================================== initialization

def _check_config(activation, norm, alpha, func: str) -> float:
    if not isinstance(activation, str):
        raise TypeError(f"{func}: activation must be an activation name such as 'relu'; "
                        f"got {type(activation).__name__}")
    check_choice(activation, "activation", func, ACTIVATIONS)
    check_choice(norm, "norm", func, NORMS)
    return check_positive(alpha, "alpha", func, allow_zero=True)


def _check_dtype(dtype, func: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{func}: dtype must be a floating-point dtype; got {dtype}")
    return dtype


def _draw_block(d, h, rng, activation, norm, alpha, zero_init_last, dtype) -> ResidualBlock:
    # W1: Var = 1 / (c_f D), so that f(z) keeps the mean square of the branch input (He for relu);
    # W2: Var = 1 / H, so that the second layer keeps it too: the branch's gain is c_f * (1 / c_f) = 1
    c_f = ACTIVATIONS[activation].second_moment or 1.0
    W1 = rng.standard_normal((d, h)) * math.sqrt(1.0 / (c_f * d))
    W2 = np.zeros((h, d)) if zero_init_last else rng.standard_normal((h, d)) * math.sqrt(1.0 / h)
    gamma, beta = (None, None) if norm == "none" else (np.ones(d, dtype), np.zeros(d, dtype))
    return ResidualBlock(W1.astype(dtype), np.zeros(h, dtype), W2.astype(dtype), np.zeros(d, dtype),
                         gamma, beta, activation, norm, alpha)


def init_residual_block(width, hidden, rng, *, activation="relu", norm="none", alpha=1.0,
                        zero_init_last=False, dtype=np.float64) -> ResidualBlock:
    """A freshly initialized residual block.

    ``W1`` is drawn with variance :math:`1/(c_f D)` (:math:`c_f` the activation's second-moment factor,
    1/2 for relu: He initialization) and ``W2`` with variance :math:`1/H`, so that the branch alone keeps
    the mean square of its input: gain g = 1 in expectation for relu, leaky relu and identity (less for
    tanh once it saturates). Biases and ``beta`` start at 0, ``gamma`` at 1.

    Parameters
    ----------
    width : int
        D, the width of the stream.
    hidden : int
        H, the width of the branch's hidden layer.
    rng : numpy.random.Generator
    activation : str, default "relu"
    norm : {"none", "pre", "post"}, default "none"
    alpha : float >= 0, default 1.0
        Branch scale; ``1 / sqrt(L)`` for a stack of L blocks keeps its variance bounded.
    zero_init_last : bool, default False
        Start ``W2`` at zero (SkipInit/ReZero/Fixup style): ``F = 0``, and the block starts as the
        identity (``LN`` of its input with ``norm="post"``).
    dtype : float dtype, default float64

    Returns
    -------
    ResidualBlock
    """
    func = "init_residual_block"
    d, h = check_int(width, "width", func), check_int(hidden, "hidden", func)
    rng = check_rng(rng, func)
    alpha = _check_config(activation, norm, alpha, func)
    if not isinstance(zero_init_last, bool):
        raise TypeError(f"{func}: zero_init_last must be True or False; got {type(zero_init_last).__name__}")
    return _draw_block(d, h, rng, activation, norm, alpha, zero_init_last, _check_dtype(dtype, func))


def init_residual_stack(width, depth, rng, *, hidden=None, activation="relu", alpha=1.0, zero_init_last=False,
                        norm="none", dtype=np.float64) -> list[ResidualBlock]:
    """``depth`` blocks of :func:`init_residual_block`, drawn from ``rng`` block 1 first.

    Parameters
    ----------
    width : int
        D, the width of the stream.
    depth : int
        L, the number of blocks.
    rng : numpy.random.Generator
    hidden : int, optional
        H; defaults to ``width``.
    activation, alpha, zero_init_last, norm, dtype
        As in :func:`init_residual_block`, the same for every block. ``alpha = 1 / np.sqrt(depth)``
        is the depth-scaled branch.

    Returns
    -------
    list of ResidualBlock
    """
    func = "init_residual_stack"
    d, depth = check_int(width, "width", func), check_int(depth, "depth", func)
    h = d if hidden is None else check_int(hidden, "hidden", func)
    rng = check_rng(rng, func)
    alpha = _check_config(activation, norm, alpha, func)
    if not isinstance(zero_init_last, bool):
        raise TypeError(f"{func}: zero_init_last must be True or False; got {type(zero_init_last).__name__}")
    dtype = _check_dtype(dtype, func)
    return [_draw_block(d, h, rng, activation, norm, alpha, zero_init_last, dtype) for _ in range(depth)]


# =========================================================================== stacks

def _check_blocks(blocks, d: int, func: str) -> list[ResidualBlock]:
    if isinstance(blocks, ResidualBlock) or not isinstance(blocks, (list, tuple)):
        raise TypeError(f"{func}: blocks must be a list of ResidualBlock (see init_residual_stack); "
                        f"got {type(blocks).__name__}")
    if len(blocks) == 0:
        raise ValueError(f"{func}: blocks must contain at least one ResidualBlock; got an empty list")
    return [_check_block(b, d, func, f"blocks[{l}]") for l, b in enumerate(blocks)]


def residual_stack_forward(x, blocks):
    """Forward pass through a stack of residual blocks, block 1 first.

    Parameters
    ----------
    x : ndarray of shape (N, D)
    blocks : list of ResidualBlock
        All of width D (their hidden widths and configurations may differ).

    Returns
    -------
    out : ndarray of shape (N, D)
        :math:`x_L`, where :math:`x_0 = x` and :math:`x_l = \\mathrm{block}_l(x_{l-1})`.
    caches : list of ResidualCache
        One per block; ``caches[l].x`` is :math:`x_l`, the input of block ``l + 1``.
    """
    func = "residual_stack_forward"
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    return _stack_forward(x, _check_blocks(blocks, x.shape[1], func))


def _stack_forward(x, blocks):
    caches = []
    for block in blocks:
        x, cache = _residual_forward(x, block)
        caches.append(cache)
    return x, caches


def residual_stack_backward(dout, caches, *, return_deltas=False):
    """Backward pass of :func:`residual_stack_forward`, last block first.

    Parameters
    ----------
    dout : ndarray of shape (N, D)
        dL/d(out).
    caches : list of ResidualCache
    return_deltas : bool, default False
        Also return the gradient with respect to every point of the stream.

    Returns
    -------
    dx : ndarray of shape (N, D)
        :math:`\\partial L/\\partial x_0 = \\partial L/\\partial x_L \\, J_L J_{L-1} \\cdots J_1` with
        :math:`J_l = I + \\alpha\\, \\partial F_l/\\partial x` (without norm).
    grads : list of dict
        One per block, block 1 first, with the keys of ``block.params``.
    deltas : list of ndarray, only with ``return_deltas=True``
        ``deltas[l]`` is :math:`\\partial L/\\partial x_l` (N, D) for l = 0 .. L: ``deltas[0]`` is ``dx``,
        ``deltas[L]`` is ``dout``.
    """
    func = "residual_stack_backward"
    check_caches(caches, ResidualCache, "residual_stack_forward", func)
    if not isinstance(return_deltas, bool):
        raise TypeError(f"{func}: return_deltas must be True or False; got {type(return_deltas).__name__}")
    dout = as_float_array(dout, "dout", func, ndim=2, shape="(N, D)")
    shape = caches[-1].x.shape
    if dout.shape != shape:
        raise ValueError(f"{func}: dout must have shape (N, D) = {shape} like the stack's output; "
                         f"got shape {dout.shape}")
    d, grads, deltas = _stack_backward(dout, caches)
    return (d, grads, deltas) if return_deltas else (d, grads)


def _stack_backward(dout, caches):
    d, grads, deltas = dout, [], [dout]
    for cache in reversed(caches):
        d, g = _residual_backward(d, cache)   # one factor I + alpha dF/dx per block
        grads.append(g)
        deltas.append(d)
    return d, grads[::-1], deltas[::-1]


# =========================================================================== what the chapter measures

def _block_groups(grads, func: str) -> list[dict]:
    """Per-block gradient dicts, from a stack's list or a net's flat dict (``"block{l}.W1"`` keys)."""
    if isinstance(grads, Mapping):
        groups: dict[int, dict] = {}
        for key, value in grads.items():
            if isinstance(key, str) and key.startswith("block") and "." in key:
                head, name = key.split(".", 1)
                groups.setdefault(int(head[5:]), {})[name] = value
        if not groups:
            raise ValueError(f"{func}: grads has no 'block<l>.<name>' keys; got keys {list(grads)[:6]}")
        return [groups[l] for l in sorted(groups)]
    if isinstance(grads, (list, tuple)) and len(grads) > 0 and all(isinstance(g, Mapping) for g in grads):
        return list(grads)
    raise TypeError(f"{func}: grads must be the list of per-block dicts of residual_stack_backward or the "
                    f"dict of residual_loss_and_grads; got {type(grads).__name__}")


def block_gradient_norms(grads, key=None) -> np.ndarray:
    """The norm of each block's parameter gradient, block 1 first.

    Parameters
    ----------
    grads : list of dict, or dict
        From :func:`residual_stack_backward` (one dict per block) or :func:`residual_loss_and_grads`
        (keys ``"block{l}.W1"``...).
    key : str, optional
        Only this parameter (``"W1"``, ``"W2"``...); by default all of the block's parameters together,
        :math:`\\sqrt{\\sum_p \\|\\partial L/\\partial p\\|_F^2}`.

    Returns
    -------
    ndarray of shape (L,), float64
    """
    func = "block_gradient_norms"
    groups = _block_groups(grads, func)
    if key is not None:
        check_choice(key, "key", func, _ARRAYS)
        missing = [l for l, g in enumerate(groups) if key not in g]
        if missing:
            raise ValueError(f"{func}: block {missing[0] + 1} has no gradient {key!r} (keys {list(groups[0])})")
    return np.array([math.sqrt(sum(float(np.vdot(v, v)) for k, v in g.items() if key is None or k == key))
                     for g in groups], dtype=np.float64)


def residual_gradient_norms(blocks, x, dout=None, *, key=None) -> np.ndarray:
    """Forward and backward through a stack at ``x``; each block's gradient norm (:func:`block_gradient_norms`).

    Parameters
    ----------
    blocks : list of ResidualBlock
    x : ndarray of shape (N, D)
    dout : ndarray of shape (N, D), optional
        Upstream gradient at the output; defaults to ones (the gradient of ``sum(out)``).
    key : str, optional
        As in :func:`block_gradient_norms`.

    Returns
    -------
    ndarray of shape (L,)
        ``norms[-1] / norms[0]`` far from 1 means gradients that grow or shrink through depth.
    """
    func = "residual_gradient_norms"
    x = as_float_array(x, "x", func, ndim=2, shape="(N, D)")
    out, caches = _stack_forward(x, _check_blocks(blocks, x.shape[1], func))
    if dout is None:
        dout = np.ones_like(out)
    else:
        dout = as_float_array(dout, "dout", func, ndim=2, shape="(N, D)")
        if dout.shape != out.shape:
            raise ValueError(f"{func}: dout must have the shape of the stack's output {out.shape}; "
                             f"got shape {dout.shape}")
    return block_gradient_norms(_stack_backward(dout, caches)[1], key)


def stream_variances(caches, out=None) -> np.ndarray:
    """The mean square of the stream at every depth, from a forward pass's caches.

    Parameters
    ----------
    caches : list of ResidualCache
        From :func:`residual_stack_forward`.
    out : ndarray of shape (N, D), optional
        The stack's output; when given, its mean square is appended.

    Returns
    -------
    ndarray of shape (L,), or (L + 1,) with ``out``
        :math:`\\overline{x_l^2}` over samples and features for l = 0 .. L - 1 (and L): the variance of
        a zero-mean stream, what :func:`residual_variance` predicts.
    """
    func = "stream_variances"
    if not isinstance(caches, (list, tuple)) or not all(isinstance(c, ResidualCache) for c in caches):
        raise TypeError(f"{func}: caches must be the list of ResidualCache returned by residual_stack_forward")
    points = [c.x for c in caches] + ([as_float_array(out, "out", func, ndim=2, shape="(N, D)")]
                                      if out is not None else [])
    return np.array([float(np.vdot(p, p)) / p.size for p in points], dtype=np.float64)


def residual_variance(depth, branch_gain, *, alpha=1.0, var0=1.0, norm="none") -> np.ndarray:
    """Predicted variance of the stream after each of ``depth`` blocks, at initialization.

    A branch of gain g has :math:`E\\|F(u)\\|^2 = g\\, \\|u\\|^2` given its input u, and its last layer's
    weights are independent of x with mean 0, so the cross term :math:`E[x \\cdot F]` vanishes and, with
    :math:`c = \\alpha^2 g`,

    ========  =====================================================  ===============================
    norm      recursion                                              solution
    ========  =====================================================  ===============================
    "none"    :math:`V_l = V_{l-1} (1 + c)`                          :math:`V_0 (1 + c)^l`
    "pre"     :math:`V_l = V_{l-1} + c` (LN(x) has mean square 1)    :math:`V_0 + l c`
    "post"    :math:`V_l = 1` (the sum is renormalized)              1
    ========  =====================================================  ===============================

    Exponential growth without a norm unless c ~ 1/L: ``alpha = 1/sqrt(L)`` gives
    :math:`(1 + g/L)^L < e^g`. The recursion is exact in expectation over the weights for relu, leaky relu
    and identity branches (their gain does not depend on the input's scale); for tanh, g falls as the
    input grows.

    Parameters
    ----------
    depth : int
        L >= 1.
    branch_gain : float >= 0
        g, the branch's gain at initialization (1 for :func:`init_residual_block`'s relu branches).
    alpha : float >= 0, default 1.0
        The branch scale.
    var0 : float >= 0, default 1.0
        :math:`V_0`, the variance of the stack's input.
    norm : {"none", "pre", "post"}, default "none"

    Returns
    -------
    ndarray of shape (depth,)
        :math:`V_1, \\dots, V_L`.
    """
    func = "residual_variance"
    depth = check_int(depth, "depth", func)
    g = check_positive(branch_gain, "branch_gain", func, allow_zero=True)
    alpha = check_positive(alpha, "alpha", func, allow_zero=True)
    var0 = check_positive(var0, "var0", func, allow_zero=True)
    check_choice(norm, "norm", func, NORMS)
    c, l = alpha ** 2 * g, np.arange(1, depth + 1)
    if norm == "none":
        return var0 * (1.0 + c) ** l.astype(np.float64)
    if norm == "pre":
        return var0 + c * l
    return np.ones(depth)


# =========================================================================== a network to train

class ResidualNet(NamedTuple):
    """An input layer, a stack of residual blocks, an optional final layer norm and an output layer:

    ``x0 = x W_in + b_in``, ``x_l = block_l(x_{l-1})``, ``out = LN(x_L) W_out + b_out`` (logits, or a
    regression output; without ``LN`` when ``gamma_out`` is None). Build one with :func:`init_residual_net`.
    The final norm is the pre-LN transformer's: its stream grows with depth, and the head should not.
    """

    W_in: np.ndarray                   # (D_in, D)
    b_in: np.ndarray                   # (D,)
    blocks: tuple                      # of ResidualBlock
    W_out: np.ndarray                  # (D, D_out)
    b_out: np.ndarray                  # (D_out,)
    gamma_out: np.ndarray | None = None   # (D,) the final layer norm, or None
    beta_out: np.ndarray | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every trainable array: ``W_in, b_in``, ``block{l}.W1 ...`` (l from 1), [``gamma_out, beta_out``,]
        ``W_out, b_out``."""
        out = {"W_in": self.W_in, "b_in": self.b_in}
        for l, block in enumerate(self.blocks, start=1):
            out.update({f"block{l}.{k}": v for k, v in block.params.items()})
        if self.gamma_out is not None:
            out.update(gamma_out=self.gamma_out, beta_out=self.beta_out)
        out.update(W_out=self.W_out, b_out=self.b_out)
        return out

    def with_params(self, params: Mapping) -> "ResidualNet":
        """A copy with other arrays (the keys of :attr:`params`)."""
        blocks = tuple(b.with_params({k: params[f"block{l}.{k}"] for k in b.params})
                       for l, b in enumerate(self.blocks, start=1))
        return ResidualNet(params["W_in"], params["b_in"], blocks, params["W_out"], params["b_out"],
                           params.get("gamma_out"), params.get("beta_out"))


class _NetCache(NamedTuple):
    dense_in: DenseCache
    blocks: list
    ln: LayerNormCache | None
    dense_out: DenseCache


def init_residual_net(n_in, width, depth, n_out, rng, *, hidden=None, activation="relu", alpha=1.0,
                      zero_init_last=False, norm="none", final_norm=False, dtype=np.float64) -> ResidualNet:
    """A :class:`ResidualNet` with its stack from :func:`init_residual_stack`.

    The input and output layers are linear with variance ``1/fan_in`` weights (a unit-variance input
    gives a unit-variance stream) and zero biases; the input layer is drawn first, then the blocks,
    then the output layer.

    Parameters
    ----------
    n_in, width, depth, n_out : int
        Input width, stream width D, number of blocks L, output width.
    rng : numpy.random.Generator
    hidden, activation, alpha, zero_init_last, norm, dtype
        As in :func:`init_residual_stack`.
    final_norm : bool, default False
        A layer norm between the stack and the output layer (``gamma_out = 1``, ``beta_out = 0``).

    Returns
    -------
    ResidualNet
    """
    func = "init_residual_net"
    n_in, n_out = check_int(n_in, "n_in", func), check_int(n_out, "n_out", func)
    d = check_int(width, "width", func)
    rng = check_rng(rng, func)
    dtype = _check_dtype(dtype, func)
    W_in = (rng.standard_normal((n_in, d)) / math.sqrt(n_in)).astype(dtype)
    blocks = init_residual_stack(d, depth, rng, hidden=hidden, activation=activation, alpha=alpha,
                                 zero_init_last=zero_init_last, norm=norm, dtype=dtype)
    if not isinstance(final_norm, bool):
        raise TypeError(f"{func}: final_norm must be True or False; got {type(final_norm).__name__}")
    W_out = (rng.standard_normal((d, n_out)) / math.sqrt(d)).astype(dtype)
    final = (np.ones(d, dtype), np.zeros(d, dtype)) if final_norm else (None, None)
    return ResidualNet(W_in, np.zeros(d, dtype), tuple(blocks), W_out, np.zeros(n_out, dtype), *final)


def _check_net(net, func: str) -> ResidualNet:
    if not isinstance(net, ResidualNet):
        raise TypeError(f"{func}: net must be a ResidualNet (see init_residual_net); got {type(net).__name__}")
    W_in = as_float_array(net.W_in, "net.W_in", func, ndim=2, shape="(D_in, D)")
    d = W_in.shape[1]
    blocks = _check_blocks(list(net.blocks), d, func)
    W_out = as_float_array(net.W_out, "net.W_out", func, ndim=2, shape="(D, D_out)")
    b_in = as_float_array(net.b_in, "net.b_in", func, ndim=1, shape="(D,)")
    b_out = as_float_array(net.b_out, "net.b_out", func, ndim=1, shape="(D_out,)")
    checked = [("b_in", b_in, (d,)), ("W_out", W_out, (d, W_out.shape[1])), ("b_out", b_out, (W_out.shape[1],))]
    final = [None, None]
    if (net.gamma_out is None) != (net.beta_out is None):
        raise ValueError(f"{func}: net.gamma_out and net.beta_out must both be arrays (a final norm) or both None")
    if net.gamma_out is not None:
        final = [as_float_array(v, f"net.{k}", func, ndim=1, shape="(D,)")
                 for k, v in (("gamma_out", net.gamma_out), ("beta_out", net.beta_out))]
        checked += [("gamma_out", final[0], (d,)), ("beta_out", final[1], (d,))]
    for name, arr, shape in checked:
        if arr.shape != shape:
            raise ValueError(f"{func}: net.{name} must have shape {shape} (D = W_in.shape[1] = {d}); "
                             f"got shape {arr.shape}")
    return ResidualNet(W_in, b_in, tuple(blocks), W_out, b_out, *final)


def _net_forward(net: ResidualNet, x):
    h, dense_in = _dense_forward(x, net.W_in, net.b_in)
    h, caches = _stack_forward(h, net.blocks)
    ln = None
    if net.gamma_out is not None:
        h, ln = layernorm_forward(h, net.gamma_out, net.beta_out)
    out, dense_out = _dense_forward(h, net.W_out, net.b_out)
    return out, _NetCache(dense_in, caches, ln, dense_out)


def _net_backward(dout, cache: _NetCache) -> dict:
    grads = {}
    d, dW_out, db_out = _dense_backward(dout, cache.dense_out.x, cache.dense_out.W)
    if cache.ln is not None:
        d, dgamma, dbeta = layernorm_backward(d, cache.ln)
    d, block_grads, _ = _stack_backward(d, cache.blocks)
    _, grads["W_in"], grads["b_in"] = _dense_backward(d, cache.dense_in.x, cache.dense_in.W, need_dx=False)
    for l, g in enumerate(block_grads, start=1):
        grads.update({f"block{l}.{k}": v for k, v in g.items()})
    if cache.ln is not None:
        grads.update(gamma_out=dgamma, beta_out=dbeta)
    grads.update(W_out=dW_out, b_out=db_out)
    return grads


def _resolve_loss(loss, func: str):
    if not isinstance(loss, str):
        raise TypeError(f"{func}: loss must be a loss name such as 'mse'; got {type(loss).__name__}")
    check_choice(loss, "loss", func, LOSSES.keys() | ALIASES.keys())
    entry = LOSSES[ALIASES.get(loss, loss)]
    if entry.kind != "regression" and not entry.on_logits:
        raise ValueError(f"{func}: a ResidualNet outputs logits; use loss='bce_with_logits' instead of {loss!r}")
    return entry


def _check_data(net: ResidualNet, x, y, entry, func: str):
    x = as_float_array(x, "x", func, ndim=2, shape=f"(N, {net.W_in.shape[0]})")
    if x.shape[1] != net.W_in.shape[0]:
        raise ValueError(f"{func}: x must have shape (N, D_in) with D_in = {net.W_in.shape[0]}; got shape {x.shape}")
    return x, entry.targets(y, x.shape[0], net.W_out.shape[1], net.W_in.dtype, func)


def residual_loss_and_grads(net, x, y, loss):
    """Loss of a :class:`ResidualNet` on a batch, and its gradient with respect to every parameter.

    Parameters
    ----------
    net : ResidualNet
    x : ndarray of shape (N, D_in)
    y : ndarray
        Targets (N, D_out) or (N,) for ``"mse"`` and ``"bce_with_logits"``; integer labels (N,) for
        ``"softmax_cross_entropy"`` (alias ``"cross_entropy"``).
    loss : str
        A key of :data:`stablegrad.losses.LOSSES` applied to the output (logits).

    Returns
    -------
    loss : float
    grads : dict of str to ndarray
        The keys and shapes of ``net.params``; :func:`block_gradient_norms` reads the blocks' entries.
    caches : list of ResidualCache
        The stack's forward caches (for :func:`stream_variances`).
    """
    func = "residual_loss_and_grads"
    net = _check_net(net, func)
    entry = _resolve_loss(loss, func)
    x, Y = _check_data(net, x, y, entry, func)
    out, cache = _net_forward(net, x)
    value, dout = entry.core(out, Y)
    return value, _net_backward(dout, cache), cache.blocks


class ResidualHistory(NamedTuple):
    """What :func:`train_residual` recorded (E completed epochs, S steps, L blocks).

    Attributes
    ----------
    loss : ndarray (E,)
        Mean training loss per completed epoch.
    step_loss : ndarray (S,)
        The loss of every step, including a final non-finite one.
    step_lr : ndarray (S,)
        The learning rate each step used (the warmup ramp, then the optimizer's rate).
    step_block_grad_norm : ndarray (S, L)
        :func:`block_gradient_norms` at every step, before the update (NaN after a non-finite loss).
    diverged_at : int or None
        The step whose loss or gradient was not finite; training stopped there.
    net : ResidualNet
        The trained network (the last one with a finite loss if training diverged).
    """

    loss: np.ndarray
    step_loss: np.ndarray
    step_lr: np.ndarray
    step_block_grad_norm: np.ndarray
    diverged_at: int | None
    net: ResidualNet


def train_residual(net, X, y, *, loss, optimizer, epochs, rng, batch_size=32, warmup_steps=0) -> ResidualHistory:
    """Mini-batch training of a :class:`ResidualNet`, with an optional linear learning-rate warmup.

    Each epoch shuffles the rows with ``rng``; each step computes the loss and gradients
    (:func:`residual_loss_and_grads`), records them, and updates every parameter with ``optimizer``,
    whose rate during the first ``warmup_steps`` steps is :math:`\\eta\\, t / T_w` (t = 1, 2, ...):
    small steps while the adaptive optimizer's statistics are still poor estimates.

    Parameters
    ----------
    net : ResidualNet
        Not modified; the trained one is ``history.net``.
    X : ndarray of shape (N, D_in)
    y : ndarray
        As in :func:`residual_loss_and_grads`.
    loss : str
    optimizer : Optimizer or str
        E.g. ``Adam(lr=1e-3)``; a fresh clone is used.
    epochs : int >= 1
    rng : numpy.random.Generator
        Shuffles the rows.
    batch_size : int, default 32
    warmup_steps : int >= 0, default 0

    Returns
    -------
    ResidualHistory
    """
    func = "train_residual"
    net = _check_net(net, func)
    entry = _resolve_loss(loss, func)
    X, Y = _check_data(net, X, y, entry, func)
    epochs = check_int(epochs, "epochs", func)
    batch_size = check_int(batch_size, "batch_size", func)
    warmup_steps = check_int(warmup_steps, "warmup_steps", func, minimum=0)
    rng = check_rng(rng, func)
    try:
        opt = get_optimizer(optimizer)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("get_optimizer: name", f"{func}: optimizer")) from None
    base_lr, n = opt.lr, X.shape[0]
    total = epochs * math.ceil(n / batch_size)
    step_loss, step_lr = np.full(total, np.nan), np.full(total, np.nan)
    step_norms = np.full((total, len(net.blocks)), np.nan)
    epoch_loss, params, step, diverged, previous = [], net.params, 0, None, net
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is what we watch for
        for _ in range(epochs):
            order, loss_sum = rng.permutation(n), 0.0
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                out, cache = _net_forward(net, X[rows])
                value, dout = entry.core(out, Y[rows])
                step_loss[step] = value
                if not math.isfinite(value):
                    diverged, net = step, previous   # the net before this update still had a finite loss
                    break
                grads = _net_backward(dout, cache)
                step_norms[step] = block_gradient_norms(grads)
                if not np.all(np.isfinite(step_norms[step])):
                    diverged = step
                    break
                opt.lr = base_lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else base_lr
                step_lr[step] = opt.lr
                params = opt.step(params, grads)
                previous, net = net, net.with_params(params)
                loss_sum += value * len(rows)
                step += 1
            if diverged is not None:
                step += 1
                break
            epoch_loss.append(loss_sum / n)
    return ResidualHistory(np.array(epoch_loss), step_loss[:step], step_lr[:step], step_norms[:step],
                           diverged, net)
